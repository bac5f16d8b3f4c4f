//! Reading records a page at a time and counting them: the typed filter tree, full-text words,
//! sort keys and keyset cursors become one parameterized statement (`query.rs`); a search first
//! indexes whatever an import left for the search indexer (`search_backlog.rs`).

use trellis_model::CheckedFilter;

use super::{ListQuery, RecordRow};
use crate::query::{Arg, Sql, push_after, push_filter, push_order, push_search};
use crate::{Store, StoreError};

impl Store {
    /// A page of records matching `filter`, in `sort` order, after `cursor`; at most `limit`.
    pub async fn list_records(
        &self,
        app: &str,
        entity: &str,
        query: &ListQuery<'_>,
    ) -> Result<Vec<RecordRow>, StoreError> {
        let ListQuery {
            filter,
            search,
            sort,
            cursor,
            limit,
            include_deleted,
        } = *query;
        if search.is_some() {
            self.index_search_backlog_of(app, entity).await?;
        }
        let backend = self.backend();
        let mut sql = Sql::default();
        sql.push(select_record!());
        let app_arg = sql.arg(Arg::Text(app.to_owned()));
        let entity_arg = sql.arg(Arg::Text(entity.to_owned()));
        sql.push(&format!(
            " WHERE r.app_id = {app_arg} AND r.entity = {entity_arg}"
        ));
        if !include_deleted {
            sql.push(" AND r.deleted_at IS NULL");
        }
        sql.push(" AND ");
        push_filter(&mut sql, backend, app, filter);
        if let Some(q) = search {
            push_search(&mut sql, backend, q);
        }
        if let Some(cursor) = cursor {
            push_after(&mut sql, backend, sort, cursor);
        }
        push_order(&mut sql, backend, sort);
        let limit_arg = sql.arg(Arg::Int(limit));
        sql.push(&format!(" LIMIT {limit_arg}"));
        let Sql { text, args } = sql;
        let rows = crate::with_pool!(self, read, |pool| {
            // The text is fixed SQL and `$n` placeholders only (see `query.rs`); values are bound.
            bind_args!(
                sqlx::query_as::<_, RecordRow>(sqlx::AssertSqlSafe(text.clone())),
                &args
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// How many live records match `filter` (on demand; lists never count).
    pub async fn count_records(
        &self,
        app: &str,
        entity: &str,
        filter: &CheckedFilter,
        search: Option<&str>,
    ) -> Result<i64, StoreError> {
        if search.is_some() {
            self.index_search_backlog_of(app, entity).await?;
        }
        let backend = self.backend();
        let mut sql = Sql::default();
        let app_arg = sql.arg(Arg::Text(app.to_owned()));
        let entity_arg = sql.arg(Arg::Text(entity.to_owned()));
        sql.push(&format!("SELECT COUNT(*) FROM records r WHERE r.app_id = {app_arg} AND r.entity = {entity_arg} AND r.deleted_at IS NULL AND "));
        push_filter(&mut sql, backend, app, filter);
        if let Some(q) = search {
            push_search(&mut sql, backend, q);
        }
        let Sql { text, args } = sql;
        let count: i64 = crate::with_pool!(self, read, |pool| {
            bind_args!(sqlx::query_scalar(sqlx::AssertSqlSafe(text.clone())), &args)
                .fetch_one(pool)
                .await?
        });
        Ok(count)
    }
}
