//! Typed conversion of stored values when a field changes kind. A value that cannot convert is
//! reported, never dropped: the caller keeps the original beside the field.

use serde_json::Value;
use trellis_model::FieldKind;

/// Convert `value` (valid for `from`) into a value of kind `to`. `Err` carries the reason.
pub fn convert_value(value: &Value, from: FieldKind, to: FieldKind) -> Result<Value, String> {
    use FieldKind as K;
    if value.is_null() || from == to {
        return Ok(value.clone());
    }
    let as_text = || match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map_or(v.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    };
    match to {
        K::Text | K::LongText | K::RichText | K::Email | K::Phone | K::Url | K::SingleSelect => {
            Ok(Value::String(as_text()))
        }
        K::Integer | K::Rating => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(value.clone()),
            Value::Number(n) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9e15 => Ok(Value::from(f as i64)),
                _ => Err(format!("{n} is not a whole number")),
            },
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| format!("'{s}' is not a whole number")),
            Value::Bool(b) => Ok(Value::from(i64::from(*b))),
            _ => Err("not a whole number".into()),
        },
        K::Decimal | K::Percent => match value {
            Value::Number(_) => Ok(value.clone()),
            Value::String(s) if crate::validate::is_decimal(s.trim()) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("'{s}' is not a number")),
            Value::String(s) => Err(format!("'{s}' is not a number")),
            _ => Err("not a number".into()),
        },
        K::Boolean => match value {
            Value::Bool(_) => Ok(value.clone()),
            Value::Number(n) if n.as_i64() == Some(0) => Ok(Value::Bool(false)),
            Value::Number(n) if n.as_i64() == Some(1) => Ok(Value::Bool(true)),
            Value::String(s) => match s.trim().to_lowercase().as_str() {
                "true" | "yes" | "y" | "1" | "是" => Ok(Value::Bool(true)),
                "false" | "no" | "n" | "0" | "否" => Ok(Value::Bool(false)),
                _ => Err(format!("'{s}' is not true or false")),
            },
            _ => Err("not true or false".into()),
        },
        K::Tags | K::MultiSelect => match value {
            Value::Array(_) => Ok(value.clone()),
            Value::String(s) => Ok(Value::Array(
                s.split([',', '，'])
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(|t| Value::String(t.to_owned()))
                    .collect(),
            )),
            _ => Err("not a list of text".into()),
        },
        K::Json => Ok(value.clone()),
        _ => match value {
            Value::String(_)
                if to
                    .allowed_json_types()
                    .contains(&trellis_model::field_kind::JsonType::String) =>
            {
                Ok(value.clone())
            }
            _ => Err(format!(
                "a {} value cannot become {}",
                from.name(),
                to.name()
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_or_explains() {
        assert_eq!(
            convert_value(&json!("42"), FieldKind::Text, FieldKind::Integer),
            Ok(json!(42))
        );
        assert_eq!(
            convert_value(&json!(" 3.5 "), FieldKind::Text, FieldKind::Decimal),
            Ok(json!(3.5))
        );
        assert!(convert_value(&json!("forty"), FieldKind::Text, FieldKind::Integer).is_err());
        assert_eq!(
            convert_value(&json!(7), FieldKind::Integer, FieldKind::Text),
            Ok(json!("7"))
        );
        assert_eq!(
            convert_value(&json!("a, b，c"), FieldKind::Text, FieldKind::Tags),
            Ok(json!(["a", "b", "c"]))
        );
        assert_eq!(
            convert_value(&json!("是"), FieldKind::Text, FieldKind::Boolean),
            Ok(json!(true))
        );
    }
}
