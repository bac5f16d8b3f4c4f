//! The filter tree shared by record lists, row-level permissions and report datasets (CONTRACT.md §2):
//! `{"and": [F…]}`, `{"or": [F…]}`, `{"not": F}`, `{"field": "region", "op": "eq", "value": "north"}`.
//! This is the raw, deserialized form; the form engine checks it against an entity.

use serde::{Deserialize, Serialize};

/// Comparison operators of a filter leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FilterOp {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    In,
    Contains,
    StartsWith,
    IsEmpty,
    Between,
}

impl FilterOp {
    pub fn name(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Lt => "lt",
            Self::Lte => "lte",
            Self::Gt => "gt",
            Self::Gte => "gte",
            Self::In => "in",
            Self::Contains => "contains",
            Self::StartsWith => "starts_with",
            Self::IsEmpty => "is_empty",
            Self::Between => "between",
        }
    }
}

/// A filter as written by clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Filter {
    And {
        and: Vec<Filter>,
    },
    Or {
        or: Vec<Filter>,
    },
    Not {
        not: Box<Filter>,
    },
    Leaf {
        /// A field of the entity, or `relation.field` one level deep.
        field: String,
        op: FilterOp,
        #[serde(default)]
        value: serde_json::Value,
    },
}

/// Where a checked filter leaf reads its value. Paths are stable field uids, never names.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldPath {
    /// A field of the record itself.
    Own { uid: String },
    /// A field of the record a relation points at (one level deep).
    Related {
        relation_uid: String,
        many: bool,
        target_entity_uid: String,
        field_uid: String,
    },
    /// The record's own id (`"field": "id"`, when the entity has no field named `id`): drill-down
    /// lists and "these records".
    RecordId,
}

/// A leaf whose field exists, whose operator fits the field's kind, and whose values are normalized
/// to the field's JSON representation.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterLeaf {
    pub path: FieldPath,
    pub kind: crate::FieldKind,
    pub op: FilterOp,
    /// One value for most operators, several for `in`, two for `between`, none for `is_empty`.
    pub values: Vec<serde_json::Value>,
    /// For `is_empty`: whether empty (true) or non-empty (false) records match.
    pub empty: bool,
}

/// A filter checked against an entity; the store turns it into SQL with bound parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckedFilter {
    All,
    And(Vec<CheckedFilter>),
    Or(Vec<CheckedFilter>),
    Not(Box<CheckedFilter>),
    Leaf(FilterLeaf),
}
