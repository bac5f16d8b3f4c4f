//! The multi-row statements of the general insert path (`Store::insert_records`): new rows with
//! time-ordered ids, and per chunk one statement each for the records, their history and their unique
//! values (per-statement cost dominates on SQLite, PERF.md).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use super::{INSERT_CHUNK, InsertGroup, RecordRow, UniqueValue};
use crate::query::{Arg, Sql};

/// The multi-row statements of one chunk of an insert group.
pub(super) struct InsertChunk {
    pub(super) app: String,
    pub(super) entity: String,
    pub(super) insert: Sql,
    pub(super) history: Sql,
    pub(super) uniques: Option<(Sql, usize)>,
    /// (record id, unique value) of every unique value in the chunk, to explain a conflict.
    pub(super) unique_owners: Vec<(String, UniqueValue)>,
}

/// The rows `group` becomes: new time-ordered ids, version 1, created and updated now by the actor.
pub(super) fn new_rows(group: &InsertGroup, now: DateTime<Utc>) -> Vec<RecordRow> {
    group
        .records
        .iter()
        .map(|record| RecordRow {
            id: uuid::Uuid::now_v7().to_string(),
            app_id: group.app.clone(),
            entity: group.entity.clone(),
            version: 1,
            data: Json(record.data.clone()),
            created_at: now,
            created_by: group.actor.clone(),
            updated_at: now,
            updated_by: group.actor.clone(),
            deleted_at: None,
        })
        .collect()
}

/// Multi-row statements for `rows` of `group`: per-statement cost dominates on SQLite (see PERF.md), so
/// a chunk of rows costs three statements instead of three per row.
pub(super) fn insert_statements(
    group: &InsertGroup,
    rows: &[RecordRow],
    now: DateTime<Utc>,
) -> Vec<InsertChunk> {
    let mut chunks = Vec::new();
    for (rows, records) in rows
        .chunks(INSERT_CHUNK)
        .zip(group.records.chunks(INSERT_CHUNK))
    {
        let mut insert = Sql::default();
        insert.push("INSERT INTO records (id, app_id, entity, version, data, created_at, created_by, updated_at, updated_by, search_text) VALUES ");
        let mut history = Sql::default();
        history.push("INSERT INTO record_history (record_id, app_id, entity, version, operation, actor, at, before, after) VALUES ");
        let mut uniques = Sql::default();
        uniques.push("INSERT INTO record_unique (app_id, entity, field, value, record_id) VALUES ");
        let mut unique_owners = Vec::new();
        for (index, (row, record)) in rows.iter().zip(records).enumerate() {
            let separator = if index == 0 { "" } else { ", " };
            let id = insert.arg(Arg::Text(row.id.clone()));
            let app = insert.arg(Arg::Text(group.app.clone()));
            let entity = insert.arg(Arg::Text(group.entity.clone()));
            let data = insert.arg(Arg::Json(Value::Object(record.data.clone())));
            let at = insert.arg(Arg::Time(now));
            let by = insert.arg(Arg::OptText(group.actor.clone()));
            let search = insert.arg(Arg::Text(record.search_text.clone()));
            insert.push(&format!(
                "{separator}({id}, {app}, {entity}, 1, {data}, {at}, {by}, {at}, {by}, {search})"
            ));

            let id = history.arg(Arg::Text(row.id.clone()));
            let app = history.arg(Arg::Text(group.app.clone()));
            let entity = history.arg(Arg::Text(group.entity.clone()));
            let by = history.arg(Arg::OptText(group.actor.clone()));
            let at = history.arg(Arg::Time(now));
            history.push(&format!(
                "{separator}({id}, {app}, {entity}, 1, 'create', {by}, {at}, NULL, NULL)"
            ));

            for unique in &record.uniques {
                let separator = if unique_owners.is_empty() { "" } else { ", " };
                let app = uniques.arg(Arg::Text(group.app.clone()));
                let entity = uniques.arg(Arg::Text(group.entity.clone()));
                let field = uniques.arg(Arg::Text(unique.field_uid.clone()));
                let value = uniques.arg(Arg::Text(unique.value.clone()));
                let id = uniques.arg(Arg::Text(row.id.clone()));
                uniques.push(&format!(
                    "{separator}({app}, {entity}, {field}, {value}, {id})"
                ));
                unique_owners.push((row.id.clone(), unique.clone()));
            }
        }
        uniques.push(" ON CONFLICT DO NOTHING");
        let expected = unique_owners.len();
        chunks.push(InsertChunk {
            app: group.app.clone(),
            entity: group.entity.clone(),
            insert,
            history,
            uniques: (expected > 0).then_some((uniques, expected)),
            unique_owners,
        });
    }
    chunks
}
