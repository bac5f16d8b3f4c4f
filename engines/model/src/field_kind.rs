//! The closed set of field kinds an entity can have, and how each maps onto JSON Schema types.

use serde::{Deserialize, Serialize};

/// Every kind of field the form engine understands. Closed on purpose: a new kind is a code change that
/// every engine (validation, storage, reports, UI) must handle, and the compiler makes sure they do.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    Text,
    LongText,
    RichText,
    Integer,
    Decimal,
    /// Exact decimal amount with a currency, `{"amount": "12.50", "currency": "CNY"}` — never a float.
    Money,
    Percent,
    Boolean,
    Date,
    Datetime,
    /// ISO 8601 duration such as `P3DT4H`.
    Duration,
    Email,
    Phone,
    Url,
    SingleSelect,
    MultiSelect,
    Tags,
    Rating,
    RelationOne,
    RelationMany,
    User,
    File,
    Json,
    AutoNumber,
    CreatedAt,
    UpdatedAt,
    CreatedBy,
    UpdatedBy,
}

/// JSON Schema `type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonType {
    String,
    Integer,
    Number,
    Boolean,
    Array,
    Object,
}

impl JsonType {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "string" => Self::String,
            "integer" => Self::Integer,
            "number" => Self::Number,
            "boolean" => Self::Boolean,
            "array" => Self::Array,
            "object" => Self::Object,
            _ => return None,
        })
    }
}

impl FieldKind {
    /// The snake_case name used in metadata.
    pub fn name(self) -> &'static str {
        ALL_KINDS
            .iter()
            .find(|(k, _)| *k == self)
            .map(|(_, n)| *n)
            .unwrap_or("json")
    }

    /// The JSON types a value of this kind may have in the entity's JSON Schema. Empty means any.
    pub fn allowed_json_types(self) -> &'static [JsonType] {
        use JsonType as J;
        match self {
            Self::Text
            | Self::LongText
            | Self::RichText
            | Self::Date
            | Self::Datetime
            | Self::Duration
            | Self::Email
            | Self::Phone
            | Self::Url
            | Self::SingleSelect
            | Self::RelationOne
            | Self::User
            | Self::File
            | Self::AutoNumber
            | Self::CreatedAt
            | Self::UpdatedAt
            | Self::CreatedBy
            | Self::UpdatedBy => &[J::String],
            Self::Integer | Self::Rating => &[J::Integer],
            // Exact decimals may travel as strings to avoid float rounding.
            Self::Decimal | Self::Percent => &[J::Number, J::Integer, J::String],
            Self::Money => &[J::Object, J::String],
            Self::Boolean => &[J::Boolean],
            Self::MultiSelect | Self::Tags | Self::RelationMany => &[J::Array],
            Self::Json => &[],
        }
    }

    /// Kinds whose values the system fills in; users cannot write them.
    pub fn is_system_managed(self) -> bool {
        matches!(
            self,
            Self::AutoNumber
                | Self::CreatedAt
                | Self::UpdatedAt
                | Self::CreatedBy
                | Self::UpdatedBy
        )
    }

    pub fn is_relation(self) -> bool {
        matches!(self, Self::RelationOne | Self::RelationMany)
    }

    pub fn is_select(self) -> bool {
        matches!(self, Self::SingleSelect | Self::MultiSelect)
    }

    /// Infer a kind from a property's JSON Schema when `x-trellis.kind` is not given.
    pub fn infer(property: &serde_json::Map<String, serde_json::Value>) -> Self {
        let ty = property.get("type").and_then(|t| t.as_str());
        let format = property.get("format").and_then(|f| f.as_str());
        match (ty, format) {
            (Some("string"), Some("email")) => Self::Email,
            (Some("string"), Some("uri" | "iri")) => Self::Url,
            (Some("string"), Some("date")) => Self::Date,
            (Some("string"), Some("date-time")) => Self::Datetime,
            (Some("string"), Some("duration")) => Self::Duration,
            (Some("string"), _) if property.contains_key("enum") => Self::SingleSelect,
            (Some("string"), _) => Self::Text,
            (Some("integer"), _) => Self::Integer,
            (Some("number"), _) => Self::Decimal,
            (Some("boolean"), _) => Self::Boolean,
            (Some("array"), _) => {
                let items = property.get("items").and_then(|i| i.as_object());
                if items.is_some_and(|i| i.contains_key("enum")) {
                    Self::MultiSelect
                } else if items.and_then(|i| i.get("type")).and_then(|t| t.as_str())
                    == Some("string")
                {
                    Self::Tags
                } else {
                    Self::Json
                }
            }
            _ => Self::Json,
        }
    }
}

/// Every kind with its metadata name; used for error messages that list the choices.
pub const ALL_KINDS: [(FieldKind, &str); 28] = [
    (FieldKind::Text, "text"),
    (FieldKind::LongText, "long_text"),
    (FieldKind::RichText, "rich_text"),
    (FieldKind::Integer, "integer"),
    (FieldKind::Decimal, "decimal"),
    (FieldKind::Money, "money"),
    (FieldKind::Percent, "percent"),
    (FieldKind::Boolean, "boolean"),
    (FieldKind::Date, "date"),
    (FieldKind::Datetime, "datetime"),
    (FieldKind::Duration, "duration"),
    (FieldKind::Email, "email"),
    (FieldKind::Phone, "phone"),
    (FieldKind::Url, "url"),
    (FieldKind::SingleSelect, "single_select"),
    (FieldKind::MultiSelect, "multi_select"),
    (FieldKind::Tags, "tags"),
    (FieldKind::Rating, "rating"),
    (FieldKind::RelationOne, "relation_one"),
    (FieldKind::RelationMany, "relation_many"),
    (FieldKind::User, "user"),
    (FieldKind::File, "file"),
    (FieldKind::Json, "json"),
    (FieldKind::AutoNumber, "auto_number"),
    (FieldKind::CreatedAt, "created_at"),
    (FieldKind::UpdatedAt, "updated_at"),
    (FieldKind::CreatedBy, "created_by"),
    (FieldKind::UpdatedBy, "updated_by"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde() {
        for (kind, name) in ALL_KINDS {
            assert_eq!(serde_json::to_value(kind).unwrap(), serde_json::json!(name));
            assert_eq!(kind.name(), name);
        }
    }

    #[test]
    fn infers_from_json_schema() {
        let infer = |v: serde_json::Value| FieldKind::infer(v.as_object().unwrap());
        use serde_json::json;
        assert_eq!(
            infer(json!({"type": "string", "format": "email"})),
            FieldKind::Email
        );
        assert_eq!(
            infer(json!({"type": "string", "enum": ["a"]})),
            FieldKind::SingleSelect
        );
        assert_eq!(
            infer(json!({"type": "array", "items": {"enum": ["a"]}})),
            FieldKind::MultiSelect
        );
        assert_eq!(
            infer(json!({"type": "array", "items": {"type": "string"}})),
            FieldKind::Tags
        );
        assert_eq!(infer(json!({"type": "number"})), FieldKind::Decimal);
        assert_eq!(infer(json!({})), FieldKind::Json);
    }
}
