//! Three-way merge of bundles: the template version an app was installed from (the base), the app as
//! the analyst changed it (local), and a newer template version (template).
//!
//! The merge walks the JSON of every file. A value that only one side changed takes that side's value;
//! a value both sides changed the same way is kept once; a value both sides changed differently is a
//! [`Conflict`] listing base, local and template values with a default choice (local: the analyst's
//! edit wins unless the caller resolves otherwise). Objects merge key by key. Arrays whose elements all
//! carry an identity (`id`, `value`, or `event` + `from` for transitions) merge element by element, so
//! a field option or a flow state added on one side and another changed on the other side both
//! survive; arrays of plain values (`required`, `enum`, tags) merge as sets; other arrays and text
//! files (rhai) are atomic. Nothing here does IO: the runtime feeds the bundles and publishes the result
//! through the ordinary schema-evolution migration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::RawBundle;
use crate::pointer::escape_token;

/// Which side a conflict resolution takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MergeSide {
    /// Keep the analyst's value.
    Local,
    /// Take the new template's value.
    Template,
}

/// What happened to one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Changed,
    Removed,
}

/// A change one side made that the merge applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeChange {
    pub file: String,
    /// JSON pointer inside the file (empty: the whole file).
    pub pointer: String,
    pub kind: ChangeKind,
    /// The side the change comes from.
    pub side: MergeSide,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// The same value changed differently on both sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// `FILE:POINTER`, the key to resolve it with.
    pub id: String,
    pub file: String,
    pub pointer: String,
    /// The value in the version the app was installed from (absent: it did not exist).
    pub base: Option<Value>,
    /// The analyst's value (absent: they removed it).
    pub local: Option<Value>,
    /// The new template's value (absent: the template removed it).
    pub template: Option<Value>,
    /// What the merge uses unless resolved otherwise.
    pub default: MergeSide,
    /// What the merge used.
    pub chosen: MergeSide,
}

/// The outcome of [`merge_bundles`].
#[derive(Debug, Clone, PartialEq)]
pub struct MergeOutcome {
    pub merged: RawBundle,
    /// Changes applied from the template.
    pub template_changes: Vec<MergeChange>,
    /// The analyst's changes that the merged app keeps.
    pub local_changes: Vec<MergeChange>,
    pub conflicts: Vec<Conflict>,
}

/// Merge `local` and `template`, both descended from `base`. `resolutions` maps a conflict id
/// (`FILE:POINTER`) to the side to take; unresolved conflicts take their default (local).
pub fn merge_bundles(
    base: &RawBundle,
    local: &RawBundle,
    template: &RawBundle,
    resolutions: &BTreeMap<String, MergeSide>,
) -> MergeOutcome {
    let mut merger = Merger {
        file: String::new(),
        resolutions,
        template_changes: Vec::new(),
        local_changes: Vec::new(),
        conflicts: Vec::new(),
    };
    let mut merged = Map::new();
    for name in ordered_keys(&local.0, &template.0, &base.0) {
        merger.file = name.clone();
        if let Some(value) = merger.merge(
            base.0.get(&name),
            local.0.get(&name),
            template.0.get(&name),
            String::new(),
        ) {
            merged.insert(name, value);
        }
    }
    MergeOutcome {
        merged: RawBundle(merged),
        template_changes: merger.template_changes,
        local_changes: merger.local_changes,
        conflicts: merger.conflicts,
    }
}

struct Merger<'a> {
    file: String,
    resolutions: &'a BTreeMap<String, MergeSide>,
    template_changes: Vec<MergeChange>,
    local_changes: Vec<MergeChange>,
    conflicts: Vec<Conflict>,
}

impl Merger<'_> {
    fn merge(
        &mut self,
        base: Option<&Value>,
        local: Option<&Value>,
        template: Option<&Value>,
        pointer: String,
    ) -> Option<Value> {
        if local == template {
            return local.cloned();
        }
        if local == base {
            self.record(MergeSide::Template, base, template, &pointer);
            return template.cloned();
        }
        if template == base {
            self.record(MergeSide::Local, base, local, &pointer);
            return local.cloned();
        }
        // Both sides changed it, differently.
        match (base, local, template) {
            (base, Some(Value::Object(l)), Some(Value::Object(t)))
                if base.is_none_or(Value::is_object) =>
            {
                let empty = Map::new();
                let b = base.and_then(Value::as_object).unwrap_or(&empty);
                let mut out = Map::new();
                for key in ordered_keys(l, t, b) {
                    let child = format!("{pointer}/{}", escape_token(&key));
                    if let Some(value) = self.merge(b.get(&key), l.get(&key), t.get(&key), child) {
                        out.insert(key, value);
                    }
                }
                Some(Value::Object(out))
            }
            (base, Some(Value::Array(l)), Some(Value::Array(t)))
                if base.is_none_or(Value::is_array) =>
            {
                let empty = Vec::new();
                let b = base.and_then(Value::as_array).unwrap_or(&empty);
                if let (Some(bk), Some(lk), Some(tk)) = (keyed(b), keyed(l), keyed(t)) {
                    Some(self.merge_keyed(&bk, &lk, &tk, &pointer))
                } else if [b, l, t].iter().all(|a| a.iter().all(is_scalar)) {
                    Some(self.merge_set(b, l, t, &pointer))
                } else {
                    self.conflict(base, local, template, pointer)
                }
            }
            _ => self.conflict(base, local, template, pointer),
        }
    }

    fn merge_keyed(
        &mut self,
        base: &[(String, &Value)],
        local: &[(String, &Value)],
        template: &[(String, &Value)],
        pointer: &str,
    ) -> Value {
        let find = |list: &[(String, &Value)], key: &str| -> Option<Value> {
            list.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| (*v).clone())
        };
        // Local order first; elements new in the template follow the element they follow there.
        let mut order: Vec<String> = local.iter().map(|(k, _)| k.clone()).collect();
        for (index, (key, _)) in template.iter().enumerate() {
            if order.contains(key) || base.iter().any(|(k, _)| k == key) {
                continue;
            }
            let after = template[..index]
                .iter()
                .rev()
                .find_map(|(k, _)| order.iter().position(|o| o == k));
            order.insert(after.map_or(0, |p| p + 1), key.clone());
        }
        for (key, _) in base {
            if !order.contains(key) && template.iter().any(|(k, _)| k == key) {
                // Removed locally but still in the template: the merge decides below.
                order.push(key.clone());
            }
        }
        let mut out = Vec::new();
        for key in order {
            let index = template
                .iter()
                .position(|(k, _)| *k == key)
                .or_else(|| local.iter().position(|(k, _)| *k == key))
                .unwrap_or(out.len());
            let (b, l, t) = (find(base, &key), find(local, &key), find(template, &key));
            if let Some(value) = self.merge(
                b.as_ref(),
                l.as_ref(),
                t.as_ref(),
                format!("{pointer}/{index}"),
            ) {
                out.push(value);
            }
        }
        Value::Array(out)
    }

    fn merge_set(
        &mut self,
        base: &[Value],
        local: &[Value],
        template: &[Value],
        pointer: &str,
    ) -> Value {
        let removed_by_template: Vec<&Value> =
            base.iter().filter(|v| !template.contains(v)).collect();
        let mut out: Vec<Value> = local
            .iter()
            .filter(|v| !removed_by_template.contains(v))
            .cloned()
            .collect();
        for value in template {
            if !base.contains(value) && !out.contains(value) {
                out.push(value.clone());
            }
        }
        let merged = Value::Array(out);
        let base_value = Value::Array(base.to_vec());
        self.record(
            MergeSide::Template,
            Some(&base_value),
            Some(&merged),
            pointer,
        );
        merged
    }

    fn conflict(
        &mut self,
        base: Option<&Value>,
        local: Option<&Value>,
        template: Option<&Value>,
        pointer: String,
    ) -> Option<Value> {
        let id = format!("{}:{pointer}", self.file);
        let chosen = self
            .resolutions
            .get(&id)
            .copied()
            .unwrap_or(MergeSide::Local);
        self.conflicts.push(Conflict {
            id,
            file: self.file.clone(),
            pointer,
            base: base.cloned(),
            local: local.cloned(),
            template: template.cloned(),
            default: MergeSide::Local,
            chosen,
        });
        match chosen {
            MergeSide::Local => local.cloned(),
            MergeSide::Template => template.cloned(),
        }
    }

    fn record(
        &mut self,
        side: MergeSide,
        before: Option<&Value>,
        after: Option<&Value>,
        pointer: &str,
    ) {
        let kind = match (before, after) {
            (None, Some(_)) => ChangeKind::Added,
            (Some(_), None) => ChangeKind::Removed,
            _ => ChangeKind::Changed,
        };
        let change = MergeChange {
            file: self.file.clone(),
            pointer: pointer.to_owned(),
            kind,
            side,
            before: before.cloned(),
            after: after.cloned(),
        };
        match side {
            MergeSide::Template => self.template_changes.push(change),
            MergeSide::Local => self.local_changes.push(change),
        }
    }
}

fn is_scalar(value: &Value) -> bool {
    !value.is_array() && !value.is_object()
}

/// The identity of an array element, when it has one.
fn identity(value: &Value) -> Option<String> {
    let object = value.as_object()?;
    for key in ["id", "value"] {
        if let Some(id) = object.get(key).filter(|v| is_scalar(v)) {
            return Some(format!("{key}={id}"));
        }
    }
    let event = object.get("event")?.as_str()?;
    Some(format!("event={event} from={}", object.get("from")?))
}

/// An array as (identity, element) pairs, when every element has a distinct identity.
fn keyed(array: &[Value]) -> Option<Vec<(String, &Value)>> {
    let mut out: Vec<(String, &Value)> = Vec::with_capacity(array.len());
    for value in array {
        let key = identity(value)?;
        if out.iter().any(|(k, _)| *k == key) {
            return None;
        }
        out.push((key, value));
    }
    Some(out)
}

/// Keys of the merged object: local's order, then keys new in the template, then base keys that
/// only the template dropped or only local dropped (the merge decides whether they stay).
fn ordered_keys(
    local: &Map<String, Value>,
    template: &Map<String, Value>,
    base: &Map<String, Value>,
) -> Vec<String> {
    let mut keys: Vec<String> = local.keys().cloned().collect();
    for key in template.keys().chain(base.keys()) {
        if !keys.contains(key) {
            keys.push(key.clone());
        }
    }
    keys
}
