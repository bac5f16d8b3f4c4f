//! Choosing the records a batch run reads. A rule whose condition runs natively is first evaluated
//! over typed columns from the column cache (kept current from the change log), together with the
//! run's own selection (a `date_reached` day); only records the columns cannot rule out are then read
//! and evaluated in full. A nightly rule that matches a few thousand of millions of records reads
//! those few thousand.

use chrono::{Datelike, NaiveDate};
use serde_json::{Map, Value};
use trellis_model::{CheckedFilter, EntityDefinition, FieldKind};
use trellis_report::{ColumnData, ColumnType};
use trellis_rules::CompiledRule;
use trellis_script::native::ColumnRef;

use crate::app_cache::LoadedApp;
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

/// The records to read, and those the run skips though it selected them (counted as processed).
#[derive(Debug, Default)]
pub(crate) struct Prefiltered {
    /// Sorted ids of records to read and evaluate.
    pub candidates: Vec<String>,
    /// Sorted ids of selected records whose condition surely does not hold.
    pub skipped: Vec<String>,
}

impl Prefiltered {
    /// How many skipped ids lie after `after` and up to `upto` (`None`: to the end).
    pub(crate) fn skipped_between(&self, after: Option<&str>, upto: Option<&str>) -> i64 {
        let start = after.map_or(0, |a| self.skipped.partition_point(|id| id.as_str() <= a));
        let end = upto.map_or(self.skipped.len(), |u| {
            self.skipped.partition_point(|id| id.as_str() <= u)
        });
        end.saturating_sub(start) as i64
    }
}

/// The column type a field's values take in a native expression, for kinds whose stored JSON has
/// exactly one form (integers, booleans, strings); `None` for the rest — decimals may be stored as
/// numbers or as strings (a column would hide which), money is an object, lists are arrays.
fn column_type(kind: FieldKind) -> Option<ColumnType> {
    use FieldKind as K;
    Some(match kind {
        K::Integer | K::Rating => ColumnType::Int,
        K::Boolean => ColumnType::Bool,
        K::Text
        | K::LongText
        | K::RichText
        | K::Email
        | K::Phone
        | K::Url
        | K::SingleSelect
        | K::RelationOne
        | K::User
        | K::File
        | K::Date
        | K::Datetime
        | K::Duration
        | K::AutoNumber
        | K::CreatedAt
        | K::UpdatedAt
        | K::CreatedBy
        | K::UpdatedBy => ColumnType::Text,
        K::Decimal
        | K::Percent
        | K::Money
        | K::MultiSelect
        | K::Tags
        | K::RelationMany
        | K::Json => {
            return None;
        }
    })
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

/// The dataset column name of the selection's date field (never a field name: those are identifiers).
const SELECT_COLUMN: &str = "$select";

impl Runtime {
    /// The records `rule` needs to read under `select`, when its condition can be evaluated over
    /// columns; `None`: read every record.
    pub(crate) async fn prefilter(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        rule: &CompiledRule,
        select: &BatchSelect,
    ) -> Result<Option<Prefiltered>, RuntimeError> {
        let Some(names) = trellis_rules::prefilter::condition_fields(rule) else {
            return Ok(None);
        };
        let mut fields: Vec<(String, String, ColumnType)> = Vec::new();
        for name in names {
            let Some(field) = entity.field(name) else {
                return Ok(None);
            };
            let Some(column) = column_type(field.kind) else {
                return Ok(None);
            };
            fields.push((name.clone(), field.uid.clone(), column));
        }
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
        let Some(dataset) = self
            .columns
            .dataset(
                self.store(),
                (&loaded.id, loaded.version, &entity.uid),
                &fields,
                &CheckedFilter::All,
                true,
            )
            .await?
        else {
            return Ok(None);
        };
        let (rule, select) = (rule.clone(), select.clone());
        tokio::task::spawn_blocking(move || {
            let column = |name: &str| dataset.columns.get(name).and_then(column_ref);
            let unmatched =
                trellis_rules::prefilter::surely_unmatched(&rule, column, dataset.rows)?;
            let selected = |row: usize| match dataset.columns.get(SELECT_COLUMN) {
                None => true,
                Some(ColumnData::Dict { codes, values }) => {
                    select.keeps_text(codes[row].map(|c| values[c as usize].as_str()))
                }
                Some(ColumnData::Text(values)) => select.keeps_text(values[row].as_deref()),
                Some(_) => true,
            };
            let mut prefiltered = Prefiltered::default();
            for (row, id) in dataset.ids.into_iter().enumerate() {
                if !selected(row) {
                    continue;
                }
                if unmatched[row] {
                    prefiltered.skipped.push(id);
                } else {
                    prefiltered.candidates.push(id);
                }
            }
            prefiltered.candidates.sort_unstable();
            prefiltered.skipped.sort_unstable();
            Some(prefiltered)
        })
        .await
        .map_err(|e| RuntimeError::Internal(format!("rule pre-filter: {e}")))
    }
}
