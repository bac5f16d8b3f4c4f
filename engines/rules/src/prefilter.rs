//! Which records a rule surely does not match, decided over typed columns for many records at once —
//! so batch runs read and evaluate only the others. Only a condition that runs natively takes part;
//! per record the answer is "surely not" only where the native columnar result is decided and is not
//! `true` (the same test [`crate::evaluate`] applies). Every other record is evaluated in full.

use trellis_script::native::ColumnRef;

use crate::compile::CompiledRule;

/// The fields the rule's condition reads, when a columnar pre-filter can decide it: the rule has a
/// condition, it runs natively, and it reads only fields of the record.
pub fn condition_fields(rule: &CompiledRule) -> Option<&[String]> {
    let (_, script) = rule.condition.as_ref()?;
    let fields = script.native_fields()?;
    // `before` and names the static analysis does not know are rhai's to resolve (as in `evaluate`).
    fields
        .iter()
        .all(|name| name != "before" && rule.reads.contains(name))
        .then_some(fields)
}

/// Per row of `rows` records given as columns (`column(name)` for each of [`condition_fields`]):
/// `true` where the condition surely does not hold. `None` when no row can be decided this way.
pub fn surely_unmatched<'a>(
    rule: &'a CompiledRule,
    column: impl Fn(&str) -> Option<ColumnRef<'a>>,
    rows: usize,
) -> Option<Vec<bool>> {
    condition_fields(rule)?;
    let (_, script) = rule.condition.as_ref()?;
    script.surely_not_true(column, rows)
}
