//! Draining a backlog: passes delivered several at a time. A pass waits for the one SQLite writer
//! between the steps of its waves (its claim, each wave's bulk transactions, the outcomes), and
//! meanwhile the cores idle; the passes after it, about other records, fill those gaps (at a million
//! customers a first night's follow-up kept the two cores ~60 % busy one pass at a time).
//!
//! Order is kept as one pass at a time keeps it: a pass claimed beside running ones takes no entry
//! about a record they have entries about, and only side-by-side entries (an event
//! fired on its own record, a record created from it) up to the first entry delivered alone; a pass
//! holding entries delivered alone (webhooks, mail, related updates) runs by itself. While a
//! write-back runs, passes go one at a time (the night's own work first).

use std::collections::{HashSet, VecDeque};
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

/// Most passes delivering at once: while one waits for the one SQLite writer, the others use the
/// cores.
pub const PASSES_AT_ONCE: usize = 4;

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
    /// Deliver due outbox entries pass after pass for up to `budget` (then the passes under way
    /// finish), up to [`PASSES_AT_ONCE`] passes at a time where order allows (see the module
    /// docs); returns how many succeeded. Stops early when nothing is due.
    pub async fn drain_outbox(&self, budget: std::time::Duration) -> Result<usize, RuntimeError> {
        let started = std::time::Instant::now();
        let mut delivered = 0;
        let mut running: VecDeque<Running> = VecDeque::new();
        let mut outcome = loop {
            let in_time = started.elapsed() < budget;
            let beside_write_back = self
                .write_backs_running
                .load(std::sync::atomic::Ordering::SeqCst)
                > 0;
            let wait_for_oldest = running.len() >= PASSES_AT_ONCE
                || (!running.is_empty()
                    && (beside_write_back
                        || !in_time
                        || running.iter().any(|pass| pass.records.is_none())));
            if wait_for_oldest {
                let oldest = running.pop_front().expect("a running pass");
                match oldest.finished().await {
                    Ok(count) => delivered += count,
                    Err(error) => break Err(error),
                }
                continue;
            }
            if !in_time {
                break Ok(());
            }
            let busy: Vec<Arc<HashSet<String>>> = running
                .iter()
                .filter_map(|pass| pass.records.clone())
                .collect();
            let beside = (!running.is_empty()).then_some(busy.as_slice());
            let pass = match self.claim_pass(Utc::now(), beside).await {
                Ok(pass) => pass,
                Err(error) => break Err(error),
            };
            if pass.is_empty() {
                match running.pop_front() {
                    // Its deliveries may queue more (or free the records the rest is about).
                    Some(oldest) => match oldest.finished().await {
                        Ok(count) => delivered += count,
                        Err(error) => break Err(error),
                    },
                    None => break Ok(()),
                }
                continue;
            }
            let records = pass.shares().then(|| Arc::new(pass.records()));
            let runtime = self.clone();
            let task = tokio::spawn(async move { runtime.deliver_pass(pass, Utc::now()).await });
            running.push_back(Running { task, records });
        };
        // On an error, the passes under way still finish before it is returned.
        for pass in running {
            match pass.finished().await {
                Ok(count) => delivered += count,
                Err(error) if outcome.is_ok() => outcome = Err(error),
                Err(_) => {}
            }
        }
        outcome.map(|()| delivered)
    }
}
