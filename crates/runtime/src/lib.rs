//! Trellis runtime: runs the pure engines over the store.
//!
//! [`Runtime`] is what the server and the CLI call: sign-in and tokens ([`auth`]), apps and their
//! published versions ([`apps`]), and templates: reading, packing, the gallery, install and upgrade ([`templates`]). Later
//! issues add records, flows, rules, reports and the scheduler here. Every operation that changes data
//! runs in one store transaction, so it either happens whole or not at all.
//!
//! Architecture invariant: no HTTP here (that is `trellis-server`) and no SQL (that is `trellis-store`).

pub mod access;
pub mod admin;
mod app_cache;
pub mod apps;
pub mod auth;
mod column_cache;
mod error;
pub mod export;
pub mod flows;
pub mod import;
pub mod mail;
pub mod outbox;
mod parallel;
pub mod people;
pub mod records;
pub mod reports;
pub mod rules;
pub mod templates;
pub mod tls;

pub use column_cache::SnapshotPolicy;
pub use error::RuntimeError;
pub use trellis_store::{AuditQuery, Backend, Store, UserChanges, redact as redact_db_url};

/// Who is asking: the authenticated user behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub username: String,
    /// Platform admin: manages users and apps, has every right in every app.
    pub is_admin: bool,
    /// Scopes of the API token used (none for sessions and unscoped tokens: the user's full rights).
    pub scopes: Option<Vec<String>>,
    /// The access epoch read with the token; cached permissions are keyed by it.
    pub access_epoch: i64,
    /// The token's hash (to keep this session when changing the password).
    pub token_hash: Option<String>,
    /// Where the request came from (for the audit log).
    pub address: Option<String>,
}

impl Principal {
    /// A platform-admin principal for work the system does itself (CLI imports, demo installs).
    pub fn system(user_id: &str, username: &str) -> Self {
        Self {
            user_id: user_id.to_owned(),
            username: username.to_owned(),
            is_admin: true,
            scopes: None,
            access_epoch: 0,
            token_hash: None,
            address: None,
        }
    }
}

/// Settings the runtime needs (the CLI builds them from flags, env and the config file).
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// How long a sign-in session lasts.
    pub session_ttl: chrono::Duration,
    /// Key of the HMAC-SHA256 signature on outgoing webhooks (`x-trellis-signature: sha256=…`);
    /// `TRELLIS_WEBHOOK_SECRET` by default. Unsigned when absent.
    pub webhook_secret: Option<String>,
    /// A running rule batch whose last page is older than this was cut short (a crash, a restart)
    /// and is resumed by the next run of the rule.
    pub batch_stale_after: chrono::Duration,
    /// Which template packages may be published and installed (signatures, trusted publisher keys);
    /// from `TRELLIS_REQUIRE_SIGNED_TEMPLATES` and `TRELLIS_TRUSTED_KEYS` by default.
    pub template_signatures: templates::SignaturePolicy,
    /// E-mail for notifications (`TRELLIS_SMTP_URL`, `TRELLIS_SMTP_FROM`); none: in-app only.
    pub mail: Option<mail::MailSettings>,
    /// Certificate authorities trusted besides the Mozilla roots by https webhooks and SMTP
    /// (`TRELLIS_TLS_CA_FILE`, PEM).
    pub extra_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    /// Records read and written back per transaction by `apply_report` rules (4,000: at a million
    /// customers the write-back took 26.7–27.1 s in pages of 4,000 against 28.0–30.6 s in pages of
    /// 2,000; tests lower it to cross page boundaries with a few records).
    pub write_back_page: usize,
    /// Most entries an outbox pass takes ([`outbox::OUTBOX_PASS`]; tests lower it to spread a
    /// backlog over several passes with a few entries).
    pub outbox_pass: usize,
    /// Which entities' column caches are persisted as column snapshots, and in what chunks (tests
    /// lower both to exercise snapshots with a few records).
    pub column_snapshots: column_cache::SnapshotPolicy,
}

impl RuntimeSettings {
    /// The defaults with every environment setting checked: a bad `TRELLIS_SMTP_URL`,
    /// `TRELLIS_SMTP_FROM`, `TRELLIS_PUBLIC_URL`, `TRELLIS_TLS_CA_FILE` or
    /// `TRELLIS_COLUMN_SNAPSHOT_ROWS` is an error naming the variable and the fix (what `trellis
    /// serve` uses; [`Default`] ignores bad values).
    pub fn from_env() -> Result<Self, String> {
        let extra_roots = match std::env::var("TRELLIS_TLS_CA_FILE") {
            Ok(path) if !path.trim().is_empty() => tls::read_ca_file(std::path::Path::new(&path))?,
            _ => Vec::new(),
        };
        let mut column_snapshots = column_cache::SnapshotPolicy::default();
        if let Ok(rows) = std::env::var("TRELLIS_COLUMN_SNAPSHOT_ROWS")
            && !rows.trim().is_empty()
        {
            column_snapshots.min_rows = rows.trim().parse().map_err(|_| {
                format!(
                    "TRELLIS_COLUMN_SNAPSHOT_ROWS={rows:?} is not a whole number: give the rows from \
                     which an entity's report columns are kept as a column snapshot (default 100000)"
                )
            })?;
        }
        Ok(Self {
            mail: mail::MailSettings::from_env()?,
            extra_roots,
            column_snapshots,
            ..Self::default()
        })
    }
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            session_ttl: chrono::Duration::hours(12),
            batch_stale_after: chrono::Duration::seconds(60),
            template_signatures: templates::SignaturePolicy::from_env(),
            webhook_secret: std::env::var("TRELLIS_WEBHOOK_SECRET")
                .ok()
                .filter(|s| !s.is_empty()),
            mail: mail::MailSettings::from_env().ok().flatten(),
            extra_roots: std::env::var("TRELLIS_TLS_CA_FILE")
                .ok()
                .and_then(|path| tls::read_ca_file(std::path::Path::new(&path)).ok())
                .unwrap_or_default(),
            write_back_page: 4000,
            outbox_pass: outbox::OUTBOX_PASS as usize,
            column_snapshots: column_cache::SnapshotPolicy::default(),
        }
    }
}

/// The running system: the store plus settings. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Runtime {
    store: Store,
    settings: RuntimeSettings,
    cache: app_cache::AppCache,
    subjects: access::SubjectCache,
    columns: column_cache::ColumnCache,
    /// Results of repeated report views (`reports::results`).
    results: reports::results::ResultCache,
    /// Clients of the outbox (webhooks, SMTP), built on first use.
    outgoing: std::sync::Arc<outbox::Outgoing>,
    /// Write-backs running now: the outbox takes smaller passes meanwhile.
    write_backs_running: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Runtime {
    /// Connect to the database at `url` (migrating it) and build a runtime.
    pub async fn connect(url: &str, settings: RuntimeSettings) -> Result<Self, RuntimeError> {
        Ok(Self::new(Store::connect(url).await?, settings))
    }

    pub fn new(store: Store, settings: RuntimeSettings) -> Self {
        let columns = column_cache::ColumnCache::new(settings.column_snapshots);
        Self {
            store,
            settings,
            cache: app_cache::AppCache::default(),
            subjects: access::SubjectCache::default(),
            columns,
            results: reports::results::ResultCache::default(),
            outgoing: Default::default(),
            write_backs_running: Default::default(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn settings(&self) -> &RuntimeSettings {
        &self.settings
    }

    pub fn backend(&self) -> Backend {
        self.store.backend()
    }

    /// Wait until the column snapshots being written in the background are stored, and the
    /// columns a large import prepares in the background are loaded (tests, benchmarks and
    /// `trellis import`; a server never needs to).
    pub async fn column_snapshots_written(&self) {
        self.columns.snapshots_written().await;
    }

    /// How many column-cache entries this runtime loaded from column snapshots and from the
    /// documents since it started: `(from_snapshots, from_documents)`.
    pub fn column_cache_loads(&self) -> (u64, u64) {
        self.columns.loads()
    }

    /// How many times since the start a loaded column-cache entry lacked columns a report or a
    /// rule's pre-filter asked for and read them from the documents.
    pub fn column_cache_columns_added(&self) -> u64 {
        self.columns.columns_added()
    }
}
