//! Dashboards: every widget's report at once, with the page filters shared and the column cache warmed
//! in one scan per entity; a widget the viewer may not see carries its own error.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use trellis_report::{ColumnType, CompiledReport, ReportOutput};
use trellis_rules::Trigger;

use super::{Execution, ReportRequest, invalid};
use crate::app_cache::LoadedApp;
use crate::{Principal, Runtime, RuntimeError};

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

impl Runtime {
    /// Load into the column cache, one scan per entity, the fields `reports` read of their entities
    /// (of `only` when given) — and `with_rules`, those the pre-filters of the app's scheduled and
    /// date rules read; entities large enough get their column snapshot written in the background.
    async fn warm_columns(
        &self,
        loaded: &LoadedApp,
        reports: impl Iterator<Item = &CompiledReport>,
        only: Option<&str>,
        with_rules: bool,
    ) -> Result<(), RuntimeError> {
        let mut by_entity: std::collections::BTreeMap<&str, Vec<(String, ColumnType)>> =
            Default::default();
        for report in reports {
            let Some(entity) = loaded.bundle.entities.get(report.entity()) else {
                continue;
            };
            if only.is_some_and(|only| only != entity.id.as_str()) {
                continue;
            }
            let fields = by_entity.entry(entity.uid.as_str()).or_default();
            for field in report.fields.values().filter(|f| f.via.is_none()) {
                fields.push((field.uid.clone(), field.column));
            }
            // The dataset filter's fields (an RFM report's order status) are read too.
            if let Some(raw) = &report.definition.dataset.filter
                && let Ok(filter) = trellis_form::check_filter(
                    &loaded.bundle.entities,
                    entity,
                    raw,
                    "/dataset/filter",
                    &|_: &str| None,
                )
            {
                fields.extend(trellis_report::filter::columns_needed(&filter).unwrap_or_default());
            }
        }
        // So are the columns of the pre-filters of rules that run over every record (nightly
        // points expiry), on schedule or by date, and of the fields their write-backs compare.
        if with_rules {
            for rule in loaded.rules.values() {
                if !matches!(
                    rule.definition.trigger,
                    Trigger::Schedule { .. } | Trigger::DateReached { .. }
                ) {
                    continue;
                }
                let Some(entity) = loaded.bundle.entities.get(&rule.definition.entity) else {
                    continue;
                };
                if only.is_some_and(|only| only != entity.id.as_str()) {
                    continue;
                }
                let fields = by_entity.entry(entity.uid.as_str()).or_default();
                if let Some(columns) = crate::rules::prefilter::condition_columns(entity, rule) {
                    fields.extend(columns.into_iter().map(|(_, uid, column)| (uid, column)));
                }
                // And the fields a nightly write-back compares before reading any record.
                if let Some(trellis_rules::RuleAction::ApplyReport(apply)) =
                    rule.definition.actions.first()
                {
                    fields.extend(crate::rules::apply_candidates::compared_columns(
                        entity, apply,
                    ));
                }
            }
        }
        for (entity_uid, mut fields) in by_entity {
            fields.sort();
            fields.dedup();
            self.columns
                .warm(
                    self.store(),
                    (&loaded.id, loaded.version, entity_uid),
                    &fields,
                )
                .await?;
        }
        Ok(())
    }

    /// Load the fields the app's stored reports read (with their dataset filters' fields) and the
    /// fields the pre-filters of its scheduled and date rules read (of `entity` only, when given)
    /// into the column cache, so the first report or nightly run after a start or a large import
    /// reads no document;
    /// entities of [`SnapshotPolicy::min_rows`](crate::SnapshotPolicy) rows or more get their
    /// column snapshot written in the background, so later starts need not read them either.
    /// Imports of that many rows call this in the background; `trellis serve` for every app at
    /// start.
    pub async fn warm_report_columns(
        &self,
        app: &str,
        entity: Option<&str>,
    ) -> Result<(), RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        self.warm_columns(&loaded, loaded.reports.values(), entity, true)
            .await
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
        let started = std::time::Instant::now();
        let reports = dashboard
            .widgets
            .iter()
            .filter_map(|widget| loaded.reports.get(widget.report.as_str()));
        self.warm_columns(&loaded, reports, None, false).await?;
        let warmed_ms = started.elapsed().as_millis() as u64;
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
                rows_only: false,
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
        tracing::debug!(
            dashboard = dashboard_id,
            warmed_ms,
            ms = started.elapsed().as_millis() as u64,
            "dashboard ran"
        );
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
}
