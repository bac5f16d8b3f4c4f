//! Typed rows for a report: from the column cache when the filter can be evaluated in memory, else
//! from the store; and `relation.field` columns joined from the related entity under the viewer's
//! access to it.

use trellis_model::{Action, CheckedFilter};
use trellis_report::{ColumnType, CompiledReport, Dataset};
use trellis_store::{ColumnKind, ColumnRequest};

use super::column_kind;
use crate::app_cache::LoadedApp;
use crate::column_cache::column_data;
use crate::{Principal, Runtime, RuntimeError};

fn column_type(kind: ColumnKind) -> ColumnType {
    match kind {
        ColumnKind::Int => ColumnType::Int,
        ColumnKind::Float => ColumnType::Float,
        ColumnKind::Money => ColumnType::Money,
        ColumnKind::Bool => ColumnType::Bool,
        ColumnKind::Text => ColumnType::Text,
        ColumnKind::Date => ColumnType::Date,
        ColumnKind::DateTime => ColumnType::DateTime,
    }
}

impl Runtime {
    /// The rows of an entity matching `filter`, with the requested columns keyed by `names`: from the
    /// column cache when the filter can be evaluated in memory, else straight from the store.
    pub(super) async fn typed_rows(
        &self,
        loaded: &LoadedApp,
        entity_uid: &str,
        names: &[String],
        requests: &[ColumnRequest],
        filter: &CheckedFilter,
        with_ids: bool,
    ) -> Result<Dataset, RuntimeError> {
        let fields: Vec<(String, String, ColumnType)> = names
            .iter()
            .zip(requests)
            .map(|(name, request)| (name.clone(), request.uid.clone(), column_type(request.kind)))
            .collect();
        if let Some(dataset) = self
            .columns
            .dataset(
                self.store(),
                (&loaded.id, loaded.version, entity_uid),
                &fields,
                filter,
                with_ids,
            )
            .await?
        {
            return Ok(dataset);
        }
        let loaded_columns = self
            .store()
            .load_columns(&loaded.id, entity_uid, requests, filter)
            .await?;
        let mut dataset = Dataset {
            rows: loaded_columns.ids.len(),
            ids: loaded_columns.ids,
            columns: Default::default(),
        };
        for (name, values) in names.iter().zip(loaded_columns.columns) {
            dataset
                .columns
                .insert(name.clone(), std::sync::Arc::new(column_data(values)));
        }
        Ok(dataset)
    }

    /// Fill the `relation.field` columns: load the targets' fields (with the viewer's access on the
    /// target entity: rows they cannot read give no value, hidden fields refuse the report) and pick
    /// each record's related value.
    pub(super) async fn join_related(
        &self,
        actor: &Principal,
        loaded: &LoadedApp,
        report: &CompiledReport,
        dataset: &mut Dataset,
    ) -> Result<(), RuntimeError> {
        let mut by_relation: std::collections::BTreeMap<&str, Vec<&trellis_report::FieldUse>> =
            Default::default();
        for field in report.fields.values() {
            if let Some(via) = &field.via {
                by_relation
                    .entry(via.relation.as_str())
                    .or_default()
                    .push(field);
            }
        }
        for (relation, fields) in by_relation {
            let Some(via) = fields[0].via.as_ref() else {
                continue;
            };
            let (target, _) = loaded.entity(&via.target)?;
            let checked = self.check(actor, loaded, target).await?;
            checked.require(Action::Read)?;
            let hidden: Vec<&str> = fields
                .iter()
                .map(|f| f.name.as_str())
                .filter(|name| {
                    let own = name.split_once('.').map_or(*name, |(_, f)| f);
                    !checked.access.is_visible(own)
                })
                .collect();
            if !hidden.is_empty() {
                return Err(RuntimeError::Forbidden(format!(
                    "this report uses {}, which your roles hide",
                    hidden.join(", ")
                )));
            }
            let requests: Vec<ColumnRequest> = fields
                .iter()
                .map(|f| ColumnRequest {
                    uid: f.uid.clone(),
                    kind: column_kind(f.column),
                })
                .collect();
            let names: Vec<String> = fields.iter().map(|f| f.name.clone()).collect();
            let mut targets = self
                .typed_rows(
                    loaded,
                    &target.uid,
                    &names,
                    &requests,
                    &checked.read_filter(),
                    true,
                )
                .await?;
            let position: std::collections::HashMap<&str, usize> = targets
                .ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id.as_str(), i))
                .collect();
            let links = dataset
                .columns
                .remove(&format!("{relation}."))
                .and_then(|c| c.texts())
                .unwrap_or_default();
            let rows: Vec<Option<usize>> = links
                .iter()
                .map(|id| id.as_deref().and_then(|id| position.get(id).copied()))
                .collect();
            for field in &fields {
                if let Some(values) = targets.columns.remove(&field.name) {
                    dataset
                        .columns
                        .insert(field.name.clone(), std::sync::Arc::new(values.take(&rows)));
                }
            }
        }
        Ok(())
    }
}
