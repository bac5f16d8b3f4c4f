//! Group commit for single-record inserts and updates: a background task drains whatever writes are
//! waiting and commits them in one transaction. Durable throughput on one writer comes from sharing commits (PERF.md:
//! one transition per transaction ~2.7k/s with fsync, 100 per transaction ~108k/s).

use tokio::sync::{mpsc, oneshot};

use crate::records::{BulkUpdate, InsertGroup, RecordRow};
use crate::{Store, StoreError};

/// Most inserts written in one shared transaction.
const MAX_GROUP: usize = 256;

pub(crate) type Request = (InsertGroup, oneshot::Sender<Result<RecordRow, StoreError>>);
pub(crate) type Sender = mpsc::UnboundedSender<Request>;

/// The next request and every other one already waiting (at most [`MAX_GROUP`]); `None` once every
/// sender is gone.
async fn next_batch<T>(receiver: &mut mpsc::UnboundedReceiver<T>) -> Option<Vec<T>> {
    let mut batch = vec![receiver.recv().await?];
    while batch.len() < MAX_GROUP {
        match receiver.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Start the task; it ends when every `Store` clone holding the sender is gone.
pub(crate) fn start(store: Store) -> Sender {
    let (sender, mut receiver) = mpsc::unbounded_channel::<Request>();
    tokio::spawn(async move {
        while let Some(mut batch) = next_batch(&mut receiver).await {
            let groups: Vec<InsertGroup> = batch.iter().map(|(group, _)| group.clone()).collect();
            match store.insert_groups(&groups).await {
                Ok(rows) => {
                    for ((_, reply), mut rows) in batch.into_iter().zip(rows) {
                        let _ = reply.send(Ok(rows.remove(0)));
                    }
                }
                Err(_) if batch.len() > 1 => {
                    // Someone's insert failed the shared transaction: give each its own outcome.
                    for (group, reply) in batch {
                        let result = store
                            .insert_groups(std::slice::from_ref(&group))
                            .await
                            .map(|mut rows| rows.remove(0).remove(0));
                        let _ = reply.send(result);
                    }
                }
                Err(error) => {
                    if let Some((_, reply)) = batch.pop() {
                        let _ = reply.send(Err(error));
                    }
                }
            }
        }
    });
    sender
}

/// One update waiting for a shared transaction: app, actor, the update, and where its outcome goes
/// (`None`: its record changed since it was read).
pub(crate) type UpdateRequest = (
    String,
    Option<String>,
    BulkUpdate,
    oneshot::Sender<Result<Option<RecordRow>, StoreError>>,
);
pub(crate) type UpdateSender = mpsc::UnboundedSender<UpdateRequest>;

/// Start the update task: updates waiting together share one transaction (one per app and actor); if
/// a shared transaction fails, each update is retried alone so every caller gets its own outcome.
///
/// While updates keep arriving the task keeps the write connection and its rusqlite view between
/// transactions — one pool acquire and one hand-off to sqlx's connection thread per busy spell
/// instead of per transaction — but gives the connection back after [`HOLD_AT_MOST`] so other
/// writers get their turn.
pub(crate) fn start_updates(store: Store) -> UpdateSender {
    let (sender, mut receiver) = mpsc::unbounded_channel::<UpdateRequest>();
    tokio::spawn(async move {
        while let Some(batch) = next_batch(&mut receiver).await {
            let crate::connect::Pools::Sqlite { write, .. } = &store.pools else {
                commit_each_group(&store, batch).await;
                continue;
            };
            let mut connection = match write.acquire().await {
                Ok(connection) => connection,
                Err(error) => {
                    let error = StoreError::from(error);
                    for (_, _, _, reply) in batch {
                        let _ = reply.send(Err(StoreError::Corrupt(error.to_string())));
                    }
                    continue;
                }
            };
            let receiver = &mut receiver;
            let spell = crate::records::with_rusqlite(&mut connection, move |view| {
                let started = std::time::Instant::now();
                let mut batch = batch;
                let mut transactions = 0;
                while !batch.is_empty() {
                    transactions += commit_on_view(view, batch);
                    if started.elapsed() >= HOLD_AT_MOST {
                        break;
                    }
                    batch = drain(receiver);
                }
                tracing::debug!(
                    transactions,
                    held_us = started.elapsed().as_micros() as u64,
                    "group-commit spell"
                );
                Ok(())
            })
            .await;
            if let Err(error) = spell {
                tracing::warn!(%error, "group commit could not use the write connection");
            }
        }
    });
    sender
}

/// Longest a busy spell keeps the write connection.
const HOLD_AT_MOST: std::time::Duration = std::time::Duration::from_millis(10);

/// Every request already waiting (at most [`MAX_GROUP`]), without waiting.
fn drain<T>(receiver: &mut mpsc::UnboundedReceiver<T>) -> Vec<T> {
    let mut batch = Vec::new();
    while batch.len() < MAX_GROUP {
        match receiver.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
    batch
}

/// Split `batch` by app and actor: each group shares a transaction.
fn by_app_and_actor(
    mut batch: Vec<UpdateRequest>,
) -> Vec<(String, Option<String>, Vec<UpdateRequest>)> {
    let mut groups = Vec::new();
    while !batch.is_empty() {
        let (app, actor) = (batch[0].0.clone(), batch[0].1.clone());
        let (group, rest): (Vec<UpdateRequest>, Vec<UpdateRequest>) = batch
            .into_iter()
            .partition(|(a, b, _, _)| *a == app && *b == actor);
        batch = rest;
        groups.push((app, actor, group));
    }
    groups
}

/// Commit `batch` on the SQLite write connection's rusqlite `view` and answer every request; how
/// many transactions that took.
fn commit_on_view(view: &rusqlite::Connection, batch: Vec<UpdateRequest>) -> usize {
    use crate::records::bulk_update::{rows_after, sqlite_bulk_transaction};
    let mut transactions = 0;
    for (app, actor, group) in by_app_and_actor(batch) {
        let (updates, replies): (Vec<BulkUpdate>, Vec<_>) = group
            .into_iter()
            .map(|(_, _, update, reply)| (update, reply))
            .unzip();
        let now = crate::now();
        transactions += 1;
        match sqlite_bulk_transaction(view, &app, 0, actor.as_deref(), &updates, &[], now) {
            Ok(applied) => {
                let rows = rows_after(&updates, &applied, actor.as_deref(), now);
                for (reply, row) in replies.into_iter().zip(rows) {
                    let _ = reply.send(Ok(row));
                }
            }
            Err(_) if updates.len() > 1 => {
                for (update, reply) in updates.into_iter().zip(replies) {
                    let now = crate::now();
                    transactions += 1;
                    let alone = std::slice::from_ref(&update);
                    let result =
                        sqlite_bulk_transaction(view, &app, 0, actor.as_deref(), alone, &[], now)
                            .map(|applied| {
                                rows_after(alone, &applied, actor.as_deref(), now).remove(0)
                            });
                    let _ = reply.send(result);
                }
            }
            Err(error) => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(error));
                }
            }
        }
    }
    transactions
}

/// Commit `batch` through [`Store::update_records_bulk`] (any backend), one transaction per app and
/// actor, retrying each alone when a shared one fails.
async fn commit_each_group(store: &Store, batch: Vec<UpdateRequest>) {
    for (app, actor, group) in by_app_and_actor(batch) {
        let (updates, replies): (Vec<BulkUpdate>, Vec<_>) = group
            .into_iter()
            .map(|(_, _, update, reply)| (update, reply))
            .unzip();
        match store
            .update_records_bulk(&app, 0, actor.as_deref(), &updates, &[])
            .await
        {
            Ok(rows) => {
                for (reply, row) in replies.into_iter().zip(rows) {
                    let _ = reply.send(Ok(row));
                }
            }
            Err(_) if updates.len() > 1 => {
                for (update, reply) in updates.into_iter().zip(replies) {
                    let result = store
                        .update_records_bulk(
                            &app,
                            0,
                            actor.as_deref(),
                            std::slice::from_ref(&update),
                            &[],
                        )
                        .await
                        .map(|mut rows| rows.remove(0));
                    let _ = reply.send(result);
                }
            }
            Err(error) => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(error));
                }
            }
        }
    }
}

/// Rule runs waiting to be logged: app, app version, the runs, and where the outcome goes.
pub(crate) type RunLogRequest = (
    String,
    i64,
    Vec<crate::NewRuleRun>,
    oneshot::Sender<Result<(), StoreError>>,
);
pub(crate) type RunLogSender = mpsc::UnboundedSender<RunLogRequest>;

/// Start the rule-run log task: the runs of saves finishing at the same time (the outbox delivering
/// a nightly run's lifecycle events side by side, each running its after-save rules) are written in
/// one transaction instead of one each. A failed shared transaction is retried per request.
pub(crate) fn start_run_logs(store: Store) -> RunLogSender {
    let (sender, mut receiver) = mpsc::unbounded_channel::<RunLogRequest>();
    tokio::spawn(async move {
        while let Some(batch) = next_batch(&mut receiver).await {
            let logs: Vec<(&str, i64, &[crate::NewRuleRun])> = batch
                .iter()
                .map(|(app, version, runs, _)| (app.as_str(), *version, runs.as_slice()))
                .collect();
            match store.write_rule_runs(&logs).await {
                Ok(()) => {
                    for (.., reply) in batch {
                        let _ = reply.send(Ok(()));
                    }
                }
                Err(_) => {
                    for (app, version, runs, reply) in batch {
                        let result = store.write_rule_runs(&[(&app, version, &runs)]).await;
                        let _ = reply.send(result);
                    }
                }
            }
        }
    });
    sender
}
