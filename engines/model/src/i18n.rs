//! Translation files, `i18n/<locale>.json`: every label an app shows, per language.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One `i18n/<locale>.json` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Trellis translations (i18n/<locale>.json)")]
pub struct TranslationFile {
    /// Metadata format version of this file; currently 1.
    pub format_version: u32,
    /// Message key → text in this file's language, e.g. `"entity.customer": "客户"`.
    pub messages: BTreeMap<String, String>,
}

/// Is `tag` a plausible BCP 47 language tag such as `en`, `zh-CN` or `pt-BR`?
pub fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let language = parts.next().unwrap_or_default();
    (2..=3).contains(&language.len())
        && language.chars().all(|c| c.is_ascii_lowercase())
        && parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}
