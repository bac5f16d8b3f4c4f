//! Checking a report against its app (every problem at once, each with a pointer into the spec) and
//! working out which typed columns the run needs.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use trellis_model::{AppBundle, EntityDefinition, FieldKind, Identifier, LocalizedText, Problems};

use crate::data::ColumnType;
use crate::definition::{Analysis, Measure, MeasureOp, ReportDefinition};

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

struct Checker<'a> {
    bundle: &'a AppBundle,
    file: &'a str,
    /// The analysis kind: pointers below `/analysis/` go through it (`/analysis/rfm/segments`).
    kind: &'static str,
    entity: &'a EntityDefinition,
    problems: Problems,
    fields: BTreeMap<String, FieldUse>,
}

impl Checker<'_> {
    fn error(&mut self, pointer: &str, code: &'static str, message: impl Into<String>) {
        let pointer = match pointer.strip_prefix("/analysis/") {
            Some(rest) => format!("/analysis/{}/{rest}", self.kind),
            None => pointer.to_owned(),
        };
        self.problems.error(self.file, pointer, code, message);
    }

    /// The field's column type, recording the field as needed; problems when it is unknown or not
    /// scalar.
    fn use_field(&mut self, name: &str, pointer: &str) -> Option<ColumnType> {
        let mut via = None;
        let mut owner = self.entity;
        let mut own_name = name;
        if let Some((relation_name, target_name)) = name.split_once('.') {
            let relation = self
                .entity
                .field(relation_name)
                .filter(|f| f.kind == FieldKind::RelationOne);
            let target = relation
                .and_then(|f| f.annotations.relation.as_ref())
                .and_then(|r| self.bundle.entities.get(&r.entity));
            let (Some(relation), Some(target)) = (relation, target) else {
                self.error(
                    pointer,
                    "unknown_field",
                    format!(
                        "'{relation_name}' is not a to-one relation of {}; `relation.field` reaches one level along one",
                        self.entity.id
                    ),
                );
                return None;
            };
            via = Some(Via {
                relation: relation_name.to_owned(),
                relation_uid: relation.uid.clone(),
                target: target.id.to_string(),
                target_uid: target.uid.clone(),
            });
            owner = target;
            own_name = target_name;
        }
        let Some(field) = owner.field(own_name) else {
            self.error(
                pointer,
                "unknown_field",
                format!("'{own_name}' is not a field of {}", owner.id),
            );
            return None;
        };
        let Some(column) = ColumnType::of(field.kind) else {
            self.error(
                pointer,
                "unsupported_field",
                format!(
                    "'{name}' holds several or structured values ({:?}); reports group and aggregate single values",
                    field.kind
                ),
            );
            return None;
        };
        self.fields.insert(
            name.to_owned(),
            FieldUse {
                name: name.to_owned(),
                uid: field.uid.clone(),
                kind: field.kind,
                column,
                label: field.annotations.label.clone(),
                options: field
                    .annotations
                    .options
                    .iter()
                    .filter_map(|o| o.label.clone().map(|l| (o.value.clone(), l)))
                    .collect(),
                via,
            },
        );
        Some(column)
    }

    fn scalar_field(&mut self, name: &str, pointer: &str) {
        self.use_field(name, pointer);
    }

    fn temporal_field(&mut self, name: &str, pointer: &str) {
        if let Some(column) = self.use_field(name, pointer)
            && !column.is_temporal()
        {
            self.error(
                pointer,
                "not_a_date",
                format!("'{name}' is not a date or datetime field"),
            );
        }
    }

    fn numeric_field(&mut self, name: &str, pointer: &str) {
        if let Some(column) = self.use_field(name, pointer)
            && !column.is_numeric()
        {
            self.error(
                pointer,
                "not_numeric",
                format!("'{name}' is not a number, money or integer field"),
            );
        }
    }

    fn dimension(&mut self, dimension: &crate::definition::Dimension, at: &str) {
        let Some(column) = self.use_field(&dimension.field, &format!("{at}/field")) else {
            return;
        };
        if dimension.bucket.is_some() && !column.is_temporal() {
            self.error(
                &format!("{at}/bucket"),
                "bad_bucket",
                format!(
                    "'{}' is not a date; buckets (day, week, month, quarter, year) apply to dates",
                    dimension.field
                ),
            );
        }
        if let Some(width) = dimension.bin {
            if !matches!(column, ColumnType::Int | ColumnType::Float) {
                self.error(
                    &format!("{at}/bin"),
                    "bad_bin",
                    format!(
                        "'{}' is not a number; bins apply to integer and decimal fields",
                        dimension.field
                    ),
                );
            } else if !(width.is_finite() && width > 0.0) {
                self.error(
                    &format!("{at}/bin"),
                    "bad_bin",
                    "the bin width must be a positive number",
                );
            }
        }
        if column == ColumnType::Money {
            self.error(
                &format!("{at}/field"),
                "bad_dimension",
                format!(
                    "'{}' is a money amount; aggregate it as a measure instead of grouping by it",
                    dimension.field
                ),
            );
        }
    }

    fn measure(&mut self, measure: &Measure, at: &str, known: &BTreeMap<&str, MeasureOp>) {
        let op = measure.op;
        if op.is_derived() {
            let wanted = if op == MeasureOp::Ratio { 2 } else { 1 };
            if measure.of.len() != wanted {
                self.error(
                    &format!("{at}/of"),
                    "bad_derived_measure",
                    format!("{op:?} takes {wanted} measure id(s) in `of`"),
                );
            }
            for (index, id) in measure.of.iter().enumerate() {
                if !known.contains_key(id.as_str()) {
                    self.error(
                        &format!("{at}/of/{index}"),
                        "unknown_measure",
                        format!("'{id}' is not a measure defined before this one"),
                    );
                }
            }
            if measure.field.is_some() {
                self.error(
                    &format!("{at}/field"),
                    "unexpected_field",
                    "derived measures work on other measures (`of`), not on a field",
                );
            }
            return;
        }
        let Some(field) = &measure.field else {
            if op != MeasureOp::Count {
                self.error(
                    &format!("{at}/field"),
                    "missing_field",
                    format!("{op:?} needs a field"),
                );
            }
            return;
        };
        let Some(column) = self.use_field(field, &format!("{at}/field")) else {
            return;
        };
        let fits = match op {
            MeasureOp::Count | MeasureOp::CountDistinct => true,
            MeasureOp::Min | MeasureOp::Max => column.is_numeric() || column.is_temporal(),
            _ => column.is_numeric(),
        };
        if !fits {
            self.error(
                &format!("{at}/op"),
                "op_does_not_fit",
                format!(
                    "cannot {} '{field}': it is not a number{}",
                    format!("{op:?}").to_lowercase(),
                    if matches!(op, MeasureOp::Min | MeasureOp::Max) {
                        " or a date"
                    } else {
                        ""
                    }
                ),
            );
        }
        match (op, measure.p) {
            (MeasureOp::Percentile, Some(p)) if (0.0..=1.0).contains(&p) => {}
            (MeasureOp::Percentile, _) => self.error(
                &format!("{at}/p"),
                "out_of_range",
                "percentile needs p between 0 and 1 (0.9 = 90th percentile)",
            ),
            (_, Some(_)) => self.error(
                &format!("{at}/p"),
                "unexpected_p",
                "only percentile takes p",
            ),
            _ => {}
        }
    }

    fn funnel(
        &mut self,
        bundle: &AppBundle,
        flow_id: &Identifier,
        stages: &[Identifier],
    ) -> Option<FunnelPlan> {
        let path = format!("flows/{flow_id}.flow.json");
        let Some(flow) = bundle
            .raw()
            .0
            .get(&path)
            .and_then(|v| serde_json::from_value::<FlowShape>(v.clone()).ok())
        else {
            self.error(
                "/analysis/flow",
                "unknown_flow",
                format!("'{flow_id}' is not a flow of this app"),
            );
            return None;
        };
        if flow.entity != self.entity.id.as_str() {
            self.error(
                "/analysis/flow",
                "flow_entity_mismatch",
                format!(
                    "flow '{flow_id}' runs on {}, the dataset is {}",
                    flow.entity, self.entity.id
                ),
            );
            return None;
        }
        self.use_field(&flow.state_field, "/analysis/flow");
        let chosen: Vec<Stage> = if stages.is_empty() {
            let mut chosen = Vec::new();
            for state in &flow.states {
                chosen.push(Stage {
                    id: state.id.clone(),
                    label: state.label.clone(),
                });
                if state.terminal {
                    break;
                }
            }
            chosen
        } else {
            let mut chosen = Vec::new();
            for (index, stage) in stages.iter().enumerate() {
                match flow.states.iter().find(|s| s.id == stage.as_str()) {
                    Some(state) => chosen.push(Stage {
                        id: state.id.clone(),
                        label: state.label.clone(),
                    }),
                    None => self.error(
                        &format!("/analysis/stages/{index}"),
                        "unknown_state",
                        format!("'{stage}' is not a state of flow '{flow_id}'"),
                    ),
                }
            }
            chosen
        };
        if chosen.len() < 2 {
            self.error(
                "/analysis/stages",
                "too_few_stages",
                "a funnel needs at least two stages",
            );
        }
        Some(FunnelPlan {
            flow: flow_id.to_string(),
            state_field: flow.state_field,
            stages: chosen,
        })
    }

    fn segments(&mut self, segments: &[crate::definition::RfmSegment]) {
        if segments.is_empty() {
            return;
        }
        let mut cover = [[0u8; 5]; 5];
        for (index, segment) in segments.iter().enumerate() {
            let at = format!("/analysis/segments/{index}");
            let mut valid = true;
            for (name, [low, high]) in [("r", segment.r), ("f", segment.f)] {
                if !(1..=5).contains(&low) || !(1..=5).contains(&high) || low > high {
                    self.error(
                        &format!("{at}/{name}"),
                        "out_of_range",
                        "a score range is [low, high] with 1 ≤ low ≤ high ≤ 5",
                    );
                    valid = false;
                }
            }
            if valid {
                for r in segment.r[0]..=segment.r[1] {
                    for f in segment.f[0]..=segment.f[1] {
                        cover[usize::from(r - 1)][usize::from(f - 1)] += 1;
                    }
                }
            }
        }
        let cells = |count: fn(u8) -> bool| -> Vec<String> {
            let mut cells = Vec::new();
            for (r, row) in cover.iter().enumerate() {
                for (f, n) in row.iter().enumerate() {
                    if count(*n) {
                        cells.push(format!("R{}F{}", r + 1, f + 1));
                    }
                }
            }
            cells
        };
        let missing = cells(|n| n == 0);
        let overlapping = cells(|n| n > 1);
        if !missing.is_empty() {
            self.error(
                "/analysis/segments",
                "segments_incomplete",
                format!(
                    "the segment map leaves cells without a segment: {}",
                    missing.join(", ")
                ),
            );
        }
        if !overlapping.is_empty() {
            self.error(
                "/analysis/segments",
                "segments_overlap",
                format!("cells in more than one segment: {}", overlapping.join(", ")),
            );
        }
    }
}

/// The parts of a flow file a funnel reads (the flow engine owns the full definition).
#[derive(serde::Deserialize)]
struct FlowShape {
    entity: String,
    state_field: String,
    states: Vec<StateShape>,
}

#[derive(serde::Deserialize)]
struct StateShape {
    id: String,
    #[serde(default)]
    label: Option<LocalizedText>,
    #[serde(default)]
    terminal: bool,
}
