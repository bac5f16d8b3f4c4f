//! Checking a report against its app (every problem at once, each with a pointer into the spec) and
//! working out which typed columns the run needs.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use trellis_model::{AppBundle, FieldKind, Identifier, LocalizedText, Problems};

use crate::data::ColumnType;
use crate::definition::{Analysis, MeasureOp, ReportDefinition};

/// How a `relation.field` reaches its value: through a to-one relation of the dataset's entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Via {
    /// The relation field of the dataset's entity (its id and uid).
    pub relation: String,
    pub relation_uid: String,
    /// The target entity (its id and uid).
    pub target: String,
    pub target_uid: String,
}

/// A field the report reads, and how it is loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldUse {
    pub name: String,
    pub uid: String,
    pub kind: FieldKind,
    pub column: ColumnType,
    pub label: Option<LocalizedText>,
    /// Labels of select options (value → label), for readable charts.
    pub options: BTreeMap<String, LocalizedText>,
    /// For `relation.field`: the relation it is read through (`uid` is then the target's field).
    pub via: Option<Via>,
}

/// One stage of a funnel.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub id: String,
    pub label: Option<LocalizedText>,
}

/// What a funnel needs besides the dataset: the flow's state field and the ordered stages.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelPlan {
    pub flow: String,
    pub state_field: String,
    pub stages: Vec<Stage>,
}

/// A report checked against its app.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledReport {
    pub definition: ReportDefinition,
    /// The fields to load, by field id.
    pub fields: BTreeMap<String, FieldUse>,
    pub funnel: Option<FunnelPlan>,
}

impl CompiledReport {
    pub fn id(&self) -> &str {
        self.definition.id.as_str()
    }

    pub fn entity(&self) -> &Identifier {
        &self.definition.dataset.entity
    }

    pub(crate) fn field(&self, name: &str) -> &FieldUse {
        &self.fields[name]
    }
}

/// Parse a report document, naming the failing place as a pointer.
pub fn parse(value: &Value, file: &str, problems: &mut Problems) -> Option<ReportDefinition> {
    match serde_path_to_error::deserialize::<_, ReportDefinition>(value) {
        Ok(definition) => Some(definition),
        Err(error) => {
            let pointer = path_to_pointer(&error.path().to_string());
            problems.error(
                file,
                pointer,
                "invalid_report",
                format!("not a valid report: {}", error.inner()),
            );
            None
        }
    }
}

/// `analysis.measures[2].field` → `/analysis/measures/2/field`.
fn path_to_pointer(path: &str) -> String {
    if path == "." || path.is_empty() {
        return String::new();
    }
    let mut pointer = String::new();
    for part in path.split('.') {
        let mut rest = part;
        while let Some(open) = rest.find('[') {
            let (name, tail) = rest.split_at(open);
            if !name.is_empty() {
                pointer.push('/');
                pointer.push_str(name);
            }
            let close = tail.find(']').unwrap_or(tail.len());
            pointer.push('/');
            pointer.push_str(&tail[1..close]);
            rest = tail.get(close + 1..).unwrap_or("");
        }
        if !rest.is_empty() {
            pointer.push('/');
            pointer.push_str(rest);
        }
    }
    pointer
}

/// Every report of a bundle, compiled; with all problems of all reports.
pub fn check_reports(
    bundle: &AppBundle,
) -> (
    BTreeMap<String, CompiledReport>,
    Vec<trellis_model::Problem>,
) {
    let mut all = Problems::default();
    let mut reports = BTreeMap::new();
    for (path, value) in &bundle.raw().0 {
        let Some(id) = path
            .strip_prefix("reports/")
            .and_then(|p| p.strip_suffix(".report.json"))
        else {
            continue;
        };
        let mut local = Problems::default();
        let Some(definition) = parse(value, path, &mut local) else {
            all.extend(local);
            continue;
        };
        if definition.id.as_str() != id {
            local.error(
                path,
                "/id",
                "id_mismatch",
                format!(
                    "the id '{}' must equal the file name's '{id}'",
                    definition.id
                ),
            );
        }
        if definition.format_version != 1 {
            local.error(
                path,
                "/format_version",
                "unsupported_format_version",
                "format_version must be 1",
            );
        }
        match compile(definition, bundle, path) {
            Ok(report) if !local.has_errors() => {
                reports.insert(id.to_owned(), report);
            }
            Ok(_) => {}
            Err(problems) => local.extend(problems),
        }
        all.extend(local);
    }
    (reports, all.into_vec())
}

/// Check `definition` against `bundle`; `file` names the spec in problems.
pub fn compile(
    definition: ReportDefinition,
    bundle: &AppBundle,
    file: &str,
) -> Result<CompiledReport, Problems> {
    let mut problems = Problems::default();
    let Some(entity) = bundle.entities.get(&definition.dataset.entity) else {
        problems.error(
            file,
            "/dataset/entity",
            "unknown_entity",
            format!(
                "'{}' is not an entity of this app",
                definition.dataset.entity
            ),
        );
        return Err(problems);
    };
    let mut checker = Checker {
        bundle,
        file,
        kind: definition.analysis.kind(),
        entity,
        problems,
        fields: BTreeMap::new(),
    };
    let mut parameter_ids = BTreeSet::new();
    for (index, parameter) in definition.parameters.iter().enumerate() {
        let at = format!("/parameters/{index}");
        if !parameter_ids.insert(parameter.id.as_str()) {
            checker.error(
                &format!("{at}/id"),
                "duplicate_parameter",
                format!("parameter '{}' is defined twice", parameter.id),
            );
        }
        match &parameter.field {
            Some(field) => {
                if entity.field(field).is_none() {
                    checker.error(
                        &format!("{at}/field"),
                        "unknown_field",
                        format!("'{field}' is not a field of {}", entity.id),
                    );
                }
            }
            None if parameter.id.as_str() == "as_of" => {}
            None => checker.error(
                &format!("{at}/field"),
                "missing_field",
                "a parameter filters on a field (only `as_of` has none)",
            ),
        }
    }
    let funnel = match &definition.analysis {
        Analysis::Aggregate {
            dimensions,
            measures,
            sort,
            top,
            pivot,
        } => {
            let mut names = BTreeSet::new();
            for (index, dimension) in dimensions.iter().enumerate() {
                let at = format!("/analysis/dimensions/{index}");
                checker.dimension(dimension, &at);
                if !names.insert(dimension.name().to_owned()) {
                    checker.error(
                        &format!("{at}/as"),
                        "duplicate_column",
                        format!(
                            "two columns are named '{}'; give one an `as`",
                            dimension.name()
                        ),
                    );
                }
            }
            if measures.is_empty() {
                checker.error(
                    "/analysis/measures",
                    "no_measures",
                    "an aggregate report needs at least one measure (e.g. count)",
                );
            }
            let mut known_measures: BTreeMap<&str, MeasureOp> = BTreeMap::new();
            for (index, measure) in measures.iter().enumerate() {
                let at = format!("/analysis/measures/{index}");
                checker.measure(measure, &at, &known_measures);
                if !names.insert(measure.id.to_string()) {
                    checker.error(
                        &format!("{at}/id"),
                        "duplicate_column",
                        format!("two columns are named '{}'", measure.id),
                    );
                }
                known_measures.insert(measure.id.as_str(), measure.op);
            }
            for (index, key) in sort.iter().enumerate() {
                if !names.contains(key.by.as_str()) {
                    checker.error(
                        &format!("/analysis/sort/{index}/by"),
                        "unknown_column",
                        format!(
                            "'{}' is neither a dimension nor a measure of this report",
                            key.by
                        ),
                    );
                }
            }
            if let Some(top) = top {
                if dimensions.is_empty() {
                    checker.error(
                        "/analysis/top",
                        "top_without_dimension",
                        "top-N ranks the first dimension's values; add a dimension",
                    );
                }
                if top.n == 0 {
                    checker.error("/analysis/top/n", "out_of_range", "n must be at least 1");
                }
                match known_measures.get(top.by.as_str()) {
                    Some(op) if !op.is_derived() => {}
                    Some(_) => checker.error(
                        "/analysis/top/by",
                        "derived_measure",
                        "rank by an aggregated measure, not a derived one",
                    ),
                    None => checker.error(
                        "/analysis/top/by",
                        "unknown_measure",
                        format!("'{}' is not a measure of this report", top.by),
                    ),
                }
            }
            if let Some(pivot) = pivot
                && !dimensions.iter().any(|d| d.name() == pivot.as_str())
            {
                checker.error(
                    "/analysis/pivot",
                    "unknown_dimension",
                    format!("'{pivot}' is not a dimension of this report"),
                );
            }
            if let Some(chart) = &definition.chart {
                for (pointer, column) in chart.x.iter().map(|x| ("/chart/x".to_owned(), x)).chain(
                    chart
                        .y
                        .iter()
                        .enumerate()
                        .map(|(i, y)| (format!("/chart/y/{i}"), y)),
                ) {
                    if !names.contains(column.as_str()) {
                        checker.error(
                            &pointer,
                            "unknown_column",
                            format!("'{column}' is not a column of this report"),
                        );
                    }
                }
            }
            None
        }
        Analysis::Funnel { flow, stages } => checker.funnel(bundle, flow, stages),
        Analysis::Transitions { flow } => checker.funnel(bundle, flow, &[]),
        Analysis::Cohort {
            subject,
            date,
            periods,
            ..
        } => {
            checker.scalar_field(subject.as_str(), "/analysis/subject");
            checker.temporal_field(date.as_str(), "/analysis/date");
            if !(1..=120).contains(periods) {
                checker.error(
                    "/analysis/periods",
                    "out_of_range",
                    "periods must be between 1 and 120",
                );
            }
            None
        }
        Analysis::Rfm {
            subject,
            date,
            amount,
            segments,
            ..
        } => {
            checker.scalar_field(subject.as_str(), "/analysis/subject");
            checker.temporal_field(date.as_str(), "/analysis/date");
            checker.numeric_field(amount.as_str(), "/analysis/amount");
            checker.segments(segments);
            None
        }
        Analysis::CustomerBase {
            subject,
            date,
            amount,
            calibration_end,
            horizon_months,
            monthly_discount,
            at_risk_below,
            churned_below,
            fit_sample,
            ..
        } => {
            checker.scalar_field(subject.as_str(), "/analysis/subject");
            checker.temporal_field(date.as_str(), "/analysis/date");
            checker.numeric_field(amount.as_str(), "/analysis/amount");
            if let Some(text) = calibration_end
                && parse_day(text).is_none()
            {
                checker.error(
                    "/analysis/calibration_end",
                    "invalid_date",
                    format!("'{text}' is not a date like 2026-06-30"),
                );
            }
            if !(1..=120).contains(horizon_months) {
                checker.error(
                    "/analysis/horizon_months",
                    "out_of_range",
                    "horizon_months must be between 1 and 120",
                );
            }
            if !(0.0..1.0).contains(monthly_discount) {
                checker.error(
                    "/analysis/monthly_discount",
                    "out_of_range",
                    "monthly_discount is a rate from 0 up to 1 (0.01 = 1 % per month)",
                );
            }
            if !(0.0..=1.0).contains(churned_below)
                || !(0.0..=1.0).contains(at_risk_below)
                || churned_below > at_risk_below
            {
                checker.error(
                    "/analysis/churned_below",
                    "out_of_range",
                    "thresholds are probabilities with churned_below ≤ at_risk_below",
                );
            }
            if *fit_sample < 100 {
                checker.error(
                    "/analysis/fit_sample",
                    "out_of_range",
                    "fit on at least 100 customers",
                );
            }
            None
        }
        Analysis::Kpi { measure, date, .. } => {
            checker.measure(measure, "/analysis/measure", &BTreeMap::new());
            if measure.op.is_derived() {
                checker.error(
                    "/analysis/measure/op",
                    "derived_measure",
                    "a KPI is an aggregation (count, sum, avg, …)",
                );
            }
            checker.temporal_field(date.as_str(), "/analysis/date");
            None
        }
    };
    if checker.problems.has_errors() {
        return Err(checker.problems);
    }
    Ok(CompiledReport {
        definition,
        fields: checker.fields,
        funnel,
    })
}

/// A `YYYY-MM-DD` date as days since 1970-01-01.
pub fn parse_day(text: &str) -> Option<i32> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .map(crate::buckets::days_of)
}

mod checker;
use checker::Checker;
