//! PostgreSQL imports with more than one chunk in flight: each chunk inserted and committed on a
//! task and connection of its own, while the next chunks are validated and checked.

use serde_json::{Map, Value};
use trellis_form::Locale;
use trellis_model::{EntityDefinition, FieldKind};

use super::{AcceptedRow, RejectedRow, Sink};
use crate::{Principal, Runtime, RuntimeError};

/// Chunks of a non-atomic PostgreSQL import inserted at the same time, each in a transaction of its
/// own on its own connection. PostgreSQL does a chunk's inserts (records, history, search vector,
/// GIN entries) in one server process, ~3× as long as validating the chunk takes, so with one chunk
/// at a time the validating core mostly waits; a second connection puts it to work.
const POSTGRES_CHUNKS_IN_FLIGHT: usize = 2;

/// The chunks in flight, each inserted on a task of its own. The import waits for whichever
/// finishes first, not the oldest: a chunk whose insert merges the GIN index's pending list (one
/// server process for up to a second) no longer holds back the chunks behind it. Dropped with
/// chunks still in it (the import returned early with an error), it stops them (`JoinSet` aborts its
/// tasks): their transactions roll back instead of committing rows whose import already failed.
#[derive(Default)]
pub(super) struct InFlight(pub(super) tokio::task::JoinSet<Result<ChunkOutcome, RuntimeError>>);

/// What one chunk inserted on its own (its own transaction) left behind.
pub(super) struct ChunkOutcome {
    committed: usize,
    flow_starts: Vec<String>,
    rejected: Vec<RejectedRow>,
}

impl Runtime {
    /// How many chunks go in at the same time: more than one only for a non-atomic import into
    /// PostgreSQL (SQLite has one writer; an atomic import is one transaction) of an entity whose rows
    /// cannot refer to each other (a row's relation to a row of an earlier chunk is checked against
    /// committed records).
    pub(super) fn chunks_in_flight(&self, entity: &EntityDefinition, atomic: bool) -> usize {
        let refers_to_itself = entity.fields.iter().any(|field| {
            field
                .annotations
                .relation
                .as_ref()
                .is_some_and(|relation| relation.entity == entity.id)
        });
        if atomic || refers_to_itself || self.store().backend() != trellis_store::Backend::Postgres
        {
            1
        } else {
            POSTGRES_CHUNKS_IN_FLIGHT
        }
    }

    /// Give the rows of a chunk their auto-numbers (one counter reservation per field, committed on
    /// its own: numbers may have gaps, never repeats).
    pub(super) async fn number_rows(
        &self,
        app: &str,
        entity: &EntityDefinition,
        accepted: &mut [AcceptedRow],
    ) -> Result<(), RuntimeError> {
        if !entity
            .fields
            .iter()
            .any(|f| f.kind == FieldKind::AutoNumber)
        {
            return Ok(());
        }
        let mut named: Vec<Map<String, Value>> = accepted
            .iter_mut()
            .map(|row| std::mem::take(&mut row.named))
            .collect();
        let numbered = self.assign_auto_numbers(app, entity, &mut named).await;
        for (row, named) in accepted.iter_mut().zip(named) {
            row.named = named;
        }
        numbered
    }

    /// Insert and commit one chunk in a transaction of its own.
    pub(super) async fn insert_chunk_alone(
        &self,
        app: &str,
        entity: &EntityDefinition,
        actor: &Principal,
        locale: Locale,
        accepted: Vec<AcceptedRow>,
        starts_flows: bool,
    ) -> Result<ChunkOutcome, RuntimeError> {
        let mut sink = Sink {
            bulk: None,
            atomic: false,
            committed: 0,
            flow_starts: Vec::new(),
            starts_flows,
        };
        let mut rejected = Vec::new();
        self.insert_chunk(
            app,
            entity,
            actor,
            locale,
            accepted,
            &mut sink,
            &mut rejected,
        )
        .await?;
        Ok(ChunkOutcome {
            committed: sink.committed,
            flow_starts: sink.flow_starts,
            rejected,
        })
    }

    /// Wait for the first chunk in flight to finish and add its outcome to the import's (rejected
    /// rows are put back in file order at the end). Its error is returned as it is; dropping
    /// `in_flight` then stops the chunks still in it.
    pub(super) async fn absorb_first_done(
        in_flight: &mut InFlight,
        sink: &mut Sink,
        rejected: &mut Vec<RejectedRow>,
    ) -> Result<(), RuntimeError> {
        let Some(finished) = in_flight.0.join_next().await else {
            return Ok(());
        };
        let outcome = finished
            .map_err(|e| RuntimeError::Internal(format!("an import chunk's task failed: {e}")))??;
        sink.committed += outcome.committed;
        sink.flow_starts.extend(outcome.flow_starts);
        rejected.extend(outcome.rejected);
        Ok(())
    }
}
