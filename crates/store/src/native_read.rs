//! Native reads on SQLite. A flow transition reads one record (with the version its run follows)
//! before it writes; through sqlx that read is a hand-off to the connection's own thread and back
//! (~120 µs here, PERF.md). These rusqlite connections of our own run the statement on the calling
//! thread instead (a few µs). They are read-only WAL readers of the same file, so they see exactly
//! what sqlx's read pool sees: every committed write. Any error here falls back to the sqlx read.

use std::path::PathBuf;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::StoreError;

/// Idle connections kept for reuse (more are opened under load and closed after).
const KEEP_IDLE: usize = 8;

/// A small pool of read-only rusqlite connections to one database file.
#[derive(Debug)]
pub(crate) struct NativeReads {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
}

impl NativeReads {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn open(&self) -> Result<rusqlite::Connection, rusqlite::Error> {
        use rusqlite::OpenFlags;
        let connection = rusqlite::Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Short: a reader of a WAL database waits only in rare moments (WAL recovery); rather than
        // hold an async worker thread, give up and let the sqlx read take over.
        connection.busy_timeout(std::time::Duration::from_millis(50))?;
        // Map the file rather than copy pages (column loads read millions of rows through these).
        connection.pragma_update(None, "mmap_size", 2_147_418_112i64)?;
        Ok(connection)
    }

    /// Run `work` on an idle connection (opening one when none is idle).
    pub(crate) fn with<T>(
        &self,
        work: impl FnOnce(&rusqlite::Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, rusqlite::Error> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let connection = match idle {
            Some(connection) => connection,
            None => self.open()?,
        };
        let result = work(&connection);
        if result.is_ok()
            && let Ok(mut idle) = self.idle.lock()
            && idle.len() < KEEP_IDLE
        {
            idle.push(connection);
        }
        result
    }
}

/// A timestamp as either writer stores it: RFC 3339 (`T`) or sqlx's `YYYY-MM-DD HH:MM:SS.f+00:00`.
pub(crate) fn parse_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("bad timestamp '{text}': {e}")))
}

/// The columns of a `RecordRow` as rusqlite reads them (`id, app_id, entity, version, data,
/// created_at, created_by, updated_at, updated_by, deleted_at`, in that order); timestamps and JSON
/// are decoded by [`NativeRecord::into_row`], outside rusqlite's row callback.
pub(crate) struct NativeRecord {
    id: String,
    app_id: String,
    entity: String,
    version: i64,
    data: String,
    created_at: String,
    created_by: Option<String>,
    updated_at: String,
    updated_by: Option<String>,
    deleted_at: Option<String>,
}

impl NativeRecord {
    pub(crate) fn from_row(row: &rusqlite::Row<'_>) -> Result<Self, rusqlite::Error> {
        Ok(Self {
            id: row.get(0)?,
            app_id: row.get(1)?,
            entity: row.get(2)?,
            version: row.get(3)?,
            data: row.get(4)?,
            created_at: row.get(5)?,
            created_by: row.get(6)?,
            updated_at: row.get(7)?,
            updated_by: row.get(8)?,
            deleted_at: row.get(9)?,
        })
    }

    pub(crate) fn into_row(self) -> Result<crate::RecordRow, StoreError> {
        let (mut row, document) = self.into_unparsed_row()?;
        row.data = sqlx::types::Json(
            serde_json::from_str(&document)
                .map_err(|e| StoreError::Corrupt(format!("record '{}': bad data: {e}", row.id)))?,
        );
        Ok(row)
    }

    /// The record with its `data` left empty, and the document's text as read (not parsed).
    pub(crate) fn into_unparsed_row(self) -> Result<(crate::RecordRow, String), StoreError> {
        let row = crate::RecordRow {
            created_at: parse_time(&self.created_at)?,
            updated_at: parse_time(&self.updated_at)?,
            deleted_at: self.deleted_at.as_deref().map(parse_time).transpose()?,
            id: self.id,
            app_id: self.app_id,
            entity: self.entity,
            version: self.version,
            data: sqlx::types::Json(serde_json::Map::new()),
            created_by: self.created_by,
            updated_by: self.updated_by,
        };
        Ok((row, self.data))
    }
}
