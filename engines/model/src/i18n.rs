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

/// The languages every template must be complete in.
pub const TEMPLATE_LOCALES: [&str; 2] = ["en", "zh-CN"];

/// What a template (unlike an app an analyst is still building) must have: an `i18n/<locale>.json`
/// for each of [`TEMPLATE_LOCALES`] with the same message keys, and no label missing a language
/// (the bundle check's `missing_translation` warnings become errors here).
pub fn check_template_translations(bundle: &crate::AppBundle) -> Vec<crate::Problem> {
    let mut problems = crate::Problems::default();
    for locale in TEMPLATE_LOCALES {
        if !bundle.translations.contains_key(locale) {
            problems.error(
                &format!("i18n/{locale}.json"),
                "",
                "missing_translation",
                format!(
                    "a template ships its messages in {}: add this file",
                    TEMPLATE_LOCALES.join(" and ")
                ),
            );
        }
    }
    let all_keys: std::collections::BTreeSet<&String> = TEMPLATE_LOCALES
        .iter()
        .filter_map(|l| bundle.translations.get(*l))
        .flat_map(|f| f.messages.keys())
        .collect();
    for locale in TEMPLATE_LOCALES {
        let Some(file) = bundle.translations.get(locale) else {
            continue;
        };
        for key in &all_keys {
            if !file.messages.contains_key(*key) {
                problems.error(
                    &format!("i18n/{locale}.json"),
                    crate::pointer::join("/messages", key),
                    "missing_translation",
                    format!(
                        "message '{key}' is translated in another language but not in {locale}"
                    ),
                );
            }
        }
    }
    let mut out = problems.into_vec();
    out.extend(
        bundle
            .warnings
            .iter()
            .filter(|w| w.code == "missing_translation")
            .map(|w| crate::Problem {
                severity: crate::Severity::Error,
                ..w.clone()
            }),
    );
    out
}
