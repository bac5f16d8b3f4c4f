//! The scale path: an aggregate report's grouping run as SQL on PostgreSQL, shaped by the engine.

use chrono::NaiveDate;
use serde_json::Value;
use trellis_model::CheckedFilter;
use trellis_report::{CompiledReport, Dataset, ReportOutput, RunInput};
use trellis_store::ColumnKind;

use super::column_kind;
use crate::app_cache::LoadedApp;
use crate::{Runtime, RuntimeError};

impl Runtime {
    /// The scale path: the grouping of an aggregate report runs as SQL on PostgreSQL over the same
    /// filtered rows, and the engine shapes the groups exactly as it shapes its own.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn report_in_database(
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
            moves: Vec::new(),
            as_of: (as_of - epoch).num_days() as i32,
            locale: locale.to_owned(),
            drill_base,
            grouper: Default::default(),
            rows_only: false,
        };
        trellis_report::shape_groups(report, &input, groups)
            .map_err(|e| RuntimeError::Internal(e.to_string()))
    }
}
