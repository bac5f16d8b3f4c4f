//! Planning a schema change between two versions of an app, by stable uid.

use serde::Serialize;
use trellis_model::{AppBundle, EntityDefinition};

/// One change between two versions of an app, in plain words and machine-readable form.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum MigrationChange {
    EntityAdded {
        entity: String,
    },
    /// The entity's values are kept and come back if it is restored.
    EntityRemoved {
        entity: String,
    },
    EntityRenamed {
        uid: String,
        from: String,
        to: String,
    },
    /// New field; existing records get its default.
    FieldAdded {
        entity: String,
        field: String,
    },
    /// Values are kept (hidden) and come back if the field is restored.
    FieldRemoved {
        entity: String,
        field: String,
    },
    /// Matched by uid: values move with the field.
    FieldRenamed {
        entity: String,
        uid: String,
        from: String,
        to: String,
    },
    /// Values are converted; values that cannot convert are kept beside the field and reported.
    FieldKindChanged {
        entity: String,
        field: String,
        from: String,
        to: String,
    },
    FieldRequiredChanged {
        entity: String,
        field: String,
        required: bool,
    },
}

/// Everything that changes when `new` replaces `old`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct MigrationPlan {
    pub changes: Vec<MigrationChange>,
}

impl MigrationPlan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Compare two versions of an app. Entities and fields are matched by uid, never by name.
pub fn plan_migration(old: &AppBundle, new: &AppBundle) -> MigrationPlan {
    let mut changes = Vec::new();
    let find = |bundle: &AppBundle, uid: &str| -> Option<EntityDefinition> {
        bundle.entities.values().find(|e| e.uid == uid).cloned()
    };
    for new_entity in new.entities.values() {
        match find(old, &new_entity.uid) {
            None => changes.push(MigrationChange::EntityAdded {
                entity: new_entity.id.to_string(),
            }),
            Some(old_entity) => {
                if old_entity.id != new_entity.id {
                    changes.push(MigrationChange::EntityRenamed {
                        uid: new_entity.uid.clone(),
                        from: old_entity.id.to_string(),
                        to: new_entity.id.to_string(),
                    });
                }
                plan_fields(&old_entity, new_entity, &mut changes);
            }
        }
    }
    for old_entity in old.entities.values() {
        if find(new, &old_entity.uid).is_none() {
            changes.push(MigrationChange::EntityRemoved {
                entity: old_entity.id.to_string(),
            });
        }
    }
    MigrationPlan { changes }
}

fn plan_fields(old: &EntityDefinition, new: &EntityDefinition, changes: &mut Vec<MigrationChange>) {
    let entity = new.id.to_string();
    for field in &new.fields {
        match old.field_by_uid(&field.uid) {
            None => changes.push(MigrationChange::FieldAdded {
                entity: entity.clone(),
                field: field.name.to_string(),
            }),
            Some(before) => {
                if before.name != field.name {
                    changes.push(MigrationChange::FieldRenamed {
                        entity: entity.clone(),
                        uid: field.uid.clone(),
                        from: before.name.to_string(),
                        to: field.name.to_string(),
                    });
                }
                if before.kind != field.kind {
                    changes.push(MigrationChange::FieldKindChanged {
                        entity: entity.clone(),
                        field: field.name.to_string(),
                        from: before.kind.name().to_owned(),
                        to: field.kind.name().to_owned(),
                    });
                }
                if before.required != field.required {
                    changes.push(MigrationChange::FieldRequiredChanged {
                        entity: entity.clone(),
                        field: field.name.to_string(),
                        required: field.required,
                    });
                }
            }
        }
    }
    for field in &old.fields {
        if new.field_by_uid(&field.uid).is_none() {
            changes.push(MigrationChange::FieldRemoved {
                entity: entity.clone(),
                field: field.name.to_string(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use trellis_model::{RawBundle, check_bundle};

    fn bundle(properties: serde_json::Value) -> AppBundle {
        let raw = json!({
            "trellis.json": {"format_version": 1, "id": "crm", "version": "1.0.0", "name": {"en": "CRM", "zh-CN": "客户"}},
            "entities/customer.schema.json": {
                "type": "object",
                "x-trellis": {"format_version": 1},
                "properties": properties
            }
        });
        check_bundle(&serde_json::from_value::<RawBundle>(raw).unwrap()).unwrap()
    }

    #[test]
    fn rename_by_uid_is_not_drop_and_add() {
        let old = bundle(
            json!({"name": {"type": "string"}, "notes": {"type": "string"}, "age": {"type": "string"}}),
        );
        let new = bundle(json!({
            "full_name": {"type": "string", "x-trellis": {"uid": "name"}},
            "age": {"type": "integer"},
            "email": {"type": "string", "format": "email"}
        }));
        let plan = plan_migration(&old, &new);
        assert_eq!(
            plan.changes,
            vec![
                MigrationChange::FieldRenamed {
                    entity: "customer".into(),
                    uid: "name".into(),
                    from: "name".into(),
                    to: "full_name".into()
                },
                MigrationChange::FieldKindChanged {
                    entity: "customer".into(),
                    field: "age".into(),
                    from: "text".into(),
                    to: "integer".into()
                },
                MigrationChange::FieldAdded {
                    entity: "customer".into(),
                    field: "email".into()
                },
                MigrationChange::FieldRemoved {
                    entity: "customer".into(),
                    field: "notes".into()
                },
            ]
        );
        assert!(plan_migration(&old, &old).is_empty());
    }
}
