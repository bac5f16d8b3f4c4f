//! The search backlog: rows a bulk import inserted without indexing them for search (SQLite) are
//! found by every search all the same — before the indexer reaches them, after it did, and after
//! they were updated, renamed by a bulk update, deleted or replaced meanwhile — and the full-text
//! index stays consistent with the records throughout. On PostgreSQL (no backlog) the same searches
//! give the same answers.

use sqlx::Connection;
use trellis_store::{BulkUpdate, NewAppVersion, NewRecord, Store};

use crate::support::{Backend, database_or_skip, on_both_backends};

on_both_backends!(imported_rows_are_found_before_and_after_the_search_indexer);

const APP: &str = "backlog";
const ENTITY: &str = "e_customer";

fn named(name: &str) -> NewRecord {
    let mut data = serde_json::Map::new();
    data.insert("f_name".into(), serde_json::json!(name));
    NewRecord {
        data,
        uniques: Vec::new(),
        search_text: name.to_lowercase(),
        data_json: None,
    }
}

async fn found(store: &Store, word: &str) -> Vec<String> {
    let query = trellis_store::ListQuery {
        filter: &trellis_model::CheckedFilter::All,
        search: Some(word),
        sort: &[],
        cursor: None,
        limit: 100,
        include_deleted: false,
    };
    let mut names: Vec<String> = store
        .list_records(APP, ENTITY, &query)
        .await
        .unwrap()
        .iter()
        .map(|row| row.data.0["f_name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// Run one statement on a connection of its own (what no Trellis writer does: a hard delete, the
/// index's own integrity check).
async fn execute(backend: Backend, url: &str, sql: &str, id: Option<&str>) {
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            let query = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
            let query = match id {
                Some(id) => query.bind(id.to_owned()),
                None => query,
            };
            query.execute(&mut conn).await.unwrap();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            let query = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
            let query = match id {
                Some(id) => query.bind(id.to_owned()),
                None => query,
            };
            query.execute(&mut conn).await.unwrap();
        }
    }
}

/// SQLite: FTS5's own check of the index — that its structure is sound, and, once nothing is
/// left in the backlog (`whole`), that it holds exactly the records' search texts.
async fn index_is_consistent(backend: Backend, url: &str, whole: bool) {
    if backend == Backend::Sqlite {
        let sql = format!(
            "INSERT INTO records_fts(records_fts, rank) VALUES ('integrity-check', {})",
            i32::from(whole)
        );
        execute(backend, url, &sql, None).await;
    }
    if backend == Backend::Sqlite && whole {
        // And word for word: every word of every record's search text indexed once for that
        // record, nothing else (a row indexed twice, or text forgotten that was never indexed,
        // shows here even where FTS5's own check lets it pass).
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(
            "CREATE VIRTUAL TABLE temp.words USING fts5vocab(main, records_fts, 'instance')",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let mut indexed: Vec<(i64, String)> = sqlx::query_as("SELECT doc, term FROM temp.words")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        indexed.sort();
        let stored: Vec<(i64, String)> = sqlx::query_as("SELECT rowid, search_text FROM records")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let mut expected: Vec<(i64, String)> = stored
            .iter()
            .flat_map(|(rowid, text)| text.split_whitespace().map(|w| (*rowid, w.to_owned())))
            .collect();
        expected.sort();
        assert_eq!(
            indexed, expected,
            "the index holds each record's words once"
        );
    }
}

async fn imported_rows_are_found_before_and_after_the_search_indexer(backend: Backend) {
    let db = database_or_skip!(backend);
    let store = Store::connect(&db.url).await.unwrap();
    store
        .create_app(&NewAppVersion {
            app_id: APP,
            semver: "1.0.0",
            bundle: "{}",
            actor: Some("tester"),
            summary: serde_json::json!({}),
        })
        .await
        .unwrap();
    // One record written the ordinary way (indexed by the trigger), then two import chunks.
    store
        .insert_records(APP, ENTITY, Some("u1"), &[named("Alma")])
        .await
        .unwrap();
    let mut bulk = store
        .begin_unsynced_bulk_insert(APP, ENTITY, Some("u2"))
        .await
        .unwrap();
    bulk.insert(&[named("Ada"), named("Bo"), named("Cy")])
        .await
        .unwrap();
    bulk.insert(&[named("Dee"), named("Eve")]).await.unwrap();
    let ids = bulk.ids().to_vec();
    bulk.commit().await.unwrap();
    store.sync_log().await.unwrap();
    let deferred = if backend == Backend::Sqlite { 5 } else { 0 };
    assert_eq!(store.search_backlog(APP, ENTITY).await.unwrap(), deferred);

    // Before the indexer: Bo renamed one at a time, Cy by a bulk update (a nightly's write-back),
    // Dee deleted softly, Eve — the last row — deleted outright and her rowid taken by a new record.
    let bo = store
        .get_record(APP, ENTITY, &ids[1])
        .await
        .unwrap()
        .unwrap();
    store
        .update_record(APP, ENTITY, &bo.id, 1, &named("Quinn"), Some("u1"))
        .await
        .unwrap();
    let cy = store
        .get_record(APP, ENTITY, &ids[2])
        .await
        .unwrap()
        .unwrap();
    let written = store
        .update_records_bulk(
            APP,
            1,
            Some("system"),
            &[BulkUpdate {
                current: cy,
                current_document: None,
                record: named("Xavier"),
                search_changed: true,
                side: None,
            }],
            &[],
        )
        .await
        .unwrap();
    assert!(written[0].is_some());
    store
        .set_record_deleted(APP, ENTITY, &ids[3], true, &[], Some("u1"))
        .await
        .unwrap();
    execute(
        backend,
        &db.url,
        "DELETE FROM records WHERE id = $1",
        Some(&ids[4]),
    )
    .await;
    store
        .insert_records(APP, ENTITY, Some("u1"), &[named("Zed")])
        .await
        .unwrap();
    index_is_consistent(backend, &db.url, false).await;

    // The scheduler's step indexes the oldest range (the first chunk) …
    assert!(store.index_search_backlog_step().await.unwrap() || backend == Backend::Postgres);
    assert_eq!(
        store.search_backlog(APP, ENTITY).await.unwrap(),
        if backend == Backend::Sqlite { 2 } else { 0 }
    );
    index_is_consistent(backend, &db.url, false).await;
    // … and the first search indexes the rest of the entity's backlog before it runs.
    let cases: [(&str, &[&str]); 9] = [
        ("ada", &["Ada"]),
        ("alma", &["Alma"]),
        ("bo", &[]),
        ("quinn", &["Quinn"]),
        ("cy", &[]),
        ("xavier", &["Xavier"]),
        ("dee", &[]),
        ("eve", &[]),
        ("zed", &["Zed"]),
    ];
    for (word, names) in cases {
        assert_eq!(found(&store, word).await, names, "searching '{word}'");
    }
    assert_eq!(store.search_backlog(APP, ENTITY).await.unwrap(), 0);
    assert!(!store.index_search_backlog_step().await.unwrap());
    index_is_consistent(backend, &db.url, true).await;

    // Once indexed, a row's updates go through the index as any other's.
    let quinn = store
        .get_record(APP, ENTITY, &ids[1])
        .await
        .unwrap()
        .unwrap();
    store
        .update_record(APP, ENTITY, &quinn.id, quinn.version, &named("Rex"), None)
        .await
        .unwrap();
    assert_eq!(found(&store, "quinn").await, Vec::<String>::new());
    assert_eq!(found(&store, "rex").await, ["Rex"]);
    store
        .set_record_deleted(APP, ENTITY, &ids[3], false, &[], Some("u1"))
        .await
        .unwrap();
    assert_eq!(found(&store, "dee").await, ["Dee"], "restored");
    index_is_consistent(backend, &db.url, true).await;
}
