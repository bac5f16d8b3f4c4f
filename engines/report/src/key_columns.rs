//! Key columns of aggregate reports: each record's grouping key for a dimension (calendar buckets,
//! numeric bins, or the value itself), a top-N's places, and keys back to the values people read.

use std::borrow::Cow;

use crate::aggregate::Grouping;
use crate::buckets::{bucket_starts, day_of_millis};
use crate::data::ColumnData;
use crate::definition::DateBucket;
use crate::frame::Key;

/// A dimension's grouping key for every record: a column as it is, or a date column's calendar
/// buckets — which dense grouping computes through a per-day table while grouping, so the bucket
/// of every record is only written out when polars or a top-N's places need it.
#[derive(Clone, Copy)]
pub(crate) enum KeyColumn<'a> {
    Values(&'a ColumnData),
    DayBuckets(&'a ColumnData, DateBucket),
}

impl<'a> KeyColumn<'a> {
    /// The key of every record as a column.
    pub fn materialize(&self) -> Cow<'a, ColumnData> {
        match *self {
            Self::Values(data) => Cow::Borrowed(data),
            Self::DayBuckets(data, bucket) => key_column(data, Grouping::Bucket(bucket)),
        }
    }
}

/// The grouping key of every record for one dimension.
pub(crate) fn key_column(data: &ColumnData, grouping: Grouping) -> Cow<'_, ColumnData> {
    match (grouping, data) {
        (Grouping::Bucket(bucket), ColumnData::Date(days)) => Cow::Owned(ColumnData::Date(
            bucket_starts(days.iter().copied(), bucket),
        )),
        (Grouping::Bucket(bucket), ColumnData::DateTime(millis)) => Cow::Owned(ColumnData::Date(
            bucket_starts(millis.iter().map(|m| m.map(day_of_millis)), bucket),
        )),
        (Grouping::Bin(width), ColumnData::Int(values)) => Cow::Owned(ColumnData::Int(
            values
                .iter()
                .map(|v| v.map(|v| (v as f64 / width).floor() as i64))
                .collect(),
        )),
        (Grouping::Bin(width), ColumnData::Float(values)) => Cow::Owned(ColumnData::Int(
            values
                .iter()
                .map(|v| v.map(|v| (v / width).floor() as i64))
                .collect(),
        )),
        (_, other) => Cow::Borrowed(other),
    }
}

/// Each row's place among the kept top-N keys of the first dimension (−1: "others"); dictionary
/// codes through a table, other keys compared one by one.
pub(crate) fn top_positions(keys: &ColumnData, kept: &[Key], rows: usize) -> Vec<Option<i64>> {
    let place = |key: &Key| kept.iter().position(|k| k == key).map_or(-1, |p| p as i64);
    if let ColumnData::Dict { codes, values } = keys {
        let table: Vec<i64> = (0..values.len())
            .map(|code| place(&Key::Int(code as i64)))
            .collect();
        let missing = place(&Key::Null);
        return codes
            .iter()
            .map(|code| {
                Some(code.map_or(missing, |c| table.get(c as usize).copied().unwrap_or(-1)))
            })
            .collect();
    }
    (0..rows)
        .map(|row| Some(place(&key_at(keys, row))))
        .collect()
}

/// A dictionary code back to its text.
pub(crate) fn decode(key: &mut Key, dictionary: &Option<&[String]>) {
    if let (Some(values), Key::Int(code)) = (dictionary, &*key) {
        *key = values
            .get(*code as usize)
            .map_or(Key::Null, |v| Key::Text(v.clone()));
    }
}

/// The key of record `row` in a key column (as polars would return it).
pub(crate) fn key_at(data: &ColumnData, row: usize) -> Key {
    let key = match data {
        ColumnData::Int(v) | ColumnData::Money(v) | ColumnData::DateTime(v) => v[row].map(Key::Int),
        ColumnData::Float(v) => v[row].map(Key::Float),
        ColumnData::Bool(v) => v[row].map(Key::Bool),
        ColumnData::Text(v) => v[row].clone().map(Key::Text),
        ColumnData::Dict { codes, .. } => codes[row].map(|c| Key::Int(c.into())),
        ColumnData::Date(v) => v[row].map(|d| Key::Int(d.into())),
    };
    key.unwrap_or(Key::Null)
}
