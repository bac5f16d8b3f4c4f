//! Validated identifiers: the only strings that may ever become SQL identifiers or URL path segments.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An id of an app, entity, field, flow, rule, report or view: `^[a-z][a-z0-9_]{0,62}$`.
///
/// Ids are what the API and the storage layer use; because they are validated here they are safe to use
/// as SQL identifiers (quoted) and path segments.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Identifier(String);

impl schemars::JsonSchema for Identifier {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Identifier".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[a-z][a-z0-9_]{0,62}$",
            "description": "Identifier: a lowercase letter, then lowercase letters, digits or underscores; at most 63 characters."
        })
    }
}

/// Why a string is not an [`Identifier`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    #[error("id is empty")]
    Empty,
    #[error("id '{0}' is longer than 63 characters")]
    TooLong(String),
    #[error("id '{0}' must start with a lowercase letter (a-z)")]
    BadStart(String),
    #[error("id '{0}' may only contain lowercase letters, digits and '_'")]
    BadCharacter(String),
}

impl Identifier {
    /// Validate `value` as an identifier.
    pub fn parse(value: &str) -> Result<Self, IdentifierError> {
        let mut chars = value.chars();
        match chars.next() {
            None => return Err(IdentifierError::Empty),
            Some(c) if !c.is_ascii_lowercase() => {
                return Err(IdentifierError::BadStart(value.to_owned()));
            }
            Some(_) => {}
        }
        if value.len() > 63 {
            return Err(IdentifierError::TooLong(value.to_owned()));
        }
        if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(IdentifierError::BadCharacter(value.to_owned()));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Identifier {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Identifier {
    type Err = IdentifierError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for Identifier {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        assert!(Identifier::parse("customer_360").is_ok());
        assert!(Identifier::parse("a").is_ok());
        assert_eq!(Identifier::parse(""), Err(IdentifierError::Empty));
        assert!(matches!(
            Identifier::parse("1abc"),
            Err(IdentifierError::BadStart(_))
        ));
        assert!(matches!(
            Identifier::parse("Abc"),
            Err(IdentifierError::BadStart(_))
        ));
        assert!(matches!(
            Identifier::parse("a-b"),
            Err(IdentifierError::BadCharacter(_))
        ));
        assert!(matches!(
            Identifier::parse("a\"; drop"),
            Err(IdentifierError::BadCharacter(_))
        ));
        assert!(matches!(
            Identifier::parse(&"a".repeat(64)),
            Err(IdentifierError::TooLong(_))
        ));
        assert!(Identifier::parse(&"a".repeat(63)).is_ok());
    }
}
