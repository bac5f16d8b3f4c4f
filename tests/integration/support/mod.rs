//! Test harness: backends (SQLite file, PostgreSQL cluster), an in-process API client, sample bundles,
//! a minimal HTTP client for tests that talk to a real `trellis serve` process, and the far ends of
//! outgoing traffic (a test certificate authority, an https endpoint, an SMTP server).

pub mod api;
pub mod bundles;
pub mod http;
pub mod postgres;
pub mod tls;

use trellis_runtime::{Runtime, RuntimeSettings};

/// The two storage backends every storage and API test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty, migrated database of the given backend. `None` only when PostgreSQL is unavailable
/// outside CI (the reason is printed); in CI that is a panic.
pub async fn fresh_database(backend: Backend) -> Option<TestDatabase> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("trellis.db").display());
            Some(TestDatabase {
                url,
                _dir: Some(dir),
            })
        }
        Backend::Postgres => postgres::fresh_database()
            .await
            .map(|url| TestDatabase { url, _dir: None }),
    }
}

/// A database URL that stays valid while this value lives.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub async fn runtime(&self) -> Runtime {
        Runtime::connect(&self.url, RuntimeSettings::default())
            .await
            .expect("connect runtime")
    }
}

/// Generate one `#[tokio::test]` per backend for an `async fn(Backend)` test body.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::support::Backend::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::support::Backend::Postgres).await;
                }
            }
        )*
    };
}
pub(crate) use on_both_backends;

/// Open a fresh database or return from the test (only possible outside CI for PostgreSQL).
macro_rules! database_or_skip {
    ($backend:expr) => {
        match $crate::support::fresh_database($backend).await {
            Some(database) => database,
            None => return,
        }
    };
}
pub(crate) use database_or_skip;
