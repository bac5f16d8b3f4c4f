//! Roles: permission sets of an app (`roles/<id>.role.json`), packaged in templates and edited by
//! analysts. A role grants actions per entity, an access mode per field, and the rows it reaches as a
//! filter tree with variables (`$user`, `$user.department`, `$user.department.descendants`,
//! `$user.department.members`). Three roles are built in; a bundle may redefine `member` and `viewer`
//! but never `app_admin`, so every app always has a role that can manage it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Filter, Identifier, LocalizedText};

/// What a role may do with the records of an entity.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Read,
    Update,
    Delete,
    Export,
    Import,
}

impl Action {
    pub const ALL: [Self; 6] = [
        Self::Create,
        Self::Read,
        Self::Update,
        Self::Delete,
        Self::Export,
        Self::Import,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Read => "read",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Export => "export",
            Self::Import => "import",
        }
    }
}

/// How a role sees one field. Most permissive wins across a user's roles.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FieldAccess {
    /// Never leaves the server: not in lists, records, history, exports or reports.
    Hidden,
    /// Shown, never written.
    ReadOnly,
    /// Shown and written (the default for fields a role does not mention).
    Editable,
}

/// A role's rights on one entity.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntityRights {
    /// Allowed actions. `export` and `import` also need `read` and `create`.
    #[serde(default)]
    pub actions: Vec<Action>,
    /// Access per field name; fields not listed are editable (read-only when the role cannot update).
    #[serde(default)]
    pub fields: BTreeMap<Identifier, FieldAccess>,
    /// The rows the role reads, as a records filter tree (absent: every row).
    #[serde(default)]
    pub rows: Option<Filter>,
    /// The rows the role may update and delete, and that its creates must land in (absent: `rows`).
    #[serde(default)]
    pub write_rows: Option<Filter>,
}

/// A role file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleDefinition {
    /// Metadata format version of this file; currently 1.
    pub format_version: u32,
    /// Must equal the file name's stem (`roles/<id>.role.json`).
    pub id: Identifier,
    pub name: LocalizedText,
    #[serde(default)]
    pub description: Option<LocalizedText>,
    /// May publish new versions of the app and assign roles.
    #[serde(default)]
    pub manage_app: bool,
    /// Rights on every entity not listed in `entities`.
    #[serde(default)]
    pub default: Option<EntityRights>,
    /// Rights per entity id.
    #[serde(default)]
    pub entities: BTreeMap<Identifier, EntityRights>,
}

impl RoleDefinition {
    /// The rights this role has on `entity` (none when neither listed nor covered by `default`).
    pub fn rights_on(&self, entity: &str) -> Option<&EntityRights> {
        self.entities
            .iter()
            .find(|(id, _)| id.as_str() == entity)
            .map(|(_, rights)| rights)
            .or(self.default.as_ref())
    }
}

/// Id of the built-in role that manages an app.
pub const APP_ADMIN: &str = "app_admin";

fn localized(en: &str, zh: &str) -> LocalizedText {
    LocalizedText(BTreeMap::from([
        ("en".to_owned(), en.to_owned()),
        ("zh-CN".to_owned(), zh.to_owned()),
    ]))
}

fn built_in(id: &str, en: &str, zh: &str, manage_app: bool, actions: &[Action]) -> RoleDefinition {
    RoleDefinition {
        format_version: crate::FORMAT_VERSION,
        id: Identifier::parse(id).expect("built-in role ids are identifiers"),
        name: localized(en, zh),
        description: None,
        manage_app,
        default: Some(EntityRights {
            actions: actions.to_vec(),
            ..EntityRights::default()
        }),
        entities: BTreeMap::new(),
    }
}

/// The built-in roles: `app_admin` (everything, manages the app), `member` (every record action),
/// `viewer` (read and export).
pub fn built_in_roles() -> Vec<RoleDefinition> {
    vec![
        built_in(APP_ADMIN, "App admin", "应用管理员", true, &Action::ALL),
        built_in("member", "Member", "成员", false, &Action::ALL),
        built_in(
            "viewer",
            "Viewer",
            "查看者",
            false,
            &[Action::Read, Action::Export],
        ),
    ]
}

/// Entities and fields a role names must exist (filters are checked by the form engine, which knows
/// the field kinds and the variables).
pub(crate) fn check_role_references(
    roles: &BTreeMap<Identifier, RoleDefinition>,
    entities: &BTreeMap<Identifier, crate::EntityDefinition>,
    problems: &mut crate::Problems,
) {
    for (id, role) in roles {
        let file = format!("roles/{id}.role.json");
        for (entity_id, rights) in &role.entities {
            let Some(entity) = entities.get(entity_id) else {
                problems.error(
                    &file,
                    format!("/entities/{entity_id}"),
                    "unknown_entity",
                    format!("'{entity_id}' is not an entity of this app"),
                );
                continue;
            };
            for field in rights.fields.keys() {
                if entity.field(field.as_str()).is_none() {
                    problems.error(
                        &file,
                        format!("/entities/{entity_id}/fields/{field}"),
                        "unknown_field",
                        format!("'{field}' is not a field of {entity_id}"),
                    );
                }
            }
        }
        if let Some(default) = &role.default
            && !default.fields.is_empty()
        {
            problems.error(
                &file,
                "/default/fields",
                "fields_need_entity",
                "field access is per entity: move these fields under entities/<entity>/fields",
            );
        }
    }
}
