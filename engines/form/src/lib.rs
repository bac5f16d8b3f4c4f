//! The form engine: what entities mean for records.
//!
//! - [`EntityValidator`]: an entity's JSON Schema compiled once per (entity, version), plus the checks
//!   JSON Schema cannot express; errors carry the field's pointer, a stable code and a message in the
//!   caller's language ([`Locale`]).
//! - [`check_filter`]: the records filter tree checked against an entity (also used by permissions and
//!   reports).
//! - [`records`]: names ↔ stable uids, defaults, merge patch, and per-record migration.
//! - [`convert_value`]: typed conversion when a field changes kind.
//! - [`plan_migration`]: what changes between two versions of an app, matched by uid.
//!
//! Architecture invariant: pure — no IO, no `sqlx`, no `axum`, nothing from `crates/`.

mod convert;
mod filter;
mod locale;
mod messages;
mod migration;
pub mod records;
mod validate;

pub use convert::convert_value;
pub use filter::{VariableResolver, check_filter};
pub use locale::Locale;
pub use messages::{FieldIssue, message};
pub use migration::{MigrationChange, MigrationPlan, plan_migration};
pub use validate::{CompiledExpressions, EntityValidator, ExpressionProblem, compile_expressions};

/// Every expression of every entity of `bundle` that does not compile, as bundle problems.
pub fn check_expressions(bundle: &trellis_model::AppBundle) -> Vec<trellis_model::Problem> {
    let mut problems = Vec::new();
    for entity in bundle.entities.values() {
        for problem in compile_expressions(entity).problems {
            problems.push(trellis_model::Problem {
                file: format!("entities/{}.schema.json", entity.id),
                pointer: problem.pointer,
                code: "invalid_expression",
                message: problem.message,
                severity: trellis_model::Severity::Error,
            });
        }
    }
    problems
}
