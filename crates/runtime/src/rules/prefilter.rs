//! Choosing the records a batch run reads. A rule whose condition runs natively is first evaluated
//! over typed columns from the column cache (kept current from the change log), together with the
//! run's own selection (a `date_reached` day); only records the columns cannot rule out are then read
//! and evaluated in full. A nightly rule that matches a few thousand of millions of records reads
//! those few thousand.

use chrono::{Datelike, NaiveDate};
use serde_json::{Map, Value};
use trellis_model::{EntityDefinition, FieldKind};
use trellis_report::{ColumnData, ColumnType};
use trellis_rules::CompiledRule;
use trellis_script::native::ColumnRef;

use crate::app_cache::LoadedApp;
use crate::column_cache::EntryView;
use crate::{Runtime, RuntimeError};

/// Which records a batch run looks at before the rule's own condition.
#[derive(Debug, Clone)]
pub(crate) enum BatchSelect {
    All,
    /// Records whose date field falls on `day` (every year: on its month and day).
    DateReached {
        field: String,
        day: NaiveDate,
        every_year: bool,
    },
}

impl BatchSelect {
    /// Whether the run looks at a record (fields by name).
    pub(crate) fn keeps(&self, record: &Map<String, Value>) -> bool {
        match self {
            Self::All => true,
            Self::DateReached { field, .. } => {
                self.keeps_text(record.get(field).and_then(Value::as_str))
            }
        }
    }

    /// [`BatchSelect::keeps`] given the value of the date field as text.
    fn keeps_text(&self, text: Option<&str>) -> bool {
        let Self::DateReached {
            day, every_year, ..
        } = self
        else {
            return true;
        };
        text.and_then(|text| {
            NaiveDate::parse_from_str(text.get(..10).unwrap_or(text), "%Y-%m-%d").ok()
        })
        .is_some_and(|date| {
            if *every_year {
                (date.month(), date.day()) == (day.month(), day.day())
            } else {
                date == *day
            }
        })
    }
}

/// The records a batch run reads, page by page, and how many records it rules out on the way.
#[derive(Debug, Default)]
pub(crate) struct Prefiltered {
    /// Sorted ids (after the run's saved position) of records to read and evaluate.
    pub candidates: Vec<String>,
    /// Per page of `candidates` (`BATCH_PAGE` each), the selected records ruled out up to that
    /// page's last id; one more entry for those after the last page. They count as processed.
    pub ruled_out: Vec<i64>,
    /// Live records of the entity (the run's total).
    pub live: i64,
}

/// The column type a field's values take in a native expression, for kinds whose stored JSON has
/// exactly one form (integers, booleans, strings); `None` for the rest — decimals may be stored as
/// numbers or as strings (a column would hide which), money is an object, lists are arrays.
pub(crate) fn column_type(kind: FieldKind) -> Option<ColumnType> {
    use trellis_model::field_kind::JsonType;
    match kind.allowed_json_types() {
        [JsonType::Integer] => Some(ColumnType::Int),
        [JsonType::Boolean] => Some(ColumnType::Bool),
        [JsonType::String] => Some(ColumnType::Text),
        _ => None,
    }
}

fn column_ref(data: &ColumnData) -> Option<ColumnRef<'_>> {
    Some(match data {
        ColumnData::Int(v) => ColumnRef::Int(v),
        ColumnData::Float(v) => ColumnRef::Float(v),
        ColumnData::Bool(v) => ColumnRef::Bool(v),
        ColumnData::Text(v) => ColumnRef::Text(v),
        ColumnData::Dict { codes, values } => ColumnRef::Dict { codes, values },
        _ => return None,
    })
}

/// The columns a pre-filter of `rule`'s condition reads, as `(field name, uid, column type)`;
/// `None` when the condition cannot run over columns.
pub(crate) fn condition_columns(
    entity: &EntityDefinition,
    rule: &CompiledRule,
) -> Option<Vec<(String, String, ColumnType)>> {
    trellis_rules::prefilter::condition_fields(rule)?
        .iter()
        .map(|name| {
            let field = entity.field(name)?;
            Some((name.clone(), field.uid.clone(), column_type(field.kind)?))
        })
        .collect()
}

/// The name of the selection's date column (never a field name: those are identifiers).
const SELECT_COLUMN: &str = "$select";

impl Runtime {
    /// The records `rule` needs to read under `select` after the position `after`, in pages of
    /// `page`, when its condition can be evaluated over columns; `None`: read every record.
    pub(crate) async fn prefilter(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        rule: &CompiledRule,
        select: &BatchSelect,
        (after, page): (Option<&str>, i64),
    ) -> Result<Option<Prefiltered>, RuntimeError> {
        let Some(mut fields) = condition_columns(entity, rule) else {
            return Ok(None);
        };
        if let BatchSelect::DateReached { field, .. } = select {
            let Some(field) = entity.field(field) else {
                return Ok(None);
            };
            fields.push((
                SELECT_COLUMN.to_owned(),
                field.uid.clone(),
                ColumnType::Text,
            ));
        }
        let mut wanted: Vec<(String, ColumnType)> = fields
            .iter()
            .map(|(_, uid, column)| (uid.clone(), *column))
            .collect();
        wanted.sort();
        wanted.dedup();
        let page = page as usize;
        let after = after.map(str::to_owned);
        let (rule, select) = (rule.clone(), select.clone());
        let work = move |view: EntryView<'_>| {
            let column = |name: &str| {
                let (_, uid, column) = fields.iter().find(|(n, _, _)| n == name)?;
                column_ref(view.column(uid, *column)?)
            };
            let unmatched =
                trellis_rules::prefilter::surely_unmatched(&rule, column, view.ids.len())?;
            let date = fields
                .iter()
                .find(|(name, _, _)| name == SELECT_COLUMN)
                .and_then(|(_, uid, column)| view.column(uid, *column));
            let selected = |row: usize| match date {
                None => true,
                Some(ColumnData::Dict { codes, values }) => {
                    select.keeps_text(codes[row].map(|c| values[c as usize].as_str()))
                }
                Some(ColumnData::Text(values)) => select.keeps_text(values[row].as_deref()),
                Some(_) => true,
            };
            let after = after.as_deref();
            let mut candidates = Vec::new();
            let mut ruled_out = Vec::new();
            let mut live = 0;
            let after = after.map(|a| view.ids.comparer(a));
            for (row, is_live) in view.live.iter().enumerate() {
                if !is_live {
                    continue;
                }
                live += 1;
                if after.as_ref().is_some_and(|after| after(row).is_le()) || !selected(row) {
                    continue;
                }
                if unmatched[row] {
                    ruled_out.push(row);
                } else {
                    candidates.push(view.ids.get(row).into_owned());
                }
            }
            candidates.sort_unstable();
            // Each ruled-out record counts on the page whose id range holds it (no sort needed).
            let ends: Vec<&str> = candidates
                .chunks(page)
                .filter_map(|chunk| chunk.last().map(String::as_str))
                .collect();
            let mut per_page = vec![0i64; ends.len() + 1];
            {
                let page_of = view.ids.count_below(&ends);
                for row in ruled_out {
                    per_page[page_of(row)] += 1;
                }
            }
            drop(ends);
            Some(Prefiltered {
                candidates,
                ruled_out: per_page,
                live,
            })
        };
        self.columns
            .with_columns(
                self.store(),
                (&loaded.id, loaded.version, &entity.uid),
                &wanted,
                work,
            )
            .await
    }
}
