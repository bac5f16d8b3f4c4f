//! Which records an `apply_report` write-back may change, found over the column cache before any
//! document is read: a record whose cached columns already hold the report's values (or the
//! `otherwise` values) is left alone, so a night on which few records change reads only those.
//! Values are compared as the columns hold them — a decimal stored as text counts as its number —
//! and a field without a column of one exact form (money, lists) turns the pre-check off.

use std::sync::Arc;

use serde_json::Value;
use trellis_model::{EntityDefinition, FieldKind};
use trellis_report::{ColumnData, ColumnType};
use trellis_rules::ApplyReportAction;

use super::apply::AppliedReport;
use super::report_rows::ReportRows;

use crate::app_cache::LoadedApp;
use crate::{Runtime, RuntimeError};

/// The records to read, in id order, and how many live records the report names.
pub(super) struct Candidates {
    pub ids: Vec<String>,
    pub matched: usize,
}

/// The column a written field is compared in: the pre-filter's one-form columns, and decimals as
/// the numbers the columns hold.
fn compared_column(kind: FieldKind) -> Option<ColumnType> {
    match kind {
        FieldKind::Decimal | FieldKind::Percent => Some(ColumnType::Float),
        _ => super::prefilter::column_type(kind),
    }
}

/// Whether row `row` of `data` surely holds `value` (`false` when unsure).
fn holds(data: &ColumnData, row: usize, value: &Value) -> bool {
    match (data, value) {
        (ColumnData::Int(v), Value::Null) => v[row].is_none(),
        (ColumnData::Float(v), Value::Null) => v[row].is_none(),
        (ColumnData::Bool(v), Value::Null) => v[row].is_none(),
        (ColumnData::Text(v), Value::Null) => v[row].is_none(),
        (ColumnData::Dict { codes, .. }, Value::Null) => codes[row].is_none(),
        (ColumnData::Int(v), Value::Number(n)) => {
            v[row].is_some_and(|x| n.as_i64() == Some(x) || n.as_f64() == Some(x as f64))
        }
        (ColumnData::Float(v), Value::Number(n)) => v[row].is_some_and(|x| n.as_f64() == Some(x)),
        (ColumnData::Bool(v), Value::Bool(b)) => v[row] == Some(*b),
        (ColumnData::Text(v), Value::String(s)) => v[row].as_deref() == Some(s.as_str()),
        (ColumnData::Dict { codes, values }, Value::String(s)) => {
            codes[row].is_some_and(|c| values[c as usize] == *s)
        }
        _ => false,
    }
}

/// The columns `apply` compares of `entity` (its `set` and `otherwise` fields); empty when one of
/// them has no column of one exact form.
pub(crate) fn compared_columns(
    entity: &EntityDefinition,
    apply: &ApplyReportAction,
) -> Vec<(String, ColumnType)> {
    compared_fields(entity, apply)
        .unwrap_or_default()
        .into_iter()
        .map(|(_, uid, column)| (uid, column))
        .collect()
}

/// `apply`'s `set` and `otherwise` fields as `(name, uid, column)`; `None` when one of them has
/// no column of one exact form.
fn compared_fields(
    entity: &EntityDefinition,
    apply: &ApplyReportAction,
) -> Option<Vec<(String, String, ColumnType)>> {
    apply
        .set
        .keys()
        .chain(apply.otherwise.keys())
        .map(|name| {
            let field = entity.field(name.as_str())?;
            Some((
                name.to_string(),
                field.uid.clone(),
                compared_column(field.kind)?,
            ))
        })
        .collect()
}

/// How many of a write-back's records are compared first, spread over the entity: when most of
/// them differ, most records will, and every record is read page by page without looking further.
const SAMPLE: usize = 1024;

impl Runtime {
    /// The records of `entity` whose stored values may differ from what `parts` write — `None`
    /// when a field cannot be compared over columns, or when most records differ anyway (reading
    /// them page by page in id order is then cheaper than by id). A sample spread over the records
    /// decides that first, and the full comparison stops as soon as half the records differ: a
    /// first night, on which every record changes, pays a fraction of a full comparison.
    pub(super) async fn write_back_candidates(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        parts: Arc<[AppliedReport]>,
        wanted: Arc<ReportRows>,
    ) -> Result<Option<Candidates>, RuntimeError> {
        // Every written field with its column: (name, uid, column).
        let mut fields = Vec::new();
        for part in parts.iter() {
            let names = part.sets.iter().map(|(name, _)| name);
            for name in names.chain(part.otherwise.iter().map(|(name, _)| name)) {
                let Some(field) = entity.field(name.as_str()) else {
                    return Ok(None);
                };
                let Some(column) = compared_column(field.kind) else {
                    return Ok(None);
                };
                fields.push((name.clone(), field.uid.clone(), column));
            }
        }
        let mut columns: Vec<(String, ColumnType)> = fields
            .iter()
            .map(|(_, uid, column)| (uid.clone(), *column))
            .collect();
        columns.sort();
        columns.dedup();
        let work = move |view: crate::column_cache::EntryView<'_>| {
            let column = |name: &str| {
                let (_, uid, column) = fields.iter().find(|(n, _, _)| n == name)?;
                view.column(uid, *column)
            };
            // Per report: its `set` columns (with the report's column) and `otherwise` columns.
            type SetColumns<'c> = Vec<(Option<&'c ColumnData>, usize)>;
            type OtherwiseColumns<'c> = Vec<(Option<&'c ColumnData>, &'c Value)>;
            let part_columns: Vec<(SetColumns<'_>, OtherwiseColumns<'_>)> = parts
                .iter()
                .map(|part| {
                    (
                        part.sets
                            .iter()
                            .map(|(name, index)| (column(name), *index))
                            .collect(),
                        part.otherwise
                            .iter()
                            .map(|(name, value)| (column(name), value))
                            .collect(),
                    )
                })
                .collect();
            // Whether live row `row` may change (a report names it with other values, or none
            // names it and its `otherwise` values differ), and whether a report names it.
            let differs = |row: usize| -> (bool, bool) {
                let id = view.ids.get(row);
                let rows = wanted.get(id.as_ref());
                let (mut differ, mut named) = (false, false);
                for (index, (set_columns, otherwise_columns)) in part_columns.iter().enumerate() {
                    differ |= match rows.and_then(|rows| rows.row(index)) {
                        Some(values) => {
                            named = true;
                            !set_columns.iter().all(|(data, index)| {
                                let value = values.get(*index).unwrap_or(&Value::Null);
                                data.is_some_and(|data| holds(data, row, value))
                            })
                        }
                        None => !otherwise_columns
                            .iter()
                            .all(|(data, value)| data.is_some_and(|data| holds(data, row, value))),
                    };
                }
                (differ, named)
            };
            let live = view.live.iter().filter(|is_live| **is_live).count();
            let stride = (view.live.len() / SAMPLE).max(1);
            let (mut sampled, mut sampled_differ) = (0usize, 0usize);
            for row in (0..view.live.len()).step_by(stride) {
                if view.live.get(row) == Some(&true) {
                    sampled += 1;
                    sampled_differ += usize::from(differs(row).0);
                }
            }
            if sampled > 0 && sampled_differ * 2 > sampled {
                return None;
            }
            let (mut ids, mut matched) = (Vec::new(), 0);
            for (row, is_live) in view.live.iter().enumerate() {
                if !is_live {
                    continue;
                }
                let (differ, named) = differs(row);
                matched += usize::from(named);
                if differ {
                    ids.push(row);
                    if ids.len() * 2 > live {
                        return None;
                    }
                }
            }
            let mut ids: Vec<String> = ids
                .into_iter()
                .map(|row| view.ids.get(row).into_owned())
                .collect();
            ids.sort_unstable();
            Some(Candidates { ids, matched })
        };
        self.columns
            .with_columns(
                self.store(),
                (&loaded.id, loaded.version, &entity.uid),
                &columns,
                work,
            )
            .await
    }
}
