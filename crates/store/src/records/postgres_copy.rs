//! The PostgreSQL bulk-insert path: records and their history rows go in with `COPY … FROM STDIN`
//! (text format) instead of multi-row `INSERT`s, which spent most of their time binding seven
//! parameters per row; unique values go in with one `INSERT … SELECT FROM UNNEST` so a value already
//! used is still detected (and named) like on every other write path.

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::PgConnection;

use super::{InsertGroup, NewRecord};
use crate::StoreError;

/// Append `value` to a COPY text-format line, escaped (backslash, tab, newline, carriage return).
fn push_text(line: &mut String, value: &str) {
    for character in value.chars() {
        match character {
            '\\' => line.push_str("\\\\"),
            '\t' => line.push_str("\\t"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            other => line.push(other),
        }
    }
}

fn push_optional(line: &mut String, value: Option<&str>) {
    match value {
        Some(value) => push_text(line, value),
        None => line.push_str("\\N"),
    }
}

/// Send `data` to `statement` (a `COPY … FROM STDIN`), aborting the copy if sending fails.
async fn copy_in(
    connection: &mut PgConnection,
    statement: &str,
    data: String,
) -> Result<(), StoreError> {
    let mut copy = connection.copy_in_raw(statement).await?;
    if let Err(error) = copy.send(data.into_bytes()).await {
        copy.abort(error.to_string()).await.ok();
        return Err(error.into());
    }
    copy.finish().await?;
    Ok(())
}

/// Insert `records` with ids `ids` into `group`'s app and entity through `connection` (inside the
/// caller's transaction and savepoint).
pub(super) async fn insert_rows(
    connection: &mut PgConnection,
    group: &InsertGroup,
    records: &[NewRecord],
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let at = now.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    let mut record_lines = String::with_capacity(records.len() * 700);
    let mut history_lines = String::with_capacity(records.len() * 600);
    for (id, record) in ids.iter().zip(records) {
        let data = record.document()?;
        // id, app_id, entity, version, data, created_at, created_by, updated_at, updated_by, search_text
        for line in [&mut record_lines, &mut history_lines] {
            push_text(line, id);
            line.push('\t');
            push_text(line, &group.app);
            line.push('\t');
            push_text(line, &group.entity);
            line.push_str("\t1\t");
        }
        push_text(&mut record_lines, &data);
        record_lines.push('\t');
        record_lines.push_str(&at);
        record_lines.push('\t');
        push_optional(&mut record_lines, group.actor.as_deref());
        record_lines.push('\t');
        record_lines.push_str(&at);
        record_lines.push('\t');
        push_optional(&mut record_lines, group.actor.as_deref());
        record_lines.push('\t');
        push_text(&mut record_lines, &record.search_text);
        record_lines.push('\n');
        // … operation, actor, at, before, after (a create's document is the record's first version,
        // not written twice: see `Store::record_history`)
        history_lines.push_str("create\t");
        push_optional(&mut history_lines, group.actor.as_deref());
        history_lines.push('\t');
        history_lines.push_str(&at);
        history_lines.push_str("\t\\N\t\\N\n");
    }
    copy_in(
        connection,
        "COPY records (id, app_id, entity, version, data, created_at, created_by, updated_at, updated_by, search_text) FROM STDIN",
        record_lines,
    )
    .await?;
    copy_in(
        connection,
        "COPY record_history (record_id, app_id, entity, version, operation, actor, at, before, after) FROM STDIN",
        history_lines,
    )
    .await?;
    insert_uniques(connection, group, records, ids).await
}

/// Claim the chunk's unique values; a value held by another record is a [`StoreError::UniqueViolation`].
async fn insert_uniques(
    connection: &mut PgConnection,
    group: &InsertGroup,
    records: &[NewRecord],
    ids: &[String],
) -> Result<(), StoreError> {
    let (mut fields, mut values, mut owners) = (Vec::new(), Vec::new(), Vec::new());
    for (id, record) in ids.iter().zip(records) {
        for unique in &record.uniques {
            fields.push(unique.field_uid.clone());
            values.push(unique.value.clone());
            owners.push(id.clone());
        }
    }
    if fields.is_empty() {
        return Ok(());
    }
    let inserted = sqlx::query(
        "INSERT INTO record_unique (app_id, entity, field, value, record_id) \
         SELECT $1, $2, field, value, record_id FROM UNNEST($3::text[], $4::text[], $5::text[]) AS u(field, value, record_id) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&group.app)
    .bind(&group.entity)
    .bind(&fields)
    .bind(&values)
    .bind(&owners)
    .execute(&mut *connection)
    .await?
    .rows_affected();
    if inserted as usize == fields.len() {
        return Ok(());
    }
    // Find a value another record (or an earlier row of this chunk) holds.
    for ((field, value), owner) in fields.iter().zip(&values).zip(&owners) {
        let holder: Option<String> = sqlx::query_scalar(
            "SELECT record_id FROM record_unique WHERE app_id = $1 AND entity = $2 AND field = $3 AND value = $4",
        )
        .bind(&group.app)
        .bind(&group.entity)
        .bind(field)
        .bind(value)
        .fetch_optional(&mut *connection)
        .await?;
        if holder.as_deref() != Some(owner.as_str()) {
            return Err(StoreError::UniqueViolation {
                field_uid: field.clone(),
                value: value.clone(),
            });
        }
    }
    Err(StoreError::Corrupt(
        "unique values were refused but none is held by another record".into(),
    ))
}
