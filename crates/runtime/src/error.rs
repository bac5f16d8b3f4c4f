//! Runtime errors: what went wrong, in the product's terms. `trellis-server` maps them to HTTP in one
//! place; the CLI prints them.

use trellis_model::Problem;
use trellis_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Metadata failed validation; every problem is listed.
    #[error("the bundle has {} problem(s)", .0.len())]
    InvalidBundle(Vec<Problem>),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A precondition (`If-Match`) no longer holds.
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("wrong username or password")]
    BadCredentials,
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
            other => Self::Store(other),
        }
    }
}
