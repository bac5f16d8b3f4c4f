//! Envelopes of the metadata documents whose full shape belongs to a later engine.
//!
//! Flows, rules, reports, views and template tests all share an envelope (format version, id, labels);
//! the envelope is validated here, and the body is kept as JSON until the engine that owns the kind
//! (flow, rule, report engines) validates it. Their schemas in `schemas/` grow with those engines.

use serde::{Deserialize, Serialize};

use crate::{Identifier, LocalizedText};

/// The kinds of documents a bundle can hold besides the manifest, entities, i18n and data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocumentKind {
    Flow,
    Rule,
    Report,
    View,
    Test,
}

impl DocumentKind {
    /// Folder and file suffix of the kind: `("flows", ".flow.json")`.
    pub fn layout(self) -> (&'static str, &'static str) {
        match self {
            Self::Flow => ("flows", ".flow.json"),
            Self::Rule => ("rules", ".rule.json"),
            Self::Report => ("reports", ".report.json"),
            Self::View => ("views", ".view.json"),
            Self::Test => ("tests", ".test.json"),
        }
    }

    pub fn all() -> [Self; 5] {
        [Self::Flow, Self::Rule, Self::Report, Self::View, Self::Test]
    }

    /// Name of the generated schema file in `schemas/`.
    pub fn schema_name(self) -> &'static str {
        match self {
            Self::Flow => "flow",
            Self::Rule => "rule",
            Self::Report => "report",
            Self::View => "view",
            Self::Test => "test",
        }
    }
}

/// The common envelope of flow, rule, report, view and test documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DocumentEnvelope {
    /// Metadata format version of this file; currently 1.
    pub format_version: u32,
    /// Must equal the file name's stem (`flows/<id>.flow.json`).
    pub id: Identifier,
    #[serde(default)]
    pub label: Option<LocalizedText>,
    #[serde(default)]
    pub description: Option<LocalizedText>,
    /// The entity the document is about, when it has one (flows, rules, reports, entity views).
    #[serde(default)]
    pub entity: Option<Identifier>,
    /// The rest of the document, owned by the engine of its kind.
    #[serde(flatten)]
    pub body: serde_json::Map<String, serde_json::Value>,
}
