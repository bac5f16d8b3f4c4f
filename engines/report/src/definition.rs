//! Report files (`reports/<id>.report.json`) and ad-hoc specs (`POST /api/apps/{app}/query`): a
//! dataset (an entity, a filter, parameters the viewer may set) and one kind of analysis — an
//! aggregate table (dimensions × measures, optionally pivoted), a funnel over a flow, a retention
//! cohort table, an RFM segmentation or a KPI against the previous period — plus a chart.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use trellis_model::{Identifier, LocalizedText};

/// A report file, or an ad-hoc spec (where `format_version` and `id` may be left out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportDefinition {
    /// Metadata format version of this file; currently 1.
    #[serde(default = "format_version")]
    pub format_version: u32,
    /// Must equal the file name's stem (`reports/<id>.report.json`).
    #[serde(default = "adhoc_id")]
    pub id: Identifier,
    #[serde(default)]
    pub label: Option<LocalizedText>,
    #[serde(default)]
    pub description: Option<LocalizedText>,
    pub dataset: Dataset,
    /// Values the viewer may set when running the report; each narrows the dataset with one filter
    /// condition (or sets `as_of` for RFM and KPI reports).
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    /// What the report computes.
    pub analysis: Analysis,
    /// How to draw the result; absent: a sensible chart for the analysis.
    #[serde(default)]
    pub chart: Option<ChartSpec>,
}

fn format_version() -> u32 {
    1
}

fn adhoc_id() -> Identifier {
    Identifier::parse("adhoc").expect("'adhoc' is a valid identifier")
}

/// The records a report reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    pub entity: Identifier,
    /// A filter tree as in the records API (`{"field": "status", "op": "eq", "value": "won"}`,
    /// `and` / `or` / `not`, `relation.field` one level deep, variables such as `$user`).
    #[serde(default)]
    #[schemars(with = "Option<trellis_model::Filter>")]
    pub filter: Option<Value>,
}

/// A value the viewer sets when running the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    pub id: Identifier,
    #[serde(default)]
    pub label: Option<LocalizedText>,
    /// The field the parameter filters on; absent for `as_of`-style parameters used by the analysis.
    #[serde(default)]
    pub field: Option<String>,
    /// The filter operator applied with the parameter's value (`eq` when absent).
    #[serde(default)]
    pub op: Option<trellis_model::FilterOp>,
    /// Used when the viewer gives no value; no default and no value: the parameter does not filter.
    #[serde(default)]
    pub default: Option<Value>,
}

/// The analysis a report performs, written like rule triggers: `{"aggregate": {…}}`,
/// `{"funnel": {…}}`, `{"cohort": {…}}`, `{"rfm": {…}}` or `{"kpi": {…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Analysis {
    /// Group by dimensions and compute measures; optionally pivot one dimension into columns.
    Aggregate {
        #[serde(default)]
        dimensions: Vec<Dimension>,
        measures: Vec<Measure>,
        #[serde(default)]
        sort: Vec<SortSpec>,
        /// Keep the first dimension's top N values (by a measure) and fold the rest into "others".
        #[serde(default)]
        top: Option<TopN>,
        /// Spread this dimension's values into columns (rows × columns).
        #[serde(default)]
        pivot: Option<Identifier>,
    },
    /// How many records reached each state of a flow (in the order given), with conversion rates.
    /// A record counts as having reached a stage when it is, or ever was, in that stage or a later one.
    Funnel {
        flow: Identifier,
        /// The states that form the funnel, in order; absent: every non-terminal state and the first
        /// terminal one, in the flow's order.
        #[serde(default)]
        stages: Vec<Identifier>,
    },
    /// How many times records moved between each pair of states of a flow (from → to), and how
    /// many records made each move — e.g. customers' flows between lifecycle stages.
    Transitions { flow: Identifier },
    /// Retention by cohort: subjects (e.g. customers) grouped by the period of their first record
    /// (e.g. first order month), and the share of each cohort active in each later period.
    Cohort {
        /// The relation (or text) field naming who acted, e.g. an order's `customer`.
        subject: Identifier,
        /// The date or datetime field of the activity, e.g. `ordered_at`.
        date: Identifier,
        #[serde(default = "month")]
        bucket: DateBucket,
        /// How many periods after the first one to show.
        #[serde(default = "twelve")]
        periods: u32,
    },
    /// Recency / frequency / monetary scores (1–5 by quintiles over the subjects who bought; recency
    /// reversed; frequency ranked before cutting so ties do not merge quintiles) and a segment map
    /// on R × F.
    Rfm {
        subject: Identifier,
        date: Identifier,
        /// The amount of each record (money, decimal or integer).
        amount: Identifier,
        /// Segments on R × F, first match wins; the map must cover all 25 cells exactly once.
        #[serde(default)]
        segments: Vec<RfmSegment>,
        /// `segments`: one row per segment; `subjects`: one row per subject with its scores.
        #[serde(default)]
        output: RfmOutput,
    },
    /// The customer-base model: BG/NBD and Gamma-Gamma fitted by maximum likelihood on the
    /// dataset's transactions, giving per subject P(alive), expected purchases over the horizon,
    /// expected spend per purchase and CLV (or, with `output: model`, the fitted parameters).
    CustomerBase {
        /// The relation (or text) field naming the customer, e.g. an order's `customer`.
        subject: Identifier,
        /// The date or datetime of the purchase.
        date: Identifier,
        /// The amount of the purchase (money, decimal or integer).
        amount: Identifier,
        /// Last day of the calibration period, `YYYY-MM-DD`; default: the run's as-of day.
        #[serde(default)]
        calibration_end: Option<String>,
        /// The model's time unit.
        #[serde(default)]
        period: ModelPeriod,
        /// Months ahead for expected purchases and CLV.
        #[serde(default = "twelve")]
        horizon_months: u32,
        /// Monthly discount rate of CLV (0.01 = 1 % per month).
        #[serde(default = "one_percent")]
        monthly_discount: f64,
        /// P(alive) below this is `at_risk`.
        #[serde(default = "half")]
        at_risk_below: f64,
        /// P(alive) below this is `churned`.
        #[serde(default = "three_tenths")]
        churned_below: f64,
        /// Fit on at most this many customers (every k-th); all are scored.
        #[serde(default = "fit_sample")]
        fit_sample: u32,
        #[serde(default)]
        output: CustomerBaseOutput,
    },
    /// One measure for the period containing `as_of` (a parameter, default today), compared with the
    /// period before.
    Kpi {
        measure: Measure,
        date: Identifier,
        #[serde(default = "month")]
        period: DateBucket,
    },
}

fn month() -> DateBucket {
    DateBucket::Month
}

fn twelve() -> u32 {
    12
}

fn one_percent() -> f64 {
    0.01
}

fn half() -> f64 {
    0.5
}

fn three_tenths() -> f64 {
    0.3
}

fn fit_sample() -> u32 {
    100_000
}

/// The time unit of the customer-base model.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ModelPeriod {
    Day,
    #[default]
    Week,
    /// 30.4375 days.
    Month,
}

impl ModelPeriod {
    pub fn days(self) -> f64 {
        match self {
            Self::Day => 1.0,
            Self::Week => 7.0,
            Self::Month => 30.4375,
        }
    }
}

/// What a customer-base report shows.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CustomerBaseOutput {
    /// One row per customer.
    #[default]
    Subjects,
    /// The fitted parameters and log-likelihoods.
    Model,
}

/// A grouping of records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dimension {
    /// A field of the dataset's entity, or `relation.field` one level deep (a to-one relation's
    /// target), e.g. `customer.region`.
    pub field: String,
    /// Name of the output column; default: the field's id.
    #[serde(default, rename = "as")]
    pub alias: Option<Identifier>,
    /// For date and datetime fields: the calendar bucket.
    #[serde(default)]
    pub bucket: Option<DateBucket>,
    /// For numeric fields: equal-width bins of this width, starting at 0.
    #[serde(default)]
    pub bin: Option<f64>,
    #[serde(default)]
    pub label: Option<LocalizedText>,
}

impl Dimension {
    pub fn name(&self) -> &str {
        self.alias
            .as_ref()
            .map_or(self.field.as_str(), Identifier::as_str)
    }
}

/// Calendar buckets (weeks start on Monday, ISO 8601).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DateBucket {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

/// A computed value per group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Measure {
    /// Name of the output column.
    pub id: Identifier,
    pub op: MeasureOp,
    /// The field aggregated (all aggregations but `count`); `relation.field` reaches one level
    /// along a to-one relation.
    #[serde(default)]
    pub field: Option<String>,
    /// For `percentile`: the fraction, 0–1 (0.9 = 90th percentile).
    #[serde(default)]
    pub p: Option<f64>,
    /// For derived measures: the measure ids they use (`ratio`: numerator and denominator).
    #[serde(default)]
    pub of: Vec<Identifier>,
    #[serde(default)]
    pub label: Option<LocalizedText>,
}

/// Aggregations over records, and measures derived from other measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MeasureOp {
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
    Median,
    Percentile,
    /// `of[0] / of[1]` per row.
    Ratio,
    /// `of[0]` as a share of its column total.
    Share,
    /// Cumulative sum of `of[0]` down the rows (in the report's order).
    RunningTotal,
    /// Relative change of `of[0]` against the previous row (period over period).
    Change,
}

impl Analysis {
    /// The analysis kind as written in specs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Aggregate { .. } => "aggregate",
            Self::Funnel { .. } => "funnel",
            Self::Transitions { .. } => "transitions",
            Self::Cohort { .. } => "cohort",
            Self::Rfm { .. } => "rfm",
            Self::CustomerBase { .. } => "customer_base",
            Self::Kpi { .. } => "kpi",
        }
    }
}

impl MeasureOp {
    pub fn is_derived(self) -> bool {
        matches!(
            self,
            Self::Ratio | Self::Share | Self::RunningTotal | Self::Change
        )
    }
}

/// Order of the output rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SortSpec {
    /// A dimension name or measure id.
    pub by: Identifier,
    #[serde(default)]
    pub descending: bool,
}

/// Top-N with the rest folded into one "others" group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopN {
    pub n: usize,
    /// The measure ranking the first dimension's values.
    pub by: Identifier,
    #[serde(default = "yes")]
    pub others: bool,
}

fn yes() -> bool {
    true
}

/// One RFM segment: the R and F score ranges (inclusive) it covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RfmSegment {
    pub id: Identifier,
    #[serde(default)]
    pub label: Option<LocalizedText>,
    /// `[low, high]`, 1–5.
    pub r: [u8; 2],
    pub f: [u8; 2],
}

/// Rows of an RFM report.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RfmOutput {
    #[default]
    Segments,
    Subjects,
}

/// Chart kinds, as echarts draws them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChartKind {
    Table,
    Bar,
    Line,
    Area,
    Pie,
    Funnel,
    Scatter,
    Heatmap,
    Kpi,
}

/// How to draw a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChartSpec {
    pub kind: ChartKind,
    /// The column on the x axis (default: the first dimension).
    #[serde(default)]
    pub x: Option<Identifier>,
    /// The columns drawn as series (default: every measure).
    #[serde(default)]
    pub y: Vec<Identifier>,
}

/// The JSON Schema of report files, as committed in `schemas/report.schema.json`.
pub fn schema() -> Value {
    trellis_model::schemas::schema_for::<ReportDefinition>(
        "report",
        "Trellis report (reports/<id>.report.json)",
    )
}
