//! Records end to end over the HTTP API, on both backends: validation with localized pointer errors,
//! CRUD with ETag/If-Match, lists (filter tree, sort, keyset pages), relations, uniques, auto-numbers,
//! soft delete and history, CSV/NDJSON import, and schema evolution without losing a value.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::api::{TestApi, assert_problem};
use crate::support::bundles::crm_bundle;
use crate::support::{Backend, on_both_backends};

const CUSTOMERS: &str = "/api/apps/crm/entities/customer/records";
const ACCOUNTS: &str = "/api/apps/crm/entities/account/records";

async fn crm(backend: Backend) -> Option<TestApi> {
    let api = TestApi::start(backend).await?;
    let created = api.call("POST", "/api/apps", Some(crm_bundle())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    Some(api)
}

macro_rules! crm_or_skip {
    ($backend:expr) => {
        match crm($backend).await {
            Some(api) => api,
            None => return,
        }
    };
}

fn errors_at(reply: &crate::support::api::Reply) -> Vec<(String, String)> {
    reply.body["errors"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|e| {
            (
                e["pointer"].as_str().unwrap_or("").to_owned(),
                e["code"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

on_both_backends!(
    create_validates_every_field_in_the_callers_language,
    patch_uses_if_match_and_merge_patch,
    lists_filter_sort_and_page_by_keyset,
    relations_uniques_and_auto_numbers,
    delete_is_soft_with_history_and_relation_integrity,
    import_reports_bad_rows_and_keeps_good_ones,
    publish_renames_removes_and_converts_without_losing_values,
    concurrent_patches_lose_no_update,
    export_and_xlsx_import_round_trip,
    computed_fields_and_conditional_rules,
    full_text_search_finds_words_in_any_language,
    concurrent_creates_share_commits_but_keep_their_own_outcomes,
    large_imports_stream_in_chunks,
);

async fn create_validates_every_field_in_the_callers_language(backend: Backend) {
    let api = crm_or_skip!(backend);
    let created = api
        .call(
            "POST",
            CUSTOMERS,
            Some(json!({"name": "李雷", "email": "li@example.cn", "score": 80})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.headers["etag"], "\"1\"");
    let record = &created.body;
    assert_eq!(record["version"], 1);
    assert_eq!(record["data"]["name"], "李雷");
    assert_eq!(
        record["data"]["stage"], "lead",
        "defaults fill missing fields"
    );
    assert!(
        record["data"]["code"].as_str().unwrap().starts_with("CUS-"),
        "{record}"
    );
    assert!(record["data"]["created"].is_string());
    for key in ["id", "created_at", "updated_at"] {
        assert!(record[key].is_string(), "record lacks {key}");
    }
    let id = record["id"].as_str().unwrap();
    let fetched = api.call("GET", &format!("{CUSTOMERS}/{id}"), None).await;
    assert_eq!(fetched.body, created.body);

    let bad = json!({"name": "", "email": "not-an-email", "score": 101, "stage": "alien", "joined_on": "yesterday", "nope": 1, "code": "X"});
    let refused = api
        .call_with(
            "POST",
            CUSTOMERS,
            &[("accept-language", "zh-CN,zh;q=0.9")],
            Some(bad.clone()),
        )
        .await;
    assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY);
    let found = errors_at(&refused);
    for expected in [
        ("/name", "min_length"),
        ("/email", "format"),
        ("/score", "maximum"),
        ("/stage", "enum"),
        ("/joined_on", "format"),
        ("/nope", "unknown_field"),
        ("/code", "read_only"),
    ] {
        assert!(
            found
                .iter()
                .any(|(p, c)| p == expected.0 && c == expected.1),
            "missing {expected:?} in {found:?}"
        );
    }
    let score_message = refused.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["pointer"] == "/score")
        .unwrap()["message"]
        .clone();
    assert_eq!(score_message, "不能大于 100");
    let english = api.call("POST", CUSTOMERS, Some(bad)).await;
    let score_message = english.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["pointer"] == "/score")
        .unwrap()["message"]
        .clone();
    assert_eq!(score_message, "must be at most 100");
    let missing = api.call("POST", CUSTOMERS, Some(json!({"score": 1}))).await;
    assert!(errors_at(&missing).contains(&("/name".into(), "required".into())));
    let list = api.call("GET", CUSTOMERS, None).await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        1,
        "refused records were not stored"
    );

    assert_problem(
        &api.call("GET", "/api/apps/crm/entities/ghost/records", None)
            .await,
        StatusCode::NOT_FOUND,
    );
    assert_problem(
        &api.call("GET", &format!("{CUSTOMERS}/no-such-id"), None)
            .await,
        StatusCode::NOT_FOUND,
    );
}

async fn patch_uses_if_match_and_merge_patch(backend: Backend) {
    let api = crm_or_skip!(backend);
    let created = api
        .call(
            "POST",
            CUSTOMERS,
            Some(json!({"name": "Ann", "region": "north", "tags": ["a"]})),
        )
        .await;
    let path = format!("{CUSTOMERS}/{}", created.body["id"].as_str().unwrap());
    let patched = api
        .call_with(
            "PATCH",
            &path,
            &[("if-match", "\"1\"")],
            Some(json!({"region": null, "score": 5})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.headers["etag"], "\"2\"");
    assert_eq!(patched.body["data"]["score"], 5);
    assert!(
        patched.body["data"].get("region").is_none(),
        "null removes a field (merge patch)"
    );
    assert_eq!(
        patched.body["data"]["tags"],
        json!(["a"]),
        "untouched fields stay"
    );

    let stale = api
        .call_with(
            "PATCH",
            &path,
            &[("if-match", "\"1\"")],
            Some(json!({"score": 99})),
        )
        .await;
    assert_problem(&stale, StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        api.call("GET", &path, None).await.body["data"]["score"],
        5,
        "a stale write changes nothing"
    );
    let invalid = api
        .call("PATCH", &path, Some(json!({"score": "high"})))
        .await;
    assert_problem(&invalid, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        errors_at(&invalid),
        vec![("/score".to_owned(), "type".to_owned())]
    );
    assert_eq!(api.call("GET", &path, None).await.body["version"], 2);
}

async fn lists_filter_sort_and_page_by_keyset(backend: Backend) {
    let api = crm_or_skip!(backend);
    let gold = api
        .call(
            "POST",
            ACCOUNTS,
            Some(json!({"name": "Gold Co", "tier": "gold"})),
        )
        .await
        .body["id"]
        .clone();
    let silver = api
        .call(
            "POST",
            ACCOUNTS,
            Some(json!({"name": "Silver Co", "tier": "silver"})),
        )
        .await
        .body["id"]
        .clone();
    let regions = ["north", "south", "east"];
    let mut expected = Vec::new();
    for i in 0..25i64 {
        let mut customer = json!({"name": format!("Customer {i:02}"), "region": regions[i as usize % 3], "tags": [format!("t{}", i % 4)],
                                  "account": if i % 2 == 0 { gold.clone() } else { silver.clone() }, "vip": i % 5 == 0});
        if i % 7 != 0 {
            customer["score"] = json!(i * 3 % 50);
        }
        let reply = api.call("POST", CUSTOMERS, Some(customer.clone())).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        expected.push(customer);
    }
    let query = |filter: Value| {
        format!(
            "{CUSTOMERS}?limit=1000&filter={}",
            urlencode(&filter.to_string())
        )
    };
    let count_of =
        |reply: &crate::support::api::Reply| reply.body["items"].as_array().unwrap().len();
    let matching = |pred: &dyn Fn(&Value) -> bool| expected.iter().filter(|c| pred(c)).count();

    let north = api
        .call(
            "GET",
            &query(json!({"field": "region", "op": "eq", "value": "north"})),
            None,
        )
        .await;
    assert_eq!(count_of(&north), matching(&|c| c["region"] == "north"));
    let high = api
        .call(
            "GET",
            &query(json!({"field": "score", "op": "gte", "value": 30})),
            None,
        )
        .await;
    assert_eq!(
        count_of(&high),
        matching(&|c| c["score"].as_i64().is_some_and(|s| s >= 30))
    );
    let between = api
        .call(
            "GET",
            &query(json!({"field": "score", "op": "between", "value": [10, 20]})),
            None,
        )
        .await;
    assert_eq!(
        count_of(&between),
        matching(&|c| c["score"].as_i64().is_some_and(|s| (10..=20).contains(&s)))
    );
    let no_score = api
        .call(
            "GET",
            &query(json!({"field": "score", "op": "is_empty", "value": true})),
            None,
        )
        .await;
    assert_eq!(count_of(&no_score), matching(&|c| c.get("score").is_none()));
    let tagged = api
        .call(
            "GET",
            &query(json!({"field": "tags", "op": "contains", "value": "t1"})),
            None,
        )
        .await;
    assert_eq!(count_of(&tagged), matching(&|c| c["tags"][0] == "t1"));
    let named = api
        .call(
            "GET",
            &query(json!({"field": "name", "op": "starts_with", "value": "Customer 1"})),
            None,
        )
        .await;
    assert_eq!(count_of(&named), 10);
    let complex = json!({"and": [
        {"or": [{"field": "region", "op": "in", "value": ["south", "east"]}, {"field": "vip", "op": "eq", "value": true}]},
        {"not": {"field": "score", "op": "lt", "value": 10}}
    ]});
    let complex_reply = api.call("GET", &query(complex), None).await;
    assert_eq!(
        count_of(&complex_reply),
        matching(&|c| (c["region"] != "north" || c["vip"] == true)
            && c["score"].as_i64().is_none_or(|s| s >= 10))
    );
    let via_relation = api
        .call(
            "GET",
            &query(json!({"field": "account.tier", "op": "eq", "value": "gold"})),
            None,
        )
        .await;
    assert_eq!(count_of(&via_relation), matching(&|c| c["account"] == gold));

    // Keyset pages of 10 in `-score,name` order visit every record exactly once, in order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let mut path = format!("{CUSTOMERS}?sort=-score,name&limit=10&count=true");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = api.call("GET", &path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        assert_eq!(page.body["total"], 25);
        for item in page.body["items"].as_array().unwrap() {
            seen.push((
                item["data"]["score"].as_i64(),
                item["data"]["name"].as_str().unwrap().to_owned(),
            ));
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut sorted: Vec<(Option<i64>, String)> = expected
        .iter()
        .map(|c| (c["score"].as_i64(), c["name"].as_str().unwrap().to_owned()))
        .collect();
    // Descending by score with missing scores last, then name ascending.
    sorted.sort_by(|a, b| match (a.0, b.0) {
        (Some(x), Some(y)) => y.cmp(&x).then(a.1.cmp(&b.1)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.1.cmp(&b.1),
    });
    assert_eq!(seen, sorted);

    for (filter, pointer) in [
        (json!({"field": "ghost", "op": "eq", "value": 1}), "/field"),
        (
            json!({"and": [{"field": "vip", "op": "contains", "value": "x"}]}),
            "/and/0/op",
        ),
        (
            json!({"field": "score", "op": "gt", "value": "many"}),
            "/value",
        ),
        (
            json!({"field": "region", "op": "like", "value": "x"}),
            "/op",
        ),
    ] {
        let reply = api.call("GET", &query(filter), None).await;
        assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            reply.body["errors"][0]["pointer"], pointer,
            "{}",
            reply.text
        );
        assert_eq!(reply.body["errors"][0]["parameter"], "filter");
    }
    assert_problem(
        &api.call("GET", &format!("{CUSTOMERS}?sort=ghost"), None)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert_problem(
        &api.call("GET", &format!("{CUSTOMERS}?limit=5000"), None)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert_problem(
        &api.call("GET", &format!("{CUSTOMERS}?cursor=zz"), None)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
}

pub(crate) fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn relations_uniques_and_auto_numbers(backend: Backend) {
    let api = crm_or_skip!(backend);
    let dangling = api
        .call(
            "POST",
            CUSTOMERS,
            Some(json!({"name": "X", "account": "no-such-account"})),
        )
        .await;
    assert_problem(&dangling, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        errors_at(&dangling),
        vec![("/account".to_owned(), "relation_missing".to_owned())]
    );
    let first = api
        .call(
            "POST",
            CUSTOMERS,
            Some(json!({"name": "A", "email": "Same@Example.com"})),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let duplicate = api
        .call(
            "POST",
            CUSTOMERS,
            Some(json!({"name": "B", "email": "same@example.com"})),
        )
        .await;
    assert_problem(&duplicate, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        errors_at(&duplicate),
        vec![("/email".to_owned(), "unique".to_owned())]
    );
    let second = api
        .call(
            "POST",
            CUSTOMERS,
            Some(json!({"name": "C", "email": "other@example.com"})),
        )
        .await;
    let code = |r: &crate::support::api::Reply| r.body["data"]["code"].as_str().unwrap().to_owned();
    assert_ne!(code(&first), code(&second), "auto-numbers never repeat");
    assert!(
        code(&first).ends_with("0001") || code(&second).ends_with("0002"),
        "{} {}",
        code(&first),
        code(&second)
    );

    // Deleting frees the unique value; restoring while it is taken again is refused.
    let first_path = format!("{CUSTOMERS}/{}", first.body["id"].as_str().unwrap());
    assert_eq!(
        api.call("DELETE", &first_path, None).await.status,
        StatusCode::NO_CONTENT
    );
    let reuse = api
        .call(
            "POST",
            CUSTOMERS,
            Some(json!({"name": "D", "email": "same@example.com"})),
        )
        .await;
    assert_eq!(reuse.status, StatusCode::CREATED, "{}", reuse.text);
    assert_problem(
        &api.call("POST", &format!("{first_path}/restore"), None)
            .await,
        StatusCode::CONFLICT,
    );
    // An update is checked for the references it sets, and keeps the ones it does not touch.
    let account = api
        .call("POST", ACCOUNTS, Some(json!({"name": "Kept Ltd"})))
        .await;
    let holder = api
        .call(
            "POST",
            CUSTOMERS,
            Some(json!({"name": "Holder", "account": account.body["id"]})),
        )
        .await;
    assert_eq!(holder.status, StatusCode::CREATED, "{}", holder.text);
    let holder_path = format!("{CUSTOMERS}/{}", holder.body["id"].as_str().unwrap());
    let moved = api
        .call(
            "PATCH",
            &holder_path,
            Some(json!({"account": "no-such-account"})),
        )
        .await;
    assert_problem(&moved, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        errors_at(&moved),
        vec![("/account".to_owned(), "relation_missing".to_owned())]
    );
    let renamed = api
        .call("PATCH", &holder_path, Some(json!({"name": "Holder 2"})))
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    assert_eq!(renamed.body["data"]["account"], account.body["id"]);
}

async fn delete_is_soft_with_history_and_relation_integrity(backend: Backend) {
    let api = crm_or_skip!(backend);
    let account = api
        .call("POST", ACCOUNTS, Some(json!({"name": "Acme"})))
        .await;
    let account_path = format!("{ACCOUNTS}/{}", account.body["id"].as_str().unwrap());
    let customer = api
        .call(
            "POST",
            CUSTOMERS,
            Some(json!({"name": "Wu", "account": account.body["id"]})),
        )
        .await;
    let customer_path = format!("{CUSTOMERS}/{}", customer.body["id"].as_str().unwrap());

    let refused = api.call("DELETE", &account_path, None).await;
    assert_problem(&refused, StatusCode::CONFLICT);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("customer"),
        "{}",
        refused.text
    );
    assert_eq!(
        api.call("GET", &account_path, None).await.status,
        StatusCode::OK,
        "restrict changes nothing"
    );

    api.call("PATCH", &customer_path, Some(json!({"score": 7})))
        .await;
    assert_eq!(
        api.call_with("DELETE", &customer_path, &[("if-match", "\"1\"")], None)
            .await
            .status,
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(
        api.call("DELETE", &customer_path, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_problem(
        &api.call("GET", &customer_path, None).await,
        StatusCode::NOT_FOUND,
    );
    assert_eq!(
        api.call("GET", CUSTOMERS, None).await.body["items"],
        json!([])
    );
    let with_deleted = api
        .call("GET", &format!("{CUSTOMERS}?include_deleted=true"), None)
        .await;
    assert_eq!(with_deleted.body["items"][0]["deleted"], true);
    assert_eq!(
        api.call("DELETE", &account_path, None).await.status,
        StatusCode::NO_CONTENT,
        "no live reference left"
    );

    let restored = api
        .call("POST", &format!("{customer_path}/restore"), None)
        .await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.text);
    assert_eq!(
        restored.body["data"]["score"], 7,
        "restore brings every value back"
    );
    let history = api
        .call("GET", &format!("{customer_path}/history"), None)
        .await;
    let operations: Vec<&str> = history
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["operation"].as_str().unwrap())
        .collect();
    assert_eq!(operations, vec!["create", "update", "delete", "restore"]);
    let update = &history.body[1];
    assert_eq!(update["before"]["score"], Value::Null);
    assert_eq!(update["after"]["score"], 7);
    assert!(update["actor"].is_string() && update["at"].is_string());
    // The create shows the first version (stored once, with the record), not today's.
    let create = &history.body[0];
    assert_eq!(create["before"], Value::Null);
    assert_eq!(create["after"], update["before"]);
    assert_eq!(create["after"]["name"], "Wu");
    assert_eq!(create["after"]["score"], Value::Null);
    // A record never changed since: its create shows the record.
    let untouched = api
        .call("POST", ACCOUNTS, Some(json!({"name": "Beta"})))
        .await;
    let untouched_path = format!("{ACCOUNTS}/{}", untouched.body["id"].as_str().unwrap());
    let history = api
        .call("GET", &format!("{untouched_path}/history"), None)
        .await;
    assert_eq!(
        history.body.as_array().map(Vec::len),
        Some(1),
        "{}",
        history.text
    );
    assert_eq!(history.body[0]["after"]["name"], "Beta");
}

async fn import_reports_bad_rows_and_keeps_good_ones(backend: Backend) {
    let api = crm_or_skip!(backend);
    let import = format!("{CUSTOMERS}/../import").replace("/records/../", "/");
    // Headers by zh-CN label, English label and id.
    let csv = "姓名,Email,score,tags\nAlice,alice@example.com,10,\"a, b\"\n,bad@example.com,5,\nBob,not-an-email,200,\nCara,cara@example.com,x,\nDan,alice@example.com,3,\n";
    let report = api.post_text(&import, "text/csv", csv).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    assert_eq!(report.body["inserted"], 1);
    let rejected = report.body["rejected"].as_array().unwrap();
    let rows: Vec<i64> = rejected
        .iter()
        .map(|r| r["row"].as_i64().unwrap())
        .collect();
    assert_eq!(rows, vec![3, 4, 5, 6], "{}", report.text);
    assert!(
        rejected
            .iter()
            .all(|r| !r["errors"].as_array().unwrap().is_empty())
    );
    let list = api.call("GET", CUSTOMERS, None).await;
    assert_eq!(list.body["items"][0]["data"]["tags"], json!(["a", "b"]));

    let atomic = api
        .post_text(
            &format!("{import}?atomic=true"),
            "text/csv",
            "name,score\nEve,1\nFay,nope\n",
        )
        .await;
    assert_eq!(atomic.body["inserted"], 0);
    assert_eq!(
        api.call("GET", CUSTOMERS, None).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "atomic: nothing in"
    );

    // Lines: good; a bad value; not JSON; JSON but no object; an object with text after it; a key
    // given twice (the last value counts, as in any JSON object read here).
    let ndjson = "{\"name\": \"Gus\", \"score\": 4}\n{\"name\": \"Hal\", \"score\": \"lots\"}\nnot json\n\
                  [1, 2]\n{\"name\": \"Ike\"} {\"name\": \"Jo\"}\n{\"name\": \"Kai\", \"score\": 1, \"score\": 7}\n";
    let report = api.post_text(&import, "application/x-ndjson", ndjson).await;
    assert_eq!(report.body["inserted"], 2, "{}", report.text);
    let codes: Vec<(i64, &str)> = report.body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["row"].as_i64().unwrap(),
                r["errors"][0]["code"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            (2, "type"),
            (3, "invalid_json"),
            (4, "not_an_object"),
            (5, "invalid_json")
        ],
        "{}",
        report.text
    );
    if backend == Backend::Postgres {
        // The import left nothing in the search index's pending list for every search to read.
        let pending_pages: i64 = postgres_scalar(
            &api,
            "SELECT gin_clean_pending_list('records_search'::regclass)",
        )
        .await;
        assert_eq!(pending_pages, 0, "the import merged its search entries");
    } else {
        // SQLite: the imported rows wait for the search indexer; the scheduler's pass indexes
        // them (and a search would first, below for the next import's rows).
        let store = api.runtime.store();
        let (app, entity) = ("crm", "customer");
        // The CSV import's one row and this import's two, a range per import.
        assert_eq!(store.search_backlog(app, entity).await.unwrap(), 3);
        let steps = api
            .runtime
            .index_search_backlog(std::time::Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(steps, 2);
        assert_eq!(store.search_backlog(app, entity).await.unwrap(), 0);
        let more = api
            .post_text(&import, "application/x-ndjson", "{\"name\": \"Zoltan\"}\n")
            .await;
        assert_eq!(more.body["inserted"], 1, "{}", more.text);
        assert_eq!(store.search_backlog(app, entity).await.unwrap(), 1);
        let zoltan = api
            .call("GET", &format!("{CUSTOMERS}?q=zoltan"), None)
            .await;
        assert_eq!(
            zoltan.body["items"][0]["data"]["name"], "Zoltan",
            "{}",
            zoltan.text
        );
        assert_eq!(store.search_backlog(app, entity).await.unwrap(), 0);
    }
    let kai = api.call("GET", &format!("{CUSTOMERS}?q=kai"), None).await;
    assert_eq!(kai.body["items"][0]["data"]["score"], 7, "{}", kai.text);

    let unknown = api
        .post_text(&import, "text/csv", "name,shoe_size\nIvy,38\n")
        .await;
    assert_problem(&unknown, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown.body["errors"][0]["pointer"], "/columns/1");
    assert_problem(
        &api.post_text(&import, "application/pdf", "%PDF").await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    );

    if backend == Backend::Postgres {
        // An import large for its table leaves the planner's statistics fresh (a table last seen
        // empty would keep searches off the index); the small ones above did not need it.
        let known_rows = || {
            postgres_scalar::<f32>(
                &api,
                "SELECT reltuples FROM pg_class WHERE oid = 'records'::regclass",
            )
        };
        let before = known_rows().await;
        let many: String = (0..200)
            .map(|i| format!("{{\"name\": \"Bulk {i}\"}}\n"))
            .collect();
        let report = api.post_text(&import, "application/x-ndjson", &many).await;
        assert_eq!(report.body["inserted"], 200, "{}", report.text);
        let after = known_rows().await;
        assert!(
            after >= 200.0,
            "the statistics count the imported rows: {before} -> {after}"
        );
    }
}

/// One value of `sql` on the test's PostgreSQL database (what the API does not show).
async fn postgres_scalar<T>(api: &TestApi, sql: &'static str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
{
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(api.database_url())
        .await
        .unwrap();
    sqlx::query_scalar(sql).fetch_one(&mut db).await.unwrap()
}

async fn publish_renames_removes_and_converts_without_losing_values(backend: Backend) {
    let api = crm_or_skip!(backend);
    let a = api.call("POST", CUSTOMERS, Some(json!({"name": "Ann", "notes": "likes tea", "external_ref": "42", "region": "west"}))).await;
    let b = api
        .call(
            "POST",
            CUSTOMERS,
            Some(json!({"name": "Ben", "notes": "vip", "external_ref": "A-7"})),
        )
        .await;
    let a_path = format!("{CUSTOMERS}/{}", a.body["id"].as_str().unwrap());
    let b_path = format!("{CUSTOMERS}/{}", b.body["id"].as_str().unwrap());

    // v2: rename region → territory (same uid), remove notes, external_ref text → integer.
    let v1 = crm_bundle();
    let mut v2 = v1.clone();
    v2["trellis.json"]["version"] = json!("1.1.0");
    let properties = v2["entities/customer.schema.json"]["properties"]
        .as_object_mut()
        .unwrap();
    properties.remove("region");
    properties.insert(
        "territory".into(),
        json!({"type": "string", "x-trellis": {"uid": "region"}}),
    );
    properties.remove("notes");
    properties.insert("external_ref".into(), json!({"type": "integer"}));

    let dry = api
        .call("PUT", "/api/apps/crm/bundle?dry_run=true", Some(v2.clone()))
        .await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.text);
    assert_eq!(dry.body["records_migrated"], 2);
    let unconverted = dry.body["unconverted"].as_array().unwrap();
    assert_eq!(unconverted.len(), 1, "{}", dry.text);
    assert_eq!(unconverted[0]["record_id"], b.body["id"]);
    assert_eq!(unconverted[0]["value"], "A-7");
    assert_eq!(
        api.call("GET", &a_path, None).await.body["data"]["external_ref"],
        "42",
        "a dry run changes nothing"
    );

    let published = api.call("PUT", "/api/apps/crm/bundle", Some(v2)).await;
    assert_eq!(published.status, StatusCode::OK, "{}", published.text);
    let a_now = api.call("GET", &a_path, None).await.body;
    assert_eq!(
        a_now["data"]["territory"], "west",
        "renamed field keeps its value"
    );
    assert_eq!(
        a_now["data"]["external_ref"], 42,
        "text converted to number"
    );
    assert!(
        a_now["data"].get("notes").is_none(),
        "removed field leaves the API"
    );
    let b_now = api.call("GET", &b_path, None).await.body;
    assert!(
        b_now["data"].get("external_ref").is_none(),
        "unconvertible value is not shown as a number"
    );
    let filtered = api
        .call(
            "GET",
            &format!(
                "{CUSTOMERS}?filter={}",
                urlencode(&json!({"field": "territory", "op": "eq", "value": "west"}).to_string())
            ),
            None,
        )
        .await;
    assert_eq!(filtered.body["items"].as_array().unwrap().len(), 1);

    // An edit under v2 does not drop the hidden values.
    api.call("PATCH", &b_path, Some(json!({"score": 1}))).await;

    // v3 = v1 again: notes come back, and so does the text that could not become a number.
    let mut v3 = v1.clone();
    v3["trellis.json"]["version"] = json!("1.2.0");
    let restored = api.call("PUT", "/api/apps/crm/bundle", Some(v3)).await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.text);
    let b_back = api.call("GET", &b_path, None).await.body;
    assert_eq!(
        b_back["data"]["notes"], "vip",
        "removed values come back with the field"
    );
    assert_eq!(
        b_back["data"]["external_ref"], "A-7",
        "the value that could not become a number is back"
    );
    assert_eq!(b_back["data"]["score"], 1);
    let a_back = api.call("GET", &a_path, None).await.body;
    assert_eq!(a_back["data"]["notes"], "likes tea");
    assert_eq!(a_back["data"]["region"], "west");
    assert_eq!(
        a_back["data"]["external_ref"], "42",
        "converted back to text"
    );
    let b_history = api
        .call("GET", &format!("{b_path}/history"), None)
        .await
        .body;
    assert!(
        b_history
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["operation"] == "migrate"),
        "migrations are in the history"
    );
    let original = b_history.as_array().unwrap()[0]["after"]["external_ref"].clone();
    assert_eq!(original, "A-7", "history keeps the value as typed");
}

async fn concurrent_patches_lose_no_update(backend: Backend) {
    let api = crm_or_skip!(backend);
    let created = api
        .call(
            "POST",
            CUSTOMERS,
            Some(json!({"name": "Counter", "score": 0})),
        )
        .await;
    let path = format!("{CUSTOMERS}/{}", created.body["id"].as_str().unwrap());
    let api = std::sync::Arc::new(api);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let api = api.clone();
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let current = api.call("GET", &path, None).await;
            let version = current.body["version"].as_i64().unwrap();
            let score = current.body["data"]["score"].as_i64().unwrap();
            let etag = format!("\"{version}\"");
            let reply = api
                .call_with(
                    "PATCH",
                    &path,
                    &[("if-match", etag.as_str())],
                    Some(json!({"score": score + 1})),
                )
                .await;
            reply.status
        }));
    }
    let mut applied = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::OK => applied += 1,
            StatusCode::PRECONDITION_FAILED => {}
            other => panic!("a concurrent PATCH must apply or get 412, got {other}"),
        }
    }
    let last = api.call("GET", &path, None).await.body;
    assert!(applied >= 1);
    assert_eq!(
        last["data"]["score"], applied,
        "every applied increment is there: no lost update"
    );
    assert_eq!(last["version"], applied + 1);
}

async fn export_and_xlsx_import_round_trip(backend: Backend) {
    let api = crm_or_skip!(backend);
    for (name, score) in [("Ann", 3), ("Bob", 9), ("Cid", 5)] {
        api.call(
            "POST",
            CUSTOMERS,
            Some(json!({"name": name, "score": score, "tags": ["x", "y"]})),
        )
        .await;
    }
    let export = "/api/apps/crm/entities/customer/export";
    let filter = urlencode(&json!({"field": "score", "op": "gte", "value": 4}).to_string());
    let csv = api
        .call(
            "GET",
            &format!("{export}?sort=-score&filter={filter}"),
            None,
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.text);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let lines: Vec<&str> = csv.text.lines().collect();
    assert!(
        lines[0].starts_with("id,code,name,email,score"),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines.len(),
        3,
        "header + the two matching rows: {}",
        csv.text
    );
    assert!(
        lines[1].contains(",Bob,") && lines[2].contains(",Cid,"),
        "sorted by -score: {}",
        csv.text
    );
    assert!(
        lines[1].contains("\"x, y\""),
        "lists are readable text: {}",
        lines[1]
    );

    let xlsx = api
        .call("GET", &format!("{export}?format=xlsx&sort=name"), None)
        .await;
    assert_eq!(xlsx.status, StatusCode::OK);
    let bytes = api
        .raw_bytes(&format!("{export}?format=xlsx&sort=name"))
        .await;
    use calamine::Reader;
    let mut workbook = calamine::Xlsx::new(std::io::Cursor::new(bytes)).expect("a valid xlsx");
    let range = workbook.worksheet_range_at(0).unwrap().unwrap();
    let names: Vec<String> = range
        .rows()
        .enumerate()
        .filter(|(i, _)| *i > 0)
        .map(|(_, r)| r[2].to_string())
        .collect();
    assert_eq!(names, vec!["Ann", "Bob", "Cid"]);
    assert_eq!(
        range.rows().nth(2).unwrap()[4],
        calamine::Data::Float(9.0),
        "numbers stay numbers"
    );
    assert_problem(
        &api.call("GET", &format!("{export}?format=pdf"), None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );

    // An Excel sheet with Chinese headers imports; a bad row is reported by its spreadsheet row.
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    for (column, title) in ["姓名", "评分", "joined_on"].iter().enumerate() {
        sheet.write_string(0, column as u16, *title).unwrap();
    }
    sheet.write_string(1, 0, "Dee").unwrap();
    sheet.write_number(1, 1, 7.0).unwrap();
    sheet.write_string(1, 2, "2024-02-29").unwrap();
    sheet.write_string(2, 0, "Eve").unwrap();
    sheet.write_number(2, 1, 700.0).unwrap();
    let file = workbook.save_to_buffer().unwrap();
    let request = axum::http::Request::builder()
        .method("POST")
        .uri("/api/apps/crm/entities/customer/import")
        .header("authorization", format!("Bearer {}", api.token))
        .header(
            "content-type",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
        .body(axum::body::Body::from(file))
        .unwrap();
    let report = api.raw(request).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    assert_eq!(report.body["inserted"], 1, "{}", report.text);
    assert_eq!(report.body["rejected"][0]["row"], 3);
    assert_eq!(report.body["rejected"][0]["errors"][0]["pointer"], "/score");
    let dee = api
        .call(
            "GET",
            &format!(
                "{CUSTOMERS}?filter={}",
                urlencode(&json!({"field": "name", "op": "eq", "value": "Dee"}).to_string())
            ),
            None,
        )
        .await;
    assert_eq!(dee.body["items"][0]["data"]["score"], 7);
    assert_eq!(dee.body["items"][0]["data"]["joined_on"], "2024-02-29");
}

async fn computed_fields_and_conditional_rules(backend: Backend) {
    let api = crm_or_skip!(backend);
    let created = api
        .call(
            "POST",
            CUSTOMERS,
            Some(json!({"name": "Kai", "score": 45, "segment": "smb"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["data"]["grade"], 5, "computed on save");
    let path = format!("{CUSTOMERS}/{}", created.body["id"].as_str().unwrap());
    let patched = api.call("PATCH", &path, Some(json!({"score": 91}))).await;
    assert_eq!(
        patched.body["data"]["grade"], 10,
        "recomputed on every save"
    );
    let cleared = api.call("PATCH", &path, Some(json!({"score": null}))).await;
    assert!(
        cleared.body["data"].get("grade").is_none(),
        "{}",
        cleared.text
    );

    let written = api.call("PATCH", &path, Some(json!({"grade": 1}))).await;
    assert_eq!(
        errors_at(&written),
        vec![("/grade".to_owned(), "read_only".to_owned())]
    );
    let churned = api
        .call("PATCH", &path, Some(json!({"stage": "churned"})))
        .await;
    assert_eq!(
        errors_at(&churned),
        vec![("/churn_reason".to_owned(), "required".to_owned())]
    );
    let churned = api
        .call(
            "PATCH",
            &path,
            Some(json!({"stage": "churned", "churn_reason": "price"})),
        )
        .await;
    assert_eq!(churned.status, StatusCode::OK, "{}", churned.text);
    api.call("PATCH", &path, Some(json!({"vip": true}))).await;
    let locked = api
        .call("PATCH", &path, Some(json!({"segment": "enterprise"})))
        .await;
    assert_eq!(
        errors_at(&locked),
        vec![("/segment".to_owned(), "read_only".to_owned())]
    );
    let same = api
        .call("PATCH", &path, Some(json!({"segment": "smb", "score": 3})))
        .await;
    assert_eq!(
        same.status,
        StatusCode::OK,
        "sending an unchanged read-only value is fine: {}",
        same.text
    );

    let mut broken = crm_bundle();
    broken["trellis.json"]["id"] = json!("crm2");
    broken["entities/customer.schema.json"]["properties"]["grade"]["x-trellis"]["computed"] =
        json!("score +* 2");
    let refused = api.call("POST", "/api/apps", Some(broken)).await;
    assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused.body["errors"][0]["pointer"], "/properties/grade/x-trellis/computed",
        "{}",
        refused.text
    );
}

async fn full_text_search_finds_words_in_any_language(backend: Backend) {
    let api = crm_or_skip!(backend);
    for (name, notes) in [
        ("王芳", "上海客户，喜欢绿茶"),
        ("李雷", "北京的老客户"),
        ("Ada Lovelace", "Prefers email; asked about PRICING"),
        ("Grace Hopper", "met at the Shanghai expo"),
        ("Linus", "write to li.na@example.cn about INV-7731-0042"),
    ] {
        api.call(
            "POST",
            CUSTOMERS,
            Some(json!({"name": name, "notes": notes, "score": 1})),
        )
        .await;
    }
    let search = |q: &str| format!("{CUSTOMERS}?q={}", urlencode(q));
    let names = |reply: &crate::support::api::Reply| -> Vec<String> {
        let mut names: Vec<String> = reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["data"]["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(&api.call("GET", &search("pricing"), None).await),
        vec!["Ada Lovelace"],
        "case-insensitive words"
    );
    assert_eq!(
        names(&api.call("GET", &search("绿茶"), None).await),
        vec!["王芳"],
        "two-character Chinese substring"
    );
    assert_eq!(
        names(&api.call("GET", &search("老客户"), None).await),
        vec!["李雷"],
        "three-character Chinese substring"
    );
    assert_eq!(
        names(&api.call("GET", &search("shanghai expo"), None).await),
        vec!["Grace Hopper"],
        "every word must match"
    );
    assert_eq!(
        names(&api.call("GET", &search("客户"), None).await),
        vec!["李雷", "王芳"]
    );
    assert!(names(&api.call("GET", &search("nobody"), None).await).is_empty());
    // The same words match on both backends: a word's beginning, an e-mail address or a code
    // typed in part (words split at punctuation, the last one a prefix), never a word's middle.
    for (q, expected, what) in [
        ("pric", vec!["Ada Lovelace"], "the beginning of a word"),
        (
            "li.na@exa",
            vec!["Linus"],
            "an e-mail address typed in part",
        ),
        (
            "na@example",
            vec!["Linus"],
            "an e-mail address from its second part",
        ),
        ("inv-7731", vec!["Linus"], "a code typed in part"),
        ("INV-7731-0042", vec!["Linus"], "a whole code"),
        ("ricing", vec![], "not the middle of a word"),
        (
            "户喜",
            vec!["王芳"],
            "Chinese punctuation is no word of its own",
        ),
        (
            "海户",
            vec![],
            "Chinese characters in a row, not just anywhere",
        ),
        ("-", vec![], "punctuation alone finds nothing"),
    ] {
        assert_eq!(
            names(&api.call("GET", &search(q), None).await),
            expected,
            "{what}: {q}"
        );
    }
    let with_filter = format!(
        "{}&filter={}&count=true",
        search("客户"),
        urlencode(&json!({"field": "name", "op": "eq", "value": "李雷"}).to_string())
    );
    let reply = api.call("GET", &with_filter, None).await;
    assert_eq!(
        (names(&reply), reply.body["total"].clone()),
        (vec!["李雷".to_owned()], json!(1))
    );
    // Search text follows edits.
    let ada = api.call("GET", &search("pricing"), None).await.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.call(
        "PATCH",
        &format!("{CUSTOMERS}/{ada}"),
        Some(json!({"notes": "happy now"})),
    )
    .await;
    assert!(names(&api.call("GET", &search("pricing"), None).await).is_empty());
    assert_eq!(
        names(&api.call("GET", &search("happy"), None).await),
        vec!["Ada Lovelace"]
    );

    // A version that takes the notes out of the search: every record's search text is written
    // anew at the publish, while its data, version and history stay as they are.
    let ada_path = format!("{CUSTOMERS}/{ada}");
    let ada_before = api.call("GET", &ada_path, None).await.body;
    let history_before = api
        .call("GET", &format!("{ada_path}/history"), None)
        .await
        .body;
    let mut v2 = crm_bundle();
    v2["trellis.json"]["version"] = json!("1.1.0");
    v2["entities/customer.schema.json"]["properties"]["notes"]["x-trellis"]["searchable"] =
        json!(false);
    let dry = api
        .call("PUT", "/api/apps/crm/bundle?dry_run=true", Some(v2.clone()))
        .await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.text);
    assert_eq!(dry.body["records_migrated"], 0, "no stored data changes");
    let published = api.call("PUT", "/api/apps/crm/bundle", Some(v2)).await;
    assert_eq!(published.status, StatusCode::OK, "{}", published.text);
    assert!(names(&api.call("GET", &search("happy"), None).await).is_empty());
    assert!(names(&api.call("GET", &search("老客户"), None).await).is_empty());
    assert_eq!(
        names(&api.call("GET", &search("lovelace"), None).await),
        vec!["Ada Lovelace"],
        "names are still searched"
    );
    let ada_after = api.call("GET", &ada_path, None).await.body;
    assert_eq!(
        (&ada_after["version"], &ada_after["data"]),
        (&ada_before["version"], &ada_before["data"])
    );
    assert_eq!(
        api.call("GET", &format!("{ada_path}/history"), None)
            .await
            .body,
        history_before
    );
}

async fn concurrent_creates_share_commits_but_keep_their_own_outcomes(backend: Backend) {
    let api = std::sync::Arc::new(crm_or_skip!(backend));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let api = api.clone();
        // Ten callers fight over one email; thirty use their own.
        let email = if i % 4 == 0 {
            "shared@example.com".to_owned()
        } else {
            format!("own{i}@example.com")
        };
        tasks.push(tokio::spawn(async move {
            let reply = api
                .call(
                    "POST",
                    CUSTOMERS,
                    Some(json!({"name": format!("C{i}"), "email": email})),
                )
                .await;
            (i, reply.status, reply.body)
        }));
    }
    let mut shared_winners = 0;
    let mut codes = std::collections::HashSet::new();
    for task in tasks {
        let (i, status, body) = task.await.unwrap();
        if i % 4 == 0 {
            match status {
                StatusCode::CREATED => shared_winners += 1,
                StatusCode::UNPROCESSABLE_ENTITY => {
                    assert_eq!(body["errors"][0]["code"], "unique", "{body}")
                }
                other => panic!("unexpected {other}: {body}"),
            }
        } else {
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        if status == StatusCode::CREATED {
            assert!(
                codes.insert(body["data"]["code"].as_str().unwrap().to_owned()),
                "auto-numbers are unique"
            );
        }
    }
    assert_eq!(
        shared_winners, 1,
        "exactly one caller gets the shared email"
    );
    let page = api
        .call("GET", &format!("{CUSTOMERS}?count=true&limit=1"), None)
        .await;
    assert_eq!(page.body["total"], 31);
}

async fn large_imports_stream_in_chunks(backend: Backend) {
    let api = crm_or_skip!(backend);
    api.call(
        "POST",
        CUSTOMERS,
        Some(json!({"name": "Existing", "email": "taken@example.com"})),
    )
    .await;
    let import = "/api/apps/crm/entities/customer/import";
    // 6,000 rows cross the 5,000-row chunk; row 5,500 uses an email a stored record already has.
    let file = |prefix: &str| {
        (0..6000)
            .map(|i| {
                let email = if i == 5500 {
                    "taken@example.com".to_owned()
                } else {
                    format!("{prefix}{i}@example.com")
                };
                // Row 10 carries the characters COPY's text format must escape.
                let name = if i == 10 {
                    format!("{prefix} n10 back\\slash\ttab\nnew line\r")
                } else {
                    format!("{prefix} n{i}")
                };
                json!({"name": name, "email": email, "score": i % 100}).to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let atomic = api
        .post_text(
            &format!("{import}?atomic=true"),
            "application/x-ndjson",
            &file("atomic"),
        )
        .await;
    assert_eq!(atomic.status, StatusCode::OK, "{}", atomic.text);
    assert_eq!(atomic.body["inserted"], 0);
    assert_eq!(atomic.body["rejected"][0]["row"], 5501);
    let count = |reply: &crate::support::api::Reply| reply.body["total"].clone();
    assert_eq!(
        count(
            &api.call("GET", &format!("{CUSTOMERS}?count=true&limit=1"), None)
                .await
        ),
        1,
        "atomic: nothing went in"
    );

    let partial = api
        .post_text(import, "application/x-ndjson", &file("bulk"))
        .await;
    assert_eq!(partial.body["inserted"], 5999, "{}", partial.text);
    assert_eq!(partial.body["rejected"].as_array().unwrap().len(), 1);
    assert_eq!(partial.body["rejected"][0]["errors"][0]["code"], "unique");
    assert_eq!(
        count(
            &api.call("GET", &format!("{CUSTOMERS}?count=true&limit=1"), None)
                .await
        ),
        6000
    );
    let codes = api
        .call("GET", &format!("{CUSTOMERS}?limit=1000&sort=-code"), None)
        .await;
    let first = codes.body["items"][0]["data"]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        first.ends_with("6000") || first.ends_with("6001"),
        "auto-numbers continue across chunks: {first}"
    );

    // Imported rows are searchable from both chunks; rolled-back rows are not.
    let searcher = &api;
    let found = move |q: &str| {
        let url = format!("{CUSTOMERS}?q={}&count=true&limit=1", urlencode(q));
        async move { count(&searcher.call("GET", &url, None).await) }
    };
    assert_eq!(found("bulk").await, 5999);
    assert_eq!(
        found("n4999").await,
        1,
        "first chunk, not the rolled-back twin"
    );
    assert_eq!(found("bulk n5501").await, 1, "second chunk");
    assert_eq!(found("n5500").await, 0, "the rejected row");
    let escaped = api
        .call("GET", &format!("{CUSTOMERS}?q=n10&limit=1"), None)
        .await;
    assert_eq!(
        escaped.body["items"][0]["data"]["name"],
        "bulk n10 back\\slash\ttab\nnew line\r"
    );
    assert_eq!(found("atomic").await, 0, "the rolled-back import");
    // Search text of an imported record follows its edits.
    let imported = api
        .call(
            "GET",
            &format!("{CUSTOMERS}?q={}&limit=1", urlencode("bulk n5999")),
            None,
        )
        .await;
    let id = imported.body["items"][0]["id"].as_str().unwrap().to_owned();
    api.call(
        "PATCH",
        &format!("{CUSTOMERS}/{id}"),
        Some(json!({"name": "renamed after import"})),
    )
    .await;
    assert_eq!(found("n5999").await, 0);
    assert_eq!(found("renamed import").await, 1);
}
