//! Results of stored reports kept for repeated views: a dashboard opened again, by anyone whose
//! access gives the same rows, with no record of its entity changed since, is answered without
//! reading or grouping a row.
//!
//! A result is kept under everything it depends on: the app and its version (the report's
//! definition), the report, the entity's column-cache generation (which changes with every change
//! of the entity's records that reaches the change log, and with every reload), the checked filter
//! (the viewer's row filter with its variables resolved, the report's dataset filter, page filters
//! and parameter filters), the raw filters the drill-down filters are built from, the `as_of` date
//! and the locale. Reports whose input is not all in the column cache are not kept: funnels and
//! transition reports (they also read the flow history), reports with `relation.field` columns (the
//! related entity and the viewer's access to it), and filters the cache cannot evaluate. A result is
//! only ever stored under a generation read *before* its rows were, so a kept result is never older
//! than its key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use trellis_report::ReportOutput;

/// Results kept at most (least recently used first out).
const CAPACITY: usize = 256;
/// Larger results (rows) are not kept: they are cheap to recompute next to their size.
const MAX_ROWS: usize = 5_000;

/// Shared by every request of a server.
#[derive(Debug, Default, Clone)]
pub struct ResultCache {
    entries: Arc<Mutex<Entries>>,
}

#[derive(Debug, Default)]
struct Entries {
    clock: u64,
    kept: HashMap<String, (Arc<ReportOutput>, u64)>,
}

impl ResultCache {
    /// The result kept under `key`, if any.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<ReportOutput>> {
        let mut entries = self.entries.lock().ok()?;
        entries.clock += 1;
        let now = entries.clock;
        let (output, used) = entries.kept.get_mut(key)?;
        *used = now;
        Some(output.clone())
    }

    /// Keep `output` under `key` (unless it is large), dropping the least recently used result
    /// when full.
    pub(crate) fn put(&self, key: String, output: &ReportOutput) {
        if output.rows.len() > MAX_ROWS {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        entries.clock += 1;
        let now = entries.clock;
        if entries.kept.len() >= CAPACITY && !entries.kept.contains_key(&key) {
            let oldest = entries
                .kept
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                entries.kept.remove(&oldest);
            }
        }
        entries.kept.insert(key, (Arc::new(output.clone()), now));
    }

    /// How many results are kept.
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.kept.len())
    }
}
