//! Lists: the checked filter tree, full-text search, sort and keyset cursors.

use serde_json::Value;
use trellis_form::{FieldIssue, check_filter};
use trellis_model::{CheckedFilter, EntityDefinition, FieldKind};
use trellis_store::{Cursor, RecordRow, SortKey};

use super::{ListRequest, RecordPage, view};
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
        let filter = match &request.filter {
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
                let user_id = actor.user_id.clone();
                let resolve =
                    move |name: &str| (name == "$user").then(|| Value::String(user_id.clone()));
                check_filter(&loaded.bundle.entities, entity, &raw, "", &resolve).map_err(
                    |issues| RuntimeError::InvalidQuery {
                        parameter: "filter",
                        issues,
                    },
                )?
            }
        };
        let sort = parse_sort(entity, request.sort.as_deref())?;
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
        let total = if request.count {
            Some(
                self.store()
                    .count_records(&loaded.id, &entity.uid, &filter, request.q.as_deref())
                    .await?,
            )
        } else {
            None
        };
        Ok(RecordPage {
            items: rows.iter().map(|row| view(entity, row)).collect(),
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
