//! Moves between the states of a flow: per (from, to) pair, how many moves and how many records,
//! over the records of the dataset (so the viewer's access and the filters apply).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::{Value, json};

use crate::analyses::{in_list, zh};
use crate::compile::CompiledReport;
use crate::definition::ChartKind;
use crate::output::{self, OutputColumn, OutputType, ReportOutput};
use crate::{ReportError, RunInput};

/// Moves of one (from, to) pair and the records that made them.
type Tally = (i64, BTreeSet<String>);

pub(crate) fn transitions(
    report: &CompiledReport,
    input: &RunInput,
) -> Result<ReportOutput, ReportError> {
    let plan = report
        .funnel
        .as_ref()
        .ok_or_else(|| ReportError::Engine("transitions without a flow".into()))?;
    let in_dataset: HashSet<&str> = input.dataset.ids.iter().map(String::as_str).collect();
    let mut pairs: BTreeMap<(String, String), Tally> = BTreeMap::new();
    for (record, from, to) in &input.moves {
        if !in_dataset.contains(record.as_str()) {
            continue;
        }
        let entry = pairs.entry((from.clone(), to.clone())).or_default();
        entry.0 += 1;
        entry.1.insert(record.clone());
    }
    let mut ordered: Vec<((String, String), Tally)> = pairs.into_iter().collect();
    ordered.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
    let labels: BTreeMap<String, String> = plan
        .stages
        .iter()
        .map(|s| (s.id.clone(), input.text(s.label.as_ref(), &s.id)))
        .collect();
    let zh = zh(input);
    let mut from = OutputColumn::new("from", OutputType::Text, if zh { "从" } else { "From" });
    from.labels = labels.clone();
    let mut to = OutputColumn::new("to", OutputType::Text, if zh { "到" } else { "To" });
    to.labels = labels;
    let columns = vec![
        from,
        to,
        OutputColumn::new(
            "moves",
            OutputType::Integer,
            if zh { "流转次数" } else { "Moves" },
        ),
        OutputColumn::new(
            "records",
            OutputType::Integer,
            if zh { "记录数" } else { "Records" },
        ),
    ];
    let mut rows = Vec::with_capacity(ordered.len());
    let mut drill = Vec::with_capacity(ordered.len());
    for ((from, to), (moves, records)) in &ordered {
        rows.push(vec![
            json!(from),
            json!(to),
            json!(moves),
            json!(records.len()),
        ]);
        let ids: Vec<String> = records.iter().cloned().collect();
        drill.push(in_list("id", &ids).map_or(Value::Null, |c| input.drill(vec![c])));
    }
    let kind = report
        .definition
        .chart
        .as_ref()
        .map_or(ChartKind::Table, |c| c.kind);
    let chart = output::chart(kind, &columns, &rows, 0, &[2]);
    Ok(ReportOutput {
        columns,
        rows,
        chart,
        drill,
        drill_cells: None,
        records: input.dataset.len(),
    })
}
