//! Running reports: the permission engine first (read right, hidden fields, the viewer's row filter
//! pushed into the column load so no aggregate covers rows they cannot see), then the report engine on
//! the loaded typed columns, on a blocking thread. Exports to CSV and XLSX.

use std::sync::Arc;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use trellis_form::{FieldIssue, check_filter};
use trellis_model::{Action, CheckedFilter};
use trellis_report::{ColumnData, ColumnType, CompiledReport, Dataset, ReportOutput, RunInput};
use trellis_store::{ColumnKind, ColumnRequest};

use crate::column_cache::column_data;

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
}

/// Where a report's grouping runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Execution {
    #[default]
    Memory,
    Database,
}

/// Page filter values and parameters for a dashboard run.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct DashboardRequest {
    /// Values of the dashboard's page filters, by filter id.
    #[serde(default)]
    pub filters: Map<String, Value>,
    /// Parameter values passed to every widget's report that declares them.
    #[serde(default)]
    pub parameters: Map<String, Value>,
}

/// One widget of a dashboard run: where it sits and its result (or why it has none).
#[derive(Debug)]
pub struct WidgetResult {
    pub report: String,
    pub title: Option<String>,
    pub position: [u32; 4],
    pub result: Result<ReportOutput, RuntimeError>,
}

/// A dashboard run.
#[derive(Debug)]
pub struct DashboardRun {
    pub id: String,
    pub label: Option<String>,
    pub widgets: Vec<WidgetResult>,
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

fn column_kind(column: ColumnType) -> ColumnKind {
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

    /// The dashboards of an app: id, label and widgets' reports.
    pub async fn list_dashboards(
        &self,
        app: &str,
        locale: &str,
    ) -> Result<Vec<Value>, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        Ok(loaded
            .dashboards
            .values()
            .map(|d| {
                json!({
                    "id": d.id,
                    "label": d.label.as_ref().and_then(|l| l.get(locale)),
                    "filters": d.filters,
                    "widgets": d.widgets,
                })
            })
            .collect())
    }

    /// Run every widget of a dashboard at once with the shared page filters. A widget the viewer may
    /// not see reports its own error; the others still run.
    pub async fn run_dashboard(
        &self,
        actor: &Principal,
        app: &str,
        dashboard_id: &str,
        request: &DashboardRequest,
        locale: &str,
    ) -> Result<DashboardRun, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let dashboard = loaded
            .dashboards
            .get(dashboard_id)
            .ok_or_else(|| RuntimeError::NotFound(format!("dashboard '{dashboard_id}'")))?
            .clone();
        for name in request.filters.keys() {
            if !dashboard.filters.iter().any(|f| f.id.as_str() == name) {
                return Err(invalid(
                    "filters",
                    format!("/filters/{name}"),
                    "unknown_filter",
                    format!("the dashboard has no filter '{name}'"),
                ));
            }
        }
        // One scan per entity for the fields of all widgets, instead of one per widget.
        let mut by_entity: std::collections::BTreeMap<&str, Vec<(String, ColumnType)>> =
            Default::default();
        for widget in &dashboard.widgets {
            let Some(report) = loaded.reports.get(widget.report.as_str()) else {
                continue;
            };
            let Some(entity) = loaded.bundle.entities.get(report.entity()) else {
                continue;
            };
            let fields = by_entity.entry(entity.uid.as_str()).or_default();
            for field in report.fields.values().filter(|f| f.via.is_none()) {
                if !fields.iter().any(|(uid, _)| *uid == field.uid) {
                    fields.push((field.uid.clone(), field.column));
                }
            }
        }
        for (entity_uid, mut fields) in by_entity {
            fields.sort();
            self.columns
                .warm(
                    self.store(),
                    (&loaded.id, loaded.version, entity_uid),
                    &fields,
                )
                .await?;
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (index, widget) in dashboard.widgets.iter().enumerate() {
            let Some(report) = loaded.reports.get(widget.report.as_str()) else {
                continue;
            };
            let entity = loaded.bundle.entities.get(report.entity());
            let mut leaves = Vec::new();
            for filter in &dashboard.filters {
                let value = request
                    .filters
                    .get(filter.id.as_str())
                    .or(filter.default.as_ref())
                    .filter(|v| !v.is_null());
                if let (Some(value), Some(entity)) = (value, entity)
                    && entity.field(filter.field.as_str()).is_some()
                {
                    leaves.push(json!({"field": filter.field, "op": filter.op, "value": value}));
                }
            }
            let parameters: Map<String, Value> = request
                .parameters
                .iter()
                .filter(|(name, _)| {
                    report
                        .definition
                        .parameters
                        .iter()
                        .any(|p| p.id.as_str() == name.as_str())
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let widget_request = ReportRequest {
                filters: (!leaves.is_empty()).then(|| json!({ "and": leaves })),
                parameters,
                execution: Execution::Memory,
            };
            let (runtime, actor, app, report_id, locale) = (
                self.clone(),
                actor.clone(),
                app.to_owned(),
                widget.report.to_string(),
                locale.to_owned(),
            );
            tasks.spawn(async move {
                let result = runtime
                    .run_report(&actor, &app, &report_id, &widget_request, &locale)
                    .await;
                (index, result)
            });
        }
        let mut results: Vec<Option<Result<ReportOutput, RuntimeError>>> =
            (0..dashboard.widgets.len()).map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            let (index, result) =
                joined.map_err(|e| RuntimeError::Internal(format!("dashboard widget: {e}")))?;
            results[index] = Some(result);
        }
        let widgets = dashboard
            .widgets
            .iter()
            .zip(results)
            .map(|(widget, result)| WidgetResult {
                report: widget.report.to_string(),
                title: widget
                    .title
                    .as_ref()
                    .and_then(|t| t.get(locale))
                    .map(str::to_owned),
                position: [widget.x, widget.y, widget.w, widget.h],
                result: result.unwrap_or_else(|| {
                    Err(RuntimeError::NotFound(format!(
                        "report '{}'",
                        widget.report
                    )))
                }),
            })
            .collect();
        Ok(DashboardRun {
            id: dashboard.id.to_string(),
            label: dashboard
                .label
                .as_ref()
                .and_then(|l| l.get(locale))
                .map(str::to_owned),
            widgets,
        })
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
        self.execute_report(actor, &loaded, Arc::new(report), request, locale)
            .await
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
        self.execute_report(actor, &loaded, Arc::new(report), request, locale)
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
            self.check(actor, &loaded, entity)
                .await?
                .require(Action::Export)?;
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
        if let Some(funnel) = &report.funnel {
            visits = self.store().flow_visits(&loaded.id, &funnel.flow).await?;
            if let Some(states) = dataset
                .columns
                .get(&funnel.state_field)
                .and_then(ColumnData::texts)
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
            as_of: (as_of - epoch).num_days() as i32,
            locale: locale.to_owned(),
            drill_base,
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
        Ok(output)
    }
}

impl Runtime {
    /// The scale path: the grouping of an aggregate report runs as SQL on PostgreSQL over the same
    /// filtered rows, and the engine shapes the groups exactly as it shapes its own.
    #[allow(clippy::too_many_arguments)]
    async fn report_in_database(
        &self,
        loaded: &LoadedApp,
        entity: &trellis_model::EntityDefinition,
        report: &CompiledReport,
        filter: &CheckedFilter,
        drill_base: Vec<Value>,
        as_of: NaiveDate,
        locale: &str,
    ) -> Result<ReportOutput, RuntimeError> {
        use trellis_report::definition::{DateBucket, MeasureOp};
        use trellis_store::{GroupKey, GroupMeasure, GroupOp};
        let trellis_report::Analysis::Aggregate {
            dimensions,
            measures,
            top,
            ..
        } = &report.definition.analysis
        else {
            return Err(RuntimeError::InvalidInput(
                "only aggregate reports run in the database; funnels, cohorts, RFM and KPIs run in memory".into(),
            ));
        };
        if top.is_some() {
            return Err(RuntimeError::InvalidInput(
                "top-N runs in memory; leave out `execution` or the top".into(),
            ));
        }
        if let Some(field) = report.fields.values().find(|f| f.via.is_some()) {
            return Err(RuntimeError::InvalidInput(format!(
                "'{}' is a field of a related record; such reports run in memory",
                field.name
            )));
        }
        let mut keys = Vec::new();
        for dimension in dimensions {
            let field = &report.fields[&dimension.field];
            let kind = column_kind(field.column);
            let bucket = dimension
                .bucket
                .or(field.column.is_temporal().then_some(DateBucket::Day));
            keys.push(match (bucket, dimension.bin) {
                (Some(bucket), _) => GroupKey::Bucket {
                    uid: field.uid.clone(),
                    kind,
                    unit: match bucket {
                        DateBucket::Day => "day",
                        DateBucket::Week => "week",
                        DateBucket::Month => "month",
                        DateBucket::Quarter => "quarter",
                        DateBucket::Year => "year",
                    },
                },
                (None, Some(width)) => GroupKey::Bin {
                    uid: field.uid.clone(),
                    width,
                },
                (None, None) => GroupKey::Value {
                    uid: field.uid.clone(),
                    kind,
                },
            });
        }
        let group_measures: Vec<GroupMeasure> = measures
            .iter()
            .map(|measure| {
                let field = measure.field.as_ref().map(|name| {
                    let field = &report.fields[name];
                    (field.uid.clone(), column_kind(field.column))
                });
                let op = match measure.op {
                    MeasureOp::Count => GroupOp::Count,
                    MeasureOp::CountDistinct => GroupOp::CountDistinct,
                    MeasureOp::Sum => GroupOp::Sum,
                    MeasureOp::Avg => GroupOp::Avg,
                    MeasureOp::Min => GroupOp::Min,
                    MeasureOp::Max => GroupOp::Max,
                    MeasureOp::Median => GroupOp::Percentile(0.5),
                    MeasureOp::Percentile => GroupOp::Percentile(measure.p.unwrap_or(0.5)),
                    // Derived measures are computed by the engine on the groups.
                    _ => {
                        return GroupMeasure {
                            op: GroupOp::Count,
                            field: None,
                        };
                    }
                };
                GroupMeasure { op, field }
            })
            .collect();
        let rows = self
            .store()
            .aggregate(&loaded.id, &entity.uid, filter, &keys, &group_measures)
            .await?;
        let groups = rows
            .into_iter()
            .map(|row| {
                let keys = row
                    .keys
                    .into_iter()
                    .zip(&keys)
                    .map(|(text, key)| {
                        use trellis_report::Key;
                        let Some(text) = text else { return Key::Null };
                        match key {
                            GroupKey::Bucket { .. } | GroupKey::Bin { .. } => {
                                text.parse().map_or(Key::Null, Key::Int)
                            }
                            GroupKey::Value { kind, .. } => match kind {
                                ColumnKind::Int => text.parse().map_or(Key::Null, Key::Int),
                                ColumnKind::Float => text.parse().map_or(Key::Null, Key::Float),
                                ColumnKind::Bool => Key::Bool(text == "true"),
                                _ => Key::Text(text),
                            },
                        }
                    })
                    .collect();
                (keys, row.values)
            })
            .collect();
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
        let input = RunInput {
            dataset: Dataset::default(),
            visits: Vec::new(),
            as_of: (as_of - epoch).num_days() as i32,
            locale: locale.to_owned(),
            drill_base,
        };
        trellis_report::shape_groups(report, &input, groups)
            .map_err(|e| RuntimeError::Internal(e.to_string()))
    }
}

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
    async fn typed_rows(
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
            dataset.columns.insert(name.clone(), column_data(values));
        }
        Ok(dataset)
    }

    /// Fill the `relation.field` columns: load the targets' fields (with the viewer's access on the
    /// target entity: rows they cannot read give no value, hidden fields refuse the report) and pick
    /// each record's related value.
    async fn join_related(
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
                        .insert(field.name.clone(), values.take(&rows));
                }
            }
        }
        Ok(())
    }
}

fn cell_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A report result as a file: a header of column labels, then the rows.
pub fn write_output(output: &ReportOutput, format: ExportFormat) -> Result<Vec<u8>, RuntimeError> {
    let header: Vec<&str> = output.columns.iter().map(|c| c.label.as_str()).collect();
    match format {
        ExportFormat::Csv => {
            let fail = |e: csv::Error| RuntimeError::Internal(e.to_string());
            let mut writer = csv::Writer::from_writer(Vec::new());
            writer.write_record(&header).map_err(fail)?;
            for row in &output.rows {
                writer
                    .write_record(row.iter().map(cell_text))
                    .map_err(fail)?;
            }
            writer
                .into_inner()
                .map_err(|e| RuntimeError::Internal(e.to_string()))
        }
        ExportFormat::Xlsx => {
            let xlsx = |e: rust_xlsxwriter::XlsxError| {
                RuntimeError::Internal(format!("writing xlsx: {e}"))
            };
            let mut workbook = rust_xlsxwriter::Workbook::new();
            let sheet = workbook.add_worksheet();
            let bold = rust_xlsxwriter::Format::new().set_bold();
            for (column, title) in header.iter().enumerate() {
                sheet
                    .write_string_with_format(0, column as u16, *title, &bold)
                    .map_err(xlsx)?;
            }
            for (index, row) in output.rows.iter().enumerate() {
                for (column, cell) in row.iter().enumerate() {
                    let at = (index as u32 + 1, column as u16);
                    match cell {
                        Value::Number(n) => {
                            sheet
                                .write_number(at.0, at.1, n.as_f64().unwrap_or(0.0))
                                .map_err(xlsx)?;
                        }
                        Value::Bool(b) => {
                            sheet.write_boolean(at.0, at.1, *b).map_err(xlsx)?;
                        }
                        Value::Null => {}
                        other => {
                            sheet
                                .write_string(at.0, at.1, cell_text(other))
                                .map_err(xlsx)?;
                        }
                    }
                }
            }
            workbook.save_to_buffer().map_err(xlsx)
        }
    }
}
