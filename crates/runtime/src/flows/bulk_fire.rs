//! Flow events fired by the system on many records at once: a wave of the outbox's `fire_event`
//! entries (the lifecycle moves a nightly run queues, hundreds of thousands on a first night).
//! Each record gets what [`Runtime::fire_as_system`] gives it — the flow version its run follows,
//! the same decision, validation, transition writes and after-save rules — but the wave's
//! transitions commit in one transaction and their after-save rules run round by round together
//! ([`Runtime::after_save_bulk`]), instead of a transaction for each transition and more for each
//! record's rules.
//!
//! A record whose unique values the transition changes (its unique index is rewritten) or that
//! changed between the read and the write is fired on alone afterwards, through the ordinary path.

use chrono::Utc;
use serde_json::{Map, Value};
use trellis_flow::FireContext;
use trellis_form::Locale;
use trellis_form::records::to_api;
use trellis_model::EntityDefinition;
use trellis_store::BulkUpdate;

use super::{FiringWrites, refused};
use crate::app_cache::LoadedApp;
use crate::{Runtime, RuntimeError};

/// One event for the system to fire: on which record, in which flow.
pub(crate) struct SystemEvent<'a> {
    pub record_id: &'a str,
    pub flow: &'a str,
    pub event: &'a str,
}

/// A firing decided and prepared for the shared transaction (beside its update).
struct Prepared {
    index: usize,
    before: Map<String, Value>,
    flow: String,
    event: String,
    from: Option<String>,
    to: String,
}

/// What preparing one event came to.
enum Preparation {
    Shared(Box<(BulkUpdate, Prepared)>),
    /// Fired alone afterwards (its unique values change).
    Alone,
}

impl Runtime {
    /// Fire `events` — on distinct records of `entity_id` — as the system; one outcome per event,
    /// in order. `Err` only when none could be tried (the app or entity is gone, the store failed
    /// before anything was written).
    pub(crate) async fn fire_as_system_bulk(
        &self,
        app: &str,
        entity_id: &str,
        events: &[SystemEvent<'_>],
    ) -> Result<Vec<Result<(), RuntimeError>>, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let (entity, _) = loaded.entity(entity_id)?;
        let mut outcomes: Vec<Option<Result<(), RuntimeError>>> =
            events.iter().map(|_| None).collect();
        let mut updates = Vec::new();
        let mut firings = Vec::new();
        let mut alone = Vec::new();
        let now = Utc::now().to_rfc3339();
        let started = std::time::Instant::now();
        for (index, event) in events.iter().enumerate() {
            match self
                .prepare_system_firing(&loaded, entity, event, &now, index)
                .await
            {
                Ok(Preparation::Shared(shared)) => {
                    let (update, firing) = *shared;
                    updates.push(update);
                    firings.push(firing);
                }
                Ok(Preparation::Alone) => alone.push(index),
                Err(error) => outcomes[index] = Some(Err(error)),
            }
        }
        let prepared_us = started.elapsed().as_micros() as u64;
        let mut saved = Vec::with_capacity(updates.len());
        let mut fired = Vec::with_capacity(updates.len());
        if !updates.is_empty() {
            // Not waiting for the disk: the outbox records the outcome in an ordinary commit
            // after this one, which makes it durable too (a crash before that delivers the
            // entries again, and their events then no longer apply).
            let written = self
                .store()
                .write_records_bulk_unsynced(&loaded.id, loaded.version, None, &updates, &[])
                .await?;
            let applied = written.applied.clone();
            for ((update, firing), applied) in updates.into_iter().zip(firings).zip(applied) {
                if applied {
                    let row = written.row_of(update, None);
                    // Debug, not info as one firing logs it: a first night fires ~270,000 of
                    // them (each is in the flow history).
                    tracing::debug!(app = %loaded.id, flow = %firing.flow, record = %row.id, event = %firing.event, from = ?firing.from, to = %firing.to, "flow event");
                    fired.push(firing.index);
                    saved.push((row, Some(firing.before)));
                } else {
                    // Changed since it was read: decided again, alone.
                    alone.push(firing.index);
                }
            }
        }
        let written_us = started.elapsed().as_micros() as u64;
        // The state changes (and the transitions' writes) trigger record_updated rules.
        let after_save = if loaded.rules.is_empty() || saved.is_empty() {
            Ok(())
        } else {
            self.after_save_bulk(&loaded, entity, saved, "system").await
        };
        let after_save = after_save.map_err(|error| error.to_string());
        tracing::debug!(
            events = events.len(),
            fired = fired.len(),
            alone = alone.len(),
            prepared_us,
            written_us,
            after_save_us = started.elapsed().as_micros() as u64,
            "system events fired together"
        );
        for index in fired {
            outcomes[index] = Some(
                after_save
                    .clone()
                    .map_err(|error| RuntimeError::Internal(format!("after-save rules: {error}"))),
            );
        }
        for index in alone {
            let event = &events[index];
            outcomes[index] = Some(
                self.fire_as_system(app, entity_id, event.record_id, event.flow, event.event)
                    .await,
            );
        }
        Ok(outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or(Ok(())))
            .collect())
    }

    /// Read the record of `event` and decide and prepare its firing as [`Runtime::fire_as_system`]
    /// does.
    async fn prepare_system_firing(
        &self,
        loaded: &std::sync::Arc<LoadedApp>,
        entity: &EntityDefinition,
        event: &SystemEvent<'_>,
        now: &str,
        index: usize,
    ) -> Result<Preparation, RuntimeError> {
        let (row, pinned) = self
            .live_record_and_run(loaded, entity, event.record_id, event.flow)
            .await?;
        let source = self
            .pinned_flow_at(loaded, entity, event.flow, &row, pinned)
            .await?;
        let flow = self.flow(&source, entity, event.flow)?;
        let named = to_api(entity, &row.data.0);
        let data = Map::new();
        let context = FireContext {
            user_id: "system",
            roles: &[],
            privileged: true,
            data: &data,
            now,
        };
        let firing = flow
            .decide(event.event, &named, &context)
            .map_err(refused)?;
        let FiringWrites {
            before,
            record,
            search_changed,
            uniques_kept,
            writes,
        } = self
            .firing_writes(
                loaded,
                entity,
                flow,
                &row,
                named,
                &firing,
                None,
                None,
                Locale::En,
            )
            .await?;
        if !uniques_kept {
            return Ok(Preparation::Alone);
        }
        let update = BulkUpdate {
            current: row,
            current_document: None,
            record,
            search_changed,
            side: Some(writes),
        };
        Ok(Preparation::Shared(Box::new((
            update,
            Prepared {
                index,
                before,
                flow: flow.id().to_owned(),
                event: firing.event,
                from: firing.from,
                to: firing.to,
            },
        ))))
    }
}
