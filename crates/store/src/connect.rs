//! Opening a store: URL parsing, connection pools, pragmas and migrations.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::StoreError;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Connection pools. SQLite allows one writer at a time, so writes go through a single connection
/// (no `SQLITE_BUSY` upgrade failures) while reads use several; PostgreSQL uses one pool.
#[derive(Debug, Clone)]
pub(crate) enum Pools {
    Sqlite {
        write: SqlitePool,
        read: SqlitePool,
        /// rusqlite readers of the same file for hot single-row reads (none for in-memory databases).
        native: Option<std::sync::Arc<crate::native_read::NativeReads>>,
        /// The thread checkpointing the WAL off the writer (none for in-memory databases).
        checkpointer: Option<std::sync::Arc<crate::checkpoint::Checkpointer>>,
        /// Set while the write connection commits without waiting for the disk (an unsynced bulk
        /// insert); the pool puts `synchronous=FULL` back when the connection is released.
        relaxed_sync: RelaxedSync,
    },
    Postgres(PgPool),
}

/// See `Pools::Sqlite::relaxed_sync`.
pub(crate) type RelaxedSync = std::sync::Arc<std::sync::atomic::AtomicBool>;

/// A handle to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pools: Pools,
    /// Group-commit task for single inserts, started on first use.
    pub(crate) group_commit: std::sync::Arc<std::sync::OnceLock<crate::group_commit::Sender>>,
    /// Group-commit task for single updates (flow transitions), started on first use.
    pub(crate) update_group: std::sync::Arc<std::sync::OnceLock<crate::group_commit::UpdateSender>>,
    /// Group-commit task for rule-run log rows (SQLite), started on first use.
    pub(crate) run_log_group:
        std::sync::Arc<std::sync::OnceLock<crate::group_commit::RunLogSender>>,
    /// Column loads of at least this many records on SQLite run as two halves on two threads.
    pub(crate) parallel_loads_from: i64,
}

/// The default of [`Store::with_parallel_loads_from`].
const PARALLEL_LOADS_FROM: i64 = 200_000;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Open a SQLite pool, retrying while another process holds the lock. Switching a fresh file to
/// WAL takes an exclusive lock for which SQLite does not always call the busy handler, so several
/// servers starting on one new file can see `SQLITE_BUSY` once; they wait briefly and try again.
async fn open_sqlite_pool(
    max_connections: u32,
    options: SqliteConnectOptions,
    relaxed_sync: Option<RelaxedSync>,
) -> Result<SqlitePool, StoreError> {
    let mut attempt: u64 = 0;
    loop {
        let mut pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            // A connection to a local file does not go stale; the ping sqlx sends before handing one
            // out is a round trip to the connection's thread on every acquire (~100 µs here).
            .test_before_acquire(false);
        if let Some(relaxed) = relaxed_sync.clone() {
            // A connection a bulk insert relaxed gets its setting back before anyone else gets it,
            // whether the bulk insert committed, rolled back or was dropped.
            pool = pool.after_release(move |connection, _| {
                let relaxed = relaxed.clone();
                Box::pin(async move {
                    if relaxed.swap(false, std::sync::atomic::Ordering::SeqCst) {
                        sqlx::query("PRAGMA synchronous = FULL")
                            .execute(&mut *connection)
                            .await?;
                    }
                    Ok(true)
                })
            });
        }
        match pool.connect_with(options.clone()).await {
            Ok(pool) => return Ok(pool),
            Err(error) if attempt < 50 && is_sqlite_busy(&error) => {
                attempt += 1;
                tracing::debug!(%error, attempt, "sqlite file locked while opening; retrying");
                tokio::time::sleep(Duration::from_millis(20 * attempt.min(10))).await;
            }
            Err(error) => return Err(StoreError::connect(error)),
        }
    }
}

/// `SQLITE_BUSY` (5) or `SQLITE_LOCKED` (6), including their extended codes.
fn is_sqlite_busy(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i64>().ok())
            .is_some_and(|code| matches!(code & 0xff, 5 | 6)),
        _ => false,
    }
}

impl Store {
    /// Connect to `url` (`sqlite://path` or `postgres://…`) and apply pending migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let store = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::connect_postgres(url).await?
        } else if url.starts_with("sqlite:") {
            Self::connect_sqlite(url).await?
        } else {
            return Err(StoreError::InvalidUrl(format!(
                "unsupported database url '{}': use sqlite://PATH or postgres://USER@HOST/DB",
                redact(url)
            )));
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn connect_sqlite(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::InvalidUrl(format!("'{url}': {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // The one writer keeps the upper levels of the big tables' B-trees in memory (SQLite's
        // default page cache is 2 MB: a nightly write-back over a million customers re-read them
        // from the OS on every page). The WAL is checkpointed by a thread of its own
        // (`checkpoint.rs`); the writer checkpoints itself only when the log passes ~160 MB, should
        // that thread fall behind (each checkpoint also syncs the database file).
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let write_options = options
            .clone()
            .pragma("cache_size", "-131072")
            .pragma("wal_autocheckpoint", "40000");
        let relaxed_sync = RelaxedSync::default();
        let write = open_sqlite_pool(1, write_options, Some(relaxed_sync.clone())).await?;
        let checkpointer = (!in_memory)
            .then(|| crate::checkpoint::Checkpointer::start(options.get_filename().to_path_buf()));
        let native = (!in_memory)
            .then(|| options.get_filename().to_path_buf())
            .map(|path| std::sync::Arc::new(crate::native_read::NativeReads::new(path)));
        // Readers map the database file instead of copying each page through `pread` (column loads
        // of millions of records spent a fifth of their time in that copy). SQLite caps the mapping
        // at 2 GiB by default; beyond it, pages are read as before.
        let read_options = options.read_only(true).pragma("mmap_size", "2147418112");
        let read = open_sqlite_pool(4, read_options, None).await?;
        Ok(Self {
            pools: Pools::Sqlite {
                write,
                read,
                native,
                checkpointer,
                relaxed_sync,
            },
            group_commit: Default::default(),
            update_group: Default::default(),
            run_log_group: Default::default(),
            parallel_loads_from: PARALLEL_LOADS_FROM,
        })
    }

    async fn connect_postgres(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::InvalidUrl(format!("'{}': {e}", redact(url))))?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(15))
            .connect_with(options)
            .await
            .map_err(StoreError::connect)?;
        Ok(Self {
            pools: Pools::Postgres(pool),
            group_commit: Default::default(),
            update_group: Default::default(),
            run_log_group: Default::default(),
            parallel_loads_from: PARALLEL_LOADS_FROM,
        })
    }

    /// Apply pending migrations. On PostgreSQL sqlx holds an advisory lock while it migrates, so
    /// concurrent servers wait for each other instead of applying a migration twice.
    async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pools {
            Pools::Sqlite { write, .. } => {
                // SQLite has no advisory lock. Each migration runs in its own transaction, so when two
                // processes race, the loser's attempt rolls back whole; it then retries and finds the
                // migration applied. A racer can lose once per migration, so allow many short retries.
                let mut attempt: u64 = 0;
                let limit = 10 * SQLITE_MIGRATIONS.iter().count() as u64;
                loop {
                    match SQLITE_MIGRATIONS.run(write).await {
                        Ok(()) => break,
                        Err(error) if attempt < limit => {
                            attempt += 1;
                            tracing::debug!(%error, attempt, "sqlite migration raced another process; retrying");
                            tokio::time::sleep(Duration::from_millis(10 * attempt.min(20))).await;
                        }
                        Err(error) => return Err(error.into()),
                    }
                }
            }
            Pools::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// The same database without a group-commit task (the task itself writes through this).
    pub(crate) fn without_group_commit(&self) -> Self {
        Self {
            pools: self.pools.clone(),
            group_commit: Default::default(),
            update_group: Default::default(),
            run_log_group: Default::default(),
            parallel_loads_from: self.parallel_loads_from,
        }
    }

    /// Split SQLite column loads of at least `records` records into two halves loaded side by side
    /// (default 200,000; below that one thread is as fast). Tests lower it to cover the split.
    pub fn with_parallel_loads_from(mut self, records: i64) -> Self {
        self.parallel_loads_from = records;
        self
    }

    /// The native SQLite readers (`native_read`), on a SQLite file.
    pub(crate) fn native_reads(&self) -> Option<&crate::native_read::NativeReads> {
        match &self.pools {
            Pools::Sqlite {
                native: Some(native),
                ..
            } => Some(native),
            _ => None,
        }
    }

    pub fn backend(&self) -> Backend {
        match self.pools {
            Pools::Sqlite { .. } => Backend::Sqlite,
            Pools::Postgres(_) => Backend::Postgres,
        }
    }

    /// Number of migrations applied (for diagnostics and tests).
    pub async fn applied_migrations(&self) -> Result<i64, StoreError> {
        let sql = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";
        let count: i64 = crate::with_pool!(self, read, |pool| sqlx::query_scalar(sql)
            .fetch_one(pool)
            .await?);
        Ok(count)
    }

    /// Check that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: i32 = crate::with_pool!(self, read, |pool| sqlx::query_scalar("SELECT 1")
            .fetch_one(pool)
            .await?);
        Ok(())
    }

    /// Make every commit so far durable against a power cut, including the chunks of unsynced bulk
    /// inserts ([`Store::begin_unsynced_bulk_insert`]): on SQLite one `fsync` of the write-ahead log; on
    /// PostgreSQL (whose commits are always synchronous here) nothing to do.
    pub async fn sync_log(&self) -> Result<(), StoreError> {
        if let Pools::Sqlite {
            checkpointer: Some(checkpointer),
            ..
        } = &self.pools
        {
            let checkpointer = checkpointer.clone();
            tokio::task::spawn_blocking(move || checkpointer.sync_log())
                .await
                .map_err(|error| StoreError::Corrupt(format!("syncing the log: {error}")))?
                .map_err(|error| StoreError::Corrupt(format!("syncing the log: {error}")))?;
        }
        Ok(())
    }

    /// SQLite: whether the write connection waits for the disk at every commit
    /// (`synchronous=FULL`), as every write but an unsynced bulk insert relies on. PostgreSQL:
    /// `None` (commits as the server is configured; Trellis never changes it).
    pub async fn writer_syncs_every_commit(&self) -> Result<Option<bool>, StoreError> {
        Ok(match &self.pools {
            Pools::Sqlite { write, .. } => {
                let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(write)
                    .await?;
                Some(level >= 2)
            }
            Pools::Postgres(_) => None,
        })
    }

    /// Close all connections (graceful shutdown) and stop the checkpoint thread.
    pub async fn close(&self) {
        match &self.pools {
            Pools::Sqlite {
                write,
                read,
                checkpointer,
                ..
            } => {
                if let Some(checkpointer) = checkpointer {
                    let checkpointer = checkpointer.clone();
                    // Joining waits for a checkpoint in progress: not on an async worker.
                    let _ = tokio::task::spawn_blocking(move || checkpointer.stop()).await;
                }
                read.close().await;
                write.close().await;
            }
            Pools::Postgres(pool) => pool.close().await,
        }
    }
}

/// Hide a password in a database URL before it goes into an error or a log.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
