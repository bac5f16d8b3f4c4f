//! Problems found while validating metadata: every one carries its file and JSON pointer.

use std::fmt;

use serde::Serialize;

/// How bad a problem is: errors block publishing, warnings are shown but do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in one file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Problem {
    /// Relative path of the file inside the bundle, e.g. `entities/customer.schema.json`.
    pub file: String,
    /// JSON pointer into that file ("" for the whole file).
    pub pointer: String,
    /// Stable machine-readable code, e.g. `unknown_field_kind`.
    pub code: &'static str,
    /// Plain-words explanation that says what to fix.
    pub message: String,
    pub severity: Severity,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pointer = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        let warning = match self.severity {
            Severity::Error => "",
            Severity::Warning => "warning: ",
        };
        write!(f, "{}:{}: {}{}", self.file, pointer, warning, self.message)
    }
}

/// Collects problems while a validator walks a bundle, so that all of them are reported at once.
#[derive(Debug, Default, Clone)]
pub struct Problems {
    items: Vec<Problem>,
}

impl Problems {
    /// Number of problems collected so far.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn error(
        &mut self,
        file: &str,
        pointer: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) {
        self.push(file, pointer, code, message, Severity::Error);
    }

    pub fn warning(
        &mut self,
        file: &str,
        pointer: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) {
        self.push(file, pointer, code, message, Severity::Warning);
    }

    fn push(
        &mut self,
        file: &str,
        pointer: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
        severity: Severity,
    ) {
        self.items.push(Problem {
            file: file.to_owned(),
            pointer: pointer.into(),
            code,
            message: message.into(),
            severity,
        });
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|p| p.severity == Severity::Error)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn into_vec(mut self) -> Vec<Problem> {
        self.items
            .sort_by(|a, b| (&a.file, &a.pointer).cmp(&(&b.file, &b.pointer)));
        self.items
    }

    pub fn iter(&self) -> impl Iterator<Item = &Problem> {
        self.items.iter()
    }

    /// Take over every problem of `other`.
    pub fn extend(&mut self, other: Problems) {
        self.items.extend(other.items);
    }
}
