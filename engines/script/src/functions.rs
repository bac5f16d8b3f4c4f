//! The business function library every script can call: dates (`days_since`, `add_days`,
//! `start_of_month`, `today`, `now`), exact money (`money_add`, `money_sub`, `money_mul`), strings
//! (`lower`, `upper`, `trim`, `contains_text`) and `in_list`.

use chrono::{Datelike, NaiveDate, Utc};
use rhai::{Array, Dynamic, Engine, EvalAltResult, ImmutableString};

type Fallible<T> = Result<T, Box<EvalAltResult>>;

fn parse_date(text: &str) -> Fallible<NaiveDate> {
    let day = text.get(..10).unwrap_or(text);
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map_err(|_| format!("'{text}' is not a date (YYYY-MM-DD)").into())
}

/// Parse an exact decimal into (units scaled by 10^scale, scale).
fn parse_money(text: &str) -> Fallible<(i128, u32)> {
    let text = text.trim();
    let negative = text.starts_with('-');
    let digits = text.trim_start_matches('-');
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !fraction.chars().all(|c| c.is_ascii_digit())
        || fraction.len() > 12
    {
        return Err(format!("'{text}' is not an exact amount such as 12.50").into());
    }
    let scale = fraction.len() as u32;
    let value: i128 = format!("{whole}{fraction}")
        .parse()
        .map_err(|_| format!("'{text}' is too large"))?;
    Ok((if negative { -value } else { value }, scale))
}

fn format_money(value: i128, scale: u32) -> String {
    let negative = value < 0;
    let digits = value.unsigned_abs().to_string();
    let scale = scale as usize;
    let text = if scale == 0 {
        digits
    } else {
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - scale);
        format!("{whole}.{fraction}")
    };
    if negative { format!("-{text}") } else { text }
}

fn align(a: (i128, u32), b: (i128, u32)) -> (i128, i128, u32) {
    let scale = a.1.max(b.1);
    (
        a.0 * 10i128.pow(scale - a.1),
        b.0 * 10i128.pow(scale - b.1),
        scale,
    )
}

pub fn register(engine: &mut Engine) {
    engine.register_fn("today", || Utc::now().date_naive().to_string());
    engine.register_fn("now", || {
        Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    });
    engine.register_fn("days_since", |date: ImmutableString| -> Fallible<i64> {
        Ok((Utc::now().date_naive() - parse_date(&date)?).num_days())
    });
    engine.register_fn(
        "days_between",
        |from: ImmutableString, to: ImmutableString| -> Fallible<i64> {
            Ok((parse_date(&to)? - parse_date(&from)?).num_days())
        },
    );
    engine.register_fn(
        "add_days",
        |date: ImmutableString, days: i64| -> Fallible<String> {
            Ok((parse_date(&date)? + chrono::Duration::days(days)).to_string())
        },
    );
    engine.register_fn(
        "start_of_month",
        |date: ImmutableString| -> Fallible<String> {
            let day = parse_date(&date)?;
            Ok(day.with_day(1).unwrap_or(day).to_string())
        },
    );
    engine.register_fn(
        "money_add",
        |a: ImmutableString, b: ImmutableString| -> Fallible<String> {
            let (x, y, scale) = align(parse_money(&a)?, parse_money(&b)?);
            Ok(format_money(x + y, scale))
        },
    );
    engine.register_fn(
        "money_sub",
        |a: ImmutableString, b: ImmutableString| -> Fallible<String> {
            let (x, y, scale) = align(parse_money(&a)?, parse_money(&b)?);
            Ok(format_money(x - y, scale))
        },
    );
    engine.register_fn(
        "money_mul",
        |a: ImmutableString, factor: i64| -> Fallible<String> {
            let (x, scale) = parse_money(&a)?;
            Ok(format_money(x * i128::from(factor), scale))
        },
    );
    engine.register_fn("lower", |s: ImmutableString| s.to_lowercase());
    engine.register_fn("upper", |s: ImmutableString| s.to_uppercase());
    engine.register_fn("trim", |s: ImmutableString| s.trim().to_owned());
    engine.register_fn(
        "contains_text",
        |s: ImmutableString, part: ImmutableString| s.to_lowercase().contains(&part.to_lowercase()),
    );
    engine.register_fn("in_list", |value: Dynamic, list: Array| {
        list.iter()
            .any(|item| item.to_string() == value.to_string())
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn money_is_exact() {
        let engine = crate::engine();
        let sum: String = engine.eval("money_add(\"0.10\", \"0.2\")").unwrap();
        assert_eq!(sum, "0.30");
        let product: String = engine.eval("money_mul(\"19.99\", 3)").unwrap();
        assert_eq!(product, "59.97");
        let negative: String = engine.eval("money_sub(\"1\", \"2.5\")").unwrap();
        assert_eq!(negative, "-1.5");
        let days: i64 = engine
            .eval("days_between(\"2024-02-28\", add_days(\"2024-02-28\", 2))")
            .unwrap();
        assert_eq!(days, 2);
        let first: String = engine.eval("start_of_month(\"2024-02-29\")").unwrap();
        assert_eq!(first, "2024-02-01");
    }

    #[test]
    fn now_is_an_rfc3339_instant_on_today() {
        let engine = crate::engine();
        let now: String = engine.eval("now()").unwrap();
        let parsed = chrono::DateTime::parse_from_rfc3339(&now).unwrap();
        let today: String = engine.eval("today()").unwrap();
        assert!(now.starts_with(&today) || parsed.date_naive().to_string() < today);
        assert!(now.ends_with('Z'), "{now}");
        let days: i64 = engine.eval("days_since(now())").unwrap();
        assert!(days <= 1, "{days}");
    }
}
