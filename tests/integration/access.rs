//! Access control end to end over the HTTP API, on both backends: a test app with roles whose rows
//! follow the user (`$user`) and their department tree (`$user.department.members`), a hidden field,
//! built-in roles, role assignments to departments, scoped and revoked tokens, the audit log, sign-in
//! limits and the plain-words explanation. Each (user, path) cell of the matrix asserts the exact
//! outcome.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};

use crate::support::api::{Reply, TestApi, assert_problem};
use crate::support::{Backend, on_both_backends};

const CUSTOMERS: &str = "/api/apps/sales/entities/customer/records";
const ORDERS: &str = "/api/apps/sales/entities/order/records";

fn sales_bundle() -> Value {
    json!({
        "trellis.json": {"format_version": 1, "id": "sales", "version": "1.0.0", "name": {"en": "Sales", "zh-CN": "销售"}},
        "entities/customer.schema.json": {
            "type": "object",
            "x-trellis": {"format_version": 1},
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "owner": {"type": "string", "x-trellis": {"kind": "user"}},
                "region": {"type": "string"},
                "margin": {"type": "number"},
                "notes": {"type": "string", "x-trellis": {"kind": "long_text"}}
            },
            "required": ["name"]
        },
        "entities/order.schema.json": {
            "type": "object",
            "x-trellis": {"format_version": 1},
            "properties": {
                "customer": {"type": "string", "x-trellis": {"kind": "relation_one", "relation": {"entity": "customer"}}},
                "amount": {"type": "number"}
            }
        },
        "reports/by_region.report.json": {
            "format_version": 1, "id": "by_region", "dataset": {"entity": "customer"},
            "analysis": {"aggregate": {"dimensions": [{"field": "region"}], "measures": [{"id": "n", "op": "count"}]}}
        },
        "roles/sales_rep.role.json": {
            "format_version": 1, "id": "sales_rep", "name": {"en": "Sales rep", "zh-CN": "销售代表"},
            "entities": {
                "customer": {
                    "actions": ["create", "read", "update"],
                    "fields": {"margin": "hidden", "notes": "hidden"},
                    "rows": {"field": "owner", "op": "eq", "value": "$user"}
                },
                "order": {
                    "actions": ["create", "read"],
                    "rows": {"field": "customer.owner", "op": "eq", "value": "$user"}
                }
            }
        },
        "roles/regional_head.role.json": {
            "format_version": 1, "id": "regional_head", "name": {"en": "Regional head", "zh-CN": "区域负责人"},
            "default": {"actions": ["read", "export"], "rows": null},
            "entities": {
                "customer": {
                    "actions": ["read", "export"],
                    "fields": {"margin": "read_only"},
                    "rows": {"field": "owner", "op": "in", "value": "$user.department.members"}
                }
            }
        }
    })
}

struct World {
    api: TestApi,
    tokens: std::collections::HashMap<&'static str, String>,
    ids: std::collections::HashMap<&'static str, String>,
    users: std::collections::HashMap<&'static str, String>,
    departments: std::collections::HashMap<&'static str, String>,
}

impl World {
    async fn as_user(&self, user: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
        let token = self.tokens[user].clone();
        self.api.send(method, path, Some(&token), body).await
    }

    async fn text_as(&self, user: &str, path: &str, content_type: &str, text: &str) -> Reply {
        let request = Request::builder()
            .method("POST")
            .uri(path)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.tokens[user]),
            )
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(text.to_owned()))
            .unwrap();
        self.api.raw(request).await
    }

    async fn names_seen_by(&self, user: &str) -> Vec<String> {
        let reply = self
            .as_user(user, "GET", &format!("{CUSTOMERS}?sort=name"), None)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{user}: {}", reply.text);
        reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["data"]["name"].as_str().unwrap().to_owned())
            .collect()
    }
}

async fn login(api: &TestApi, username: &str, password: &str, from: Option<&str>) -> Reply {
    let mut request = Request::builder()
        .method("POST")
        .uri("/api/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"username": username, "password": password}).to_string(),
        ))
        .unwrap();
    if let Some(address) = from {
        request.extensions_mut().insert(ConnectInfo(
            format!("{address}:4000").parse::<SocketAddr>().unwrap(),
        ));
    }
    api.raw(request).await
}

/// Departments Sales → East → Shanghai and Sales → West; alice (Shanghai) and bob (West) are sales
/// reps through the Sales department, hank (East) is regional head, vera a viewer, mia a member,
/// nora holds no role. Four customers, one owned by each of alice, bob, hank, and one by nobody.
async fn world(backend: Backend) -> Option<World> {
    let api = TestApi::start(backend).await?;
    let created = api.call("POST", "/api/apps", Some(sales_bundle())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let mut departments: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
    for (name, parent) in [
        ("Sales", None),
        ("East", Some("Sales")),
        ("Shanghai", Some("East")),
        ("West", Some("Sales")),
    ] {
        let parent_id = parent.map(|p: &str| departments[p].clone());
        let reply = api
            .call(
                "POST",
                "/api/departments",
                Some(json!({"name": name, "parent_id": parent_id})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        departments.insert(name, reply.body["id"].as_str().unwrap().to_owned());
    }
    let mut users = std::collections::HashMap::new();
    let mut tokens = std::collections::HashMap::new();
    for (name, department) in [
        ("alice", Some("Shanghai")),
        ("bob", Some("West")),
        ("hank", Some("East")),
        ("vera", None),
        ("mia", None),
        ("nora", None),
    ] {
        let reply = api
            .call(
                "POST",
                "/api/users",
                Some(json!({"username": name, "password": "password-1", "department_id": department.map(|d| departments[d].clone())})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        users.insert(name, reply.body["id"].as_str().unwrap().to_owned());
        let signed_in = login(&api, name, "password-1", None).await;
        assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.text);
        tokens.insert(name, signed_in.body["token"].as_str().unwrap().to_owned());
    }
    for (role, kind, id) in [
        ("sales_rep", "department", departments["Sales"].clone()),
        ("regional_head", "user", users["hank"].clone()),
        ("viewer", "user", users["vera"].clone()),
        ("member", "user", users["mia"].clone()),
    ] {
        let reply = api
            .call(
                "PUT",
                &format!("/api/apps/sales/roles/{role}/{kind}/{id}"),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    }
    let mut ids = std::collections::HashMap::new();
    for (name, owner) in [
        ("c_alice", Some("alice")),
        ("c_bob", Some("bob")),
        ("c_hank", Some("hank")),
        ("c_none", None),
    ] {
        let reply = api
            .call(
                "POST",
                CUSTOMERS,
                Some(json!({"name": name, "owner": owner.map(|o| users[o].clone()), "margin": 0.25, "notes": format!("secret margin note {name}")})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        ids.insert(name, reply.body["id"].as_str().unwrap().to_owned());
    }
    for (name, customer) in [("o_alice", "c_alice"), ("o_bob", "c_bob")] {
        let reply = api
            .call(
                "POST",
                ORDERS,
                Some(json!({"customer": ids[customer], "amount": 100})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        ids.insert(name, reply.body["id"].as_str().unwrap().to_owned());
    }
    Some(World {
        api,
        tokens,
        ids,
        users,
        departments,
    })
}

macro_rules! world_or_skip {
    ($backend:expr) => {
        match world($backend).await {
            Some(world) => world,
            None => return,
        }
    };
}

on_both_backends!(
    each_role_reaches_exactly_its_rows_and_actions,
    hidden_fields_never_leave_the_server,
    department_changes_apply_at_once,
    tokens_carry_scopes_and_revocation_is_immediate,
    sign_ins_are_audited_and_limited,
    explain_says_why_in_plain_words,
    apps_and_roles_are_managed_by_admins_only,
    members_see_the_people_of_their_app_and_nothing_more,
    reports_follow_the_same_matrix,
    imports_refuse_fields_the_user_may_not_set,
);

/// An import goes through the importing user's field access: a row that sets a field the user may
/// only read is rejected with the field named (the other rows go in); a user who may set every
/// field has nothing refused.
async fn imports_refuse_fields_the_user_may_not_set(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    // The regional head (margin read-only) may import too in this version of the app.
    let mut bundle = w.api.call("GET", "/api/apps/sales/bundle", None).await.body;
    bundle["trellis.json"]["version"] = json!("1.1.0");
    bundle["roles/regional_head.role.json"]["entities"]["customer"]["actions"] =
        json!(["read", "export", "import"]);
    let published = w
        .api
        .call("PUT", "/api/apps/sales/bundle", Some(bundle))
        .await;
    assert_eq!(published.status, StatusCode::OK, "{}", published.text);
    let import = "/api/apps/sales/entities/customer/import";
    let hank = &w.users["hank"];
    let rows = format!(
        "{}\n{}\n",
        json!({"name": "h_priced", "owner": hank, "margin": 0.5}),
        json!({"name": "h_plain", "owner": hank})
    );
    let reply = w
        .text_as("hank", import, "application/x-ndjson", &rows)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["inserted"], 1, "{}", reply.text);
    let rejected = &reply.body["rejected"][0];
    assert_eq!(rejected["row"], 1, "{}", reply.text);
    assert_eq!(rejected["errors"][0]["code"], "forbidden_field");
    assert_eq!(rejected["errors"][0]["pointer"], "/margin");
    // mia (member: every field editable) imports the same rows whole.
    let reply = w
        .text_as("mia", import, "application/x-ndjson", &rows)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["inserted"], 2, "{}", reply.text);
}

/// Reports go through the same permission engine: each user's aggregates cover exactly the rows their
/// list shows, hidden fields cannot be aggregated, and exports need the export right.
async fn reports_follow_the_same_matrix(backend: Backend) {
    let w = world_or_skip!(backend);
    let by_name = json!({"spec": {"dataset": {"entity": "customer"}, "analysis": {"aggregate": {
        "dimensions": [{"field": "name"}], "measures": [{"id": "n", "op": "count"}]}}}});
    for user in ["alice", "bob", "hank", "vera", "mia"] {
        let reply = w
            .as_user(user, "POST", "/api/apps/sales/query", Some(by_name.clone()))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{user}: {}", reply.text);
        let grouped: Vec<String> = reply.body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[0].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(grouped, w.names_seen_by(user).await, "{user}");
    }
    let nora = w
        .as_user(
            "nora",
            "POST",
            "/api/apps/sales/query",
            Some(by_name.clone()),
        )
        .await;
    assert_problem(&nora, StatusCode::NOT_FOUND);
    // margin: hidden for sales reps, read-only (so readable) for the regional head.
    let margin = json!({"spec": {"dataset": {"entity": "customer"}, "analysis": {"aggregate": {
        "measures": [{"id": "m", "op": "avg", "field": "margin"}]}}}});
    let alice = w
        .as_user(
            "alice",
            "POST",
            "/api/apps/sales/query",
            Some(margin.clone()),
        )
        .await;
    assert_problem(&alice, StatusCode::FORBIDDEN);
    let hank = w
        .as_user("hank", "POST", "/api/apps/sales/query", Some(margin))
        .await;
    assert_eq!(hank.status, StatusCode::OK, "{}", hank.text);
    // Orders grouped by their customer's owner: only the orders alice may read.
    let orders = json!({"spec": {"dataset": {"entity": "order"}, "analysis": {"aggregate": {
        "measures": [{"id": "n", "op": "count"}]}}}});
    let alice_orders = w
        .as_user("alice", "POST", "/api/apps/sales/query", Some(orders))
        .await;
    assert_eq!(alice_orders.body["rows"][0][0], 1, "{}", alice_orders.text);
    // Exports need the export right (the regional head and the built-in viewer have it, sales reps
    // do not); a user without any role sees no report at all.
    let export = "/api/apps/sales/reports/by_region/export?format=csv";
    for user in ["hank", "vera"] {
        let allowed = w.as_user(user, "POST", export, None).await;
        assert_eq!(allowed.status, StatusCode::OK, "{user}: {}", allowed.text);
    }
    let alice = w.as_user("alice", "POST", export, None).await;
    assert_problem(&alice, StatusCode::FORBIDDEN);
    let nora = w.as_user("nora", "POST", export, None).await;
    assert_problem(&nora, StatusCode::NOT_FOUND);
}

async fn each_role_reaches_exactly_its_rows_and_actions(backend: Backend) {
    let w = world_or_skip!(backend);
    // list
    assert_eq!(w.names_seen_by("alice").await, ["c_alice"]);
    assert_eq!(w.names_seen_by("bob").await, ["c_bob"]);
    assert_eq!(
        w.names_seen_by("hank").await,
        ["c_alice", "c_hank"],
        "East and below: hank and alice"
    );
    assert_eq!(
        w.names_seen_by("vera").await,
        ["c_alice", "c_bob", "c_hank", "c_none"]
    );
    assert_eq!(w.names_seen_by("mia").await.len(), 4);
    let nora = w.as_user("nora", "GET", CUSTOMERS, None).await;
    assert_problem(&nora, StatusCode::NOT_FOUND);
    // A user's own filter narrows their rows, never widens them.
    let widened = w
        .as_user(
            "alice",
            "GET",
            &format!(
                "{CUSTOMERS}?count=true&filter={}",
                urlencode(&json!({"field": "name", "op": "eq", "value": "c_bob"}).to_string())
            ),
            None,
        )
        .await;
    assert_eq!(widened.body["total"], 0, "{}", widened.text);
    // Counts never include rows outside the user's reach.
    let counted = w
        .as_user(
            "hank",
            "GET",
            &format!("{CUSTOMERS}?count=true&limit=1"),
            None,
        )
        .await;
    assert_eq!(counted.body["total"], 2);

    // get: outside the rows looks missing
    let record = |name: &str| format!("{CUSTOMERS}/{}", w.ids[name]);
    for (user, name, status) in [
        ("alice", "c_alice", StatusCode::OK),
        ("alice", "c_bob", StatusCode::NOT_FOUND),
        ("hank", "c_alice", StatusCode::OK),
        ("hank", "c_bob", StatusCode::NOT_FOUND),
        ("vera", "c_none", StatusCode::OK),
        ("nora", "c_alice", StatusCode::NOT_FOUND),
    ] {
        let reply = w.as_user(user, "GET", &record(name), None).await;
        assert_eq!(reply.status, status, "{user} GET {name}: {}", reply.text);
    }

    // create: the new record must land in the user's write rows
    let alice_id = w.users["alice"].clone();
    let bob_id = w.users["bob"].clone();
    for (user, body, status) in [
        (
            "alice",
            json!({"name": "mine", "owner": alice_id}),
            StatusCode::CREATED,
        ),
        (
            "alice",
            json!({"name": "not mine", "owner": bob_id}),
            StatusCode::FORBIDDEN,
        ),
        (
            "alice",
            json!({"name": "priced", "owner": alice_id, "margin": 0.9}),
            StatusCode::FORBIDDEN,
        ),
        ("hank", json!({"name": "head's"}), StatusCode::FORBIDDEN),
        ("vera", json!({"name": "viewer's"}), StatusCode::FORBIDDEN),
        ("mia", json!({"name": "member's"}), StatusCode::CREATED),
        ("nora", json!({"name": "nobody's"}), StatusCode::FORBIDDEN),
    ] {
        let reply = w.as_user(user, "POST", CUSTOMERS, Some(body.clone())).await;
        assert_eq!(reply.status, status, "{user} POST {body}: {}", reply.text);
        if status == StatusCode::FORBIDDEN {
            assert_problem(&reply, status);
            assert!(
                reply.body["detail"].as_str().unwrap().contains("customer"),
                "names the rule: {}",
                reply.text
            );
        }
    }

    // update
    for (user, name, body, status) in [
        (
            "alice",
            "c_alice",
            json!({"region": "east"}),
            StatusCode::OK,
        ),
        (
            "alice",
            "c_alice",
            json!({"owner": bob_id}),
            StatusCode::FORBIDDEN,
        ),
        (
            "alice",
            "c_alice",
            json!({"margin": 0.5}),
            StatusCode::FORBIDDEN,
        ),
        (
            "alice",
            "c_bob",
            json!({"region": "east"}),
            StatusCode::NOT_FOUND,
        ),
        (
            "hank",
            "c_alice",
            json!({"region": "north"}),
            StatusCode::FORBIDDEN,
        ),
        (
            "vera",
            "c_alice",
            json!({"region": "north"}),
            StatusCode::FORBIDDEN,
        ),
        ("mia", "c_none", json!({"region": "north"}), StatusCode::OK),
    ] {
        let reply = w
            .as_user(user, "PATCH", &record(name), Some(body.clone()))
            .await;
        assert_eq!(
            reply.status, status,
            "{user} PATCH {name} {body}: {}",
            reply.text
        );
    }
    // A refused write changed nothing.
    let unchanged = w.api.call("GET", &record("c_alice"), None).await;
    assert_eq!(unchanged.body["data"]["owner"], alice_id.as_str());
    assert_eq!(unchanged.body["data"]["margin"], 0.25);

    // delete
    for (user, name, status) in [
        ("alice", "c_alice", StatusCode::FORBIDDEN),
        ("bob", "c_alice", StatusCode::NOT_FOUND),
        ("vera", "c_none", StatusCode::FORBIDDEN),
        ("mia", "c_none", StatusCode::NO_CONTENT),
    ] {
        let reply = w.as_user(user, "DELETE", &record(name), None).await;
        assert_eq!(reply.status, status, "{user} DELETE {name}: {}", reply.text);
    }

    // history
    for (user, name, status) in [
        ("alice", "c_alice", StatusCode::OK),
        ("alice", "c_bob", StatusCode::NOT_FOUND),
        ("hank", "c_bob", StatusCode::NOT_FOUND),
        ("vera", "c_bob", StatusCode::OK),
    ] {
        let reply = w
            .as_user(user, "GET", &format!("{}/history", record(name)), None)
            .await;
        assert_eq!(
            reply.status, status,
            "{user} history {name}: {}",
            reply.text
        );
    }

    // export
    let export = "/api/apps/sales/entities/customer/export?format=csv&sort=name";
    for (user, status) in [
        ("alice", StatusCode::FORBIDDEN),
        ("hank", StatusCode::OK),
        ("vera", StatusCode::OK),
        ("nora", StatusCode::NOT_FOUND),
    ] {
        let reply = w.as_user(user, "GET", export, None).await;
        assert_eq!(reply.status, status, "{user} export: {}", reply.text);
    }
    let hank_csv = w.as_user("hank", "GET", export, None).await.text;
    let lines: Vec<&str> = hank_csv.lines().collect();
    // c_alice, c_hank and the record alice created above (she is in hank's region).
    assert_eq!(lines.len(), 4, "header + hank's three rows: {hank_csv}");
    assert!(
        !hank_csv.contains("c_bob") && !hank_csv.contains("c_none"),
        "{hank_csv}"
    );
    assert!(
        lines[0].contains("margin"),
        "read-only is still visible: {}",
        lines[0]
    );

    // import
    let import = "/api/apps/sales/entities/customer/import";
    let rows = format!(
        "{}\n{}",
        json!({"name": "i_mine", "owner": alice_id}),
        json!({"name": "i_bob", "owner": bob_id})
    );
    for (user, status) in [
        ("alice", StatusCode::FORBIDDEN),
        ("vera", StatusCode::FORBIDDEN),
        ("mia", StatusCode::OK),
    ] {
        let reply = w.text_as(user, import, "application/x-ndjson", &rows).await;
        assert_eq!(reply.status, status, "{user} import: {}", reply.text);
    }

    // Relation paths in row filters: alice sees the orders of her customers only.
    let orders = w.as_user("alice", "GET", ORDERS, None).await;
    let seen: Vec<&str> = orders.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(seen, [w.ids["o_alice"].as_str()], "{}", orders.text);
    let foreign = w
        .as_user(
            "alice",
            "POST",
            ORDERS,
            Some(json!({"customer": w.ids["c_bob"], "amount": 5})),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN, "{}", foreign.text);
    let own = w
        .as_user(
            "alice",
            "POST",
            ORDERS,
            Some(json!({"customer": w.ids["c_alice"], "amount": 5})),
        )
        .await;
    assert_eq!(own.status, StatusCode::CREATED, "{}", own.text);
}

async fn hidden_fields_never_leave_the_server(backend: Backend) {
    let w = world_or_skip!(backend);
    let record = format!("{CUSTOMERS}/{}", w.ids["c_alice"]);
    let got = w.as_user("alice", "GET", &record, None).await;
    assert!(got.body["data"].get("margin").is_none(), "{}", got.text);
    assert_eq!(got.body["data"]["name"], "c_alice");
    let listed = w.as_user("alice", "GET", CUSTOMERS, None).await;
    assert!(listed.body["items"][0]["data"].get("margin").is_none());
    w.as_user("alice", "PATCH", &record, Some(json!({"region": "east"})))
        .await;
    let history = w
        .as_user("alice", "GET", &format!("{record}/history"), None)
        .await;
    for entry in history.body.as_array().unwrap() {
        for side in ["before", "after"] {
            assert!(entry[side].get("margin").is_none(), "{}", history.text);
        }
    }
    // Searching text that is hidden finds nothing, and the count agrees; visible text still matches.
    let search = |q: &str| format!("{CUSTOMERS}?count=true&q={}", urlencode(q));
    let hidden_hit = w.as_user("alice", "GET", &search("secret"), None).await;
    assert_eq!(hidden_hit.status, StatusCode::OK, "{}", hidden_hit.text);
    assert_eq!(
        (
            hidden_hit.body["items"].as_array().unwrap().len(),
            hidden_hit.body["total"].clone()
        ),
        (0, json!(0))
    );
    let visible_hit = w.as_user("alice", "GET", &search("c_alice"), None).await;
    assert_eq!(visible_hit.body["total"], 1, "{}", visible_hit.text);
    let admin_hit = w.api.call("GET", &search("secret"), None).await;
    assert_eq!(admin_hit.body["total"], 4);
    // Filtering or sorting by a hidden field would reveal it: refused as unknown.
    let filter = urlencode(&json!({"field": "margin", "op": "gt", "value": 0.1}).to_string());
    let filtered = w
        .as_user(
            "alice",
            "GET",
            &format!("{CUSTOMERS}?filter={filter}"),
            None,
        )
        .await;
    assert_problem(&filtered, StatusCode::UNPROCESSABLE_ENTITY);
    let sorted = w
        .as_user("alice", "GET", &format!("{CUSTOMERS}?sort=-margin"), None)
        .await;
    assert_problem(&sorted, StatusCode::UNPROCESSABLE_ENTITY);
    // The hidden value is still there for those who may see it, unchanged by alice's edit.
    let admin_view = w.api.call("GET", &record, None).await;
    assert_eq!(admin_view.body["data"]["margin"], 0.25);
    let hank_view = w.as_user("hank", "GET", &record, None).await;
    assert_eq!(hank_view.body["data"]["margin"], 0.25);
}

async fn department_changes_apply_at_once(backend: Backend) {
    let w = world_or_skip!(backend);
    assert_eq!(w.names_seen_by("hank").await, ["c_alice", "c_hank"]);
    // alice moves to West: hank's region no longer includes her customers.
    let moved = w
        .api
        .call(
            "PATCH",
            &format!("/api/users/{}", w.users["alice"]),
            Some(json!({"department_id": w.departments["West"]})),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
    assert_eq!(w.names_seen_by("hank").await, ["c_hank"]);
    // Taking the department's role away ends alice's and bob's access at once.
    let removed = w
        .api
        .call(
            "DELETE",
            &format!(
                "/api/apps/sales/roles/sales_rep/department/{}",
                w.departments["Sales"]
            ),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
    assert_problem(
        &w.as_user("bob", "GET", CUSTOMERS, None).await,
        StatusCode::NOT_FOUND,
    );
    // Disabling a user ends their sessions.
    w.api
        .call(
            "PATCH",
            &format!("/api/users/{}", w.users["vera"]),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_problem(
        &w.as_user("vera", "GET", CUSTOMERS, None).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_eq!(
        login(&w.api, "vera", "password-1", None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn tokens_carry_scopes_and_revocation_is_immediate(backend: Backend) {
    let w = world_or_skip!(backend);
    let created = w
        .as_user(
            "alice",
            "POST",
            "/api/auth/tokens",
            Some(json!({"name": "report bot", "scopes": ["read"], "expires_in_days": 30})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let token = created.body["token"].as_str().unwrap().to_owned();
    let id = created.body["id"].as_str().unwrap().to_owned();
    let read = w.api.send("GET", CUSTOMERS, Some(&token), None).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(
        read.body["items"].as_array().unwrap().len(),
        1,
        "a token never exceeds its user's rows"
    );
    let write = w
        .api
        .send(
            "POST",
            CUSTOMERS,
            Some(&token),
            Some(json!({"name": "x", "owner": w.users["alice"]})),
        )
        .await;
    assert_problem(&write, StatusCode::FORBIDDEN);
    // A read-only token cannot mint a broader one.
    let broader = w
        .api
        .send(
            "POST",
            "/api/auth/tokens",
            Some(&token),
            Some(json!({"name": "more", "scopes": ["read", "write"]})),
        )
        .await;
    assert_problem(&broader, StatusCode::FORBIDDEN);
    let unknown = w
        .as_user(
            "alice",
            "POST",
            "/api/auth/tokens",
            Some(json!({"name": "odd", "scopes": ["everything"]})),
        )
        .await;
    assert_eq!(
        unknown.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unknown.text
    );
    let listed = w.as_user("alice", "GET", "/api/auth/tokens", None).await;
    assert_eq!(listed.body["items"][0]["id"], id.as_str());
    assert!(!listed.text.contains(&token), "secrets are never listed");
    // Nobody else can revoke it; its owner can, and it stops at once.
    assert_eq!(
        w.as_user("bob", "DELETE", &format!("/api/auth/tokens/{id}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.as_user("alice", "DELETE", &format!("/api/auth/tokens/{id}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_problem(
        &w.api.send("GET", CUSTOMERS, Some(&token), None).await,
        StatusCode::UNAUTHORIZED,
    );
    // Password change: other sessions end, the current one stays.
    let other = login(&w.api, "alice", "password-1", None).await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let changed = w
        .as_user(
            "alice",
            "POST",
            "/api/auth/password",
            Some(json!({"current": "password-1", "new": "password-2"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.text);
    assert_eq!(
        w.as_user("alice", "GET", CUSTOMERS, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        w.api
            .send("GET", CUSTOMERS, Some(&other), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

async fn sign_ins_are_audited_and_limited(backend: Backend) {
    let w = world_or_skip!(backend);
    for _ in 0..5 {
        let failed = login(&w.api, "bob", "wrong password", Some("10.0.0.7")).await;
        assert_problem(&failed, StatusCode::UNAUTHORIZED);
    }
    // The account is locked for a while, even with the right password.
    let locked = login(&w.api, "bob", "password-1", Some("10.0.0.8")).await;
    assert_problem(&locked, StatusCode::TOO_MANY_REQUESTS);
    // Others still sign in.
    assert_eq!(
        login(&w.api, "alice", "password-1", Some("10.0.0.9"))
            .await
            .status,
        StatusCode::OK
    );
    // Per address: many accounts tried from one address.
    for i in 0..20 {
        login(&w.api, &format!("ghost{i}"), "nope-nope", Some("10.9.9.9")).await;
    }
    assert_problem(
        &login(&w.api, "mia", "password-1", Some("10.9.9.9")).await,
        StatusCode::TOO_MANY_REQUESTS,
    );
    assert_eq!(
        login(&w.api, "mia", "password-1", Some("10.9.9.10"))
            .await
            .status,
        StatusCode::OK
    );

    let audit = w
        .api
        .call("GET", "/api/audit?action=login&limit=1000", None)
        .await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
    let entries = audit.body["items"].as_array().unwrap();
    let count = |target: &str, outcome: &str| {
        entries
            .iter()
            .filter(|e| e["target"] == target && e["outcome"] == outcome)
            .count()
    };
    assert_eq!(count("bob", "failure"), 5);
    assert_eq!(count("bob", "denied"), 1);
    assert!(
        entries
            .iter()
            .any(|e| e["target"] == "bob" && e["address"] == "10.0.0.7")
    );
    // Admin actions and exports are audited too; only platform admins read the log.
    let assignments = w
        .api
        .call("GET", "/api/audit?action=role.assign", None)
        .await;
    assert_eq!(assignments.body["items"].as_array().unwrap().len(), 4);
    w.as_user(
        "vera",
        "GET",
        "/api/apps/sales/entities/customer/export?format=csv",
        None,
    )
    .await;
    let exports = w
        .api
        .call("GET", "/api/audit?action=records.export", None)
        .await;
    assert_eq!(exports.body["items"][0]["actor_name"], "vera");
    let installs = w
        .api
        .call("GET", "/api/audit?action=app.create", None)
        .await;
    assert_eq!(
        installs.body["items"][0]["app_id"], "sales",
        "{}",
        installs.text
    );
    let departments = w
        .api
        .call("GET", "/api/audit?action=department.create", None)
        .await;
    assert_eq!(departments.body["items"].as_array().unwrap().len(), 4);
    assert_problem(
        &w.as_user("mia", "GET", "/api/audit", None).await,
        StatusCode::FORBIDDEN,
    );
}

async fn explain_says_why_in_plain_words(backend: Backend) {
    let w = world_or_skip!(backend);
    let explain = |user: &str, record: &str| {
        format!(
            "/api/apps/sales/access/explain?user={user}&entity=customer&record={}",
            w.ids[record]
        )
    };
    let reply = w.api.call("GET", &explain("alice", "c_bob"), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["record"]["readable"], false);
    assert_eq!(reply.body["roles"][0]["role"], "sales_rep");
    assert!(
        reply.body["roles"][0]["how"]
            .as_str()
            .unwrap()
            .contains("Sales"),
        "{}",
        reply.text
    );
    let delete = reply.body["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "delete")
        .unwrap();
    assert_eq!(delete["allowed"], false);
    assert!(
        delete["reason"]
            .as_str()
            .unwrap()
            .contains("none of the user's roles"),
        "{}",
        reply.text
    );
    assert_eq!(reply.body["fields"]["margin"], "hidden");
    let own = w.api.call("GET", &explain("alice", "c_alice"), None).await;
    assert_eq!(
        (
            own.body["record"]["readable"].clone(),
            own.body["record"]["writable"].clone()
        ),
        (json!(true), json!(true))
    );
    // In Chinese on request.
    let zh = w
        .api
        .call_with(
            "GET",
            &explain("hank", "c_alice"),
            &[("accept-language", "zh-CN")],
            None,
        )
        .await;
    assert!(
        zh.body["summary"].as_str().unwrap().contains("可以"),
        "{}",
        zh.text
    );
    // Users may explain themselves, not others.
    assert_eq!(
        w.as_user("alice", "GET", &explain("alice", "c_alice"), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_problem(
        &w.as_user("alice", "GET", &explain("bob", "c_bob"), None)
            .await,
        StatusCode::FORBIDDEN,
    );
}

/// User pickers list the app's people — direct role holders, members of departments holding a role,
/// platform admins — to any member, with names only; non-members do not see the app at all.
async fn members_see_the_people_of_their_app_and_nothing_more(backend: Backend) {
    let Some(world) = world(backend).await else {
        return;
    };
    let reply = world
        .as_user("mia", "GET", "/api/apps/sales/people", None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let items = reply.body["items"].as_array().unwrap();
    let mut names: Vec<&str> = items
        .iter()
        .map(|p| p["username"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["admin", "alice", "bob", "hank", "mia", "vera"]);
    for person in items {
        let mut keys: Vec<&String> = person.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["display_name", "id", "username"],
            "names only: {person}"
        );
    }
    assert_eq!(
        items.iter().find(|p| p["username"] == "alice").unwrap()["id"],
        world.users["alice"].as_str()
    );
    // The platform's user list stays for admins.
    assert_problem(
        &world.as_user("mia", "GET", "/api/users", None).await,
        StatusCode::FORBIDDEN,
    );
    assert_problem(
        &world
            .as_user("nora", "GET", "/api/apps/sales/people", None)
            .await,
        StatusCode::NOT_FOUND,
    );
}

async fn apps_and_roles_are_managed_by_admins_only(backend: Backend) {
    let w = world_or_skip!(backend);
    // Apps list shows only apps where one holds a role.
    let listed = |user: &'static str| {
        let w = &w;
        async move {
            let reply = w.as_user(user, "GET", "/api/apps", None).await;
            reply
                .body
                .as_array()
                .map(|a| a.len())
                .unwrap_or_else(|| reply.body["items"].as_array().map_or(0, |a| a.len()))
        }
    };
    assert_eq!(listed("alice").await, 1);
    assert_eq!(listed("nora").await, 0);
    assert_problem(
        &w.as_user("nora", "GET", "/api/apps/sales", None).await,
        StatusCode::NOT_FOUND,
    );
    // Members cannot publish, assign roles or manage users; app admins can publish and assign.
    let bundle = w.api.call("GET", "/api/apps/sales/bundle", None).await.body;
    assert_problem(
        &w.as_user("mia", "PUT", "/api/apps/sales/bundle", Some(bundle.clone()))
            .await,
        StatusCode::FORBIDDEN,
    );
    assert_problem(
        &w.as_user(
            "mia",
            "PUT",
            &format!("/api/apps/sales/roles/viewer/user/{}", w.users["nora"]),
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
    );
    assert_problem(
        &w.as_user("mia", "GET", "/api/users", None).await,
        StatusCode::FORBIDDEN,
    );
    assert_problem(
        &w.as_user(
            "mia",
            "POST",
            "/api/users",
            Some(json!({"username": "eve", "password": "password-1"})),
        )
        .await,
        StatusCode::FORBIDDEN,
    );
    w.api
        .call(
            "PUT",
            &format!("/api/apps/sales/roles/app_admin/user/{}", w.users["mia"]),
            None,
        )
        .await;
    let published = w
        .as_user("mia", "PUT", "/api/apps/sales/bundle", Some(bundle))
        .await;
    assert_eq!(published.status, StatusCode::OK, "{}", published.text);
    let roles = w.as_user("mia", "GET", "/api/apps/sales/roles", None).await;
    let ids: Vec<&str> = roles.body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "app_admin",
            "member",
            "viewer",
            "regional_head",
            "sales_rep"
        ]
    );
    // Unknown roles and principals are refused.
    assert_problem(
        &w.as_user(
            "mia",
            "PUT",
            &format!("/api/apps/sales/roles/boss/user/{}", w.users["nora"]),
            None,
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    // A role file that names an unknown field, or a filter that does not fit, is refused with pointers.
    let refused_at = |broken: Value| {
        let w = &w;
        async move {
            let refused = w
                .api
                .call("POST", "/api/apps?dry_run=true", Some(broken))
                .await;
            assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY);
            refused.body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    format!(
                        "{}:{}",
                        e["file"].as_str().unwrap_or(""),
                        e["pointer"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<String>>()
        }
    };
    let mut unknown_field = sales_bundle();
    unknown_field["trellis.json"]["id"] = json!("sales2");
    unknown_field["roles/sales_rep.role.json"]["entities"]["customer"]["fields"] =
        json!({"salary": "hidden"});
    let pointers = refused_at(unknown_field).await;
    assert!(
        pointers
            .iter()
            .any(|p| p.ends_with("/entities/customer/fields/salary")),
        "{pointers:?}"
    );
    let mut bad_filter = sales_bundle();
    bad_filter["trellis.json"]["id"] = json!("sales2");
    bad_filter["roles/regional_head.role.json"]["entities"]["customer"]["rows"] = json!({"and": [{"field": "owner", "op": "gt", "value": "$user"}, {"field": "region", "op": "eq", "value": "$nobody"}]});
    let pointers = refused_at(bad_filter).await;
    assert!(
        pointers
            .contains(&"roles/regional_head.role.json:/entities/customer/rows/and/0/op".to_owned()),
        "{pointers:?}"
    );
    assert!(
        pointers.contains(
            &"roles/regional_head.role.json:/entities/customer/rows/and/1/value".to_owned()
        ),
        "{pointers:?}"
    );
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
