//! Who is asking ([`Subject`]) and what that allows on one entity ([`EntityAccess`]).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use trellis_form::check_filter;
use trellis_model::{
    Action, AppBundle, CheckedFilter, EntityDefinition, FieldAccess, Filter, RoleDefinition,
};

/// How a role reached a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// Assigned to the user.
    User,
    /// Assigned to a department the user belongs to (directly or below it).
    Department { id: String, name: String },
}

/// A role the user holds in the app, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub role: String,
    pub via: Assignment,
}

/// Rights a token is limited to. `None` (sessions, unscoped tokens): the user's full rights.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scopes(pub Option<BTreeSet<String>>);

impl Scopes {
    /// Scopes are `read`, `write` (create, update, delete, import), `export`, `admin` (manage apps
    /// and users), each optionally limited to one app as `APP:SCOPE`.
    pub fn allows(&self, app: &str, scope: &str) -> bool {
        match &self.0 {
            None => true,
            Some(scopes) => scopes.contains(scope) || scopes.contains(&format!("{app}:{scope}")),
        }
    }

    fn allows_action(&self, app: &str, action: Action) -> bool {
        let scope = match action {
            Action::Read => "read",
            Action::Export => "export",
            Action::Create | Action::Update | Action::Delete | Action::Import => "write",
        };
        self.allows(app, scope)
    }
}

/// The user as the permission engine sees them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Subject {
    pub user_id: String,
    pub username: String,
    pub platform_admin: bool,
    /// The user's department, the departments below it (itself included), and every user in those.
    pub department: Option<String>,
    pub department_descendants: Vec<String>,
    pub department_members: Vec<String>,
    pub grants: Vec<Grant>,
    pub scopes: Scopes,
}

impl Subject {
    /// Values of the variables a row filter may use.
    pub fn variable(&self, name: &str) -> Option<Value> {
        let strings =
            |items: &[String]| Value::Array(items.iter().cloned().map(Value::String).collect());
        match name {
            "$user" => Some(Value::String(self.user_id.clone())),
            "$user.username" => Some(Value::String(self.username.clone())),
            "$user.department" => self.department.clone().map(Value::String),
            "$user.department.descendants" => Some(strings(&self.department_descendants)),
            "$user.department.members" => Some(strings(&self.department_members)),
            _ => relative_day(name, chrono::Utc::now().date_naive()),
        }
    }

    fn roles<'a>(&self, bundle: &'a [RoleDefinition]) -> Vec<&'a RoleDefinition> {
        bundle
            .iter()
            .filter(|role| self.grants.iter().any(|g| g.role == role.id.as_str()))
            .collect()
    }
}

/// What a subject may do with one entity's records.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityAccess {
    /// Allowed actions, each with the roles that allow it (`*platform admin*` for admins).
    pub actions: BTreeMap<Action, Vec<String>>,
    /// Rows the subject reads; `None` when it cannot read at all.
    pub read_rows: Option<CheckedFilter>,
    /// Rows the subject may update or delete, and where its creates must land.
    pub write_rows: Option<CheckedFilter>,
    /// Mode of every field of the entity, by field name.
    pub fields: BTreeMap<String, FieldAccess>,
    /// Row filters that could not apply to this user (e.g. `$user.department` with no department),
    /// as (role, reason): those roles reach no rows.
    pub unusable_filters: Vec<(String, String)>,
}

impl EntityAccess {
    pub fn allows(&self, action: Action) -> bool {
        self.actions.contains_key(&action)
    }

    pub fn field(&self, name: &str) -> FieldAccess {
        self.fields
            .get(name)
            .copied()
            .unwrap_or(FieldAccess::Hidden)
    }

    /// Whether any field is hidden (searches over text then must not match hidden text).
    pub fn hides_fields(&self) -> bool {
        self.fields
            .values()
            .any(|mode| *mode == FieldAccess::Hidden)
    }

    /// Fields the subject sees, by name.
    pub fn is_visible(&self, name: &str) -> bool {
        self.field(name) != FieldAccess::Hidden
    }
}

/// Whether the subject may publish the app and assign its roles.
pub fn manages_app(bundle: &AppBundle, subject: &Subject) -> bool {
    if !subject.scopes.allows(bundle.id().as_str(), "admin") {
        return false;
    }
    subject.platform_admin || subject.roles(&bundle.roles()).iter().any(|r| r.manage_app)
}

fn union_rows(
    bundle: &AppBundle,
    entity: &EntityDefinition,
    subject: &Subject,
    filters: Vec<(String, Option<&Filter>)>,
    unusable: &mut Vec<(String, String)>,
) -> Option<CheckedFilter> {
    if filters.is_empty() {
        return None;
    }
    let resolve = |name: &str| subject.variable(name);
    let mut any = Vec::new();
    for (role, filter) in filters {
        let Some(filter) = filter else {
            return Some(CheckedFilter::All);
        };
        let raw = serde_json::to_value(filter).unwrap_or(Value::Null);
        match check_filter(&bundle.entities, entity, &raw, "", &resolve) {
            Ok(checked) => any.push(checked),
            Err(issues) => {
                let reason = issues
                    .iter()
                    .map(|i| i.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ");
                if !unusable.iter().any(|(r, _)| r == &role) {
                    unusable.push((role, reason));
                }
            }
        }
    }
    Some(if any.len() == 1 {
        any.remove(0)
    } else {
        CheckedFilter::Or(any)
    })
}

/// Compile what `subject` may do with `entity` of `bundle`.
pub fn entity_access(
    bundle: &AppBundle,
    entity: &EntityDefinition,
    subject: &Subject,
) -> EntityAccess {
    let app = bundle.id().as_str();
    let all_fields = || -> BTreeMap<String, FieldAccess> {
        entity
            .fields
            .iter()
            .map(|f| (f.name.to_string(), FieldAccess::Editable))
            .collect()
    };
    if subject.platform_admin {
        let actions = Action::ALL
            .into_iter()
            .filter(|a| subject.scopes.allows_action(app, *a))
            .map(|a| (a, vec!["*platform admin*".to_owned()]))
            .collect();
        let mut access = EntityAccess {
            actions,
            read_rows: Some(CheckedFilter::All),
            write_rows: Some(CheckedFilter::All),
            fields: all_fields(),
            unusable_filters: Vec::new(),
        };
        restrict_to_actions(&mut access);
        return access;
    }
    let roles = bundle.roles();
    let held = subject.roles(&roles);
    let mut actions: BTreeMap<Action, Vec<String>> = BTreeMap::new();
    let mut reads = Vec::new();
    let mut writes = Vec::new();
    let mut fields: BTreeMap<String, FieldAccess> = BTreeMap::new();
    for role in held {
        let Some(rights) = role.rights_on(entity.id.as_str()) else {
            continue;
        };
        let id = role.id.to_string();
        for action in &rights.actions {
            if subject.scopes.allows_action(app, *action) {
                actions.entry(*action).or_default().push(id.clone());
            }
        }
        let granted =
            |a: Action| rights.actions.contains(&a) && subject.scopes.allows_action(app, a);
        if granted(Action::Read) {
            reads.push((id.clone(), rights.rows.as_ref()));
        }
        if !rights.actions.is_empty() {
            for field in &entity.fields {
                let mode = rights
                    .fields
                    .iter()
                    .find(|(name, _)| name.as_str() == field.name.as_str())
                    .map_or(FieldAccess::Editable, |(_, mode)| *mode);
                let best = fields.entry(field.name.to_string()).or_insert(mode);
                *best = (*best).max(mode);
            }
        }
        if [
            Action::Create,
            Action::Update,
            Action::Delete,
            Action::Import,
        ]
        .into_iter()
        .any(granted)
        {
            writes.push((id, rights.write_rows.as_ref().or(rights.rows.as_ref())));
        }
    }
    let mut unusable = Vec::new();
    let mut access = EntityAccess {
        read_rows: union_rows(bundle, entity, subject, reads, &mut unusable),
        write_rows: union_rows(bundle, entity, subject, writes, &mut unusable),
        actions,
        fields: entity
            .fields
            .iter()
            .map(|f| {
                let name = f.name.to_string();
                let mode = fields.get(&name).copied().unwrap_or(FieldAccess::Hidden);
                (name, mode)
            })
            .collect(),
        unusable_filters: unusable,
    };
    restrict_to_actions(&mut access);
    access
}

/// Without `read` no row is visible and nothing exports; without `update` and `create` nothing is
/// editable; import needs create.
fn restrict_to_actions(access: &mut EntityAccess) {
    if !access.allows(Action::Read) {
        access.actions.remove(&Action::Export);
        access.read_rows = None;
    }
    if !access.allows(Action::Create) {
        access.actions.remove(&Action::Import);
    }
    if !access.allows(Action::Update) && !access.allows(Action::Create) {
        for mode in access.fields.values_mut() {
            *mode = (*mode).min(FieldAccess::ReadOnly);
        }
    }
}

/// `$today`, `$today-30`, `$today+7`: a date relative to `today` (`YYYY-MM-DD`), for filters such
/// as "ordered in the last 365 days".
pub fn relative_day(name: &str, today: chrono::NaiveDate) -> Option<Value> {
    let rest = name.strip_prefix("$today")?;
    let offset: i64 = if rest.is_empty() {
        0
    } else if let Some(days) = rest.strip_prefix('+') {
        days.parse().ok()?
    } else {
        rest.parse().ok().filter(|d: &i64| *d < 0)?
    };
    let day = today.checked_add_signed(chrono::Duration::days(offset))?;
    Some(Value::String(day.format("%Y-%m-%d").to_string()))
}
