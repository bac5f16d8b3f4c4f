//! Draining a backlog: passes delivered two at a time. A pass waits for the one SQLite writer
//! between the steps of its waves (its claim, each wave's bulk transactions, the outcomes), and
//! meanwhile the cores idle; the pass after it, about other records, fills those gaps (at a million
//! customers a first night's follow-up kept the two cores ~60 % busy one pass at a time).
//!
//! Order is kept as one pass at a time keeps it: the pass claimed beside a running one takes no
//! entry about a record the running pass has entries about, and only side-by-side entries (an event
//! fired on its own record, a record created from it) up to the first entry delivered alone; a pass
//! holding entries delivered alone (webhooks, mail, related updates) runs by itself. While a
//! write-back runs, passes go one at a time (the night's own work first).

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Utc;
use trellis_store::flows::OutboxRow;

use super::OwnEntry;
use crate::{Runtime, RuntimeError};

/// Claimed entries of one pass, in order, each with what it is about when it goes side by side.
pub(crate) struct Pass {
    pub(super) entries: Vec<(OutboxRow, Option<OwnEntry>)>,
}

impl Pass {
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether another pass may run beside this one: all its entries go side by side.
    fn shares(&self) -> bool {
        self.entries.iter().all(|(_, own)| own.is_some())
    }

    /// The records its side-by-side entries are about.
    fn records(&self) -> HashSet<String> {
        self.entries
            .iter()
            .filter_map(|(_, own)| own.as_ref().map(|own| own.record().to_owned()))
            .collect()
    }
}

/// A pass delivering on a task of its own, with the records it is about (`None`: it runs alone).
struct Running {
    task: tokio::task::JoinHandle<Result<usize, RuntimeError>>,
    records: Option<Arc<HashSet<String>>>,
}

impl Running {
    async fn finished(self) -> Result<usize, RuntimeError> {
        self.task
            .await
            .map_err(|e| RuntimeError::Internal(format!("an outbox pass stopped: {e}")))?
    }
}

impl Runtime {
    /// Deliver due outbox entries pass after pass for up to `budget` (then the pass under way
    /// finishes), two passes at a time where order allows (see the module docs); returns how many
    /// succeeded. Stops early when nothing is due.
    pub async fn drain_outbox(&self, budget: std::time::Duration) -> Result<usize, RuntimeError> {
        let started = std::time::Instant::now();
        let mut delivered = 0;
        let mut running: Option<Running> = None;
        loop {
            let in_time = started.elapsed() < budget;
            let beside_write_back = self
                .write_backs_running
                .load(std::sync::atomic::Ordering::SeqCst)
                > 0;
            let busy = match &running {
                Some(pass) if pass.records.is_none() || beside_write_back || !in_time => {
                    // Wait for it before anything else is claimed.
                    let pass = running.take().expect("a running pass");
                    delivered += pass.finished().await?;
                    continue;
                }
                Some(pass) => pass.records.clone(),
                None if in_time => None,
                None => break,
            };
            let claimed = self.claim_pass(Utc::now(), busy.as_deref()).await;
            let pass = match claimed {
                Ok(pass) => pass,
                Err(error) => {
                    if let Some(pass) = running.take() {
                        pass.finished().await?;
                    }
                    return Err(error);
                }
            };
            if pass.is_empty() {
                match running.take() {
                    // Its deliveries may queue more (or free the records the rest is about).
                    Some(pass) => {
                        delivered += pass.finished().await?;
                        continue;
                    }
                    None => break,
                }
            }
            let records = pass.shares().then(|| Arc::new(pass.records()));
            let runtime = self.clone();
            let task = tokio::spawn(async move { runtime.deliver_pass(pass, Utc::now()).await });
            if let Some(previous) = running.replace(Running { task, records }) {
                match previous.finished().await {
                    Ok(count) => delivered += count,
                    Err(error) => {
                        if let Some(pass) = running.take() {
                            pass.finished().await?;
                        }
                        return Err(error);
                    }
                }
            }
        }
        Ok(delivered)
    }
}
