//! Text shown to people, in every language the app speaks (at least `en` and `zh-CN`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The locales every label must carry.
pub const REQUIRED_LOCALES: [&str; 2] = ["en", "zh-CN"];

/// A text in several languages, keyed by BCP 47 tag: `{"en": "Customer", "zh-CN": "客户"}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct LocalizedText(pub BTreeMap<String, String>);

impl LocalizedText {
    /// The required locales this text lacks.
    pub fn missing_locales(&self) -> Vec<&'static str> {
        REQUIRED_LOCALES
            .into_iter()
            .filter(|locale| {
                self.0
                    .get(*locale)
                    .is_none_or(|text| text.trim().is_empty())
            })
            .collect()
    }

    /// The text for `locale`, falling back to its language, then `en`, then any.
    pub fn get(&self, locale: &str) -> Option<&str> {
        let language = locale.split('-').next().unwrap_or(locale);
        self.0
            .get(locale)
            .or_else(|| {
                self.0
                    .iter()
                    .find(|(k, _)| k.split('-').next() == Some(language))
                    .map(|(_, v)| v)
            })
            .or_else(|| self.0.get("en"))
            .or_else(|| self.0.values().next())
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_back_by_language() {
        let text: LocalizedText =
            serde_json::from_value(serde_json::json!({"en": "Customer", "zh-CN": "客户"})).unwrap();
        assert_eq!(text.get("zh"), Some("客户"));
        assert_eq!(text.get("zh-CN"), Some("客户"));
        assert_eq!(text.get("fr"), Some("Customer"));
        assert!(text.missing_locales().is_empty());
        let partial: LocalizedText =
            serde_json::from_value(serde_json::json!({"en": "x"})).unwrap();
        assert_eq!(partial.missing_locales(), vec!["zh-CN"]);
    }
}
