//! Storage errors. They say what went wrong in storage terms; the server maps them to HTTP.

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migrating the database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} not found")]
    NotFound(String),
    /// A uniqueness rule or an optimistic-concurrency check failed.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Another live record already holds this value of a unique field.
    #[error("value '{value}' of field {field_uid} is already used")]
    UniqueViolation { field_uid: String, value: String },
    /// The record is no longer at the expected version (optimistic concurrency).
    #[error("the record changed: it is at version {current}")]
    VersionMismatch { current: i64 },
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The operation does not exist on this backend.
    #[error("not supported here: {0}")]
    Unsupported(String),
}

impl StoreError {
    pub(crate) fn connect(error: sqlx::Error) -> Self {
        Self::Connect(error)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &error
            && db.is_unique_violation()
        {
            return Self::Conflict(db.message().to_owned());
        }
        Self::Database(error)
    }
}
