//! The storage suite: the same tests on a SQLite file and on a real PostgreSQL server.

use chrono::{Duration, Utc};
use sqlx::Connection;
use trellis_store::{NewAppVersion, NewUser, Store, StoreError, TokenKind};

use crate::support::{Backend, database_or_skip, on_both_backends};

on_both_backends!(
    migrations_apply_once,
    concurrent_start_migrates_once,
    users_are_unique_and_tokens_expire_and_revoke,
    app_versions_are_all_kept,
    concurrent_publishes_cannot_both_win,
    soft_delete_and_restore,
    change_log_is_ordered_and_append_only,
);

fn migration_files(backend: Backend) -> i64 {
    let dir = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let path = format!("{}/../store/migrations/{dir}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_dir(path)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sql")
        })
        .count() as i64
}

fn version<'a>(app: &'a str, semver: &'a str, bundle: &'a str) -> NewAppVersion<'a> {
    NewAppVersion {
        app_id: app,
        semver,
        bundle,
        actor: Some("tester"),
        summary: serde_json::json!({}),
    }
}

async fn migrations_apply_once(backend: Backend) {
    let db = database_or_skip!(backend);
    let first = Store::connect(&db.url).await.unwrap();
    let applied = first.applied_migrations().await.unwrap();
    assert_eq!(applied, migration_files(backend));
    first.close().await;
    let again = Store::connect(&db.url).await.unwrap();
    assert_eq!(
        again.applied_migrations().await.unwrap(),
        applied,
        "reconnecting must not re-apply"
    );
    assert_eq!(
        again.backend(),
        match backend {
            Backend::Sqlite => trellis_store::Backend::Sqlite,
            Backend::Postgres => trellis_store::Backend::Postgres,
        }
    );
}

async fn concurrent_start_migrates_once(backend: Backend) {
    let db = database_or_skip!(backend);
    let url = db.url.clone();
    let starts = (0..4).map(move |_| {
        let url = url.clone();
        async move { Store::connect(&url).await }
    });
    let stores: Vec<Store> = futures_join_all(starts)
        .await
        .into_iter()
        .map(|r| r.expect("every server starts"))
        .collect();
    for store in &stores {
        assert_eq!(
            store.applied_migrations().await.unwrap(),
            migration_files(backend)
        );
    }
}

async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

async fn users_are_unique_and_tokens_expire_and_revoke(backend: Backend) {
    let db = database_or_skip!(backend);
    let store = Store::connect(&db.url).await.unwrap();
    assert_eq!(store.count_users().await.unwrap(), 0);
    let new = NewUser {
        username: "mei".into(),
        display_name: Some("Mei 美".into()),
        password_hash: "hash".into(),
        is_admin: false,
    };
    let user = store.create_user(&new).await.unwrap();
    assert!(matches!(
        store.create_user(&new).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.count_users().await.unwrap(), 1);
    let found = store.find_user_by_username("mei").await.unwrap().unwrap();
    assert_eq!(found, user);

    let now = Utc::now();
    store
        .insert_token(
            "live",
            &user.id,
            TokenKind::Session,
            None,
            Some(now + Duration::hours(1)),
            None,
        )
        .await
        .unwrap();
    store
        .insert_token(
            "expired",
            &user.id,
            TokenKind::Session,
            None,
            Some(now - Duration::seconds(1)),
            None,
        )
        .await
        .unwrap();
    store
        .insert_token("forever", &user.id, TokenKind::Api, Some("ci"), None, None)
        .await
        .unwrap();
    assert_eq!(
        store
            .find_live_token("live", now)
            .await
            .unwrap()
            .unwrap()
            .1
            .id,
        user.id
    );
    assert!(
        store
            .find_live_token("expired", now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_live_token("unknown", now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_live_token("forever", now)
            .await
            .unwrap()
            .is_some()
    );
    store.revoke_token("forever").await.unwrap();
    assert!(
        store
            .find_live_token("forever", now)
            .await
            .unwrap()
            .is_none(),
        "revoked tokens stop at once"
    );
}

async fn app_versions_are_all_kept(backend: Backend) {
    let db = database_or_skip!(backend);
    let store = Store::connect(&db.url).await.unwrap();
    let created = store
        .create_app(&version("crm", "1.0.0", r#"{"v":1}"#))
        .await
        .unwrap();
    assert_eq!(
        (created.current_version, created.semver.as_str()),
        (1, "1.0.0")
    );
    assert!(matches!(
        store.create_app(&version("crm", "1.0.0", "{}")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .publish_app_version(&version("crm", "1.1.0", r#"{"v":2}"#), 1, &[])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .publish_app_version(&version("crm", "2.0.0", r#"{"v":3}"#), 2, &[])
            .await
            .unwrap(),
        3
    );
    let versions = store.list_app_versions("crm").await.unwrap();
    let kept: Vec<(i64, &str, &str)> = versions
        .iter()
        .map(|v| (v.version, v.semver.as_str(), v.bundle.as_str()))
        .collect();
    assert_eq!(
        kept,
        vec![
            (1, "1.0.0", r#"{"v":1}"#),
            (2, "1.1.0", r#"{"v":2}"#),
            (3, "2.0.0", r#"{"v":3}"#)
        ]
    );
    let app = store.get_app("crm").await.unwrap().unwrap();
    assert_eq!((app.current_version, app.semver.as_str()), (3, "2.0.0"));
    assert!(matches!(
        store
            .publish_app_version(&version("crm", "9.0.0", "{}"), 1, &[])
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.list_app_versions("crm").await.unwrap().len(),
        3,
        "a stale publish adds nothing"
    );
}

async fn concurrent_publishes_cannot_both_win(backend: Backend) {
    let db = database_or_skip!(backend);
    let store = Store::connect(&db.url).await.unwrap();
    store
        .create_app(&version("race", "1.0.0", "{}"))
        .await
        .unwrap();
    let attempts = (0..8).map(|i| {
        let store = store.clone();
        async move {
            let bundle = format!(r#"{{"writer":{i}}}"#);
            store
                .publish_app_version(&version("race", "1.1.0", &bundle), 1, &[])
                .await
        }
    });
    let results = futures_join_all(attempts).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        wins, 1,
        "exactly one publish from version 1 may win: {results:?}"
    );
    assert!(
        results
            .iter()
            .filter(|r| r.is_err())
            .all(|r| matches!(r, Err(StoreError::Conflict(_))))
    );
    assert_eq!(store.list_app_versions("race").await.unwrap().len(), 2);
}

async fn soft_delete_and_restore(backend: Backend) {
    let db = database_or_skip!(backend);
    let store = Store::connect(&db.url).await.unwrap();
    store
        .create_app(&version("gone", "1.0.0", "{}"))
        .await
        .unwrap();
    assert!(store.set_app_deleted("gone", true, None).await.unwrap());
    assert!(
        !store.set_app_deleted("gone", true, None).await.unwrap(),
        "deleting twice changes nothing"
    );
    assert!(store.list_apps(false).await.unwrap().is_empty());
    assert_eq!(store.list_apps(true).await.unwrap().len(), 1);
    assert!(
        store
            .get_app("gone")
            .await
            .unwrap()
            .unwrap()
            .deleted_at
            .is_some()
    );
    assert!(store.set_app_deleted("gone", false, None).await.unwrap());
    assert_eq!(store.list_apps(false).await.unwrap().len(), 1);
    assert_eq!(
        store.list_app_versions("gone").await.unwrap().len(),
        1,
        "versions survive delete and restore"
    );
}

async fn change_log_is_ordered_and_append_only(backend: Backend) {
    let db = database_or_skip!(backend);
    let store = Store::connect(&db.url).await.unwrap();
    store
        .create_app(&version("log", "1.0.0", "{}"))
        .await
        .unwrap();
    store
        .publish_app_version(&version("log", "1.0.1", "{}"), 1, &[])
        .await
        .unwrap();
    store
        .set_app_deleted("log", true, Some("u1"))
        .await
        .unwrap();
    let changes = store.changes_since(0, 100).await.unwrap();
    let operations: Vec<&str> = changes.iter().map(|c| c.operation.as_str()).collect();
    assert_eq!(operations, vec!["create", "publish", "delete"]);
    assert!(changes.windows(2).all(|w| w[0].seq < w[1].seq));
    let after_first = store.changes_since(changes[0].seq, 100).await.unwrap();
    assert_eq!(after_first.len(), 2);
    assert_eq!(changes[2].actor.as_deref(), Some("u1"));

    // The database itself refuses to rewrite history.
    let rewrite = "UPDATE change_log SET operation = 'forged'";
    let erase = "DELETE FROM change_log";
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            assert!(sqlx::query(rewrite).execute(&mut conn).await.is_err());
            assert!(sqlx::query(erase).execute(&mut conn).await.is_err());
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            assert!(sqlx::query(rewrite).execute(&mut conn).await.is_err());
            assert!(sqlx::query(erase).execute(&mut conn).await.is_err());
        }
    }
    assert_eq!(store.changes_since(0, 100).await.unwrap().len(), 3);
}
