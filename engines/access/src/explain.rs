//! Plain-words explanations of a user's access (`GET /api/apps/{app}/access/explain`), in the caller's
//! language: which roles the user holds and how, and for every action why it is allowed or not.

use std::collections::BTreeMap;

use serde::Serialize;
use trellis_form::Locale;
use trellis_model::{Action, AppBundle, EntityDefinition, FieldAccess};

use crate::{Assignment, EntityAccess, Subject};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoleLine {
    pub role: String,
    pub how: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionLine {
    pub action: Action,
    pub allowed: bool,
    pub reason: String,
}

/// What the user may do with one record (when a record was asked about).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordLine {
    pub id: String,
    pub readable: bool,
    pub writable: bool,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub user: String,
    pub entity: String,
    pub platform_admin: bool,
    pub roles: Vec<RoleLine>,
    pub actions: Vec<ActionLine>,
    pub fields: BTreeMap<String, FieldAccess>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<RecordLine>,
    pub summary: String,
}

fn zh(locale: Locale) -> bool {
    locale == Locale::ZhCn
}

fn rows_words(locale: Locale, filtered: bool) -> &'static str {
    match (zh(locale), filtered) {
        (false, false) => "on every record",
        (false, true) => "on the records its row filter matches",
        (true, false) => "对所有记录",
        (true, true) => "对符合其行过滤条件的记录",
    }
}

/// Explain `access` (what `subject` may do with `entity`), optionally for one record whose
/// readability and writability the caller evaluated.
pub fn explain(
    bundle: &AppBundle,
    entity: &EntityDefinition,
    subject: &Subject,
    access: &EntityAccess,
    record: Option<(String, bool, bool)>,
    locale: Locale,
) -> Explanation {
    let roles_of_app = bundle.roles();
    let roles: Vec<RoleLine> = subject
        .grants
        .iter()
        .map(|grant| RoleLine {
            role: grant.role.clone(),
            how: match (&grant.via, zh(locale)) {
                (Assignment::User, false) => "assigned to the user".into(),
                (Assignment::User, true) => "直接分配给该用户".into(),
                (Assignment::Department { name, .. }, false) => {
                    format!("assigned to department '{name}', which the user belongs to")
                }
                (Assignment::Department { name, .. }, true) => {
                    format!("分配给用户所属的部门“{name}”")
                }
            },
        })
        .collect();
    let actions = Action::ALL
        .into_iter()
        .map(|action| {
            let granted_by = access.actions.get(&action);
            let reason = match (granted_by, subject.platform_admin) {
                (Some(_), true) => {
                    if zh(locale) {
                        "平台管理员拥有所有权限".to_owned()
                    } else {
                        "platform admins may do everything".to_owned()
                    }
                }
                (Some(by), false) => {
                    let filtered = by.iter().all(|role| {
                        roles_of_app
                            .iter()
                            .find(|r| r.id.as_str() == role)
                            .and_then(|r| r.rights_on(entity.id.as_str()))
                            .is_some_and(|rights| match action {
                                Action::Read | Action::Export => rights.rows.is_some(),
                                _ => rights.write_rows.is_some() || rights.rows.is_some(),
                            })
                    });
                    if zh(locale) {
                        format!(
                            "角色 {} 允许{}",
                            by.join("、"),
                            rows_words(locale, filtered)
                        )
                    } else {
                        format!(
                            "role {} allows it {}",
                            by.join(", "),
                            rows_words(locale, filtered)
                        )
                    }
                }
                (None, _) if subject.grants.is_empty() && !subject.platform_admin => {
                    if zh(locale) {
                        "该用户在此应用中没有任何角色".to_owned()
                    } else {
                        "the user holds no role in this app".to_owned()
                    }
                }
                (None, _)
                    if !subject
                        .scopes
                        .allows(bundle.id().as_str(), scope_of(action)) =>
                {
                    if zh(locale) {
                        format!("所用令牌的范围不包含 {}", scope_of(action))
                    } else {
                        format!("the token's scopes do not include '{}'", scope_of(action))
                    }
                }
                (None, _) => {
                    if zh(locale) {
                        format!(
                            "该用户的角色都不允许对 {} 执行 {}",
                            entity.id,
                            action.name()
                        )
                    } else {
                        format!(
                            "none of the user's roles allows {} on {}",
                            action.name(),
                            entity.id
                        )
                    }
                }
            };
            ActionLine {
                action,
                allowed: granted_by.is_some(),
                reason,
            }
        })
        .collect::<Vec<_>>();
    let record = record.map(|(id, readable, writable)| {
        let reason = match (readable, writable, zh(locale)) {
            (true, true, false) => "the record is inside the rows the user may read and write".into(),
            (true, false, false) => "the user may read the record but not change it (outside their write rows, or no update right)".into(),
            (false, _, false) => "the record is outside every row filter of the user's roles, so it looks missing to them".into(),
            (true, true, true) => "该记录在用户可读写的范围内".into(),
            (true, false, true) => "用户可以查看该记录，但不能修改（超出可写范围或没有修改权限）".into(),
            (false, _, true) => "该记录不在用户任何角色的行过滤范围内，对其不可见".into(),
        };
        RecordLine {
            id,
            readable,
            writable,
            reason,
        }
    });
    let allowed: Vec<&str> = actions
        .iter()
        .filter(|a| a.allowed)
        .map(|a| a.action.name())
        .collect();
    let hidden: Vec<&str> = access
        .fields
        .iter()
        .filter(|(_, mode)| **mode == FieldAccess::Hidden)
        .map(|(name, _)| name.as_str())
        .collect();
    let mut summary = match (allowed.is_empty(), zh(locale)) {
        (true, false) => format!(
            "{} cannot do anything with {}.",
            subject.username, entity.id
        ),
        (true, true) => format!("{} 对 {} 没有任何权限。", subject.username, entity.id),
        (false, false) => format!(
            "{} may {} {}.",
            subject.username,
            allowed.join(", "),
            entity.id
        ),
        (false, true) => format!(
            "{} 可以对 {} 执行：{}。",
            subject.username,
            entity.id,
            allowed.join("、")
        ),
    };
    if !hidden.is_empty() && !allowed.is_empty() {
        summary.push_str(&if zh(locale) {
            format!(" 隐藏字段：{}。", hidden.join("、"))
        } else {
            format!(" Hidden fields: {}.", hidden.join(", "))
        });
    }
    for (role, reason) in &access.unusable_filters {
        summary.push_str(&if zh(locale) {
            format!(" 角色 {role} 的行过滤条件对该用户不适用（{reason}），因此不授予任何记录。")
        } else {
            format!(" Role {role}'s row filter does not apply to this user ({reason}), so it grants no rows.")
        });
    }
    Explanation {
        user: subject.username.clone(),
        entity: entity.id.to_string(),
        platform_admin: subject.platform_admin,
        roles,
        actions,
        fields: access.fields.clone(),
        record,
        summary,
    }
}

fn scope_of(action: Action) -> &'static str {
    match action {
        Action::Read => "read",
        Action::Export => "export",
        _ => "write",
    }
}
