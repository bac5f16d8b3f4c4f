//! Per-record history chains: how a record's history and flow history are found without an index
//! keyed by record (SQLite migration 0018, PostgreSQL 0017; ARCHITECTURE.md, "History chains").
//!
//! A record's `create` history row is found through a partial index of creates. Every later row is
//! on a chain: `records.history_seq` names the latest (kept by a trigger on PostgreSQL, by the writers
//! themselves on SQLite: migration 0023) and each row's `prev_seq`
//! the one before it (NULL when that one is the create). A flow-history row's `history_seq` names the
//! record-history row that was the record's latest when it was written. `insert_history!` and
//! `chain_history!` write a later row and make it the latest. The fragments here are
//! literals (for `concat!`), written once for both backends; `$id`/`$flow` name the parameters.

/// The record-history row a new row is linked to: the latest of record `$id` (its create row when
/// nothing followed). A parenthesised scalar subquery.
macro_rules! latest_history_seq {
    ($id:literal) => {
        concat!(
            "(SELECT coalesce(r.history_seq, (SELECT max(c.seq) FROM record_history c WHERE c.record_id = r.id \
             AND c.operation = 'create')) FROM records r WHERE r.id = ",
            $id,
            ")"
        )
    };
}
pub(crate) use latest_history_seq;

/// The row before history row `h` on its record's chain (its create row at the chain's end).
macro_rules! previous_seq {
    () => {
        "coalesce(h.prev_seq, (SELECT max(c.seq) FROM record_history c WHERE c.record_id = h.record_id \
         AND c.operation = 'create'))"
    };
}
pub(crate) use previous_seq;

/// `WITH RECURSIVE chain(seq)`: the seqs of every history row of record `$id`, newest first, ending
/// with its create row.
macro_rules! history_chain {
    ($id:literal) => {
        concat!(
            "WITH RECURSIVE chain(seq) AS (SELECT ",
            $crate::history_chain::latest_history_seq!($id),
            " UNION ALL SELECT ",
            $crate::history_chain::previous_seq!(),
            " FROM record_history h JOIN chain ON h.seq = chain.seq WHERE h.operation <> 'create') "
        )
    };
}
pub(crate) use history_chain;

/// `WITH RECURSIVE run(seq, flow_seq)`: walks record `$id`'s chain from its latest row back to the
/// first one that has a flow-history entry of flow `$flow`, and stops there (`flow_seq` is that entry,
/// the latest of the flow). A flow run's app version is read from it on every transition, which is
/// one step when the record's last change was a transition of that flow.
macro_rules! flow_run {
    ($id:literal, $flow:literal) => {
        concat!(
            "WITH RECURSIVE run(seq, flow_seq) AS (SELECT l.seq, (SELECT max(f.seq) FROM flow_history f \
             WHERE f.history_seq = l.seq AND f.flow = ",
            $flow,
            ") FROM (SELECT ",
            $crate::history_chain::latest_history_seq!($id),
            " AS seq) l UNION ALL SELECT ",
            $crate::history_chain::previous_seq!(),
            ", (SELECT max(f.seq) FROM flow_history f WHERE f.history_seq = ",
            $crate::history_chain::previous_seq!(),
            " AND f.flow = ",
            $flow,
            ") FROM record_history h JOIN run ON h.seq = run.seq WHERE run.flow_seq IS NULL AND h.operation <> 'create') "
        )
    };
}
pub(crate) use flow_run;

/// Insert a later history row of record `$id` and make it the record's latest
/// (`records.history_seq`: on SQLite only this statement sets it; on PostgreSQL a trigger has, and
/// the second statement then finds nothing to change).
macro_rules! insert_history {
    ($tx:expr, $app:expr, $entity:expr, $id:expr, $version:expr, $operation:expr, $actor:expr, $at:expr, $before:expr, $after:expr) => {
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO record_history (record_id, app_id, entity, version, operation, actor, at, before, after, prev_seq) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, (SELECT history_seq FROM records WHERE id = $1)) RETURNING seq",
        )
        .bind($id)
        .bind($app)
        .bind($entity)
        .bind($version)
        .bind($operation)
        .bind($actor)
        .bind($at)
        .bind($before)
        .bind($after)
        .fetch_one(&mut *$tx)
        .await?;
        $crate::history_chain::chain_history!($tx, $id, seq);
    };
}

/// Make history row `$seq` record `$id`'s latest (see `insert_history!`).
macro_rules! chain_history {
    ($tx:expr, $id:expr, $seq:expr) => {
        sqlx::query(
            "UPDATE records SET history_seq = $2 WHERE id = $1 AND history_seq IS DISTINCT FROM $2",
        )
        .bind($id)
        .bind($seq)
        .execute(&mut *$tx)
        .await?;
    };
}
pub(crate) use chain_history;
pub(crate) use insert_history;
