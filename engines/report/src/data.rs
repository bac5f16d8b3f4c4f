//! The typed columns a report reads. The runtime loads them from the store (one column per field the
//! report uses, never whole JSON records) and hands them over; the engine turns them into polars series.

use std::collections::BTreeMap;

use trellis_model::FieldKind;

/// How a field's values are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ColumnType {
    Int,
    Float,
    /// Exact amounts in ten-thousandths (`12.50` → `125000`), so sums never round.
    Money,
    Bool,
    Text,
    /// Days since 1970-01-01.
    Date,
    /// Milliseconds since 1970-01-01T00:00:00Z.
    DateTime,
}

/// Scale of [`ColumnType::Money`] values.
pub const MONEY_SCALE: i64 = 10_000;

impl ColumnType {
    /// The column type of a field kind; `None` for multi-valued and structured kinds, which reports
    /// cannot group or aggregate.
    pub fn of(kind: FieldKind) -> Option<Self> {
        use FieldKind as K;
        Some(match kind {
            K::Integer | K::Rating => Self::Int,
            K::Decimal | K::Percent => Self::Float,
            K::Money => Self::Money,
            K::Boolean => Self::Bool,
            K::Date => Self::Date,
            K::Datetime | K::CreatedAt | K::UpdatedAt => Self::DateTime,
            K::Text
            | K::LongText
            | K::Email
            | K::Phone
            | K::Url
            | K::SingleSelect
            | K::RelationOne
            | K::User
            | K::AutoNumber
            | K::CreatedBy
            | K::UpdatedBy => Self::Text,
            K::RichText
            | K::MultiSelect
            | K::Tags
            | K::RelationMany
            | K::File
            | K::Json
            | K::Duration => return None,
        })
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, Self::Int | Self::Float | Self::Money)
    }

    pub fn is_temporal(self) -> bool {
        matches!(self, Self::Date | Self::DateTime)
    }
}

/// One column of values, `None` where the record has no value.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Money(Vec<Option<i64>>),
    Bool(Vec<Option<bool>>),
    Text(Vec<Option<String>>),
    /// Text stored once per distinct value: `codes[i]` indexes `values` (how the store loads text,
    /// and what polars groups fastest).
    Dict {
        codes: Vec<Option<u32>>,
        /// Shared: a filtered copy of the column (a report's dataset) keeps the same texts.
        values: std::sync::Arc<Vec<String>>,
    },
    Date(Vec<Option<i32>>),
    DateTime(Vec<Option<i64>>),
}

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            Self::Int(v) | Self::Money(v) | Self::DateTime(v) => v.len(),
            Self::Float(v) => v.len(),
            Self::Bool(v) => v.len(),
            Self::Text(v) => v.len(),
            Self::Dict { codes, .. } => codes.len(),
            Self::Date(v) => v.len(),
        }
    }

    /// The values at `rows` (`None`: no value), e.g. a related record's field for each record.
    pub fn take(&self, rows: &[Option<usize>]) -> ColumnData {
        self.gather(rows, |row| *row)
    }

    /// The values of `rows` (each a row of this column), in that order: [`ColumnData::take`] without
    /// a missing row — a filtered dataset's columns, without a list of `Option`s as long as the rows.
    pub fn take_rows(&self, rows: &[usize]) -> ColumnData {
        self.gather(rows, |row| Some(*row))
    }

    /// The value at `row(r)` for each `r` of `rows` (none where it gives none).
    fn gather<R>(&self, rows: &[R], row: impl Fn(&R) -> Option<usize> + Copy) -> ColumnData {
        fn pick<T: Clone, R>(
            values: &[Option<T>],
            rows: &[R],
            row: impl Fn(&R) -> Option<usize>,
        ) -> Vec<Option<T>> {
            rows.iter()
                .map(|r| row(r).and_then(|r| values.get(r).cloned().flatten()))
                .collect()
        }
        match self {
            Self::Int(v) => Self::Int(pick(v, rows, row)),
            Self::Float(v) => Self::Float(pick(v, rows, row)),
            Self::Money(v) => Self::Money(pick(v, rows, row)),
            Self::Bool(v) => Self::Bool(pick(v, rows, row)),
            Self::Text(v) => Self::Text(pick(v, rows, row)),
            Self::Dict { codes, values } => Self::Dict {
                codes: pick(codes, rows, row),
                values: values.clone(),
            },
            Self::Date(v) => Self::Date(pick(v, rows, row)),
            Self::DateTime(v) => Self::DateTime(pick(v, rows, row)),
        }
    }

    /// The values as text, for text and dictionary columns.
    pub fn texts(&self) -> Option<Vec<Option<String>>> {
        match self {
            Self::Text(v) => Some(v.clone()),
            Self::Dict { codes, values } => Some(
                codes
                    .iter()
                    .map(|c| c.map(|c| values[c as usize].clone()))
                    .collect(),
            ),
            _ => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kind of values the column holds (dictionary-coded text is text).
    pub fn column_type(&self) -> ColumnType {
        match self {
            Self::Int(_) => ColumnType::Int,
            Self::Float(_) => ColumnType::Float,
            Self::Money(_) => ColumnType::Money,
            Self::Bool(_) => ColumnType::Bool,
            Self::Text(_) | Self::Dict { .. } => ColumnType::Text,
            Self::Date(_) => ColumnType::Date,
            Self::DateTime(_) => ColumnType::DateTime,
        }
    }

    /// An empty column of `kind`.
    pub fn empty(kind: ColumnType) -> Self {
        match kind {
            ColumnType::Int => Self::Int(Vec::new()),
            ColumnType::Float => Self::Float(Vec::new()),
            ColumnType::Money => Self::Money(Vec::new()),
            ColumnType::Bool => Self::Bool(Vec::new()),
            ColumnType::Text => Self::Text(Vec::new()),
            ColumnType::Date => Self::Date(Vec::new()),
            ColumnType::DateTime => Self::DateTime(Vec::new()),
        }
    }
}

/// The dataset of one run: how many records, every column the report needs (keyed by field id) and,
/// when the analysis needs them (funnels, joins), the record ids.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    pub rows: usize,
    /// Empty unless asked for.
    pub ids: Vec<String>,
    /// Shared with the column cache they come from (no copy for a report over every row).
    pub columns: BTreeMap<String, std::sync::Arc<ColumnData>>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub(crate) fn column(&self, name: &str) -> Result<&ColumnData, crate::ReportError> {
        let column: &ColumnData = self.columns.get(name).ok_or_else(|| {
            crate::ReportError::Data(format!("the dataset lacks column '{name}'"))
        })?;
        if column.len() != self.len() {
            return Err(crate::ReportError::Data(format!(
                "column '{name}' has {} values for {} records",
                column.len(),
                self.len()
            )));
        }
        Ok(column)
    }
}

/// Parse a decimal text (`"-12.5"`) into ten-thousandths, exactly; `None` when it is not a decimal.
pub fn parse_money(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > 4
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut scaled = whole.checked_mul(MONEY_SCALE)?;
    let mut unit = MONEY_SCALE / 10;
    for digit in fraction.bytes() {
        scaled = scaled.checked_add(i64::from(digit - b'0') * unit)?;
        unit /= 10;
    }
    Some(if negative { -scaled } else { scaled })
}
