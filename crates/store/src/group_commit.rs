//! Group commit for single-record inserts: one background task drains whatever inserts are waiting and
//! writes them in one transaction. Durable throughput on one writer comes from sharing commits (PERF.md:
//! one transition per transaction ~2.7k/s with fsync, 100 per transaction ~108k/s).

use tokio::sync::{mpsc, oneshot};

use crate::records::{InsertGroup, RecordRow};
use crate::{Store, StoreError};

/// Most inserts written in one shared transaction.
const MAX_GROUP: usize = 256;

pub(crate) type Request = (InsertGroup, oneshot::Sender<Result<RecordRow, StoreError>>);
pub(crate) type Sender = mpsc::UnboundedSender<Request>;

/// Start the task; it ends when every `Store` clone holding the sender is gone.
pub(crate) fn start(store: Store) -> Sender {
    let (sender, mut receiver) = mpsc::unbounded_channel::<Request>();
    tokio::spawn(async move {
        while let Some(first) = receiver.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_GROUP {
                match receiver.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
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
