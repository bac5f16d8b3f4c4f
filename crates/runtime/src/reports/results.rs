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

/// Results kept at most (least recently used first out)…
const CAPACITY: usize = 256;
/// …and values (cells and drill-down filters) in all of them: a few tens of MB at most.
const MAX_VALUES: usize = 500_000;
/// Larger results (values) are not kept: they are cheap to recompute next to their size.
const MAX_VALUES_EACH: usize = 50_000;

/// Shared by every request of a server.
#[derive(Debug, Default, Clone)]
pub struct ResultCache {
    entries: Arc<Mutex<Entries>>,
}

#[derive(Debug, Default)]
struct Entries {
    clock: u64,
    values: usize,
    kept: HashMap<String, (Arc<ReportOutput>, u64)>,
}

/// The values a result holds: its cells and drill-down filters.
fn values_of(output: &ReportOutput) -> usize {
    let cells = output.rows.len() * (output.columns.len() + 1);
    let drill_cells = output
        .drill_cells
        .as_ref()
        .map_or(0, |rows| rows.iter().map(Vec::len).sum());
    cells + drill_cells
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
        let values = values_of(output);
        if values > MAX_VALUES_EACH {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        entries.clock += 1;
        let now = entries.clock;
        if let Some((replaced, _)) = entries.kept.remove(&key) {
            entries.values -= values_of(&replaced);
        }
        while entries.kept.len() >= CAPACITY || entries.values + values > MAX_VALUES {
            let Some(oldest) = entries
                .kept
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((dropped, _)) = entries.kept.remove(&oldest) {
                entries.values -= values_of(&dropped);
            }
        }
        entries.values += values;
        entries.kept.insert(key, (Arc::new(output.clone()), now));
    }

    /// How many results are kept.
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.kept.len())
    }
}
