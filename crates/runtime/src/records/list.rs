//! Lists: the checked filter tree, full-text search, sort and keyset cursors.

use serde_json::Value;
use trellis_form::{FieldIssue, check_filter};
use trellis_model::{Action, CheckedFilter, EntityDefinition, FieldKind};
use trellis_store::{Cursor, RecordRow, SortKey};

use super::{ListRequest, RecordPage};
use crate::{Principal, Runtime, RuntimeError};

impl Runtime {
    /// A page of records.
    pub async fn list_records(
        &self,
        actor: &Principal,
        app: &str,
        entity_id: &str,
        request: &ListRequest,
    ) -> Result<RecordPage, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let (entity, _) = loaded.entity(entity_id)?;
        let checked = self.check(actor, &loaded, entity).await?;
        checked.require(Action::Read)?;
        let user_filter = match &request.filter {
            None => CheckedFilter::All,
            Some(text) => {
                let raw: Value =
                    serde_json::from_str(text).map_err(|e| RuntimeError::InvalidQuery {
                        parameter: "filter",
                        issues: vec![FieldIssue {
                            pointer: String::new(),
                            code: "invalid_json",
                            message: format!("filter is not JSON: {e}"),
                        }],
                    })?;
                hidden_fields_in_filter(&checked, &raw, "")?;
                let resolve = |name: &str| checked.subject.variable(name);
                check_filter(&loaded.bundle.entities, entity, &raw, "", &resolve).map_err(
                    |issues| RuntimeError::InvalidQuery {
                        parameter: "filter",
                        issues,
                    },
                )?
            }
        };
        // The user's filter narrows the rows their roles reach, never widens them.
        let filter = CheckedFilter::And(vec![checked.read_filter(), user_filter]);
        let sort = parse_sort(entity, request.sort.as_deref())?;
        if let Some(hidden) = sort.iter().find_map(|key| {
            entity
                .field_by_uid(&key.field_uid)
                .filter(|f| !checked.access.is_visible(f.name.as_str()))
        }) {
            return Err(RuntimeError::InvalidQuery {
                parameter: "sort",
                issues: vec![FieldIssue {
                    pointer: String::new(),
                    code: "unknown_field",
                    message: format!("'{}' is not a field of {}", hidden.name, entity.id),
                }],
            });
        }
        let limit = request.limit.unwrap_or(50);
        if !(1..=1000).contains(&limit) {
            return Err(RuntimeError::InvalidQuery {
                parameter: "limit",
                issues: vec![FieldIssue {
                    pointer: String::new(),
                    code: "out_of_range",
                    message: "limit must be between 1 and 1000".into(),
                }],
            });
        }
        let cursor = match &request.cursor {
            None => None,
            Some(text) => Some(decode_cursor(text, sort.len())?),
        };
        let mut rows = self
            .store()
            .list_records(
                &loaded.id,
                &entity.uid,
                &trellis_store::ListQuery {
                    filter: &filter,
                    search: request.q.as_deref(),
                    sort: &sort,
                    cursor: cursor.as_ref(),
                    limit: limit + 1,
                    include_deleted: request.include_deleted,
                },
            )
            .await?;
        let next_cursor = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|last| encode_cursor(&sort, last))
        } else {
            None
        };
        // The search index covers every searchable field; with hidden fields keep only matches in what
        // this user sees (and count the same way), so a search never reveals a hidden value.
        let visible_match = request
            .q
            .as_deref()
            .filter(|_| checked.access.hides_fields())
            .map(|q| {
                move |item: &super::RecordView| {
                    let visible = trellis_form::records::search_text(entity, &item.data);
                    trellis_model::search::matches_words(&visible, q)
                }
            });
        let total = match (request.count, &visible_match) {
            (false, _) => None,
            (true, None) => Some(
                self.store()
                    .count_records(&loaded.id, &entity.uid, &filter, request.q.as_deref())
                    .await?,
            ),
            (true, Some(matches)) => {
                let mut total = 0;
                let mut after: Option<trellis_store::Cursor> = None;
                loop {
                    let page = self
                        .store()
                        .list_records(
                            &loaded.id,
                            &entity.uid,
                            &trellis_store::ListQuery {
                                filter: &filter,
                                search: request.q.as_deref(),
                                sort: &[],
                                cursor: after.as_ref(),
                                limit: 1000,
                                include_deleted: request.include_deleted,
                            },
                        )
                        .await?;
                    total += page
                        .iter()
                        .filter(|row| matches(&checked.view(row)))
                        .count() as i64;
                    match page.last() {
                        Some(last) if page.len() == 1000 => {
                            after = Some(trellis_store::Cursor {
                                values: Vec::new(),
                                id: last.id.clone(),
                            });
                        }
                        _ => break,
                    }
                }
                Some(total)
            }
        };
        let mut items: Vec<_> = rows.iter().map(|row| checked.view(row)).collect();
        if let Some(matches) = &visible_match {
            items.retain(|item| matches(item));
        }
        Ok(RecordPage {
            items,
            next_cursor,
            total,
        })
    }
}

fn parse_sort(entity: &EntityDefinition, sort: Option<&str>) -> Result<Vec<SortKey>, RuntimeError> {
    let mut keys = Vec::new();
    for (index, part) in sort
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        let (descending, name) = match part.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, part.strip_prefix('+').unwrap_or(part)),
        };
        let field = entity
            .field(name)
            .filter(|f| !matches!(f.kind, FieldKind::Json | FieldKind::Money))
            .ok_or_else(|| RuntimeError::InvalidQuery {
                parameter: "sort",
                issues: vec![FieldIssue {
                    pointer: format!("/{index}"),
                    code: "unknown_field",
                    message: format!(
                        "cannot sort by '{name}': not a sortable field of {}",
                        entity.id
                    ),
                }],
            })?;
        keys.push(SortKey {
            field_uid: field.uid.clone(),
            descending,
        });
    }
    Ok(keys)
}

fn encode_cursor(sort: &[SortKey], last: &RecordRow) -> String {
    let cursor = Cursor {
        values: sort
            .iter()
            .map(|key| {
                last.data
                    .0
                    .get(&key.field_uid)
                    .cloned()
                    .unwrap_or(Value::Null)
            })
            .collect(),
        id: last.id.clone(),
    };
    hex::encode(serde_json::to_vec(&cursor).unwrap_or_default())
}

fn decode_cursor(text: &str, keys: usize) -> Result<Cursor, RuntimeError> {
    let bad = || RuntimeError::InvalidQuery {
        parameter: "cursor",
        issues: vec![FieldIssue {
            pointer: String::new(),
            code: "invalid_cursor",
            message: "cursor is not one this list gave out (use next_cursor with the same sort)"
                .into(),
        }],
    };
    let bytes = hex::decode(text).map_err(|_| bad())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if cursor.values.len() != keys {
        Err(bad())
    } else {
        Ok(cursor)
    }
}

/// A filter naming a field the user cannot see is refused as if the field did not exist (filtering
/// on it would reveal its values).
pub(crate) fn hidden_fields_in_filter(
    checked: &crate::access::Checked<'_>,
    raw: &Value,
    at: &str,
) -> Result<(), RuntimeError> {
    let refuse = |pointer: String, name: &str| RuntimeError::InvalidQuery {
        parameter: "filter",
        issues: vec![FieldIssue {
            pointer,
            code: "unknown_field",
            message: format!("'{name}' is not a field of {}", checked.entity.id),
        }],
    };
    match raw {
        Value::Object(map) => {
            if let Some(Value::String(field)) = map.get("field") {
                let own = field.split('.').next().unwrap_or(field);
                if checked.entity.field(own).is_some() && !checked.access.is_visible(own) {
                    return Err(refuse(format!("{at}/field"), own));
                }
            }
            for (key, value) in map {
                if matches!(key.as_str(), "and" | "or" | "not") {
                    hidden_fields_in_filter(checked, value, &format!("{at}/{key}"))?;
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                hidden_fields_in_filter(checked, item, &format!("{at}/{i}"))?;
            }
        }
        _ => {}
    }
    Ok(())
}
