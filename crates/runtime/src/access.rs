//! Enforcing access control: builds the permission engine's [`Subject`] for a principal in an app
//! (cached per user, app and access epoch), and the checks every records path calls — so no path
//! decides on its own. Denied reads look like missing records (404); denied writes are 403 naming the
//! rule that denied.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use trellis_access::{Assignment, EntityAccess, Grant, Scopes, Subject};
use trellis_model::{Action, CheckedFilter, EntityDefinition, FieldAccess, FieldPath};

use crate::app_cache::LoadedApp;
use crate::{Principal, Runtime, RuntimeError};

/// Subjects (without token scopes) per (user, app), valid while the access epoch is unchanged.
#[derive(Debug, Default, Clone)]
pub struct SubjectCache(Arc<Mutex<HashMap<UserInApp, CachedSubject>>>);

/// A subject and the access epoch it was built at.
type CachedSubject = (i64, Arc<Subject>);

/// (user id, app id).
type UserInApp = (String, String);

/// The departments at and above `start`, and at and below it.
fn department_tree(
    departments: &[trellis_store::DepartmentRecord],
    start: &str,
) -> (Vec<String>, Vec<String>) {
    let mut up = Vec::new();
    let mut current = Some(start.to_owned());
    while let Some(id) = current {
        if up.contains(&id) {
            break;
        }
        current = departments
            .iter()
            .find(|d| d.id == id)
            .and_then(|d| d.parent_id.clone());
        up.push(id);
    }
    let mut down = vec![start.to_owned()];
    let mut index = 0;
    while index < down.len() {
        let parent = down[index].clone();
        for child in departments
            .iter()
            .filter(|d| d.parent_id.as_deref() == Some(parent.as_str()))
        {
            if !down.contains(&child.id) {
                down.push(child.id.clone());
            }
        }
        index += 1;
    }
    (up, down)
}

/// What one path needs from the engine for one entity.
pub(crate) struct Checked<'a> {
    pub access: EntityAccess,
    pub entity: &'a EntityDefinition,
    /// Who asked (for the variables of their own filters).
    pub subject: Subject,
}

impl Checked<'_> {
    /// Refuse `action` (403, naming the entity and action) unless some role allows it. Reads are
    /// refused as "not found" so nobody learns what exists.
    pub fn require(&self, action: Action) -> Result<(), RuntimeError> {
        if self.access.allows(action) {
            return Ok(());
        }
        if action == Action::Read {
            return Err(RuntimeError::NotFound(format!(
                "entity '{}'",
                self.entity.id
            )));
        }
        Err(RuntimeError::Forbidden(format!(
            "none of your roles allows {} on {}",
            action.name(),
            self.entity.id
        )))
    }

    /// Refuse writing fields the user may not edit (403 with every such field).
    pub fn require_editable<'k>(
        &self,
        fields: impl Iterator<Item = &'k String>,
    ) -> Result<(), RuntimeError> {
        let denied: Vec<String> = fields
            .filter(|name| {
                self.entity.field(name).is_some()
                    && self.access.field(name) != FieldAccess::Editable
            })
            .cloned()
            .collect();
        if denied.is_empty() {
            Ok(())
        } else {
            Err(RuntimeError::Forbidden(format!(
                "your roles do not allow changing {} of {}",
                denied.join(", "),
                self.entity.id
            )))
        }
    }

    /// A stored record as this user sees it (hidden fields removed).
    pub fn view(&self, row: &trellis_store::RecordRow) -> crate::records::RecordView {
        let mut view = crate::records::view(self.entity, row);
        self.strip(&mut view.data);
        view
    }

    /// Remove hidden fields from a record's fields.
    pub fn strip(&self, data: &mut Map<String, Value>) {
        data.retain(|name, _| self.access.is_visible(name));
    }

    /// The rows the user reads (none: nothing, as a filter that matches nothing).
    pub fn read_filter(&self) -> CheckedFilter {
        self.access
            .read_rows
            .clone()
            .unwrap_or(CheckedFilter::Or(Vec::new()))
    }
}

impl Runtime {
    /// The permission engine's view of `actor` in `loaded`'s app.
    pub async fn subject(
        &self,
        actor: &Principal,
        loaded: &LoadedApp,
    ) -> Result<Subject, RuntimeError> {
        let scopes = Scopes(actor.scopes.as_ref().map(|s| s.iter().cloned().collect()));
        if actor.is_admin {
            return Ok(Subject {
                user_id: actor.user_id.clone(),
                username: actor.username.clone(),
                platform_admin: true,
                scopes,
                ..Subject::default()
            });
        }
        let key = (actor.user_id.clone(), loaded.id.clone());
        let cached = self
            .subjects
            .0
            .lock()
            .ok()
            .and_then(|cache| cache.get(&key).cloned());
        if let Some((epoch, subject)) = cached
            && epoch == actor.access_epoch
        {
            let mut subject = (*subject).clone();
            subject.scopes = scopes;
            return Ok(subject);
        }
        let subject = Arc::new(self.load_subject(&actor.user_id, &loaded.id).await?);
        if let Ok(mut cache) = self.subjects.0.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(key, (actor.access_epoch, subject.clone()));
        }
        let mut subject = (*subject).clone();
        subject.scopes = scopes;
        Ok(subject)
    }

    /// Build a subject from the store: the user, their department tree and their role assignments.
    pub(crate) async fn load_subject(
        &self,
        user_id: &str,
        app_id: &str,
    ) -> Result<Subject, RuntimeError> {
        let user = self
            .store()
            .get_user(user_id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound(format!("user '{user_id}'")))?;
        let departments = self.store().list_departments().await?;
        let (up, down) = match &user.department_id {
            Some(id) => department_tree(&departments, id),
            None => (Vec::new(), Vec::new()),
        };
        let members = self.store().users_in_departments(&down).await?;
        let grants = self
            .store()
            .assignments_for(app_id, user_id, &up)
            .await?
            .into_iter()
            .map(|a| Grant {
                role: a.role,
                via: if a.principal_kind == "user" {
                    Assignment::User
                } else {
                    Assignment::Department {
                        name: departments
                            .iter()
                            .find(|d| d.id == a.principal_id)
                            .map_or_else(|| a.principal_id.clone(), |d| d.name.clone()),
                        id: a.principal_id,
                    }
                },
            })
            .collect();
        Ok(Subject {
            user_id: user.id,
            username: user.username,
            platform_admin: user.is_admin,
            department: user.department_id,
            department_descendants: down,
            department_members: members,
            grants,
            scopes: Scopes::default(),
        })
    }

    /// What `actor` may do with `entity` of `loaded`.
    pub(crate) async fn check<'a>(
        &self,
        actor: &Principal,
        loaded: &LoadedApp,
        entity: &'a EntityDefinition,
    ) -> Result<Checked<'a>, RuntimeError> {
        let subject = self.subject(actor, loaded).await?;
        Ok(Checked {
            access: trellis_access::entity_access(&loaded.bundle, entity, &subject),
            entity,
            subject,
        })
    }

    /// Whether a stored document (by field uid) lies inside `filter`, loading related records for
    /// `relation.field` conditions.
    pub(crate) async fn document_matches(
        &self,
        loaded: &LoadedApp,
        filter: &CheckedFilter,
        data: &Map<String, Value>,
    ) -> Result<bool, RuntimeError> {
        let mut related: HashMap<(String, String), Vec<Value>> = HashMap::new();
        let mut paths = Vec::new();
        collect_related(filter, &mut paths);
        for (relation_uid, target_entity_uid, field_uid) in paths {
            let ids: Vec<String> = match data.get(&relation_uid) {
                Some(Value::String(id)) => vec![id.clone()],
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            let mut values = Vec::new();
            for id in ids {
                if let Some(row) = self
                    .store()
                    .get_record(&loaded.id, &target_entity_uid, &id)
                    .await?
                {
                    values.push(row.data.0.get(&field_uid).cloned().unwrap_or(Value::Null));
                }
            }
            related.insert((relation_uid, field_uid), values);
        }
        let lookup = |relation: &str, field: &str| {
            related
                .get(&(relation.to_owned(), field.to_owned()))
                .cloned()
                .unwrap_or_default()
        };
        Ok(trellis_access::matches(filter, data, &lookup))
    }

    /// Refuse (403) a write whose record, as it would be stored, falls outside the user's write rows.
    pub(crate) async fn require_write_rows(
        &self,
        loaded: &LoadedApp,
        checked: &Checked<'_>,
        data: &Map<String, Value>,
    ) -> Result<(), RuntimeError> {
        let inside = match &checked.access.write_rows {
            None => false,
            Some(CheckedFilter::All) => true,
            Some(filter) => self.document_matches(loaded, filter, data).await?,
        };
        if inside {
            Ok(())
        } else {
            Err(RuntimeError::Forbidden(format!(
                "the record is outside the {} rows your roles may write",
                checked.entity.id
            )))
        }
    }

    /// Refuse (404) a record outside the user's read rows.
    pub(crate) async fn require_readable(
        &self,
        loaded: &LoadedApp,
        checked: &Checked<'_>,
        id: &str,
        data: &Map<String, Value>,
    ) -> Result<(), RuntimeError> {
        let inside = match &checked.access.read_rows {
            None => false,
            Some(CheckedFilter::All) => true,
            Some(filter) => self.document_matches(loaded, filter, data).await?,
        };
        if inside {
            Ok(())
        } else {
            Err(RuntimeError::NotFound(format!("record '{id}'")))
        }
    }
}

fn collect_related(filter: &CheckedFilter, out: &mut Vec<(String, String, String)>) {
    match filter {
        CheckedFilter::All => {}
        CheckedFilter::And(items) | CheckedFilter::Or(items) => {
            items.iter().for_each(|f| collect_related(f, out));
        }
        CheckedFilter::Not(inner) => collect_related(inner, out),
        CheckedFilter::Leaf(leaf) => {
            if let FieldPath::Related {
                relation_uid,
                target_entity_uid,
                field_uid,
                ..
            } = &leaf.path
            {
                let path = (
                    relation_uid.clone(),
                    target_entity_uid.clone(),
                    field_uid.clone(),
                );
                if !out.contains(&path) {
                    out.push(path);
                }
            }
        }
    }
}
