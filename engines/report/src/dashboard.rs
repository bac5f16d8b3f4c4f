//! Dashboards: `views/<id>.view.json` with `"kind": "dashboard"` lay out several reports on a 12-column
//! grid and share page filters — each page filter names a field and narrows every widget whose dataset
//! entity has that field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use trellis_model::{AppBundle, FilterOp, Identifier, LocalizedText, Problems};

use crate::CompiledReport;

/// Grid columns of a dashboard.
pub const GRID_COLUMNS: u32 = 12;

/// A dashboard view file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DashboardDefinition {
    pub format_version: u32,
    pub id: Identifier,
    /// Always `dashboard` (other view kinds belong to the builder UI).
    pub kind: DashboardKind,
    #[serde(default)]
    pub label: Option<LocalizedText>,
    #[serde(default)]
    pub description: Option<LocalizedText>,
    /// Filters shown above the widgets and applied to all of them.
    #[serde(default)]
    pub filters: Vec<PageFilter>,
    pub widgets: Vec<Widget>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DashboardKind {
    Dashboard,
}

/// A page filter: a field and an operator; the viewer supplies the value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PageFilter {
    pub id: Identifier,
    pub field: Identifier,
    #[serde(default = "eq")]
    pub op: FilterOp,
    #[serde(default)]
    pub label: Option<LocalizedText>,
    #[serde(default)]
    pub default: Option<Value>,
}

fn eq() -> FilterOp {
    FilterOp::Eq
}

/// One report on the grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Widget {
    pub report: Identifier,
    #[serde(default)]
    pub title: Option<LocalizedText>,
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// The JSON Schema of dashboard views.
pub fn dashboard_schema() -> Value {
    trellis_model::schemas::schema_for::<DashboardDefinition>(
        "view",
        "Trellis dashboard view (views/<id>.view.json with \"kind\": \"dashboard\")",
    )
}

/// Every dashboard view of a bundle, checked against its reports (all problems at once). Views of
/// other kinds are left to the builder UI.
pub fn check_dashboards(
    bundle: &AppBundle,
    reports: &BTreeMap<String, CompiledReport>,
) -> (
    BTreeMap<String, DashboardDefinition>,
    Vec<trellis_model::Problem>,
) {
    let mut problems = Problems::default();
    let mut dashboards = BTreeMap::new();
    for (path, value) in &bundle.raw().0 {
        let Some(id) = path
            .strip_prefix("views/")
            .and_then(|p| p.strip_suffix(".view.json"))
        else {
            continue;
        };
        if value.get("kind").and_then(Value::as_str) != Some("dashboard") {
            continue;
        }
        let definition: DashboardDefinition = match serde_path_to_error::deserialize(value) {
            Ok(definition) => definition,
            Err(error) => {
                let pointer = trellis_model::pointer::from_serde_path("", error.path());
                problems.error(
                    path,
                    pointer,
                    "invalid_dashboard",
                    format!("not a valid dashboard: {}", error.inner()),
                );
                continue;
            }
        };
        let before = problems
            .iter()
            .filter(|p| p.severity == trellis_model::Severity::Error)
            .count();
        if definition.id.as_str() != id {
            problems.error(
                path,
                "/id",
                "id_mismatch",
                format!("the id must equal the file name's '{id}'"),
            );
        }
        if definition.widgets.is_empty() {
            problems.error(
                path,
                "/widgets",
                "no_widgets",
                "a dashboard shows at least one report",
            );
        }
        for (index, widget) in definition.widgets.iter().enumerate() {
            let at = format!("/widgets/{index}");
            if !reports.contains_key(widget.report.as_str()) {
                problems.error(
                    path,
                    format!("{at}/report"),
                    "unknown_report",
                    format!("'{}' is not a (valid) report of this app", widget.report),
                );
            }
            if widget.w == 0 || widget.h == 0 || widget.x + widget.w > GRID_COLUMNS {
                problems.error(
                    path,
                    &at,
                    "bad_position",
                    format!(
                        "a widget needs w ≥ 1, h ≥ 1 and x + w ≤ {GRID_COLUMNS} (the grid has {GRID_COLUMNS} columns)"
                    ),
                );
            }
        }
        for (index, filter) in definition.filters.iter().enumerate() {
            let applies = definition.widgets.iter().any(|w| {
                reports.get(w.report.as_str()).is_some_and(|r| {
                    bundle
                        .entities
                        .get(r.entity())
                        .is_some_and(|e| e.field(filter.field.as_str()).is_some())
                })
            });
            if !applies {
                problems.error(
                    path,
                    format!("/filters/{index}/field"),
                    "filter_applies_nowhere",
                    format!(
                        "no widget's entity has a field '{}', so this filter would do nothing",
                        filter.field
                    ),
                );
            }
        }
        let after = problems
            .iter()
            .filter(|p| p.severity == trellis_model::Severity::Error)
            .count();
        if after == before {
            dashboards.insert(id.to_owned(), definition);
        }
    }
    (dashboards, problems.into_vec())
}
