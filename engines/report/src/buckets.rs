//! Calendar buckets: a date (days since the epoch) maps to the first day of its day / ISO week /
//! month / quarter / year; labels (`2026-03`, `2026-Q1`, `2026-W09`) and the half-open range
//! `[start, next start)` used by drill-down filters.

use chrono::{Datelike, Days, Months, NaiveDate};

use crate::definition::DateBucket;

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");

pub fn date_of(days: i32) -> NaiveDate {
    if days >= 0 {
        EPOCH + Days::new(days as u64)
    } else {
        EPOCH - Days::new(days.unsigned_abs() as u64)
    }
}

pub fn days_of(date: NaiveDate) -> i32 {
    (date - EPOCH).num_days() as i32
}

/// Days since the epoch of a millisecond timestamp (UTC).
pub fn day_of_millis(millis: i64) -> i32 {
    millis.div_euclid(86_400_000) as i32
}

/// The first day of `days`'s bucket.
pub fn bucket_start(days: i32, bucket: DateBucket) -> i32 {
    let date = date_of(days);
    let start = match bucket {
        DateBucket::Day => date,
        DateBucket::Week => date - Days::new(u64::from(date.weekday().num_days_from_monday())),
        DateBucket::Month => date.with_day(1).unwrap_or(date),
        DateBucket::Quarter => {
            let month = (date.month0() / 3) * 3 + 1;
            NaiveDate::from_ymd_opt(date.year(), month, 1).unwrap_or(date)
        }
        DateBucket::Year => NaiveDate::from_ymd_opt(date.year(), 1, 1).unwrap_or(date),
    };
    days_of(start)
}

/// [`bucket_start`] of every day of a column. Dates of one column span few distinct days, so each is
/// computed once per day of the column's range (a table) rather than once per record, when the range
/// is at most ~270 years; otherwise per record.
pub fn bucket_starts(
    days: impl Iterator<Item = Option<i32>> + Clone,
    bucket: DateBucket,
) -> Vec<Option<i32>> {
    if bucket == DateBucket::Day {
        return days.collect();
    }
    let (low, high) = days
        .clone()
        .flatten()
        .fold((i32::MAX, i32::MIN), |(low, high), d| {
            (low.min(d), high.max(d))
        });
    if low > high || i64::from(high) - i64::from(low) > 100_000 {
        return days.map(|d| d.map(|d| bucket_start(d, bucket))).collect();
    }
    let table: Vec<i32> = (low..=high).map(|d| bucket_start(d, bucket)).collect();
    days.map(|d| d.map(|d| table[(d - low) as usize])).collect()
}

/// The first day of the bucket after the one starting at `start` (or `steps` buckets later).
pub fn bucket_after(start: i32, bucket: DateBucket, steps: i32) -> i32 {
    let date = date_of(start);
    let shifted = match bucket {
        DateBucket::Day => date.checked_add_signed(chrono::Duration::days(i64::from(steps))),
        DateBucket::Week => date.checked_add_signed(chrono::Duration::days(7 * i64::from(steps))),
        DateBucket::Month => shift_months(date, steps),
        DateBucket::Quarter => shift_months(date, 3 * steps),
        DateBucket::Year => shift_months(date, 12 * steps),
    };
    shifted.map_or(start, days_of)
}

fn shift_months(date: NaiveDate, months: i32) -> Option<NaiveDate> {
    if months >= 0 {
        date.checked_add_months(Months::new(months as u32))
    } else {
        date.checked_sub_months(Months::new(months.unsigned_abs()))
    }
}

/// Whole buckets from `from` to `to` (both bucket starts).
pub fn buckets_between(from: i32, to: i32, bucket: DateBucket) -> i32 {
    let (a, b) = (date_of(from), date_of(to));
    match bucket {
        DateBucket::Day => to - from,
        DateBucket::Week => (to - from).div_euclid(7),
        DateBucket::Month => months(a, b),
        DateBucket::Quarter => months(a, b).div_euclid(3),
        DateBucket::Year => b.year() - a.year(),
    }
}

fn months(a: NaiveDate, b: NaiveDate) -> i32 {
    (b.year() - a.year()) * 12 + b.month() as i32 - a.month() as i32
}

/// The label of the bucket starting at `start`.
pub fn bucket_label(start: i32, bucket: DateBucket) -> String {
    let date = date_of(start);
    match bucket {
        DateBucket::Day => date.format("%Y-%m-%d").to_string(),
        DateBucket::Week => {
            let week = date.iso_week();
            format!("{}-W{:02}", week.year(), week.week())
        }
        DateBucket::Month => date.format("%Y-%m").to_string(),
        DateBucket::Quarter => format!("{}-Q{}", date.year(), date.month0() / 3 + 1),
        DateBucket::Year => date.format("%Y").to_string(),
    }
}

/// A date as stored in records (`2026-03-01`).
pub fn date_text(days: i32) -> String {
    date_of(days).format("%Y-%m-%d").to_string()
}

/// Midnight UTC of a day, as the runtime stores datetimes (`2026-03-01T00:00:00.000Z`).
pub fn datetime_text(days: i32) -> String {
    date_of(days).format("%Y-%m-%dT00:00:00.000Z").to_string()
}
