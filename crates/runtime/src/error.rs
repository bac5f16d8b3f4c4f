//! Runtime errors: what went wrong, in the product's terms. `trellis-server` maps them to HTTP in one
//! place; the CLI prints them.

use trellis_model::Problem;
use trellis_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Metadata failed validation; every problem is listed.
    #[error("the bundle has {} problem(s)", .0.len())]
    InvalidBundle(Vec<Problem>),
    /// A record (or an import row) failed validation; every field problem is listed.
    #[error("the record has {} problem(s)", .0.len())]
    InvalidRecord(Vec<trellis_form::FieldIssue>),
    /// A list query (filter, sort, cursor) is not valid; pointers are into the parameter named first.
    #[error("invalid query: {parameter}")]
    InvalidQuery {
        parameter: &'static str,
        issues: Vec<trellis_form::FieldIssue>,
    },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A flow event that does not leave the record's current state (a conflict, like any refusal;
    /// rule-fired events that arrive after the record moved on are skipped instead).
    #[error("{0}")]
    EventNotFromState(String),
    /// A precondition (`If-Match`) no longer holds.
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("wrong username or password")]
    BadCredentials,
    /// Too many failed sign-ins; try again after this many minutes.
    #[error("too many failed sign-ins; try again in {0} minutes")]
    TooManyAttempts(i64),
    #[error("{0}")]
    Forbidden(String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error(transparent)]
    Store(StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for RuntimeError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => Self::NotFound(what),
            StoreError::Conflict(what) => Self::Conflict(what),
            StoreError::Unsupported(what) => Self::InvalidInput(what),
            StoreError::VersionMismatch { current } => Self::PreconditionFailed(format!(
                "the record changed: it is now at version {current}; reload it and try again"
            )),
            other => Self::Store(other),
        }
    }
}
