//! The rows of a write-back's reports by record id, built once: one hash table over every id the
//! reports name, each entry holding the row of each report (or none). The write-back's pages and
//! its pre-check over the column cache look ids up in it; its size is the number of distinct
//! records the reports name. (Per-report maps built twice and a sort of every named id took about
//! 2 s of a million-customer night before the first page was written.)

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;
use serde_json::Value;

use super::apply::AppliedReport;

/// No row in this report.
const NONE: u32 = u32::MAX;

/// The reports' rows by record id.
pub(crate) struct ReportRows {
    parts: Arc<[AppliedReport]>,
    /// Entries by the hash of their id.
    table: HashTable<u32>,
    /// Per entry, the row of each report (`NONE`: no row): `parts.len()` slots per entry.
    rows: Vec<u32>,
    hasher: foldhash::fast::FixedState,
}

/// One record's rows, a row (or none) per report.
#[derive(Clone, Copy)]
pub(crate) struct NamedRows<'a> {
    parts: &'a [AppliedReport],
    rows: &'a [u32],
}

impl<'a> NamedRows<'a> {
    /// The row report `part` has for the record.
    pub fn row(&self, part: usize) -> Option<&'a Vec<Value>> {
        let row = *self.rows.get(part)?;
        if row == NONE {
            return None;
        }
        self.parts[part].output.rows.get(row as usize)
    }
}

impl ReportRows {
    /// Index every row naming a record id (a row whose key is not a text names none).
    pub fn new(parts: Arc<[AppliedReport]>) -> Self {
        let width = parts.len();
        let capacity = parts.iter().map(|p| p.output.rows.len()).max().unwrap_or(0);
        let mut index = Self {
            parts: parts.clone(),
            table: HashTable::with_capacity(capacity),
            rows: Vec::with_capacity(capacity * width),
            hasher: foldhash::fast::FixedState::default(),
        };
        for (part_index, part) in parts.iter().enumerate() {
            for (row_index, row) in part.output.rows.iter().enumerate() {
                let Some(id) = row.get(part.key).and_then(Value::as_str) else {
                    continue;
                };
                let hash = index.hasher.hash_one(id);
                let found = index
                    .table
                    .find(hash, |&entry| {
                        key_of(&parts, &index.rows, entry) == Some(id)
                    })
                    .copied();
                match found {
                    // A report naming one id twice: its last row counts.
                    Some(entry) => {
                        index.rows[entry as usize * width + part_index] = row_index as u32;
                    }
                    None => {
                        let entry = (index.rows.len() / width) as u32;
                        index.rows.extend(std::iter::repeat_n(NONE, width));
                        index.rows[entry as usize * width + part_index] = row_index as u32;
                        let (parts, rows, hasher) = (&parts, &index.rows, &index.hasher);
                        index.table.insert_unique(hash, entry, |&e| {
                            hasher.hash_one(key_of(parts, rows, e).unwrap_or_default())
                        });
                    }
                }
            }
        }
        index
    }

    /// How many distinct record ids the reports name.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// The reports' rows for record `id` (`None`: no report names it).
    pub fn get(&self, id: &str) -> Option<NamedRows<'_>> {
        let hash = self.hasher.hash_one(id);
        let entry = *self.table.find(hash, |&entry| {
            key_of(&self.parts, &self.rows, entry) == Some(id)
        })?;
        let width = self.parts.len();
        let start = entry as usize * width;
        Some(NamedRows {
            parts: &self.parts,
            rows: &self.rows[start..start + width],
        })
    }
}

/// The record id of `entry`: the key of its row in the first report that has one.
fn key_of<'a>(parts: &'a [AppliedReport], rows: &[u32], entry: u32) -> Option<&'a str> {
    let width = parts.len();
    let slots = rows.get(entry as usize * width..(entry as usize + 1) * width)?;
    let (part, &row) = slots.iter().enumerate().find(|(_, row)| **row != NONE)?;
    let part = &parts[part];
    part.output.rows.get(row as usize)?.get(part.key)?.as_str()
}
