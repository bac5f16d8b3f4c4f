//! WAL checkpoints off the writer (SQLite). In WAL mode SQLite copies committed pages back into the
//! database file ("checkpoint") from inside the commit that pushes the log past its
//! `wal_autocheckpoint` size, so every few bulk chunks or write-back pages one commit on the single
//! writer also wrote ~40 MB into the database file and synced it (imports: 75–95 ms extra on one
//! chunk in seven; nightly write-backs: the slowest commits). A thread of our own now runs a passive
//! checkpoint a few times a second on a connection of its own: it never blocks the writer or a reader,
//! and it copies only what is committed. The writer's own automatic checkpoint stays, at a larger
//! size, as the safety net should this thread fall behind.

use std::path::PathBuf;
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the thread checkpoints; a checkpoint with nothing new to copy costs a few µs.
const EVERY: Duration = Duration::from_millis(250);

/// The background checkpoint thread of one database file; stops when stopped or dropped.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    /// The database's write-ahead log (`<file>-wal`).
    wal: PathBuf,
    stop: Mutex<Option<Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Checkpointer {
    /// Start checkpointing the WAL of the database file at `path` (which exists).
    pub(crate) fn start(path: PathBuf) -> Arc<Self> {
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("trellis-checkpoint".into())
            .spawn(move || {
                let connection = match open(&path) {
                    Ok(connection) => connection,
                    Err(error) => {
                        tracing::warn!(%error, path = %path.display(), "no background checkpoints: the writer checkpoints itself");
                        return;
                    }
                };
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    checkpoint(&connection);
                }
            })
            .ok();
        Arc::new(Self {
            wal: wal.into(),
            stop: Mutex::new(Some(stop)),
            thread: Mutex::new(thread),
        })
    }

    /// Sync the write-ahead log to disk: every commit made so far, including those made without
    /// waiting for the disk (`BulkInsert::commit_unsynced`), becomes durable. SQLite wrote their
    /// frames to the log file at commit; `fsync` through any descriptor of the file flushes them.
    pub(crate) fn sync_log(&self) -> std::io::Result<()> {
        match std::fs::File::open(&self.wal) {
            Ok(file) => file.sync_data(),
            // No log file: nothing was committed through one since the last connection closed.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Stop the thread and wait for its checkpoint in progress, if any.
    pub(crate) fn stop(&self) {
        if let Ok(mut stop) = self.stop.lock() {
            stop.take();
        }
        let thread = self.thread.lock().ok().and_then(|mut thread| thread.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn open(path: &std::path::Path) -> Result<rusqlite::Connection, rusqlite::Error> {
    use rusqlite::OpenFlags;
    let connection = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(Duration::from_millis(100))?;
    // The file is already in WAL mode (the writer set it); a passive checkpoint needs no other setting.
    Ok(connection)
}

/// One passive checkpoint: copy every committed frame no reader still needs, then sync the file.
fn checkpoint(connection: &rusqlite::Connection) {
    let started = Instant::now();
    let outcome = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    });
    match outcome {
        Ok((log_frames, copied_frames)) if copied_frames > 0 => tracing::trace!(
            log_frames,
            copied_frames,
            us = started.elapsed().as_micros() as u64,
            "wal checkpoint"
        ),
        Ok(_) => {}
        Err(error) => {
            tracing::debug!(%error, "background wal checkpoint failed; the next one retries")
        }
    }
}
