//! Records the system creates many at a time: a wave of the outbox's `create_record` entries (the
//! activities and coupons a nightly run's rules create, tens of thousands on a first night). Each
//! record gets what [`Runtime::create_record`] gives it as the system — defaults, validation,
//! before-save rules, relation checks, auto-numbers, its flows started, its logged runs and its
//! after-save rules — but the records are inserted in one transaction, their flows started in
//! another, and their after-save rules run round by round together
//! ([`Runtime::after_save_bulk`]), instead of several transactions per record.
//!
//! When the shared insert fails (a unique value already taken), each record is inserted alone, so
//! that only the one that clashes fails.

use serde_json::{Map, Value};
use trellis_form::Locale;
use trellis_model::Action;
use trellis_store::{NewRecord, NewRuleRun, RecordRow};

use super::{invalid, record_write};
use crate::records::bulk_update::logged_run;
use crate::{Principal, Runtime, RuntimeError};

/// A record ready to insert: where its input was, its fields, its before-save runs.
type Ready = (
    usize,
    Map<String, Value>,
    Vec<(i64, trellis_rules::Evaluation)>,
);

impl Runtime {
    /// Create records of `entity_id` in `app` from `inputs` (fields by name) as the system; one
    /// outcome per input, in order. `Err` only when none could be tried (the app or entity is
    /// gone, the store failed before anything was written).
    pub(crate) async fn create_records_as_system(
        &self,
        app: &str,
        entity_id: &str,
        inputs: Vec<Map<String, Value>>,
    ) -> Result<Vec<Result<(), RuntimeError>>, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let (entity, validator) = loaded.entity(entity_id)?;
        let system = Principal::system("system", "system");
        let checked = self.check(&system, &loaded, entity).await?;
        checked.require(Action::Create)?;
        let locale = Locale::En;
        let mut outcomes: Vec<Option<Result<(), RuntimeError>>> =
            inputs.iter().map(|_| None).collect();
        let mut ready: Vec<Ready> = Vec::with_capacity(inputs.len());
        for (index, input) in inputs.into_iter().enumerate() {
            let prepared = checked.require_editable(input.keys()).and_then(|()| {
                let mut named = self
                    .prepare_new_record(&loaded, entity, validator, input, &system, locale)
                    .map_err(invalid)?;
                let done = Self::before_save(&loaded, entity, &mut named, None, true, locale)
                    .map_err(invalid)?;
                let issues = done.recheck(validator, &mut named, locale);
                if !issues.is_empty() {
                    return Err(invalid(issues));
                }
                Ok((named, done.runs))
            });
            match prepared {
                Ok((named, runs)) => ready.push((index, named, runs)),
                Err(error) => outcomes[index] = Some(Err(error)),
            }
        }
        let checks: Vec<super::RelationCheck<'_>> =
            ready.iter().map(|(_, named, _)| (named, None)).collect();
        let missing = self
            .check_relations(&loaded, entity, &checks, locale)
            .await?;
        let mut kept: Vec<Ready> = Vec::with_capacity(ready.len());
        for (item, missing) in ready.into_iter().zip(missing) {
            if missing.is_empty() {
                kept.push(item);
            } else {
                outcomes[item.0] = Some(Err(invalid(missing)));
            }
        }
        let mut named: Vec<Map<String, Value>> = kept
            .iter_mut()
            .map(|(_, named, _)| std::mem::take(named))
            .collect();
        self.assign_auto_numbers(&loaded.id, entity, &mut named)
            .await?;
        let mut records = Vec::with_capacity(named.len());
        for fields in &named {
            let record = record_write(entity, fields, None);
            self.require_write_rows(&loaded, &checked, &record.data)
                .await?;
            records.push(record);
        }
        let inserted = self
            .insert_created(&loaded.id, entity, &system.user_id, records, locale)
            .await?;
        let mut rows: Vec<RecordRow> = Vec::with_capacity(inserted.len());
        let mut runs: Vec<NewRuleRun> = Vec::new();
        for ((index, _, before_save), inserted) in kept.into_iter().zip(inserted) {
            match inserted {
                Ok(row) => {
                    runs.extend(before_save.iter().map(|(us, evaluation)| {
                        logged_run("before_save", &row.id, *us, evaluation)
                    }));
                    outcomes[index] = Some(Ok(()));
                    rows.push(row);
                }
                Err(error) => outcomes[index] = Some(Err(error)),
            }
        }
        // The new records' flow runs start, and their before-save runs are logged, together.
        if !loaded.rules.is_empty() || loaded.flows_of(entity.id.as_str()).next().is_some() {
            self.start_flows_of_many(&loaded, entity, &rows, Some(&system.user_id), &runs)
                .await?;
        }
        if !loaded.rules.is_empty() {
            let saved = rows.into_iter().map(|row| (row, None)).collect();
            self.after_save_bulk(&loaded, entity, saved, &system.user_id)
                .await?;
        }
        Ok(outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or(Ok(())))
            .collect())
    }

    /// Insert `records` in one transaction; when that fails, each alone (only the records whose
    /// unique values clash fail). Each record's stored row, in order.
    async fn insert_created(
        &self,
        app: &str,
        entity: &trellis_model::EntityDefinition,
        actor: &str,
        records: Vec<NewRecord>,
        locale: Locale,
    ) -> Result<Vec<Result<RecordRow, RuntimeError>>, RuntimeError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        match self
            .store()
            .insert_records(app, &entity.uid, Some(actor), &records)
            .await
        {
            Ok(rows) => Ok(rows.into_iter().map(Ok).collect()),
            Err(error) if records.len() == 1 => {
                Ok(vec![Err(Self::unique_issue(entity, error, locale))])
            }
            Err(_) => {
                let mut rows = Vec::with_capacity(records.len());
                for record in records {
                    rows.push(
                        self.store()
                            .insert_record_grouped(app, &entity.uid, Some(actor), record)
                            .await
                            .map_err(|error| Self::unique_issue(entity, error, locale)),
                    );
                }
                Ok(rows)
            }
        }
    }
}
