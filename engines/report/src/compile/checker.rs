//! The checker behind [`super::compile`]: every field, measure, dimension and analysis option of a
//! report spec, with a problem and pointer for each mistake.

use std::collections::BTreeMap;

use trellis_model::{AppBundle, EntityDefinition, FieldKind, Identifier, LocalizedText, Problems};

use super::*;
use crate::data::ColumnType;
use crate::definition::{Measure, MeasureOp};

pub(super) struct Checker<'a> {
    pub(super) bundle: &'a AppBundle,
    pub(super) file: &'a str,
    /// The analysis kind: pointers below `/analysis/` go through it (`/analysis/rfm/segments`).
    pub(super) kind: &'static str,
    pub(super) entity: &'a EntityDefinition,
    pub(super) problems: Problems,
    pub(super) fields: BTreeMap<String, FieldUse>,
}

impl Checker<'_> {
    pub(super) fn error(&mut self, pointer: &str, code: &'static str, message: impl Into<String>) {
        let pointer = match pointer.strip_prefix("/analysis/") {
            Some(rest) => format!("/analysis/{}/{rest}", self.kind),
            None => pointer.to_owned(),
        };
        self.problems.error(self.file, pointer, code, message);
    }

    /// The field's column type, recording the field as needed; problems when it is unknown or not
    /// scalar.
    pub(super) fn use_field(&mut self, name: &str, pointer: &str) -> Option<ColumnType> {
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

    pub(super) fn scalar_field(&mut self, name: &str, pointer: &str) {
        self.use_field(name, pointer);
    }

    pub(super) fn temporal_field(&mut self, name: &str, pointer: &str) {
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

    pub(super) fn numeric_field(&mut self, name: &str, pointer: &str) {
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

    pub(super) fn dimension(&mut self, dimension: &crate::definition::Dimension, at: &str) {
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

    pub(super) fn measure(
        &mut self,
        measure: &Measure,
        at: &str,
        known: &BTreeMap<&str, MeasureOp>,
    ) {
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

    pub(super) fn funnel(
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

    pub(super) fn segments(&mut self, segments: &[crate::definition::RfmSegment]) {
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
pub(super) struct FlowShape {
    pub(super) entity: String,
    pub(super) state_field: String,
    pub(super) states: Vec<StateShape>,
}

#[derive(serde::Deserialize)]
pub(super) struct StateShape {
    pub(super) id: String,
    #[serde(default)]
    pub(super) label: Option<LocalizedText>,
    #[serde(default)]
    pub(super) terminal: bool,
}
