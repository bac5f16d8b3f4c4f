//! Column snapshots of cache entries: loading an entry from its entity's snapshot, deciding when
//! one is due, and writing it in the background (encoded under the entry's lock on a blocking
//! thread, stored after the lock is released).

use std::collections::HashMap;
use std::sync::Arc;

use trellis_report::ColumnType;
use trellis_store::Store;

use super::{ColumnCache, Entry, EntryKey, SnapshotPolicy, SnapshotState, codec, next_generation};
use crate::RuntimeError;

impl Entry {
    /// Load from the snapshot; `false` when there is none of this version and format.
    pub(super) async fn load_snapshot(
        &mut self,
        store: &Store,
        (app, version, entity_uid): (&str, i64, &str),
        wanted: &[(String, ColumnType)],
    ) -> Result<bool, RuntimeError> {
        let started = std::time::Instant::now();
        // Every column the snapshot holds comes along, not only those wanted now: a column another
        // caller wants next (a nightly rule's filter after the dashboards' columns at a server's
        // start) would otherwise be read from every document (8 s for 7 M points entries).
        let Some(head) = store.column_snapshot(app, entity_uid, &[]).await? else {
            return Ok(false);
        };
        if head.head.app_version != version || head.head.format != codec::FORMAT {
            return Ok(false);
        }
        let mut wanted = wanted.to_vec();
        let mut held: Vec<(String, ColumnType)> = head
            .head
            .parts
            .keys()
            .filter_map(|part| codec::column_of_part(part))
            .filter(|key| !wanted.contains(key))
            .collect();
        held.sort();
        wanted.extend(held);
        let mut parts = vec![codec::IDS_PART.to_owned()];
        for (uid, column) in &wanted {
            parts.push(codec::column_part(uid, *column));
            parts.push(codec::dictionary_part(uid, *column));
        }
        let Some(snapshot) = store.column_snapshot(app, entity_uid, &parts).await? else {
            return Ok(false);
        };
        if snapshot.head.app_version != version || snapshot.head.format != codec::FORMAT {
            return Ok(false);
        }
        let read_ms = started.elapsed().as_millis() as u64;
        let rows = usize::try_from(snapshot.head.rows)
            .map_err(|_| RuntimeError::Internal("column snapshot: negative row count".into()))?;
        let (ids, columns) =
            tokio::task::spawn_blocking(move || codec::decode(&snapshot.parts, rows, &wanted))
                .await
                .map_err(|e| RuntimeError::Internal(format!("column snapshot: {e}")))?
                .map_err(|e| RuntimeError::Internal(format!("column snapshot: {e}")))?;
        let decoded_ms = started.elapsed().as_millis() as u64;
        if !ids.strictly_increasing() {
            return Err(RuntimeError::Internal(
                "column snapshot: ids out of order".into(),
            ));
        }
        self.cursor = snapshot.head.cursor;
        self.sorted = ids.len();
        self.appended = HashMap::new();
        self.live = vec![true; ids.len()];
        self.ids = ids;
        self.generation = next_generation();
        self.snapshot = SnapshotState {
            columns: columns.keys().cloned().collect(),
            ..SnapshotState::default()
        };
        self.columns = columns
            .into_iter()
            .map(|(key, data)| (key, Arc::new(data)))
            .collect();
        self.loaded = true;
        tracing::debug!(
            app,
            entity = entity_uid,
            rows,
            read_ms,
            decoded_ms,
            ms = started.elapsed().as_millis() as u64,
            "columns loaded from the snapshot"
        );
        Ok(true)
    }

    /// Whether the entity's snapshot should be (re)written now.
    pub(super) fn snapshot_due(&self, policy: &SnapshotPolicy) -> bool {
        let rows = self.live.iter().filter(|l| **l).count();
        self.loaded
            && !self.snapshot.writing
            && rows >= policy.min_rows
            && (self.snapshot.columns.is_empty()
                || self
                    .columns
                    .keys()
                    .any(|key| !self.snapshot.columns.contains(key))
                || self.snapshot.changed_since >= (rows / 10).max(policy.min_rows / 10).max(1))
    }

    /// The live rows in id order (what a snapshot stores): the loaded, sorted rows merged with
    /// those appended since.
    pub(super) fn snapshot_order(&self) -> Vec<usize> {
        let mut appended: Vec<usize> = (self.sorted..self.ids.len())
            .filter(|&i| self.live[i])
            .collect();
        appended.sort_by(|&a, &b| self.ids.cmp_rows(a, b));
        let mut order = Vec::with_capacity(self.ids.len());
        let mut tail = appended.into_iter().peekable();
        for i in (0..self.sorted).filter(|&i| self.live[i]) {
            while let Some(&next) = tail.peek() {
                if self.ids.cmp_rows(next, i).is_lt() {
                    order.push(next);
                    tail.next();
                } else {
                    break;
                }
            }
            order.push(i);
        }
        order.extend(tail);
        order
    }
}

impl ColumnCache {
    /// Persist an entry as the entity's snapshot, in the background: encoded under the entry's lock
    /// (on a blocking thread), written after it is released.
    pub(super) fn write_snapshot(
        &self,
        store: Store,
        key: EntryKey,
        shared: Arc<tokio::sync::Mutex<Entry>>,
    ) {
        let chunk_rows = self.policy.chunk_rows;
        let task = async move {
            let entry = shared.clone().lock_owned().await;
            let encoded = tokio::task::spawn_blocking(move || {
                let mut entry = entry;
                let order = entry.snapshot_order();
                let parts = codec::encode(&entry.ids, &order, &entry.columns, chunk_rows);
                let head = trellis_store::SnapshotHead {
                    app_version: key.version,
                    cursor: entry.cursor,
                    rows: order.len() as i64,
                    format: codec::FORMAT,
                    parts: HashMap::new(),
                };
                // From now on, changes count against this snapshot.
                entry.snapshot.columns = entry.columns.keys().cloned().collect();
                entry.snapshot.changed_since = 0;
                (head, parts)
            })
            .await;
            let written = match encoded {
                Ok((head, parts)) => store
                    .save_column_snapshot(&key.app, &key.entity_uid, &head, &parts)
                    .await
                    .map(|()| head.rows)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let mut entry = shared.lock().await;
            entry.snapshot.writing = false;
            match written {
                Ok(rows) => tracing::debug!(
                    app = %key.app,
                    entity = %key.entity_uid,
                    rows,
                    "column snapshot written"
                ),
                Err(error) => {
                    entry.snapshot.columns.clear();
                    tracing::warn!(app = %key.app, entity = %key.entity_uid, %error, "column snapshot not written");
                }
            }
        };
        self.track(task);
    }

    /// Wait for the snapshot writes in flight and the background work tracked with
    /// [`ColumnCache::track`] — including writes that work started (tests, benchmarks, the CLI).
    pub(crate) async fn snapshots_written(&self) {
        loop {
            let mut writes = match self.writes.lock() {
                Ok(mut writes) => std::mem::take(&mut *writes),
                Err(_) => return,
            };
            if writes.is_empty() {
                return;
            }
            while writes.join_next().await.is_some() {}
        }
    }
}
