//! Column snapshots: an entity's column cache persisted beside its records, so a server that starts
//! cold reads a few large encoded chunks instead of every document. The store keeps them opaque — the
//! runtime's column cache encodes and decodes the chunks — and guarantees only this: a snapshot is
//! read whole (its head and the chunks it lists, or nothing), and replacing one replaces it whole.
//!
//! A snapshot carries the change-log cursor its data is current to; the reader applies the changes
//! after it, exactly as it refreshes a cache it built itself.

use std::collections::HashMap;

use crate::{ChangeCursor, Store, StoreError};

/// What a snapshot is: the app version its values were read at, the change-log cursor they are
/// current to, its row count, the encoding's format number, and how many chunks each part has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotHead {
    pub app_version: i64,
    pub cursor: ChangeCursor,
    pub rows: i64,
    pub format: i64,
    pub parts: HashMap<String, usize>,
}

/// A snapshot read back: its head and the requested parts that it has, each as its chunks in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSnapshot {
    pub head: SnapshotHead,
    pub parts: HashMap<String, Vec<Vec<u8>>>,
}

/// One row of `column_snapshots` (the head of an entity's snapshot).
type HeadRow = (String, i64, i64, Option<i64>, i64, i64, String);

impl Store {
    /// Replace `entity`'s snapshot with `head` and `parts` (each part's chunks in order), in one
    /// transaction.
    pub async fn save_column_snapshot(
        &self,
        app: &str,
        entity: &str,
        head: &SnapshotHead,
        parts: &[(String, Vec<Vec<u8>>)],
    ) -> Result<(), StoreError> {
        let snapshot = uuid::Uuid::now_v7().to_string();
        let counts: HashMap<&str, usize> = parts
            .iter()
            .map(|(part, chunks)| (part.as_str(), chunks.len()))
            .collect();
        let counts = serde_json::to_string(&counts)
            .map_err(|e| StoreError::Corrupt(format!("column snapshot parts: {e}")))?;
        crate::with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "DELETE FROM column_snapshot_chunks WHERE snapshot IN \
                 (SELECT snapshot FROM column_snapshots WHERE app_id = $1 AND entity = $2)",
            )
            .bind(app)
            .bind(entity)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO column_snapshots (app_id, entity, snapshot, app_version, cursor_seq, \
                 cursor_xmin, row_count, format, parts, written_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (app_id, entity) DO UPDATE SET snapshot = excluded.snapshot, \
                 app_version = excluded.app_version, cursor_seq = excluded.cursor_seq, \
                 cursor_xmin = excluded.cursor_xmin, row_count = excluded.row_count, \
                 format = excluded.format, parts = excluded.parts, written_at = excluded.written_at",
            )
            .bind(app)
            .bind(entity)
            .bind(&snapshot)
            .bind(head.app_version)
            .bind(head.cursor.seq)
            .bind(head.cursor.xmin)
            .bind(head.rows)
            .bind(head.format)
            .bind(&counts)
            .bind(chrono::Utc::now())
            .execute(&mut *tx)
            .await?;
            for (part, chunks) in parts {
                for (index, chunk) in chunks.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO column_snapshot_chunks (snapshot, part, chunk, data) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&snapshot)
                    .bind(part)
                    .bind(index as i64)
                    .bind(chunk.as_slice())
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// `entity`'s snapshot with those of `parts` it has, or `None` when there is none (or it was
    /// replaced while being read: a reader never mixes chunks of two snapshots).
    pub async fn column_snapshot(
        &self,
        app: &str,
        entity: &str,
        parts: &[String],
    ) -> Result<Option<ColumnSnapshot>, StoreError> {
        let head: Option<HeadRow> = crate::with_pool!(self, read, |pool| {
            sqlx::query_as(
                "SELECT snapshot, app_version, cursor_seq, cursor_xmin, row_count, format, parts \
                 FROM column_snapshots WHERE app_id = $1 AND entity = $2",
            )
            .bind(app)
            .bind(entity)
            .fetch_optional(pool)
            .await?
        });
        let Some((snapshot, app_version, seq, xmin, rows, format, counts)) = head else {
            return Ok(None);
        };
        let counts: HashMap<String, usize> = serde_json::from_str(&counts)
            .map_err(|e| StoreError::Corrupt(format!("column snapshot parts: {e}")))?;
        let mut found = HashMap::new();
        for part in parts {
            let Some(&expected) = counts.get(part) else {
                continue;
            };
            let chunks: Vec<(i64, Vec<u8>)> = crate::with_pool!(self, read, |pool| {
                sqlx::query_as(
                    "SELECT chunk, data FROM column_snapshot_chunks \
                     WHERE snapshot = $1 AND part = $2 ORDER BY chunk",
                )
                .bind(&snapshot)
                .bind(part)
                .fetch_all(pool)
                .await?
            });
            let whole = chunks.len() == expected
                && chunks
                    .iter()
                    .enumerate()
                    .all(|(index, (chunk, _))| *chunk == index as i64);
            if !whole {
                // Replaced since the head was read.
                return Ok(None);
            }
            found.insert(
                part.clone(),
                chunks.into_iter().map(|(_, data)| data).collect(),
            );
        }
        Ok(Some(ColumnSnapshot {
            head: SnapshotHead {
                app_version,
                cursor: ChangeCursor { seq, xmin },
                rows,
                format,
                parts: counts,
            },
            parts: found,
        }))
    }
}
