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
    bulk_updates_commit_together_and_skip_stale_records,
    hot_reads_see_exactly_what_the_general_reads_see,
    column_loads_read_each_field_as_the_database_does,
    history_written_before_history_chains_stays_whole,
    bulk_inserts_refuse_a_chunk_with_a_used_unique_value_whole,
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

    // Deleting is only ever soft: the database refuses to remove an app (records refer to it; on
    // PostgreSQL no per-row foreign key checks that any more, migration 0022).
    let erase = "DELETE FROM apps WHERE id = 'gone'";
    match backend {
        Backend::Sqlite => {
            // Without the foreign keys of its versions and records, only the trigger refuses.
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query("PRAGMA foreign_keys = OFF")
                .execute(&mut conn)
                .await
                .unwrap();
            assert!(sqlx::query(erase).execute(&mut conn).await.is_err());
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            assert!(sqlx::query(erase).execute(&mut conn).await.is_err());
            // A cascading truncate passes every foreign key: only the trigger refuses it.
            assert!(
                sqlx::query("TRUNCATE apps CASCADE")
                    .execute(&mut conn)
                    .await
                    .is_err()
            );
        }
    }
    assert_eq!(store.list_apps(false).await.unwrap().len(), 1);
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

/// How many live records of the `bulk` app's customers the full-text search for `word` finds.
async fn found_by_search(store: &Store, word: &str) -> usize {
    let query = trellis_store::ListQuery {
        filter: &trellis_model::CheckedFilter::All,
        search: Some(word),
        sort: &[],
        cursor: None,
        limit: 10,
        include_deleted: false,
    };
    store
        .list_records("bulk", "e_customer", &query)
        .await
        .unwrap()
        .len()
}

fn searchable(name: &str) -> trellis_store::NewRecord {
    let mut data = serde_json::Map::new();
    data.insert("f_name".into(), serde_json::json!(name));
    trellis_store::NewRecord {
        data,
        uniques: Vec::new(),
        search_text: name.to_lowercase(),
        data_json: None,
    }
}

/// `update_records_bulk`: every applied update gets its history row, its follow-up work and its search
/// text in one transaction with the logged rule runs and one change-log entry; an update whose record
/// changed since it was read is skipped and writes nothing.
async fn bulk_updates_commit_together_and_skip_stale_records(backend: Backend) {
    use trellis_store::{BulkUpdate, NewRuleRun, flows::TransitionWrites};
    let db = database_or_skip!(backend);
    let store = Store::connect(&db.url).await.unwrap();
    store
        .create_app(&version("bulk", "1.0.0", "{}"))
        .await
        .unwrap();
    let rows = store
        .insert_records(
            "bulk",
            "e_customer",
            Some("u1"),
            &[searchable("Ada"), searchable("Bo"), searchable("Cy")],
        )
        .await
        .unwrap();
    // A write-back's page read: each record's stored data, as text left unparsed where the read
    // had it as text (SQLite's native read), else parsed; the same values either way.
    let page = store
        .record_page_as_read("bulk", "e_customer", None, 10)
        .await
        .unwrap();
    assert_eq!(page.len(), 3);
    for record in &page {
        let written = rows.iter().find(|r| r.id == record.row.id).unwrap();
        let data = match &record.document {
            Some(text) => {
                assert!(
                    record.row.data.0.is_empty(),
                    "the text is not parsed as well"
                );
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text).unwrap()
            }
            None => record.row.data.0.clone(),
        };
        assert_eq!(data, written.data.0);
    }
    if backend == Backend::Sqlite {
        assert!(page.iter().all(|record| record.document.is_some()));
    }
    // Bo changes after the batch read it.
    store
        .update_record(
            "bulk",
            "e_customer",
            &rows[1].id,
            1,
            &searchable("Bob"),
            Some("u2"),
        )
        .await
        .unwrap();
    let side = TransitionWrites {
        app: "bulk".into(),
        entity: "customer".into(),
        outbox: vec![("webhook".into(), serde_json::json!({"n": 1}))],
        ..TransitionWrites::default()
    };
    let mut updates: Vec<BulkUpdate> = rows
        .iter()
        .zip(["Adeline", "Bobby", "Cy"])
        .map(|(row, name)| BulkUpdate {
            current: row.clone(),
            current_document: None,
            record: searchable(name),
            search_changed: row.data.0["f_name"] != name,
            side: (name == "Cy").then(|| side.clone()),
        })
        .collect();
    // Ada's update as a write-back plans it: both documents as text only, the maps left empty.
    let ada_update = &mut updates[0];
    ada_update.current_document = Some(serde_json::to_string(&ada_update.current.data.0).unwrap());
    ada_update.current.data.0.clear();
    ada_update.record.serialize_ahead();
    ada_update.record.data.clear();
    let run = NewRuleRun {
        rule: "score".into(),
        trigger: "record_updated".into(),
        record_id: Some(rows[0].id.clone()),
        matched: true,
        outcome: r#"{"writes":{}}"#.into(),
        error: None,
        duration_us: 7,
    };
    // Runs of four rules, interleaved as a page's records trigger them; most share an outcome
    // (stored once per row), every fourth has one of its own.
    let outcome_of = |i: i64| {
        if i % 4 == 0 {
            format!(r#"{{"writes":{{"n":{i}}}}}"#)
        } else {
            r#"{"writes":{}}"#.to_owned()
        }
    };
    let runs: Vec<NewRuleRun> = (0..120)
        .map(|i| NewRuleRun {
            rule: if i == 0 {
                "score".into()
            } else {
                format!("other_{}", i % 3)
            },
            duration_us: i,
            outcome: if i == 0 {
                run.outcome.clone()
            } else {
                outcome_of(i)
            },
            ..run.clone()
        })
        .collect();
    let before = store.changes_since(0, 1000).await.unwrap().len();
    let written = store
        .update_records_bulk("bulk", 1, Some("system"), &updates, &runs)
        .await
        .unwrap();
    assert_eq!(written.len(), 3);
    assert_eq!(written[0].as_ref().map(|r| r.version), Some(2));
    assert_eq!(
        written[0].as_ref().unwrap().data.0["f_name"],
        "Adeline",
        "a row written from text comes back with its data"
    );
    assert!(
        written[1].is_none(),
        "Bo changed since it was read: skipped"
    );
    assert_eq!(written[2].as_ref().map(|r| r.version), Some(2));

    let ada = store
        .get_record("bulk", "e_customer", &rows[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (ada.version, ada.data.0["f_name"].as_str()),
        (2, Some("Adeline"))
    );
    assert_eq!(ada.updated_by.as_deref(), Some("system"));
    let bo = store
        .get_record("bulk", "e_customer", &rows[1].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (bo.version, bo.data.0["f_name"].as_str()),
        (2, Some("Bob")),
        "the newer change stays"
    );
    let history = store
        .record_history("bulk", "e_customer", &rows[0].id)
        .await
        .unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.version, last.operation.as_str(), last.actor.as_deref()),
        (2, "update", Some("system"))
    );
    assert_eq!(last.before.as_ref().unwrap().0["f_name"], "Ada");
    assert_eq!(last.after.as_ref().unwrap().0["f_name"], "Adeline");
    assert_eq!(
        store
            .record_history("bulk", "e_customer", &rows[1].id)
            .await
            .unwrap()
            .len(),
        2
    );

    // The new search text is indexed; the old one no longer finds Ada.
    let search = |word: &'static str| found_by_search(&store, word);
    assert_eq!(search("adeline").await, 1);
    assert_eq!(search("ada").await, 0);
    // The skipped update indexed nothing; the record keeps the text of its newer change.
    assert_eq!(search("bobby").await, 0);
    assert_eq!(search("bob").await, 1);

    let logged = store.rule_runs("bulk", "score", 10).await.unwrap();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].record_id.as_deref(), Some(rows[0].id.as_str()));
    assert!(logged[0].matched);
    // Every run of a rule comes back, newest first, however it is stored.
    let others = store.rule_runs("bulk", "other_1", 100).await.unwrap();
    let durations: Vec<i64> = others.iter().map(|r| r.duration_us).collect();
    let expected: Vec<i64> = (0..120).rev().filter(|i| i % 3 == 1).collect();
    assert_eq!(durations, expected);
    assert!(others.iter().all(|r| r.matched
        && r.trigger == "record_updated"
        && r.outcome == outcome_of(r.duration_us)
        && r.record_id.as_deref() == Some(rows[0].id.as_str())));
    // A limit cuts inside a grouped row.
    let newest = store.rule_runs("bulk", "other_2", 5).await.unwrap();
    let durations: Vec<i64> = newest.iter().map(|r| r.duration_us).collect();
    assert_eq!(durations, vec![119, 116, 113, 110, 107]);
    // Stored as one row per rule (and trigger), not one per run, each shared outcome once; a
    // grouped row written before outcomes were shared (outcomes inline) still reads back.
    let count = "SELECT COUNT(*), CAST(SUM(runs) AS BIGINT), MAX(outcome) FROM rule_runs WHERE app_id = 'bulk' AND rule = 'other_1'";
    let legacy = "INSERT INTO rule_runs (app_id, rule, app_version, trigger, record_id, matched, outcome, error, duration_us, at, runs) \
                  VALUES ('bulk', 'legacy', 1, 'record_updated', NULL, TRUE, \
                  '[[\"r1\",true,{\"writes\":{\"a\":1}},null,5],[\"r2\",false,{\"trace\":[]},\"boom\",6]]', NULL, 11, '2026-12-01T00:00:00Z', 2)";
    let stored: (i64, i64, String) = match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query(legacy).execute(&mut conn).await.unwrap();
            sqlx::query_as(count).fetch_one(&mut conn).await.unwrap()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query(legacy).execute(&mut conn).await.unwrap();
            sqlx::query_as(count).fetch_one(&mut conn).await.unwrap()
        }
    };
    assert_eq!((stored.0, stored.1), (1, 40));
    assert_eq!(
        stored.2.matches(r#"{"writes":{}}"#).count(),
        1,
        "{}",
        stored.2
    );
    let legacy_runs = store.rule_runs("bulk", "legacy", 10).await.unwrap();
    let read: Vec<String> = legacy_runs
        .iter()
        .map(|r| {
            format!(
                "{:?} {} {} {:?} {}",
                r.record_id, r.matched, r.outcome, r.error, r.duration_us
            )
        })
        .collect();
    assert_eq!(
        read,
        vec![
            r#"Some("r2") false {"trace":[]} Some("boom") 6"#,
            r#"Some("r1") true {"writes":{"a":1}} None 5"#
        ]
    );
    let outbox = store.outbox_of("bulk").await.unwrap();
    assert_eq!(
        outbox.len(),
        1,
        "Cy's follow-up work committed with the update"
    );
    assert_eq!(outbox[0].kind, "webhook");

    let changes = store.changes_since(0, 1000).await.unwrap();
    assert_eq!(
        changes.len(),
        before + 1,
        "one change-log entry for the bulk write"
    );
    let payload: serde_json::Value =
        serde_json::from_str(&changes.last().unwrap().payload).unwrap();
    assert_eq!(payload["ids"], serde_json::json!([rows[0].id, rows[2].id]));

    // A one-record update after a bulk one is indexed by the trigger again (SQLite: the bulk
    // writer flips a flag to keep the trigger out of its own rows only), and so is the next bulk one.
    let ada = store
        .update_record(
            "bulk",
            "e_customer",
            &rows[0].id,
            2,
            &searchable("Adele"),
            Some("u2"),
        )
        .await
        .unwrap();
    assert_eq!((search("adele").await, search("adeline").await), (1, 0));
    // A nightly write-back's page: committed without waiting for the disk (and synced once at the
    // end of the run); the writer waits for the disk again for every later commit.
    let written = store
        .write_records_bulk_unsynced(
            "bulk",
            1,
            Some("system"),
            &[BulkUpdate {
                current: ada,
                current_document: None,
                record: searchable("Adah"),
                search_changed: true,
                side: None,
            }],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(written.applied, [true]);
    assert_eq!((search("adah").await, search("adele").await), (1, 0));
    assert_eq!(
        store.writer_syncs_every_commit().await.unwrap(),
        (backend == Backend::Sqlite).then_some(true),
        "after an unsynced bulk update, the writer waits for the disk again"
    );
    store.sync_log().await.unwrap();
}

/// The reads on every request and every transition (the app's current version; a record with the
/// version its flow run follows) go through rusqlite on SQLite: they return exactly what the sqlx
/// reads return, whichever writer stored the row, and see every commit at once.
async fn hot_reads_see_exactly_what_the_general_reads_see(backend: Backend) {
    use trellis_store::{BulkUpdate, flows::TransitionWrites};
    let db = database_or_skip!(backend);
    let store = Store::connect(&db.url).await.unwrap();
    assert_eq!(store.get_app("hot").await.unwrap(), None);
    let app = store
        .create_app(&version("hot", "1.0.0", "{}"))
        .await
        .unwrap();
    assert_eq!(store.get_app("hot").await.unwrap().as_ref(), Some(&app));
    store
        .publish_app_version(&version("hot", "1.1.0", "{}"), 1, &[])
        .await
        .unwrap();
    let current = store.get_app("hot").await.unwrap().unwrap();
    assert_eq!(
        (current.current_version, current.semver.as_str()),
        (2, "1.1.0")
    );
    assert_eq!(
        (current.uid.as_str(), current.created_at),
        (app.uid.as_str(), app.created_at)
    );
    assert!(current.updated_at >= app.updated_at);

    let inserted = store
        .insert_records("hot", "e_item", Some("u1"), &[searchable("Ping")])
        .await
        .unwrap()
        .remove(0);
    let both = |store: Store, id: String| async move {
        let general = store.get_record("hot", "e_item", &id).await.unwrap();
        let hot = store
            .get_record_with_flow_version("hot", "e_item", &id, "play")
            .await
            .unwrap();
        (general, hot)
    };
    let (general, hot) = both(store.clone(), inserted.id.clone()).await;
    assert_eq!(hot, Some((general.clone().unwrap(), None)));
    assert_eq!(general.as_ref(), Some(&inserted));

    // A transition written by the bulk path (rusqlite on SQLite): its flow version is seen at once.
    let side = TransitionWrites {
        app: "hot".into(),
        entity: "item".into(),
        flow: "play".into(),
        event: "hit".into(),
        to_state: "pong".into(),
        app_version: 2,
        ..TransitionWrites::default()
    };
    let written = store
        .update_records_bulk(
            "hot",
            2,
            Some("u2"),
            &[BulkUpdate {
                current: inserted.clone(),
                current_document: None,
                record: searchable("Pong"),
                search_changed: true,
                side: Some(side),
            }],
            &[],
        )
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    let (general, hot) = both(store.clone(), inserted.id.clone()).await;
    let general = general.unwrap();
    assert_eq!(hot, Some((general.clone(), Some(2))));
    assert_eq!(
        (general.version, general.data.0["f_name"].as_str()),
        (2, Some("Pong"))
    );
    assert_eq!(general.updated_at, written.updated_at);
    assert_eq!(general.created_at, inserted.created_at);

    // Soft-deleted rows come back with their deletion time, as through sqlx.
    store
        .set_record_deleted("hot", "e_item", &inserted.id, true, &[], Some("u1"))
        .await
        .unwrap()
        .unwrap();
    let (general, hot) = both(store.clone(), inserted.id.clone()).await;
    assert!(general.as_ref().unwrap().deleted_at.is_some());
    assert_eq!(hot, Some((general.unwrap(), Some(2))));
}

/// `load_columns` reads stored documents field by field (on SQLite by one pass over the document
/// bytes, on PostgreSQL with `->>`): escaped text, nested values to skip (brackets inside strings
/// among them), money whose amount is not the first key, numbers stored as text and text stored as
/// numbers, missing fields and impossible dates all come out the same on both backends.
async fn column_loads_read_each_field_as_the_database_does(backend: Backend) {
    use trellis_model::CheckedFilter;
    use trellis_store::{ColumnKind, ColumnRequest, ColumnValues};
    let db = database_or_skip!(backend);
    let store = Store::connect(&db.url).await.unwrap();
    store
        .create_app(&version("cols", "1.0.0", "{}"))
        .await
        .unwrap();
    let documents = [
        serde_json::json!({
            "f_text": "plain", "f_int": 42, "f_float": 2.5,
            "f_money": {"amount": "12.50", "currency": "CNY"}, "f_bool": true,
            "f_date": "2026-03-01", "f_at": "2026-03-01T10:00:00+08:00"
        }),
        serde_json::json!({
            "f_skip": [{"x": "}]\"{["}, "]", {"deep": [[[]]]}],
            "f_text": "quote \" backslash \\ 中文\nline", "f_int": -7, "f_float": 3,
            "f_money": {"currency": "CNY", "amount": "-123456789.0005"}, "f_bool": false,
            "f_date": null, "f_at": "2026-03-01"
        }),
        serde_json::json!({}),
        serde_json::json!({
            "f_money": "12", "f_text": 12, "f_int": "9", "f_float": 9007199254740993u64,
            "f_date": "2026-02-30", "f_bool": "yes", "f_tail": {"f_text": "not me"}
        }),
    ];
    let records: Vec<trellis_store::NewRecord> = documents
        .iter()
        .map(|d| trellis_store::NewRecord {
            data: d.as_object().unwrap().clone(),
            uniques: Vec::new(),
            search_text: String::new(),
            data_json: None,
        })
        .collect();
    let inserted = store
        .insert_records("cols", "e_item", Some("u1"), &records)
        .await
        .unwrap();
    let requests: Vec<ColumnRequest> = [
        ("f_text", ColumnKind::Text),
        ("f_int", ColumnKind::Int),
        ("f_float", ColumnKind::Float),
        ("f_money", ColumnKind::Money),
        ("f_bool", ColumnKind::Bool),
        ("f_date", ColumnKind::Date),
        ("f_at", ColumnKind::DateTime),
        ("f_int", ColumnKind::Text),
        ("f_missing", ColumnKind::Int),
    ]
    .into_iter()
    .map(|(uid, kind)| ColumnRequest {
        uid: uid.to_owned(),
        kind,
    })
    .collect();
    let loaded = store
        .load_columns("cols", "e_item", &requests, &CheckedFilter::All)
        .await
        .unwrap();
    // Loaded as two halves side by side (on SQLite; one piece on PostgreSQL): the very same columns.
    let split = store.clone().with_parallel_loads_from(2);
    assert_eq!(
        split
            .load_columns("cols", "e_item", &requests, &CheckedFilter::All)
            .await
            .unwrap(),
        loaded
    );
    // Rows come back in id order; put them in insertion order.
    let order: Vec<usize> = inserted
        .iter()
        .map(|r| loaded.ids.iter().position(|id| *id == r.id).unwrap())
        .collect();
    let pick = |column: usize| -> Vec<Option<String>> {
        let cell = |row: usize| match &loaded.columns[column] {
            ColumnValues::Int(v) | ColumnValues::Money(v) | ColumnValues::DateTime(v) => {
                v[row].map(|x| x.to_string())
            }
            ColumnValues::Float(v) => v[row].map(|x| x.to_string()),
            ColumnValues::Bool(v) => v[row].map(|x| x.to_string()),
            ColumnValues::Date(v) => v[row].map(|x| x.to_string()),
            ColumnValues::Dict { codes, values } => codes[row].map(|c| values[c as usize].clone()),
        };
        order.iter().map(|row| cell(*row)).collect()
    };
    let some = |values: [Option<&str>; 4]| -> Vec<Option<String>> {
        values.iter().map(|v| v.map(str::to_owned)).collect()
    };
    assert_eq!(
        pick(0),
        some([
            Some("plain"),
            Some("quote \" backslash \\ 中文\nline"),
            None,
            Some("12")
        ])
    );
    assert_eq!(pick(1), some([Some("42"), Some("-7"), None, Some("9")]));
    assert_eq!(
        pick(2),
        some([Some("2.5"), Some("3"), None, Some("9007199254740992")])
    );
    assert_eq!(
        pick(3),
        some([Some("125000"), Some("-1234567890005"), None, None])
    );
    assert_eq!(pick(4), some([Some("true"), Some("false"), None, None]));
    // 2026-03-01 is day 20,513 after 1970-01-01; 2026-02-30 is no date.
    assert_eq!(pick(5), some([Some("20513"), None, None, None]));
    assert_eq!(
        pick(6),
        some([
            Some("1772330400000"),
            Some(&(20_513i64 * 86_400_000).to_string()),
            None,
            None
        ])
    );
    assert_eq!(pick(7), some([Some("42"), Some("-7"), None, Some("9")]));
    assert_eq!(pick(8), some([None, None, None, None]));
    if backend == Backend::Sqlite {
        generated_documents_read_as_json_extract_reads_them(&store, &db.url).await;
    }
}

/// Many generated documents (nested values, escapes, numbers of every shape) read through
/// `load_columns` as text and through SQLite's own `json_extract` on the same file: equal, field by
/// field.
async fn generated_documents_read_as_json_extract_reads_them(store: &Store, url: &str) {
    use trellis_model::CheckedFilter;
    use trellis_store::{ColumnKind, ColumnRequest, ColumnValues};
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    fn value(next: &mut dyn FnMut(u64) -> u64, depth: u32) -> serde_json::Value {
        use serde_json::json;
        match next(if depth > 2 { 7 } else { 9 }) {
            0 => json!(null),
            1 => json!(next(2) == 0),
            2 => json!(next(2_000_000) as i64 - 1_000_000),
            3 => json!((next(1_000_000) as f64) / 64.0 - 5_000.0),
            4 => json!(
                [
                    "plain",
                    "with \"quote\"",
                    "back\\slash",
                    "中文 ✓",
                    "}]{[",
                    "tab\tnew\nline",
                    ""
                ][next(7) as usize]
            ),
            5 => json!("x".repeat(next(100) as usize)),
            6 => json!(i64::MAX - next(3) as i64),
            7 => serde_json::Value::Array((0..next(4)).map(|_| value(next, depth + 1)).collect()),
            _ => {
                let mut map = serde_json::Map::new();
                for k in 0..next(4) {
                    map.insert(format!("f_{k}"), value(next, depth + 1));
                }
                serde_json::Value::Object(map)
            }
        }
    }
    let keys = ["f_0", "f_1", "f_2", "f_3", "f_4"];
    let records: Vec<trellis_store::NewRecord> = (0..400)
        .map(|_| {
            let mut data = serde_json::Map::new();
            for key in keys {
                if next(5) > 0 {
                    data.insert(key.to_owned(), value(&mut next, 0));
                }
            }
            trellis_store::NewRecord {
                data,
                uniques: Vec::new(),
                search_text: String::new(),
                data_json: None,
            }
        })
        .collect();
    store
        .insert_records("cols", "e_generated", None, &records)
        .await
        .unwrap();
    let requests: Vec<ColumnRequest> = keys
        .iter()
        .map(|uid| ColumnRequest {
            uid: (*uid).to_owned(),
            kind: ColumnKind::Text,
        })
        .collect();
    let loaded = store
        .load_columns("cols", "e_generated", &requests, &CheckedFilter::All)
        .await
        .unwrap();
    let split = store.clone().with_parallel_loads_from(100);
    assert_eq!(
        split
            .load_columns("cols", "e_generated", &requests, &CheckedFilter::All)
            .await
            .unwrap(),
        loaded,
        "two halves side by side load what one piece loads"
    );
    let file = url.strip_prefix("sqlite://").unwrap();
    let reference = rusqlite::Connection::open(file).unwrap();
    let mut statement = reference
        .prepare(
            "SELECT json_extract(data, '$.\"f_0\"'), json_extract(data, '$.\"f_1\"'), \
             json_extract(data, '$.\"f_2\"'), json_extract(data, '$.\"f_3\"'), \
             json_extract(data, '$.\"f_4\"') FROM records WHERE entity = 'e_generated' ORDER BY id",
        )
        .unwrap();
    let expected: Vec<Vec<Option<String>>> = statement
        .query_map([], |row| {
            (0..5)
                .map(|i| {
                    Ok(match row.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => None,
                        rusqlite::types::ValueRef::Integer(n) => Some(n.to_string()),
                        rusqlite::types::ValueRef::Real(f) => Some(f.to_string()),
                        rusqlite::types::ValueRef::Text(t) => {
                            Some(String::from_utf8(t.to_vec()).unwrap())
                        }
                        rusqlite::types::ValueRef::Blob(_) => panic!("no blobs"),
                    })
                })
                .collect()
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(expected.len(), 400);
    let mut seen_values = 0;
    for (row, want) in expected.iter().enumerate() {
        for (column, want) in want.iter().enumerate() {
            let ColumnValues::Dict { codes, values } = &loaded.columns[column] else {
                panic!("text columns are dictionary-coded");
            };
            let got = codes[row].map(|c| values[c as usize].clone());
            assert_eq!(&got, want, "record {row}, field {}", keys[column]);
            seen_values += usize::from(got.is_some());
        }
    }
    assert!(seen_values > 1_000, "the generator made too few values");
}

/// A store whose history was written before the per-record history chains (SQLite migration 0018,
/// PostgreSQL 0017) is migrated to them: every record's history, flow history and flow-run version
/// read as before, and new changes continue each record's chain.
async fn history_written_before_history_chains_stays_whole(backend: Backend) {
    let db = database_or_skip!(backend);
    let (dir, chains) = match backend {
        Backend::Sqlite => ("sqlite", 18),
        Backend::Postgres => ("postgres", 17),
    };
    let path = format!("{}/../store/migrations/{dir}", env!("CARGO_MANIFEST_DIR"));
    let mut migrator = sqlx::migrate::Migrator::new(std::path::Path::new(&path))
        .await
        .unwrap();
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|m| m.version < chains)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    // Two records' changes interleaved, a third only created; flow history for two of them.
    let at = "2026-01-01T00:00:00Z";
    let old_rows = [
        "INSERT INTO apps (id, uid, current_version, created_at, updated_at) VALUES ('old', 'old-uid', 2, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')".to_string(),
        format!("INSERT INTO records (id, app_id, entity, version, data, created_at, updated_at) VALUES ('r1', 'old', 'e', 3, '{{\"n\":3}}', '{at}', '{at}')"),
        format!("INSERT INTO records (id, app_id, entity, version, data, created_at, updated_at) VALUES ('r2', 'old', 'e', 2, '{{\"n\":2}}', '{at}', '{at}')"),
        format!("INSERT INTO records (id, app_id, entity, version, data, created_at, updated_at) VALUES ('r3', 'old', 'e', 1, '{{\"n\":1}}', '{at}', '{at}')"),
    ];
    let history = [
        ("r1", 1, "create"),
        ("r2", 1, "create"),
        ("r1", 2, "update"),
        ("r3", 1, "create"),
        ("r2", 2, "update"),
        ("r1", 3, "update"),
    ];
    let flows = [("r1", "ping", 1), ("r3", "ping", 5), ("r1", "pong", 2)];
    let mut statements: Vec<String> = old_rows.to_vec();
    for (record, version, operation) in history {
        statements.push(format!(
            "INSERT INTO record_history (record_id, app_id, entity, version, operation, at, after) \
             VALUES ('{record}', 'old', 'e', {version}, '{operation}', '{at}', '{{\"n\":{version}}}')"
        ));
    }
    for (record, to, app_version) in flows {
        statements.push(format!(
            "INSERT INTO flow_history (app_id, flow, record_id, event, to_state, at, inputs, app_version) \
             VALUES ('old', 'play', '{record}', 'hit', '{to}', '{at}', '{{}}', {app_version})"
        ));
    }
    // The old schema and its rows, through a plain connection of either backend.
    macro_rules! write_old_store {
        ($conn:expr) => {{
            let mut conn = $conn;
            migrator.run(&mut conn).await.unwrap();
            for statement in &statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(statement.clone()))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            conn.close().await.unwrap();
        }};
    }
    match backend {
        Backend::Sqlite => {
            use std::str::FromStr;
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(&db.url)
                .unwrap()
                .create_if_missing(true);
            write_old_store!(
                sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .unwrap()
            );
        }
        Backend::Postgres => {
            write_old_store!(sqlx::PgConnection::connect(&db.url).await.unwrap());
        }
    }

    let store = Store::connect(&db.url).await.unwrap();
    assert_eq!(
        store.applied_migrations().await.unwrap(),
        migration_files(backend)
    );
    let versions = |rows: Vec<trellis_store::HistoryRow>| -> Vec<(i64, String)> {
        rows.into_iter().map(|h| (h.version, h.operation)).collect()
    };
    let changes = |ops: &[(i64, &str)]| -> Vec<(i64, String)> {
        ops.iter().map(|(v, o)| (*v, o.to_string())).collect()
    };
    assert_eq!(
        versions(store.record_history("old", "e", "r1").await.unwrap()),
        changes(&[(1, "create"), (2, "update"), (3, "update")])
    );
    assert_eq!(
        versions(store.record_history("old", "e", "r2").await.unwrap()),
        changes(&[(1, "create"), (2, "update")])
    );
    assert_eq!(
        versions(store.record_history("old", "e", "r3").await.unwrap()),
        changes(&[(1, "create")])
    );
    let states = |rows: Vec<trellis_store::flows::FlowHistoryRow>| -> Vec<String> {
        rows.into_iter().map(|f| f.to_state).collect()
    };
    assert_eq!(
        states(store.flow_history("r1").await.unwrap()),
        ["ping", "pong"]
    );
    assert_eq!(states(store.flow_history("r3").await.unwrap()), ["ping"]);
    assert!(store.flow_history("r2").await.unwrap().is_empty());
    assert_eq!(
        store.latest_flow_version("r1", "play").await.unwrap(),
        Some(2)
    );
    assert_eq!(
        store.latest_flow_version("r3", "play").await.unwrap(),
        Some(5)
    );
    assert_eq!(store.latest_flow_version("r2", "play").await.unwrap(), None);
    assert_eq!(
        store.latest_flow_version("r1", "other").await.unwrap(),
        None
    );

    // New changes continue the chains.
    let next = trellis_store::NewRecord {
        data: serde_json::json!({"n": 4}).as_object().unwrap().clone(),
        uniques: vec![],
        search_text: String::new(),
        data_json: None,
    };
    store
        .update_record("old", "e", "r1", 3, &next, Some("tester"))
        .await
        .unwrap();
    store
        .update_record("old", "e", "r3", 1, &next, Some("tester"))
        .await
        .unwrap();
    assert_eq!(
        versions(store.record_history("old", "e", "r1").await.unwrap()),
        changes(&[(1, "create"), (2, "update"), (3, "update"), (4, "update")])
    );
    assert_eq!(
        versions(store.record_history("old", "e", "r3").await.unwrap()),
        changes(&[(1, "create"), (2, "update")])
    );
    assert_eq!(
        versions(store.record_history("old", "e", "r2").await.unwrap()),
        changes(&[(1, "create"), (2, "update")])
    );
    assert_eq!(
        store.latest_flow_version("r1", "play").await.unwrap(),
        Some(2)
    );
    assert_eq!(
        store.latest_flow_version("r3", "play").await.unwrap(),
        Some(5)
    );
}

fn with_email(name: &str, email: &str) -> trellis_store::NewRecord {
    let mut record = searchable(name);
    record.uniques.push(trellis_store::UniqueValue {
        field_uid: "f_email".into(),
        value: email.into(),
    });
    // As an import does: the document written as text off the writer, no stored map kept.
    record.data_json = Some(serde_json::to_string(&record.data).unwrap());
    record.data = serde_json::Map::new();
    record
}

/// A bulk insert chunk whose unique value is held by a stored record, or repeated inside the chunk,
/// is refused whole with the value named, writes nothing, and leaves the bulk insert usable: the
/// next chunk goes in and commits with its history and search entries.
async fn bulk_inserts_refuse_a_chunk_with_a_used_unique_value_whole(backend: Backend) {
    let db = database_or_skip!(backend);
    let store = Store::connect(&db.url).await.unwrap();
    store
        .create_app(&version("bulk", "1.0.0", "{}"))
        .await
        .unwrap();
    store
        .insert_records(
            "bulk",
            "e_customer",
            Some("u1"),
            &[with_email("Ada", "ada@x")],
        )
        .await
        .unwrap();
    // As an import's chunks do: committed without waiting for the disk, synced once at the end.
    let mut bulk = store
        .begin_unsynced_bulk_insert("bulk", "e_customer", Some("u2"))
        .await
        .unwrap();
    let refused = [
        vec![with_email("Bo", "bo@x"), with_email("Ada Two", "ada@x")],
        vec![with_email("Cy", "cy@x"), with_email("Cy Two", "cy@x")],
    ];
    for (chunk, value) in refused.iter().zip(["ada@x", "cy@x"]) {
        match bulk.insert(chunk).await {
            Err(StoreError::UniqueViolation {
                field_uid,
                value: named,
            }) => {
                assert_eq!((field_uid.as_str(), named.as_str()), ("f_email", value));
            }
            other => panic!("expected a unique violation for {value}, got {other:?}"),
        }
        assert_eq!(bulk.inserted(), 0, "nothing of a refused chunk counts");
    }
    bulk.insert(&[with_email("Bo", "bo@x"), with_email("Cy", "cy@x")])
        .await
        .unwrap();
    let ids = bulk.ids().to_vec();
    assert_eq!(bulk.commit().await.unwrap(), 2);
    let every_commit_synced = (backend == Backend::Sqlite).then_some(true);
    assert_eq!(
        store.writer_syncs_every_commit().await.unwrap(),
        every_commit_synced,
        "after an unsynced bulk insert commits, the writer waits for the disk again"
    );
    store.sync_log().await.unwrap();

    // Imported rows wait for the search indexer (SQLite), which indexes them with a late-merging
    // FTS5 `automerge`; every other write finds the usual.
    while store.index_search_backlog_step().await.unwrap() {}
    if backend == Backend::Sqlite {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        let automerge: i64 =
            sqlx::query_scalar("SELECT v FROM records_fts_config WHERE k = 'automerge'")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(automerge, 4, "FTS5's usual automerge after a bulk chunk");
    }
    let search = |q: &'static str| found_by_search(&store, q);
    assert_eq!(search("ada").await, 1, "only the stored Ada, not 'Ada Two'");
    assert_eq!(search("bo").await, 1);
    assert_eq!(search("cy").await, 1, "one Cy, not 'Cy Two'");
    assert_eq!(search("two").await, 0);
    for (id, name) in ids.iter().zip(["Bo", "Cy"]) {
        // The document serialized ahead is the one stored.
        let stored = store
            .get_record("bulk", "e_customer", id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.data.0["f_name"], name);
        let history = store
            .record_history("bulk", "e_customer", id)
            .await
            .unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].operation, "create");
        assert_eq!(history[0].actor.as_deref(), Some("u2"));
    }
    // The committed chunk holds its unique values like any other write.
    let mut again = store
        .begin_unsynced_bulk_insert("bulk", "e_customer", Some("u2"))
        .await
        .unwrap();
    assert!(matches!(
        again.insert(&[with_email("Bo Again", "bo@x")]).await,
        Err(StoreError::UniqueViolation { .. })
    ));
    again.rollback().await.unwrap();
    assert_eq!(
        store.writer_syncs_every_commit().await.unwrap(),
        every_commit_synced,
        "after an unsynced bulk insert rolls back, the writer waits for the disk again"
    );
}

/// SQLite: the WAL is checkpointed by the store's own thread, off the single writer. Committed pages
/// reach the database file within seconds although the log stays far below the size at which the
/// writer would checkpoint itself (40,000 pages); closing the store stops the thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_checkpoints_the_wal_off_the_writer() {
    let db = database_or_skip!(Backend::Sqlite);
    let store = Store::connect(&db.url).await.unwrap();
    store
        .create_app(&version("ckpt", "1.0.0", "{}"))
        .await
        .unwrap();
    let file = db.url.strip_prefix("sqlite://").unwrap().to_owned();
    let size = || std::fs::metadata(&file).unwrap().len();
    let before = size();
    // About 2 MB of records: some 500 pages in the log.
    let records: Vec<_> = (0..2000)
        .map(|i| searchable(&format!("name {i} {}", "x".repeat(800))))
        .collect();
    store
        .insert_records("ckpt", "e_item", None, &records)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while size() < before + 1_500_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the committed records never reached the database file ({} → {} bytes)",
            before,
            size()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    store.close().await;
}
