//! The report engine: analysts' report specs (`reports/<id>.report.json`, or ad hoc) compiled to
//! polars lazy plans over typed columns, shaped for echarts.
//!
//! [`check_reports`] / [`compile`] validate a spec against its app with every problem at once (unknown
//! field, sum over text, a bucket on a non-date, an incomplete RFM segment map) and name the columns a
//! run needs. The runtime loads exactly those columns — already narrowed by the viewer's row-level
//! access filter, so no aggregate ever covers rows the viewer cannot see — and calls [`run`], which
//! returns typed columns, rows, a chart option and, per row, the records filter behind it (drill-down).
//! Analyses: aggregate tables (calendar buckets, numeric bins, count / distinct / sum / avg / min /
//! max / median / percentiles, ratios, shares, running totals, period-over-period change, top-N with
//! "others", pivots), funnels over a flow, retention cohorts, RFM segmentation and KPIs.
//!
//! polars stays inside this crate, with only its `lazy` feature.
//!
//! Architecture invariant: pure — no IO, no `sqlx`, no `axum`, nothing from `crates/`.

mod aggregate;
mod analyses;
pub mod buckets;
pub mod compile;
pub mod customer_base;
pub mod dashboard;
pub mod data;
pub mod definition;
pub mod filter;
mod frame;
mod grouping;
mod key_columns;
pub mod output;
pub mod parallel;
mod rfm;
mod top;
mod transitions;

pub use grouping::Grouper;

pub use aggregate::shape_groups;
pub use compile::{CompiledReport, FieldUse, FunnelPlan, check_reports, compile, parse};
pub use dashboard::{DashboardDefinition, check_dashboards, dashboard_schema};
pub use data::{ColumnData, ColumnType, Dataset, MONEY_SCALE, parse_money};
pub use definition::{Analysis, ReportDefinition, schema};
pub use frame::Key;
pub use output::{OutputColumn, OutputType, ReportOutput};

use serde_json::Value;

/// Why a run failed (specs are checked before; these are data or engine failures).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("report data: {0}")]
    Data(String),
    #[error("report engine: {0}")]
    Engine(String),
}

/// Everything a run needs besides the compiled spec.
#[derive(Debug, Clone, Default)]
pub struct RunInput {
    /// The columns of the records the viewer may read that match the dataset, page and parameter
    /// filters.
    pub dataset: Dataset,
    /// Funnels: `(record id, state)` for every state each record of the dataset is or ever was in.
    pub visits: Vec<(String, String)>,
    /// Transitions: `(record id, from state, to state)` of every move of the flow.
    pub moves: Vec<(String, String, String)>,
    /// "Today" for RFM recency and KPI periods: days since 1970-01-01.
    pub as_of: i32,
    /// The caller's language for labels (`en`, `zh-CN`).
    pub locale: String,
    /// Filter conditions every drill-down filter starts with (the dataset, page and parameter
    /// filters), as filter-tree JSON.
    pub drill_base: Vec<Value>,
    /// How rows are grouped (always the fastest way, except in conformance tests).
    pub grouper: Grouper,
    /// Only the rows: no drill-down filter per row and no chart. A write-back of a million
    /// customers reads the rows alone; building a filter per row was most of its report's time.
    pub rows_only: bool,
}

impl RunInput {
    pub(crate) fn text(
        &self,
        text: Option<&trellis_model::LocalizedText>,
        fallback: &str,
    ) -> String {
        text.and_then(|t| t.get(&self.locale))
            .unwrap_or(fallback)
            .to_owned()
    }

    /// `{"and": [base…, conditions…]}`.
    pub(crate) fn drill(&self, conditions: Vec<Value>) -> Value {
        if self.rows_only {
            return Value::Null;
        }
        let mut all = self.drill_base.clone();
        all.extend(conditions);
        serde_json::json!({ "and": all })
    }
}

/// Run a compiled report over its data.
pub fn run(report: &CompiledReport, input: &RunInput) -> Result<ReportOutput, ReportError> {
    let mut output = match &report.definition.analysis {
        Analysis::Aggregate { .. } => aggregate::run(report, input),
        Analysis::Funnel { .. } => analyses::funnel(report, input),
        Analysis::Transitions { .. } => transitions::transitions(report, input),
        Analysis::Cohort { .. } => analyses::cohort(report, input),
        Analysis::Rfm { .. } => rfm::rfm(report, input),
        Analysis::CustomerBase { .. } => customer_base::run(report, input),
        Analysis::Kpi { .. } => analyses::kpi(report, input),
    }?;
    if input.rows_only {
        // The analyses whose rows are many skip building these; the small ones drop them here.
        output.chart = Value::Null;
        output.drill.fill(Value::Null);
    }
    Ok(output)
}
