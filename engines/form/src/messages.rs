//! Validation messages in every supported language, keyed by stable code. One table, so a new code
//! cannot ship in one language only.

use crate::Locale;

/// A problem with one field of a record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldIssue {
    /// JSON pointer into the record's fields, e.g. `/email`.
    pub pointer: String,
    /// Stable code, e.g. `required`, `max_length`, `format`.
    pub code: &'static str,
    pub message: String,
}

/// The message for `code` in `locale`; `arg` fills the one placeholder some messages have.
pub fn message(code: &str, locale: Locale, arg: &str) -> String {
    let (en, zh) = match code {
        "required" => ("is required", "为必填项"),
        "type" => ("must be {}", "类型应为{}"),
        "min_length" => ("must have at least {} characters", "至少需要 {} 个字符"),
        "max_length" => ("must have at most {} characters", "最多允许 {} 个字符"),
        "minimum" => ("must be at least {}", "不能小于 {}"),
        "maximum" => ("must be at most {}", "不能大于 {}"),
        "exclusive_minimum" => ("must be greater than {}", "必须大于 {}"),
        "exclusive_maximum" => ("must be less than {}", "必须小于 {}"),
        "pattern" => ("does not match the pattern {}", "格式不符合 {}"),
        "enum" => ("must be one of {}", "必须是以下之一：{}"),
        "format" => ("is not a valid {}", "不是有效的{}"),
        "min_items" => ("needs at least {} items", "至少需要 {} 项"),
        "max_items" => ("allows at most {} items", "最多允许 {} 项"),
        "unique_items" => ("has duplicate items", "存在重复项"),
        "unknown_field" => ("is not a field of this entity", "不是此实体的字段"),
        "read_only" => ("is read-only", "为只读字段"),
        "unique" => (
            "must be unique: {} is already used",
            "必须唯一：{} 已被使用",
        ),
        "relation_missing" => (
            "refers to a record that does not exist: {}",
            "引用的记录不存在：{}",
        ),
        "invalid_money" => (
            "must be {\"amount\": \"12.50\", \"currency\": \"CNY\"}",
            "应为 {\"amount\": \"12.50\", \"currency\": \"CNY\"} 格式",
        ),
        "invalid_phone" => ("is not a valid phone number", "不是有效的电话号码"),
        "computed_failed" => ("could not be computed: {}", "无法计算：{}"),
        "expression_failed" => ("its condition failed: {}", "条件计算失败：{}"),
        "not_an_object" => (
            "the record must be a JSON object of fields",
            "记录必须是由字段组成的 JSON 对象",
        ),
        _ => ("is not valid ({})", "无效（{}）"),
    };
    let template = match locale {
        Locale::En => en,
        Locale::ZhCn => zh,
    };
    template.replacen("{}", arg, 1)
}

/// Name of a JSON type for messages.
pub fn type_name(json_type: &str, locale: Locale) -> &'static str {
    match (json_type, locale) {
        ("string", Locale::En) => "text",
        ("string", Locale::ZhCn) => "文本",
        ("integer", Locale::En) => "a whole number",
        ("integer", Locale::ZhCn) => "整数",
        ("number", Locale::En) => "a number",
        ("number", Locale::ZhCn) => "数字",
        ("boolean", Locale::En) => "true or false",
        ("boolean", Locale::ZhCn) => "是/否",
        ("array", Locale::En) => "a list",
        ("array", Locale::ZhCn) => "列表",
        ("object", Locale::En) => "an object",
        ("object", Locale::ZhCn) => "对象",
        (_, Locale::En) => "a value",
        (_, Locale::ZhCn) => "值",
    }
}

/// Name of a JSON Schema `format` for messages.
pub fn format_name(format: &str, locale: Locale) -> &str {
    match (format, locale) {
        ("email", Locale::En) => "email address",
        ("email", Locale::ZhCn) => "邮箱地址",
        ("date", Locale::En) => "date (YYYY-MM-DD)",
        ("date", Locale::ZhCn) => "日期（YYYY-MM-DD）",
        ("date-time", Locale::En) => "date and time (RFC 3339)",
        ("date-time", Locale::ZhCn) => "日期时间（RFC 3339）",
        ("uri" | "iri", Locale::En) => "URL",
        ("uri" | "iri", Locale::ZhCn) => "网址",
        ("duration", Locale::En) => "duration (ISO 8601, e.g. P3D)",
        ("duration", Locale::ZhCn) => "时长（ISO 8601，如 P3D）",
        (other, _) => other,
    }
}
