//! Running reports: the permission engine first (read right, hidden fields, the viewer's row filter
//! pushed into the column load so no aggregate covers rows they cannot see), then the report engine on
//! the loaded typed columns, on a blocking thread. Exports to CSV and XLSX.

use std::sync::Arc;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use trellis_form::{FieldIssue, check_filter};
use trellis_model::{Action, CheckedFilter};
use trellis_report::{ColumnType, CompiledReport, ReportOutput, RunInput};
use trellis_store::{ColumnKind, ColumnRequest};

mod columns;
mod dashboards;
mod database;
mod files;
pub(crate) mod results;

pub use dashboards::{DashboardRequest, DashboardRun, WidgetResult};
pub use files::write_output;

use crate::app_cache::LoadedApp;
use crate::export::ExportFormat;
use crate::{Principal, Runtime, RuntimeError};

/// What the viewer sets when running a report.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ReportRequest {
    /// Page filters (a filter tree), narrowing the dataset.
    #[serde(default)]
    pub filters: Option<Value>,
    /// Values of the report's parameters, by parameter id (`as_of`: `YYYY-MM-DD`).
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// Where the grouping runs: in memory over typed columns (default), or in the database
    /// (PostgreSQL; aggregate reports over the entity's own fields, without top-N).
    #[serde(default)]
    pub execution: Execution,
    /// Only the rows, without a drill-down filter per row or a chart, and not kept for repeated
    /// views — for write-backs (`apply_report`), never from HTTP.
    #[serde(skip)]
    pub rows_only: bool,
}

/// Where a report's grouping runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Execution {
    #[default]
    Memory,
    Database,
}

/// A report as listed.
#[derive(Debug, Clone, Serialize)]
pub struct ReportSummary {
    pub id: String,
    pub label: Option<String>,
    pub description: Option<String>,
    pub entity: String,
    pub kind: String,
}

fn invalid(
    parameter: &'static str,
    pointer: String,
    code: &'static str,
    message: String,
) -> RuntimeError {
    RuntimeError::InvalidQuery {
        parameter,
        issues: vec![FieldIssue {
            pointer,
            code,
            message,
        }],
    }
}

pub(crate) fn column_kind(column: ColumnType) -> ColumnKind {
    match column {
        ColumnType::Int => ColumnKind::Int,
        ColumnType::Float => ColumnKind::Float,
        ColumnType::Money => ColumnKind::Money,
        ColumnType::Bool => ColumnKind::Bool,
        ColumnType::Text => ColumnKind::Text,
        ColumnType::Date => ColumnKind::Date,
        ColumnType::DateTime => ColumnKind::DateTime,
    }
}

impl Runtime {
    /// The reports of an app the actor can run (those over entities they may read).
    pub async fn list_reports(
        &self,
        actor: &Principal,
        app: &str,
        locale: &str,
    ) -> Result<Vec<ReportSummary>, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let mut out = Vec::new();
        for (id, report) in &loaded.reports {
            let (entity, _) = loaded.entity(report.entity().as_str())?;
            let checked = self.check(actor, &loaded, entity).await?;
            if !checked.access.allows(Action::Read) {
                continue;
            }
            let definition = &report.definition;
            out.push(ReportSummary {
                id: id.clone(),
                label: definition
                    .label
                    .as_ref()
                    .and_then(|l| l.get(locale))
                    .map(str::to_owned),
                description: definition
                    .description
                    .as_ref()
                    .and_then(|l| l.get(locale))
                    .map(str::to_owned),
                entity: report.entity().to_string(),
                kind: definition.analysis.kind().to_owned(),
            });
        }
        Ok(out)
    }

    /// Run the app's report `report_id`.
    pub async fn run_report(
        &self,
        actor: &Principal,
        app: &str,
        report_id: &str,
        request: &ReportRequest,
        locale: &str,
    ) -> Result<ReportOutput, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let report = loaded
            .reports
            .get(report_id)
            .cloned()
            .ok_or_else(|| RuntimeError::NotFound(format!("report '{report_id}'")))?;
        self.execute_report(
            actor,
            &loaded,
            Arc::new(report),
            Some(report_id),
            request,
            locale,
        )
        .await
    }

    /// How many report results are kept for repeated views (diagnostics; `results`).
    pub fn kept_report_results(&self) -> usize {
        self.results.len()
    }

    /// Run an ad-hoc spec (`POST /api/apps/{app}/query`); problems point into `/spec`.
    pub async fn query_report(
        &self,
        actor: &Principal,
        app: &str,
        spec: &Value,
        request: &ReportRequest,
        locale: &str,
    ) -> Result<ReportOutput, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let mut problems = trellis_model::Problems::default();
        let spec_problems = |problems: trellis_model::Problems| RuntimeError::InvalidQuery {
            parameter: "spec",
            issues: problems
                .into_vec()
                .into_iter()
                .map(|p| FieldIssue {
                    pointer: format!("/spec{}", p.pointer),
                    code: p.code,
                    message: p.message,
                })
                .collect(),
        };
        let Some(definition) = trellis_report::parse(spec, "spec", &mut problems) else {
            return Err(spec_problems(problems));
        };
        let report =
            trellis_report::compile(definition, &loaded.bundle, "spec").map_err(spec_problems)?;
        self.execute_report(actor, &loaded, Arc::new(report), None, request, locale)
            .await
    }

    /// Run a report and write its result as CSV or XLSX (needs the export right).
    pub async fn export_report(
        &self,
        actor: &Principal,
        app: &str,
        report_id: &str,
        request: &ReportRequest,
        locale: &str,
        format: ExportFormat,
    ) -> Result<Vec<u8>, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        if let Some(report) = loaded.reports.get(report_id) {
            let (entity, _) = loaded.entity(report.entity().as_str())?;
            // Read first: to someone who may not read the entity, it does not exist (404).
            let checked = self.check(actor, &loaded, entity).await?;
            checked.require(Action::Read)?;
            checked.require(Action::Export)?;
        }
        let output = self
            .run_report(actor, app, report_id, request, locale)
            .await?;
        self.audit(
            Some(actor),
            "reports.export",
            Some(&loaded.id),
            Some(report_id),
            "success",
            json!({"rows": output.rows.len(), "format": format!("{format:?}").to_lowercase()}),
        )
        .await?;
        write_output(&output, format)
    }

    async fn execute_report(
        &self,
        actor: &Principal,
        loaded: &LoadedApp,
        report: Arc<CompiledReport>,
        stored_id: Option<&str>,
        request: &ReportRequest,
        locale: &str,
    ) -> Result<ReportOutput, RuntimeError> {
        let (entity, _) = loaded.entity(report.entity().as_str())?;
        let checked = self.check(actor, loaded, entity).await?;
        checked.require(Action::Read)?;
        // Hidden fields never leave the server, not even as a report column or a total (for
        // `relation.field`, the relation here and the field on its target, checked below).
        let hidden: Vec<&str> = report
            .fields
            .values()
            .map(|f| {
                f.via
                    .as_ref()
                    .map_or(f.name.as_str(), |v| v.relation.as_str())
            })
            .filter(|name| !checked.access.is_visible(name))
            .collect();
        if !hidden.is_empty() {
            return Err(RuntimeError::Forbidden(format!(
                "this report uses {} of {}, which your roles hide",
                hidden.join(", "),
                entity.id
            )));
        }
        let resolve = |name: &str| checked.subject.variable(name);
        let check = |raw: &Value, parameter: &'static str, at: &str| {
            crate::records::list::hidden_fields_in_filter(&checked, raw, at)?;
            check_filter(&loaded.bundle.entities, entity, raw, at, &resolve)
                .map_err(|issues| RuntimeError::InvalidQuery { parameter, issues })
        };
        let mut filters = vec![checked.read_filter()];
        let mut drill_base = Vec::new();
        if let Some(raw) = &report.definition.dataset.filter {
            filters.push(check(raw, "spec", "/dataset/filter")?);
            drill_base.push(raw.clone());
        }
        if let Some(raw) = &request.filters {
            filters.push(check(raw, "filters", "/filters")?);
            drill_base.push(raw.clone());
        }
        let mut as_of = chrono::Utc::now().date_naive();
        for name in request.parameters.keys() {
            if !report
                .definition
                .parameters
                .iter()
                .any(|p| p.id.as_str() == name)
            {
                return Err(invalid(
                    "parameters",
                    format!("/parameters/{name}"),
                    "unknown_parameter",
                    format!("the report has no parameter '{name}'"),
                ));
            }
        }
        for parameter in &report.definition.parameters {
            let value = request
                .parameters
                .get(parameter.id.as_str())
                .or(parameter.default.as_ref())
                .filter(|v| !v.is_null());
            let Some(value) = value else { continue };
            let pointer = format!("/parameters/{}", parameter.id);
            match &parameter.field {
                Some(field) => {
                    let op = parameter.op.unwrap_or(trellis_model::FilterOp::Eq);
                    let leaf = json!({"field": field, "op": op, "value": value});
                    let checked_leaf =
                        check_filter(&loaded.bundle.entities, entity, &leaf, &pointer, &resolve)
                            .map_err(|issues| RuntimeError::InvalidQuery {
                                parameter: "parameters",
                                issues,
                            })?;
                    filters.push(checked_leaf);
                    drill_base.push(leaf);
                }
                None => {
                    as_of = value
                        .as_str()
                        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                        .ok_or_else(|| {
                            invalid(
                                "parameters",
                                pointer,
                                "invalid_date",
                                "as_of is a date: YYYY-MM-DD".into(),
                            )
                        })?;
                }
            }
        }
        let filter = CheckedFilter::And(filters);
        if request.execution == Execution::Database {
            return self
                .report_in_database(loaded, entity, &report, &filter, drill_base, as_of, locale)
                .await;
        }
        // A repeated view with nothing changed is answered from the results kept (`results`).
        let keep_as = match stored_id {
            Some(id)
                if !request.rows_only
                    && report.funnel.is_none()
                    && report.fields.values().all(|f| f.via.is_none())
                    && trellis_report::filter::columns_needed(&filter).is_some() =>
            {
                self.columns
                    .generation(self.store(), (&loaded.id, loaded.version, &entity.uid))
                    .await?
                    .map(|generation| {
                        format!(
                            "{}\u{1}{}\u{1}{id}\u{1}{generation}\u{1}{as_of}\u{1}{locale}\u{1}{filter:?}\u{1}{}",
                            loaded.id,
                            loaded.version,
                            Value::Array(drill_base.clone()),
                        )
                    })
            }
            _ => None,
        };
        if let Some(kept) = keep_as.as_deref().and_then(|key| self.results.get(key)) {
            return Ok((*kept).clone());
        }
        // Own fields, plus the relation column of every `relation.field`.
        let mut names: Vec<String> = Vec::new();
        let mut requests: Vec<ColumnRequest> = Vec::new();
        for field in report.fields.values() {
            let (name, request) = match &field.via {
                None => (
                    field.name.clone(),
                    ColumnRequest {
                        uid: field.uid.clone(),
                        kind: column_kind(field.column),
                    },
                ),
                Some(via) => (
                    format!("{}.", via.relation),
                    ColumnRequest {
                        uid: via.relation_uid.clone(),
                        kind: ColumnKind::Text,
                    },
                ),
            };
            if !names.contains(&name) {
                names.push(name);
                requests.push(request);
            }
        }
        let mut dataset = self
            .typed_rows(
                loaded,
                &entity.uid,
                &names,
                &requests,
                &filter,
                report.funnel.is_some(),
            )
            .await?;
        self.join_related(actor, loaded, &report, &mut dataset)
            .await?;
        let mut visits = Vec::new();
        let mut moves = Vec::new();
        if let (Some(plan), trellis_report::definition::Analysis::Transitions { .. }) =
            (&report.funnel, &report.definition.analysis)
        {
            moves = self.store().flow_moves(&loaded.id, &plan.flow).await?;
        } else if let Some(funnel) = &report.funnel {
            visits = self.store().flow_visits(&loaded.id, &funnel.flow).await?;
            if let Some(states) = dataset
                .columns
                .get(&funnel.state_field)
                .and_then(|column| column.texts())
            {
                for (id, state) in dataset.ids.iter().zip(states) {
                    if let Some(state) = state {
                        visits.push((id.clone(), state.clone()));
                    }
                }
            }
        }
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
        let input = RunInput {
            dataset,
            visits,
            moves,
            as_of: (as_of - epoch).num_days() as i32,
            locale: locale.to_owned(),
            drill_base,
            grouper: Default::default(),
            rows_only: request.rows_only,
        };
        let started = std::time::Instant::now();
        let output = tokio::task::spawn_blocking(move || trellis_report::run(&report, &input))
            .await
            .map_err(|e| RuntimeError::Internal(format!("report task: {e}")))?
            .map_err(|e| RuntimeError::Internal(e.to_string()))?;
        tracing::debug!(
            records = output.records,
            rows = output.rows.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "report ran"
        );
        if let Some(key) = keep_as {
            self.results.put(key, &output);
        }
        Ok(output)
    }
}
