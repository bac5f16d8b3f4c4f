//! Which records an `apply_report` write-back may change, found over the column cache before any
//! document is read: a record whose cached columns already hold the report's values (or the
//! `otherwise` values) is left alone, so a night on which few records change reads only those.
//! Values are compared as the columns hold them — a decimal stored as text counts as its number —
//! and a field without a column of one exact form (money, lists) turns the pre-check off.

use std::collections::HashMap;

use serde_json::Value;
use trellis_model::{EntityDefinition, FieldKind};
use trellis_report::{ColumnData, ColumnType};
use trellis_rules::ApplyReportAction;

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

impl Runtime {
    /// The records of `entity` whose stored values may differ from what `apply` writes (`sets`:
    /// field and report column; `wanted`: the report's row per record id) — `None` when a field
    /// cannot be compared over columns, or when most records differ anyway (reading them page by
    /// page in id order is then cheaper than by id).
    pub(super) async fn write_back_candidates(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        apply: &ApplyReportAction,
        sets: &[(String, usize)],
        wanted: &HashMap<&str, &Vec<Value>>,
    ) -> Result<Option<Candidates>, RuntimeError> {
        let Some(fields) = compared_fields(entity, apply) else {
            return Ok(None);
        };
        // Owned for the blocking thread: per record id, the values the report sets, in `sets` order.
        let rows: HashMap<String, Vec<Value>> = wanted
            .iter()
            .map(|(id, row)| {
                let values = sets
                    .iter()
                    .map(|(_, index)| row.get(*index).cloned().unwrap_or(Value::Null))
                    .collect();
                ((*id).to_owned(), values)
            })
            .collect();
        let set_names: Vec<String> = sets.iter().map(|(field, _)| field.clone()).collect();
        let otherwise: Vec<(String, Value)> = apply
            .otherwise
            .iter()
            .map(|(field, value)| (field.to_string(), value.clone()))
            .collect();
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
            let set_columns: Vec<Option<&ColumnData>> =
                set_names.iter().map(|name| column(name)).collect();
            let otherwise_columns: Vec<(Option<&ColumnData>, &Value)> = otherwise
                .iter()
                .map(|(name, value)| (column(name), value))
                .collect();
            let same = |columns: &mut dyn Iterator<Item = (Option<&ColumnData>, &Value)>,
                        row: usize| {
                for (data, value) in columns {
                    if !data.is_some_and(|data| holds(data, row, value)) {
                        return false;
                    }
                }
                true
            };
            let (mut ids, mut matched, mut live) = (Vec::new(), 0, 0);
            for (row, is_live) in view.live.iter().enumerate() {
                if !is_live {
                    continue;
                }
                live += 1;
                let id = view.ids.get(row);
                let unchanged = match rows.get(id.as_ref()) {
                    Some(values) => {
                        matched += 1;
                        same(&mut set_columns.iter().copied().zip(values.iter()), row)
                    }
                    None if otherwise.is_empty() => true,
                    None => same(&mut otherwise_columns.iter().copied(), row),
                };
                if !unchanged {
                    ids.push(id.into_owned());
                }
            }
            ids.sort_unstable();
            (ids.len() * 2 <= live).then_some(Candidates { ids, matched })
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
