//! The people of an app: who can be picked in its user fields (owners, account managers, task
//! assignees). Any member of the app may read it — unlike the platform's user list — and it shows
//! only names, never admin flags or departments.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::{Principal, Runtime, RuntimeError};

/// A person as user pickers show them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Person {
    pub id: String,
    pub username: String,
    pub display_name: Option<String>,
}

impl Runtime {
    /// Enabled users holding a role in the app (directly or through their department), and the
    /// platform admins, by display name.
    pub async fn app_people(
        &self,
        actor: &Principal,
        app: &str,
    ) -> Result<Vec<Person>, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        self.require_member(actor, &loaded.id).await?;
        let assignments = self.store().list_assignments(&loaded.id).await?;
        let users: BTreeSet<&str> = assignments
            .iter()
            .filter(|a| a.principal_kind == "user")
            .map(|a| a.principal_id.as_str())
            .collect();
        // A role given to a department reaches its sub-departments too.
        let tree = self.store().list_departments().await?;
        let mut departments: BTreeSet<String> = assignments
            .iter()
            .filter(|a| a.principal_kind == "department")
            .map(|a| a.principal_id.clone())
            .collect();
        loop {
            let below: Vec<String> = tree
                .iter()
                .filter(|d| {
                    d.parent_id
                        .as_deref()
                        .is_some_and(|p| departments.contains(p))
                        && !departments.contains(&d.id)
                })
                .map(|d| d.id.clone())
                .collect();
            if below.is_empty() {
                break;
            }
            departments.extend(below);
        }
        let mut people: Vec<Person> = self
            .store()
            .list_users()
            .await?
            .into_iter()
            .filter(|u| !u.disabled)
            .filter(|u| {
                u.is_admin
                    || users.contains(u.id.as_str())
                    || u.department_id
                        .as_deref()
                        .is_some_and(|d| departments.contains(d))
            })
            .map(|u| Person {
                id: u.id,
                username: u.username,
                display_name: u.display_name,
            })
            .collect();
        people.sort_by(|a, b| {
            let name = |p: &Person| p.display_name.clone().unwrap_or_else(|| p.username.clone());
            name(a).cmp(&name(b))
        });
        Ok(people)
    }
}
