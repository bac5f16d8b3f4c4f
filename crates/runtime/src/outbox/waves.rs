//! The outbox's side-by-side deliveries: entries that concern only the record that queued them —
//! an event fired on the record itself, a record created from it — go in waves, each holding at
//! most one entry per record, so a record's entries keep their order while those of different
//! records share work. A wave's events of one entity fire together
//! ([`Runtime::fire_as_system_bulk`]: one transaction for all their transitions, their after-save
//! rules round by round); its other entries are delivered side by side on tasks of their own,
//! sharing commits through the store's group commit.

use chrono::{DateTime, Utc};
use serde_json::Value;
use trellis_flow::ActionDefinition;
use trellis_flow::definition::CreateRecordAction;
use trellis_store::flows::OutboxRow;

use super::Failure;
use crate::flows::SystemEvent;
use crate::{Runtime, RuntimeError};

/// What an entry delivered side by side is about.
#[derive(Clone)]
pub(super) enum OwnEntry {
    /// An event fired on the record itself.
    Event {
        record: String,
        entity: String,
        flow: String,
        event: String,
    },
    /// A record created from it.
    Created {
        record: String,
        entity: String,
        create: CreateRecordAction,
    },
}

impl OwnEntry {
    /// The one record the entry reads or changes, when that is the record whose rule or transition
    /// queued it: an event fired on that record itself (no relation to follow), or a record
    /// created from it. `None`: the entry is delivered alone.
    pub(super) fn of(entry: &OutboxRow) -> Option<OwnEntry> {
        if entry.kind == "email" {
            return None;
        }
        let payload: Value = serde_json::from_str(&entry.payload).ok()?;
        let text = |key: &str| payload.get(key)?.as_str().map(str::to_owned);
        if let Ok(trellis_rules::RuleAction::UpdateRecords(_)) =
            serde_json::from_value::<trellis_rules::RuleAction>(payload.get("action")?.clone())
        {
            return None;
        }
        match serde_json::from_value::<ActionDefinition>(payload.get("action")?.clone()).ok()? {
            ActionDefinition::FireEvent(fire) if fire.relation.is_none() => Some(OwnEntry::Event {
                record: text("record_id")?,
                entity: text("entity")?,
                flow: fire.flow.to_string(),
                event: fire.event.to_string(),
            }),
            ActionDefinition::CreateRecord(create) => Some(OwnEntry::Created {
                record: text("record_id")?,
                entity: text("entity")?,
                create,
            }),
            _ => None,
        }
    }

    pub(super) fn record(&self) -> &str {
        match self {
            OwnEntry::Event { record, .. } | OwnEntry::Created { record, .. } => record,
        }
    }
}

/// Side-by-side entries of a pass in waves: wave `n` holds each record's `n`-th entry.
#[derive(Default)]
pub(super) struct Waves {
    waves: Vec<Vec<(OutboxRow, OwnEntry)>>,
    entries_of: std::collections::HashMap<String, usize>,
}

impl Waves {
    pub(super) fn push(&mut self, entry: OutboxRow, own: OwnEntry) {
        let count = self.entries_of.entry(own.record().to_owned()).or_insert(0);
        if self.waves.len() <= *count {
            self.waves.push(Vec::new());
        }
        self.waves[*count].push((entry, own));
        *count += 1;
    }

    /// The waves so far, in order; starts afresh.
    pub(super) fn take(&mut self) -> Vec<Vec<(OutboxRow, OwnEntry)>> {
        self.entries_of.clear();
        std::mem::take(&mut self.waves)
    }
}

/// A fired event's outcome as the outbox records it.
pub(super) fn event_outcome(
    record: &str,
    event: &str,
    fired: Result<(), RuntimeError>,
) -> Result<(), Failure> {
    match fired {
        Ok(()) => Ok(()),
        // The record moved on between the rule and the delivery (another event won): the
        // event no longer applies, which is not a failure.
        Err(RuntimeError::EventNotFromState(reason)) => {
            tracing::debug!(%record, %event, %reason, "rule event skipped: the record left the state");
            Ok(())
        }
        Err(error) => Err(Failure::Permanent(super::reason_of(&error))),
    }
}

impl Runtime {
    /// Deliver a wave (entries about distinct records) and record the outcomes; how many succeeded.
    pub(super) async fn deliver_wave(
        &self,
        wave: Vec<(OutboxRow, OwnEntry)>,
        now: DateTime<Utc>,
    ) -> Result<usize, RuntimeError> {
        if wave.is_empty() {
            return Ok(0);
        }
        let started = std::time::Instant::now();
        let mut outcomes: Vec<Option<Result<(), Failure>>> = wave.iter().map(|_| None).collect();
        // Per app and entity, the events fired together and the records created together, each
        // in two halves side by side when there are many (deciding, validating and the rules use
        // both cores; the transactions share the writer).
        let mut running: tokio::task::JoinSet<Vec<(usize, Result<(), Failure>)>> =
            tokio::task::JoinSet::new();
        let mut groups: Vec<(GroupKey<'_>, Vec<usize>)> = Vec::new();
        for (position, (entry, own)) in wave.iter().enumerate() {
            let key = match own {
                OwnEntry::Event { entity, .. } => (true, entry.app_id.as_str(), entity.as_str()),
                OwnEntry::Created { entity, .. } => (false, entry.app_id.as_str(), entity.as_str()),
            };
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, positions)) => positions.push(position),
                None => groups.push((key, vec![position])),
            }
        }
        for ((events, app, entity), positions) in groups {
            let half = if positions.len() >= SPLIT_FROM {
                positions.len().div_ceil(2)
            } else {
                positions.len()
            };
            for part in positions.chunks(half) {
                let owned: Vec<(usize, OwnEntry)> = part
                    .iter()
                    .map(|&position| (position, wave[position].1.clone()))
                    .collect();
                let (runtime, app, entity) = (self.clone(), app.to_owned(), entity.to_owned());
                if events {
                    running.spawn(async move { runtime.fire_events(&app, &entity, owned).await });
                } else {
                    running
                        .spawn(async move { runtime.create_records(&app, &entity, owned).await });
                }
            }
        }
        while let Some(joined) = running.join_next().await {
            let delivered = joined
                .map_err(|e| RuntimeError::Internal(format!("an outbox delivery stopped: {e}")))?;
            for (position, outcome) in delivered {
                outcomes[position] = Some(outcome);
            }
        }
        let delivered_us = started.elapsed().as_micros() as u64;
        let size = wave.len();
        let finished = self
            .finish(
                wave.into_iter()
                    .zip(outcomes)
                    .map(|((entry, _), outcome)| {
                        let outcome = outcome.unwrap_or_else(|| {
                            Err(Failure::Retry("not delivered in its wave".into()))
                        });
                        (entry, outcome)
                    })
                    .collect(),
                now,
            )
            .await;
        tracing::debug!(
            entries = size,
            delivered_us,
            finished_us = started.elapsed().as_micros() as u64,
            "outbox wave delivered"
        );
        finished
    }

    /// Fire the events of `entries` (with their positions in the wave; all on records of one
    /// app's entity) together; each entry's outcome as the outbox records it.
    async fn fire_events(
        &self,
        app: &str,
        entity: &str,
        entries: Vec<(usize, OwnEntry)>,
    ) -> Vec<(usize, Result<(), Failure>)> {
        let events: Vec<(usize, SystemEvent<'_>)> = entries
            .iter()
            .filter_map(|(position, own)| match own {
                OwnEntry::Event {
                    record,
                    flow,
                    event,
                    ..
                } => Some((
                    *position,
                    SystemEvent {
                        record_id: record,
                        flow,
                        event,
                    },
                )),
                OwnEntry::Created { .. } => None,
            })
            .collect();
        let (positions, fired): (Vec<usize>, Vec<SystemEvent<'_>>) = events.into_iter().unzip();
        match self.fire_as_system_bulk(app, entity, &fired).await {
            Ok(results) => positions
                .into_iter()
                .zip(results)
                .zip(&fired)
                .map(|((position, result), event)| {
                    (
                        position,
                        event_outcome(event.record_id, event.event, result),
                    )
                })
                .collect(),
            // Nothing was written: tried again later.
            Err(error) => every(positions, || Failure::Retry(error.to_string())),
        }
    }

    /// Create the records of `entries` (with their positions in the wave; all created from
    /// records of one app's entity): each source record read, the new records of each entity
    /// created together; each entry's outcome as the outbox records it.
    async fn create_records(
        &self,
        app: &str,
        entity_id: &str,
        entries: Vec<(usize, OwnEntry)>,
    ) -> Vec<(usize, Result<(), Failure>)> {
        let mut outcomes = Vec::with_capacity(entries.len());
        let loaded = match self.loaded_app(app).await {
            Ok(loaded) => loaded,
            Err(error) => {
                let positions = entries.into_iter().map(|(position, _)| position);
                return every(positions, || Failure::Retry(error.to_string()));
            }
        };
        let entity = match loaded.entity(entity_id) {
            Ok((entity, _)) => entity,
            Err(error) => {
                let positions = entries.into_iter().map(|(position, _)| position);
                return every(positions, || Failure::Permanent(error.to_string()));
            }
        };
        // Per entity created: the entries' positions and the new records' fields.
        let mut creating: Vec<Creating> = Vec::new();
        for (position, own) in entries {
            let OwnEntry::Created { record, create, .. } = own else {
                continue;
            };
            let fields = match self
                .store()
                .get_record(&loaded.id, &entity.uid, &record)
                .await
            {
                Err(error) => Err(Failure::Retry(error.to_string())),
                Ok(None) => Err(Failure::Permanent(format!("record '{record}' is gone"))),
                Ok(Some(row)) => super::created_fields(
                    entity,
                    &record,
                    &trellis_form::records::to_api(entity, &row.data.0),
                    &create,
                ),
            };
            match fields {
                Ok(fields) => {
                    let target = create.entity.to_string();
                    match creating.iter_mut().find(|(t, ..)| *t == target) {
                        Some((_, positions, inputs)) => {
                            positions.push(position);
                            inputs.push(fields);
                        }
                        None => creating.push((target, vec![position], vec![fields])),
                    }
                }
                Err(failure) => outcomes.push((position, Err(failure))),
            }
        }
        for (target, positions, inputs) in creating {
            match self.create_records_as_system(app, &target, inputs).await {
                Ok(results) => outcomes.extend(positions.into_iter().zip(results).map(
                    |(position, result)| {
                        (
                            position,
                            result.map_err(|error| Failure::Permanent(super::reason_of(&error))),
                        )
                    },
                )),
                // Nothing was written: tried again later.
                Err(error) => {
                    outcomes.extend(every(positions, || Failure::Retry(error.to_string())));
                }
            }
        }
        outcomes
    }
}

/// The same failure for every entry at `positions` (nothing could be tried for any of them).
fn every(
    positions: impl IntoIterator<Item = usize>,
    failure: impl Fn() -> Failure,
) -> Vec<(usize, Result<(), Failure>)> {
    positions
        .into_iter()
        .map(|position| (position, Err(failure())))
        .collect()
}

/// A wave's entries that go together: events (`true`) or created records, of an app's entity.
type GroupKey<'a> = (bool, &'a str, &'a str);

/// Records to create of one entity: the entries' positions in the wave and the new records' fields.
type Creating = (String, Vec<usize>, Vec<serde_json::Map<String, Value>>);

/// Entries of one kind and entity in a wave from which they go in two halves side by side.
const SPLIT_FROM: usize = 200;
