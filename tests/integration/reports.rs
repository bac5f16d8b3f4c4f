//! Reports end to end over the HTTP API, on both backends, for an app defined only by a bundle: a
//! monthly trend, a pivot, top-N with "others", a funnel over a flow, a retention cohort table, an RFM
//! segmentation and a KPI. Expected numbers come from an independent computation over the same
//! fixture (plain loops here, never the engine), drill-down filters are run through the records API
//! and must return exactly the records behind each row, exports are read back as spreadsheets, the
//! viewer's row filter applies before aggregation, and broken specs are refused with pointers.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use chrono::{Datelike, NaiveDate};
use serde_json::{Value, json};

use crate::support::api::{Reply, TestApi, assert_problem};
use crate::support::{Backend, on_both_backends};

const ORDERS: &str = "/api/apps/shop/entities/order/records";
const AS_OF: &str = "2026-06-30";

/// One fixture order.
#[derive(Debug, Clone)]
struct Order {
    customer: usize,
    day: NaiveDate,
    /// In cents.
    cents: i64,
    channel: &'static str,
    region: &'static str,
}

fn as_of() -> NaiveDate {
    NaiveDate::parse_from_str(AS_OF, "%Y-%m-%d").unwrap()
}

/// Ten customers; customer `i` bought `i + 1` times, last `5 + 12 (9 − i)` days before `AS_OF`, for
/// increasing amounts — so R, F and M all score `i / 2 + 1`.
fn fixture() -> Vec<Order> {
    let mut orders = Vec::new();
    for i in 0..10usize {
        let recency = 5 + 12 * (9 - i as i64);
        for k in 0..=i as i64 {
            orders.push(Order {
                customer: i,
                day: as_of() - chrono::Duration::days(recency + 20 * k),
                cents: 10_000 * (i as i64 + 1) + 1_000 * k + 25,
                channel: ["web", "store", "app"][(k % 3) as usize],
                region: if i % 2 == 0 { "north" } else { "south" },
            });
        }
    }
    orders
}

fn month(day: NaiveDate) -> String {
    format!("{}-{:02}", day.year(), day.month())
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn shop_bundle() -> Value {
    let segment = |id: &str, en: &str, zh: &str, r: [u8; 2], f: [u8; 2]| json!({"id": id, "label": {"en": en, "zh-CN": zh}, "r": r, "f": f});
    json!({
        "trellis.json": {"format_version": 1, "id": "shop", "version": "1.0.0", "name": {"en": "Shop", "zh-CN": "商店"}},
        "entities/customer.schema.json": {
            "type": "object", "x-trellis": {"format_version": 1},
            "properties": {"name": {"type": "string"}, "tier": {"type": "string", "enum": ["gold", "silver"]}}
        },
        "entities/order.schema.json": {
            "type": "object", "x-trellis": {"format_version": 1},
            "properties": {
                "customer": {"type": "string", "x-trellis": {"kind": "relation_one", "relation": {"entity": "customer"}}},
                "ordered_on": {"type": "string", "format": "date"},
                "total": {"type": "object", "x-trellis": {"kind": "money", "currency": "CNY"}},
                "channel": {"type": "string"},
                "region": {"type": "string", "enum": ["north", "south"],
                    "x-trellis": {"kind": "single_select", "options": [
                        {"value": "north", "label": {"en": "North", "zh-CN": "北区"}},
                        {"value": "south", "label": {"en": "South", "zh-CN": "南区"}}]}},
                "cost": {"type": "number"}
            }
        },
        "entities/lead.schema.json": {
            "type": "object", "x-trellis": {"format_version": 1},
            "properties": {
                "name": {"type": "string"},
                "stage": {"type": "string", "enum": ["new", "contacted", "qualified", "won", "lost"], "default": "new"}
            }
        },
        "flows/lead_flow.flow.json": {
            "format_version": 1, "id": "lead_flow", "entity": "lead", "state_field": "stage",
            "states": [
                {"id": "new", "initial": true, "label": {"en": "New", "zh-CN": "新线索"}},
                {"id": "contacted", "label": {"en": "Contacted", "zh-CN": "已联系"}},
                {"id": "qualified", "label": {"en": "Qualified", "zh-CN": "已确认"}},
                {"id": "won", "terminal": true, "label": {"en": "Won", "zh-CN": "赢单"}},
                {"id": "lost", "terminal": true, "label": {"en": "Lost", "zh-CN": "丢单"}}
            ],
            "transitions": [
                {"event": "contact", "from": ["new"], "to": "contacted"},
                {"event": "qualify", "from": ["contacted"], "to": "qualified"},
                {"event": "win", "from": ["qualified"], "to": "won"},
                {"event": "lose", "from": ["new", "contacted", "qualified"], "to": "lost"}
            ]
        },
        "reports/monthly_revenue.report.json": {
            "format_version": 1, "id": "monthly_revenue",
            "label": {"en": "Monthly revenue", "zh-CN": "月度收入"},
            "dataset": {"entity": "order"},
            "parameters": [{"id": "region", "field": "region"}],
            "analysis": {"aggregate": {"dimensions": [{"field": "ordered_on", "bucket": "month", "as": "month"}],
                "measures": [
                    {"id": "orders", "op": "count", "label": {"en": "Orders", "zh-CN": "订单数"}},
                    {"id": "revenue", "op": "sum", "field": "total"},
                    {"id": "biggest", "op": "max", "field": "total"},
                    {"id": "buyers", "op": "count_distinct", "field": "customer"},
                    {"id": "share", "op": "share", "of": ["revenue"]},
                    {"id": "cumulative", "op": "running_total", "of": ["revenue"]},
                    {"id": "growth", "op": "change", "of": ["revenue"]},
                    {"id": "per_order", "op": "ratio", "of": ["revenue", "orders"]}
                ]}}
        },
        "reports/region_channel.report.json": {
            "format_version": 1, "id": "region_channel",
            "dataset": {"entity": "order"},
            "analysis": {"aggregate": {"dimensions": [{"field": "region"}, {"field": "channel"}],
                "measures": [{"id": "orders", "op": "count"}],
                "pivot": "channel"}},
            "chart": {"kind": "bar"}
        },
        "reports/lead_funnel.report.json": {
            "format_version": 1, "id": "lead_funnel", "dataset": {"entity": "lead"},
            "analysis": {"funnel": {"flow": "lead_flow", "stages": ["new", "contacted", "qualified", "won"]}}
        },
        "reports/retention.report.json": {
            "format_version": 1, "id": "retention", "dataset": {"entity": "order"},
            "parameters": [{"id": "as_of"}],
            "analysis": {"cohort": {"subject": "customer", "date": "ordered_on", "periods": 6}}
        },
        "reports/rfm.report.json": {
            "format_version": 1, "id": "rfm", "dataset": {"entity": "order"},
            "parameters": [{"id": "as_of"}],
            "analysis": {"rfm": {"subject": "customer", "date": "ordered_on", "amount": "total",
                "segments": [
                    segment("champions", "Champions", "重要价值客户", [5, 5], [4, 5]),
                    segment("loyal", "Loyal Customers", "忠诚客户", [3, 4], [4, 5]),
                    segment("potential_loyalists", "Potential Loyalists", "潜力客户", [4, 5], [2, 3]),
                    segment("new_customers", "New Customers", "新客户", [5, 5], [1, 1]),
                    segment("promising", "Promising", "有潜力", [4, 4], [1, 1]),
                    segment("need_attention", "Need Attention", "需要关注", [3, 3], [3, 3]),
                    segment("about_to_sleep", "About to Sleep", "即将沉睡", [3, 3], [1, 2]),
                    segment("at_risk", "At Risk", "流失风险", [1, 2], [3, 4]),
                    segment("cant_lose", "Can't Lose Them", "不能失去", [1, 2], [5, 5]),
                    segment("hibernating", "Hibernating", "沉睡客户", [1, 2], [1, 2])
                ]}}
        },
        "reports/revenue_kpi.report.json": {
            "format_version": 1, "id": "revenue_kpi", "dataset": {"entity": "order"},
            "parameters": [{"id": "as_of"}],
            "analysis": {"kpi": {"measure": {"id": "revenue", "op": "sum", "field": "total"}, "date": "ordered_on"}}
        },
        "reports/costs.report.json": {
            "format_version": 1, "id": "costs", "dataset": {"entity": "order"},
            "analysis": {"aggregate": {"dimensions": [{"field": "region"}], "measures": [{"id": "cost", "op": "sum", "field": "cost"}]}}
        },
        "views/sales.view.json": {
            "format_version": 1, "id": "sales", "kind": "dashboard",
            "label": {"en": "Sales", "zh-CN": "销售"},
            "filters": [{"id": "region", "field": "region", "label": {"en": "Region", "zh-CN": "区域"}}],
            "widgets": [
                {"report": "monthly_revenue", "x": 0, "y": 0, "w": 8, "h": 4},
                {"report": "revenue_kpi", "x": 8, "y": 0, "w": 4, "h": 2},
                {"report": "region_channel", "x": 8, "y": 2, "w": 4, "h": 2},
                {"report": "lead_funnel", "x": 0, "y": 4, "w": 6, "h": 4},
                {"report": "costs", "x": 6, "y": 4, "w": 6, "h": 4}
            ]
        },
        "roles/north_rep.role.json": {
            "format_version": 1, "id": "north_rep", "name": {"en": "North rep", "zh-CN": "北区销售"},
            "entities": {"order": {"actions": ["read"], "fields": {"cost": "hidden"},
                "rows": {"field": "region", "op": "eq", "value": "north"}}}
        }
    })
}

/// Customers c0…c9 and the fixture orders; returns the customers' record ids.
async fn setup(backend: Backend) -> Option<(TestApi, Vec<String>)> {
    let api = TestApi::start(backend).await?;
    let created = api.call("POST", "/api/apps", Some(shop_bundle())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let mut customers = Vec::new();
    for i in 0..10 {
        let reply = api
            .call(
                "POST",
                "/api/apps/shop/entities/customer/records",
                Some(json!({"name": format!("c{i}"), "tier": if i >= 5 { "gold" } else { "silver" }})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        customers.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    let ndjson: String = fixture()
        .iter()
        .map(|o| {
            json!({
                "customer": customers[o.customer],
                "ordered_on": o.day.to_string(),
                "total": {"amount": money(o.cents), "currency": "CNY"},
                "channel": o.channel,
                "region": o.region,
                "cost": (o.cents / 200) as f64,
            })
            .to_string()
                + "\n"
        })
        .collect();
    let imported = api
        .post_text(
            "/api/apps/shop/entities/order/import",
            "application/x-ndjson",
            &ndjson,
        )
        .await;
    assert_eq!(imported.status, StatusCode::OK, "{}", imported.text);
    assert_eq!(
        imported.body["inserted"],
        fixture().len(),
        "{}",
        imported.text
    );
    Some((api, customers))
}

macro_rules! setup_or_skip {
    ($backend:expr) => {
        match setup($backend).await {
            Some(world) => world,
            None => return,
        }
    };
}

on_both_backends!(
    monthly_trend_matches_and_drills_down_exactly,
    pivots_and_top_n_fold_the_rest_into_others,
    funnel_counts_every_record_that_reached_a_stage,
    cohort_retention_matches_a_hand_count,
    rfm_scores_and_segments_match_the_quintiles,
    kpi_compares_with_the_previous_period,
    exports_open_as_spreadsheets,
    row_filters_apply_before_aggregation_and_hidden_fields_stay_hidden,
    broken_specs_are_refused_with_pointers,
    dashboards_share_page_filters_and_isolate_widget_errors,
    cached_columns_follow_every_change_and_filter_like_sql,
    grouping_in_the_database_matches_grouping_in_memory,
    kept_results_follow_every_change_and_every_viewer,
);

async fn run(api: &TestApi, report: &str, body: Value) -> Reply {
    let reply = api
        .call(
            "POST",
            &format!("/api/apps/shop/reports/{report}/run"),
            Some(body),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{report}: {}", reply.text);
    reply
}

fn column(reply: &Reply, name: &str) -> usize {
    reply.body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no column {name}: {}", reply.text))
}

fn rows(reply: &Reply) -> Vec<Vec<Value>> {
    reply.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().clone())
        .collect()
}

fn close(a: &Value, b: f64) -> bool {
    (a.as_f64().unwrap_or(f64::NAN) - b).abs() < 1e-6
}

/// Every record the records API returns for `filter`.
async fn records_matching(api: &TestApi, filter: &Value) -> Vec<Value> {
    let encoded = crate::records::urlencode(&filter.to_string());
    let reply = api
        .call(
            "GET",
            &format!("{ORDERS}?limit=1000&filter={encoded}"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{filter}: {}", reply.text);
    reply.body["items"].as_array().unwrap().clone()
}

fn cents_of(record: &Value) -> i64 {
    let amount = record["data"]["total"]["amount"].as_str().unwrap();
    let (whole, fraction) = amount.split_once('.').unwrap_or((amount, "0"));
    whole.parse::<i64>().unwrap() * 100 + format!("{fraction:0<2}")[..2].parse::<i64>().unwrap()
}

async fn monthly_trend_matches_and_drills_down_exactly(backend: Backend) {
    let (api, customers) = setup_or_skip!(backend);
    let reply = run(&api, "monthly_revenue", json!({})).await;
    // Independent computation: plain loops over the fixture.
    let mut expected: BTreeMap<String, (i64, i64, i64, BTreeSet<usize>)> = BTreeMap::new();
    for order in fixture() {
        let entry = expected.entry(month(order.day)).or_default();
        entry.0 += 1;
        entry.1 += order.cents;
        entry.2 = entry.2.max(order.cents);
        entry.3.insert(order.customer);
    }
    let total: i64 = fixture().iter().map(|o| o.cents).sum();
    let got = rows(&reply);
    assert_eq!(
        got.iter()
            .map(|r| r[0].as_str().unwrap().to_owned())
            .collect::<Vec<_>>(),
        expected.keys().cloned().collect::<Vec<_>>(),
        "months in order"
    );
    let (orders, revenue, biggest, buyers) = (
        column(&reply, "orders"),
        column(&reply, "revenue"),
        column(&reply, "biggest"),
        column(&reply, "buyers"),
    );
    let (share, cumulative, growth, per_order) = (
        column(&reply, "share"),
        column(&reply, "cumulative"),
        column(&reply, "growth"),
        column(&reply, "per_order"),
    );
    let mut running = 0;
    let mut previous: Option<i64> = None;
    for (row, (month, (count, cents, max, who))) in got.iter().zip(&expected) {
        running += cents;
        assert_eq!(row[orders], json!(count), "{month}");
        assert!(
            close(&row[revenue], *cents as f64 / 100.0),
            "{month}: {row:?}"
        );
        assert!(
            close(&row[biggest], *max as f64 / 100.0),
            "{month}: {row:?}"
        );
        assert_eq!(row[buyers], json!(who.len()), "{month}");
        assert!(
            close(&row[share], *cents as f64 / total as f64),
            "{month}: {row:?}"
        );
        assert!(
            close(&row[cumulative], running as f64 / 100.0),
            "{month}: {row:?}"
        );
        assert!(
            close(&row[per_order], *cents as f64 / 100.0 / *count as f64),
            "{month}: {row:?}"
        );
        match previous {
            None => assert!(row[growth].is_null()),
            Some(p) => assert!(
                close(&row[growth], (*cents - p) as f64 / p as f64),
                "{month}: {row:?}"
            ),
        }
        previous = Some(*cents);
    }
    assert_eq!(
        reply.body["columns"][column(&reply, "orders")]["type"],
        "integer"
    );
    assert_eq!(
        reply.body["columns"][column(&reply, "revenue")]["type"],
        "money"
    );
    assert_eq!(reply.body["columns"][0]["type"], "period");
    assert_eq!(reply.body["chart"]["kind"], "line");
    assert_eq!(
        reply.body["chart"]["option"]["xAxis"]["data"],
        json!(expected.keys().collect::<Vec<_>>())
    );
    // Drill-down: each row's filter returns exactly its records.
    for (index, (month, (count, cents, _, _))) in expected.iter().enumerate() {
        let filter = &reply.body["drill"][index];
        let records = records_matching(&api, filter).await;
        assert_eq!(records.len() as i64, *count, "{month}: {filter}");
        assert_eq!(records.iter().map(cents_of).sum::<i64>(), *cents, "{month}");
        assert!(records.iter().all(|r| {
            r["data"]["ordered_on"]
                .as_str()
                .unwrap()
                .starts_with(month.as_str())
        }));
    }
    // A parameter narrows the dataset (and the drill filters).
    let north = run(
        &api,
        "monthly_revenue",
        json!({"parameters": {"region": "north"}}),
    )
    .await;
    let north_orders: i64 = rows(&north).iter().map(|r| r[1].as_i64().unwrap()).sum();
    assert_eq!(
        north_orders,
        fixture().iter().filter(|o| o.region == "north").count() as i64
    );
    let drilled = records_matching(&api, &north.body["drill"][0]).await;
    assert!(drilled.iter().all(|r| r["data"]["region"] == "north"));
    // Page filters too, and the labels follow the caller's language.
    let zh = api
        .call_with(
            "POST",
            "/api/apps/shop/reports/monthly_revenue/run",
            &[("accept-language", "zh-CN")],
            Some(json!({"filters": {"field": "customer", "op": "eq", "value": customers[9]}})),
        )
        .await;
    assert_eq!(zh.status, StatusCode::OK, "{}", zh.text);
    assert_eq!(zh.body["columns"][1]["label"], "订单数");
    let only_nine: i64 = rows(&zh).iter().map(|r| r[1].as_i64().unwrap()).sum();
    assert_eq!(only_nine, 10, "customer 9 ordered ten times");
}

async fn pivots_and_top_n_fold_the_rest_into_others(backend: Backend) {
    let (api, _) = setup_or_skip!(backend);
    let reply = run(&api, "region_channel", json!({})).await;
    let mut expected: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for order in fixture() {
        *expected.entry((order.region, order.channel)).or_default() += 1;
    }
    let names: Vec<String> = reply.body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["region", "app", "store", "web"], "{}", reply.text);
    assert_eq!(reply.body["columns"][0]["labels"]["north"], "North");
    for row in rows(&reply) {
        let region = row[0].as_str().unwrap();
        for (index, channel) in ["app", "store", "web"].iter().enumerate() {
            let want = expected.get(&(region, channel)).copied().unwrap_or(0);
            assert_eq!(
                row[index + 1].as_i64().unwrap_or(0),
                want,
                "{region}/{channel}"
            );
        }
    }
    // The pivoted row's drill covers the whole region.
    let north = records_matching(&api, &reply.body["drill"][0]).await;
    assert_eq!(
        north.len(),
        fixture().iter().filter(|o| o.region == "north").count()
    );
    // Each cell's own drill-down returns exactly that cell's records.
    for (r, row) in rows(&reply).iter().enumerate() {
        for (c, cell) in row.iter().enumerate().skip(1) {
            let filter = &reply.body["drill_cells"][r][c];
            if cell.is_null() {
                continue;
            }
            let records = records_matching(&api, filter).await;
            assert_eq!(json!(records.len()), *cell, "cell {r},{c}: {filter}");
        }
    }

    // Top 3 customers by revenue, the rest as "others"; every drill is exact, others included.
    let top = api
        .call(
            "POST",
            "/api/apps/shop/query",
            Some(json!({"spec": {"dataset": {"entity": "order"}, "analysis": {"aggregate": {"dimensions": [{"field": "customer"}],
                "measures": [{"id": "revenue", "op": "sum", "field": "total"}, {"id": "orders", "op": "count"}],
                "top": {"n": 3, "by": "revenue"},
                "sort": [{"by": "revenue", "descending": true}]}}}})),
        )
        .await;
    assert_eq!(top.status, StatusCode::OK, "{}", top.text);
    let got = rows(&top);
    assert_eq!(got.len(), 4, "{}", top.text);
    assert_eq!(got[3][0], "Others");
    let mut by_customer: BTreeMap<usize, i64> = BTreeMap::new();
    for order in fixture() {
        *by_customer.entry(order.customer).or_default() += order.cents;
    }
    let mut ranked: Vec<(usize, i64)> = by_customer.into_iter().collect();
    ranked.sort_by_key(|r| std::cmp::Reverse(r.1));
    for (index, (_, cents)) in ranked.iter().take(3).enumerate() {
        assert!(
            close(&got[index][1], *cents as f64 / 100.0),
            "{index}: {:?}",
            got[index]
        );
    }
    let rest: i64 = ranked.iter().skip(3).map(|(_, c)| c).sum();
    assert!(close(&got[3][1], rest as f64 / 100.0), "{:?}", got[3]);
    for (index, row) in got.iter().enumerate() {
        let records = records_matching(&api, &top.body["drill"][index]).await;
        assert_eq!(json!(records.len()), row[2], "row {index}");
    }

    // Along a relation: orders grouped by their customer's tier, drill-downs exact.
    let joined = api
        .call(
            "POST",
            "/api/apps/shop/query",
            Some(json!({"spec": {"dataset": {"entity": "order"}, "analysis": {"aggregate": {
                "dimensions": [{"field": "customer.tier", "as": "tier"}],
                "measures": [{"id": "orders", "op": "count"}, {"id": "revenue", "op": "sum", "field": "total"}]}}}})),
        )
        .await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.text);
    for (index, row) in rows(&joined).iter().enumerate() {
        let gold = row[0] == "gold";
        let (count, cents) = fixture()
            .iter()
            .filter(|o| (o.customer >= 5) == gold)
            .fold((0, 0), |(n, c), o| (n + 1, c + o.cents));
        assert_eq!(row[1], json!(count), "{row:?}");
        assert!(close(&row[2], cents as f64 / 100.0), "{row:?}");
        let records = records_matching(&api, &joined.body["drill"][index]).await;
        assert_eq!(records.len(), count, "{}", joined.body["drill"][index]);
    }
    assert_eq!(rows(&joined).len(), 2);
}

async fn funnel_counts_every_record_that_reached_a_stage(backend: Backend) {
    let (api, _) = setup_or_skip!(backend);
    // Ten leads: 3 stay new, 2 lost while new, 2 contacted, 1 lost after contact, 1 qualified, 1 won.
    let paths: [&[&str]; 10] = [
        &[],
        &[],
        &[],
        &["lose"],
        &["lose"],
        &["contact"],
        &["contact"],
        &["contact", "lose"],
        &["contact", "qualify"],
        &["contact", "qualify", "win"],
    ];
    for (i, events) in paths.iter().enumerate() {
        let lead = api
            .call(
                "POST",
                "/api/apps/shop/entities/lead/records",
                Some(json!({"name": format!("lead {i}")})),
            )
            .await;
        assert_eq!(lead.status, StatusCode::CREATED, "{}", lead.text);
        let id = lead.body["id"].as_str().unwrap();
        for event in *events {
            let fired = api
                .call(
                    "POST",
                    &format!("/api/apps/shop/entities/lead/records/{id}/flows/lead_flow/events"),
                    Some(json!({"event": event})),
                )
                .await;
            assert_eq!(fired.status, StatusCode::OK, "{event}: {}", fired.text);
        }
    }
    let reply = run(&api, "lead_funnel", json!({})).await;
    let got: Vec<(String, i64)> = rows(&reply)
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_owned(), r[1].as_i64().unwrap()))
        .collect();
    // Hand count: everyone was new; contacted = 5 (incl. the one lost later); qualified 2; won 1.
    assert_eq!(
        got,
        [("new", 10), ("contacted", 5), ("qualified", 2), ("won", 1)]
            .map(|(s, n)| (s.to_owned(), n))
    );
    let conversion = column(&reply, "conversion");
    assert!(close(&rows(&reply)[1][conversion], 0.5));
    assert!(close(&rows(&reply)[3][column(&reply, "overall")], 0.1));
    assert_eq!(reply.body["chart"]["kind"], "funnel");
    // Each stage drills down to the leads that reached it (by id: reaching is history, not a field).
    for (index, (stage, count)) in got.iter().enumerate() {
        let filter = &reply.body["drill"][index];
        let encoded = crate::records::urlencode(&filter.to_string());
        let leads = api
            .call(
                "GET",
                &format!("/api/apps/shop/entities/lead/records?limit=1000&filter={encoded}"),
                None,
            )
            .await;
        assert_eq!(leads.status, StatusCode::OK, "{}", leads.text);
        assert_eq!(
            leads.body["items"].as_array().unwrap().len() as i64,
            *count,
            "{stage}: {filter}"
        );
    }
    assert_eq!(reply.body["columns"][0]["labels"]["won"], "Won");
}

async fn cohort_retention_matches_a_hand_count(backend: Backend) {
    let (api, _) = setup_or_skip!(backend);
    let reply = run(&api, "retention", json!({"parameters": {"as_of": AS_OF}})).await;
    // Independent: first month per customer, then distinct active customers per month offset.
    let months_between = |a: NaiveDate, b: NaiveDate| {
        (b.year() - a.year()) * 12 + b.month() as i32 - a.month() as i32
    };
    let mut first: BTreeMap<usize, NaiveDate> = BTreeMap::new();
    for order in fixture() {
        let entry = first.entry(order.customer).or_insert(order.day);
        *entry = (*entry).min(order.day);
    }
    let mut active: BTreeMap<(String, i32), BTreeSet<usize>> = BTreeMap::new();
    let mut sizes: BTreeMap<String, usize> = BTreeMap::new();
    for day in first.values() {
        *sizes.entry(month(*day)).or_default() += 1;
    }
    for order in fixture() {
        let start = first[&order.customer];
        active
            .entry((month(start), months_between(start, order.day)))
            .or_default()
            .insert(order.customer);
    }
    let got = rows(&reply);
    assert_eq!(
        got.iter()
            .map(|r| r[0].as_str().unwrap().to_owned())
            .collect::<Vec<_>>(),
        sizes.keys().cloned().collect::<Vec<_>>()
    );
    for row in &got {
        let cohort = row[0].as_str().unwrap().to_owned();
        let size = sizes[&cohort];
        assert_eq!(row[1], json!(size), "{cohort}");
        let start = NaiveDate::parse_from_str(&format!("{cohort}-01"), "%Y-%m-%d").unwrap();
        for offset in 0..=6 {
            let cell = &row[2 + offset as usize];
            let period_start = start
                .checked_add_months(chrono::Months::new(offset as u32))
                .unwrap();
            if period_start > as_of() {
                assert!(cell.is_null(), "{cohort}+{offset} is in the future: {cell}");
                continue;
            }
            let n = active
                .get(&(cohort.clone(), offset))
                .map_or(0, BTreeSet::len);
            assert!(
                close(cell, n as f64 / size as f64),
                "{cohort}+{offset}: {cell} vs {n}/{size}"
            );
            // The cell's drill-down: the cohort's orders in that month, from n distinct customers.
            let r = got.iter().position(|x| x[0] == row[0]).unwrap();
            let filter = &reply.body["drill_cells"][r][2 + offset as usize];
            let records = records_matching(&api, filter).await;
            let who: BTreeSet<String> = records
                .iter()
                .map(|o| o["data"]["customer"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(who.len(), n, "{cohort}+{offset}: {filter}");
        }
    }
    assert_eq!(reply.body["chart"]["kind"], "heatmap");
}

async fn rfm_scores_and_segments_match_the_quintiles(backend: Backend) {
    let (api, customers) = setup_or_skip!(backend);
    let reply = api
        .call(
            "POST",
            "/api/apps/shop/query",
            Some(json!({
                "spec": {"dataset": {"entity": "order"}, "parameters": [{"id": "as_of"}],
                    "analysis": {"rfm": {"subject": "customer", "date": "ordered_on", "amount": "total",
                        "output": "subjects", "segments": shop_bundle()["reports/rfm.report.json"]["analysis"]["rfm"]["segments"]}}},
                "parameters": {"as_of": AS_OF}
            })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let expected_segment = |score: u8| match score {
        1 | 2 => "hibernating",
        3 => "need_attention",
        4 => "loyal",
        _ => "champions",
    };
    let got = rows(&reply);
    assert_eq!(got.len(), 10);
    for row in &got {
        let i = customers.iter().position(|c| row[0] == *c).unwrap();
        let score = (i / 2 + 1) as u8;
        let recency = 5 + 12 * (9 - i as i64);
        assert_eq!(row[column(&reply, "recency_days")], json!(recency), "c{i}");
        assert_eq!(row[column(&reply, "frequency")], json!(i + 1), "c{i}");
        for name in ["r", "f", "m"] {
            assert_eq!(
                row[column(&reply, name)],
                json!(score),
                "c{i} {name}: {row:?}"
            );
        }
        assert_eq!(
            row[column(&reply, "segment")],
            expected_segment(score),
            "c{i}"
        );
    }
    // The report file: one row per segment in the map's order, with counts and drill-downs.
    let segments = run(&api, "rfm", json!({"parameters": {"as_of": AS_OF}})).await;
    let counts: BTreeMap<String, i64> = rows(&segments)
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_owned(), r[1].as_i64().unwrap()))
        .collect();
    assert_eq!(counts["hibernating"], 4);
    assert_eq!(counts["need_attention"], 2);
    assert_eq!(counts["loyal"], 2);
    assert_eq!(counts["champions"], 2);
    assert_eq!(counts["at_risk"], 0);
    assert_eq!(counts.values().sum::<i64>(), 10);
    let champions = rows(&segments)
        .iter()
        .position(|r| r[0] == "champions")
        .unwrap();
    let records = records_matching(&api, &segments.body["drill"][champions]).await;
    assert_eq!(records.len(), 9 + 10, "the orders of customers 8 and 9");
    assert_eq!(
        segments.body["columns"][0]["labels"]["champions"],
        "Champions"
    );
}

async fn kpi_compares_with_the_previous_period(backend: Backend) {
    let (api, _) = setup_or_skip!(backend);
    let reply = run(&api, "revenue_kpi", json!({"parameters": {"as_of": AS_OF}})).await;
    let sum_in = |m: &str| -> i64 {
        fixture()
            .iter()
            .filter(|o| month(o.day) == m)
            .map(|o| o.cents)
            .sum()
    };
    let (june, may) = (sum_in("2026-06"), sum_in("2026-05"));
    let row = &rows(&reply)[0];
    assert_eq!(row[0], "2026-06");
    assert!(close(&row[1], june as f64 / 100.0), "{row:?}");
    assert_eq!(row[2], "2026-05");
    assert!(close(&row[3], may as f64 / 100.0), "{row:?}");
    assert!(close(&row[5], (june - may) as f64 / may as f64), "{row:?}");
    assert_eq!(reply.body["chart"]["kind"], "kpi");
    let drilled = records_matching(&api, &reply.body["drill"][0]).await;
    assert_eq!(drilled.iter().map(cents_of).sum::<i64>(), june);
}

async fn exports_open_as_spreadsheets(backend: Backend) {
    let (api, _) = setup_or_skip!(backend);
    let reply = run(&api, "monthly_revenue", json!({})).await;
    let csv = api
        .call(
            "POST",
            "/api/apps/shop/reports/monthly_revenue/export?format=csv",
            Some(json!({})),
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.text);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let mut reader = csv::Reader::from_reader(csv.text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header[1], "Orders");
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), rows(&reply).len());
    for (record, row) in records.iter().zip(rows(&reply)) {
        assert_eq!(record[0], *row[0].as_str().unwrap());
        assert_eq!(record[1], row[1].to_string());
    }
    let bytes = {
        let request = axum::http::Request::builder()
            .method("POST")
            .uri("/api/apps/shop/reports/monthly_revenue/export?format=xlsx")
            .header("authorization", format!("Bearer {}", api.token))
            .body(axum::body::Body::empty())
            .unwrap();
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let response = api.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.into_body().collect().await.unwrap().to_bytes()
    };
    use calamine::Reader;
    let mut workbook =
        calamine::Xlsx::new(std::io::Cursor::new(bytes.to_vec())).expect("a valid xlsx");
    let sheet = workbook.worksheet_range_at(0).unwrap().unwrap();
    assert_eq!(sheet.get_value((0, 1)).unwrap().to_string(), "Orders");
    let first = &rows(&reply)[0];
    assert_eq!(
        sheet.get_value((1, 0)).unwrap().to_string(),
        first[0].as_str().unwrap()
    );
    let revenue = column(&reply, "revenue");
    match sheet.get_value((1, revenue as u32)).unwrap() {
        calamine::Data::Float(f) => assert!(close(&first[revenue], *f)),
        other => panic!("revenue should be a number cell, got {other:?}"),
    }
}

async fn row_filters_apply_before_aggregation_and_hidden_fields_stay_hidden(backend: Backend) {
    let (api, _) = setup_or_skip!(backend);
    let (_, token) = api.user_in_role("shop", "north_rep", "rita").await;
    let as_rita = |path: String, body: Value| {
        let token = token.clone();
        let api = &api;
        async move { api.send("POST", &path, Some(&token), Some(body)).await }
    };
    let reply = as_rita(
        "/api/apps/shop/reports/monthly_revenue/run".into(),
        json!({}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let orders: i64 = rows(&reply).iter().map(|r| r[1].as_i64().unwrap()).sum();
    let revenue: f64 = rows(&reply).iter().map(|r| r[2].as_f64().unwrap()).sum();
    let north: Vec<Order> = fixture()
        .into_iter()
        .filter(|o| o.region == "north")
        .collect();
    assert_eq!(
        orders,
        north.len() as i64,
        "only the rows rita may read are counted"
    );
    assert!((revenue - north.iter().map(|o| o.cents).sum::<i64>() as f64 / 100.0).abs() < 1e-6);
    // Asking for the other region through a page filter cannot widen the row filter.
    let south = as_rita(
        "/api/apps/shop/reports/monthly_revenue/run".into(),
        json!({"filters": {"field": "region", "op": "eq", "value": "south"}}),
    )
    .await;
    assert_eq!(south.status, StatusCode::OK, "{}", south.text);
    assert!(rows(&south).is_empty(), "{}", south.text);
    // A report over a field her role hides is refused, ad hoc too; so is a filter on it.
    let costs = as_rita("/api/apps/shop/reports/costs/run".into(), json!({})).await;
    assert_problem(&costs, StatusCode::FORBIDDEN);
    let adhoc = as_rita(
        "/api/apps/shop/query".into(),
        json!({"spec": {"dataset": {"entity": "order"}, "analysis": {"aggregate": {"measures": [{"id": "c", "op": "avg", "field": "cost"}]}}}}),
    )
    .await;
    assert_problem(&adhoc, StatusCode::FORBIDDEN);
    let filtered = as_rita(
        "/api/apps/shop/reports/monthly_revenue/run".into(),
        json!({"filters": {"field": "cost", "op": "gt", "value": 0}}),
    )
    .await;
    assert_problem(&filtered, StatusCode::UNPROCESSABLE_ENTITY);
    // The report list shows what she may run; exports need the export right.
    let export = as_rita(
        "/api/apps/shop/reports/monthly_revenue/export".into(),
        json!({}),
    )
    .await;
    assert_problem(&export, StatusCode::FORBIDDEN);
}

async fn broken_specs_are_refused_with_pointers(backend: Backend) {
    let (api, _) = setup_or_skip!(backend);
    let reply = api
        .call(
            "POST",
            "/api/apps/shop/query",
            Some(json!({"spec": {"dataset": {"entity": "order"}, "analysis": {"aggregate": {"dimensions": [{"field": "channel", "bucket": "month"}, {"field": "nope"}, {"field": "channel.tier"}],
                "measures": [{"id": "s", "op": "sum", "field": "channel"}, {"id": "r", "op": "ratio", "of": ["s"]}]}}}})),
        )
        .await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY);
    let pointers: BTreeSet<String> = reply.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap().to_owned())
        .collect();
    for pointer in [
        "/spec/analysis/aggregate/dimensions/0/bucket",
        "/spec/analysis/aggregate/dimensions/1/field",
        "/spec/analysis/aggregate/dimensions/2/field",
        "/spec/analysis/aggregate/measures/0/op",
        "/spec/analysis/aggregate/measures/1/of",
    ] {
        assert!(
            pointers.contains(pointer),
            "{pointer} missing: {}",
            reply.text
        );
    }
    // A spec that is not even the right shape names the place too.
    let shape = api
        .call(
            "POST",
            "/api/apps/shop/query",
            Some(json!({"spec": {"dataset": {"entity": "order"}, "analysis": {"aggregate": {"measures": [{"id": "x", "op": "sideways"}]}}}})),
        )
        .await;
    assert_problem(&shape, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        shape.body["errors"][0]["pointer"], "/spec/analysis/aggregate/measures/0/op",
        "{}",
        shape.text
    );
    // An unknown entity, an unknown report, a bad parameter.
    let unknown = api
        .call(
            "POST",
            "/api/apps/shop/query",
            Some(json!({"spec": {"dataset": {"entity": "ghost"}, "analysis": {"aggregate": {"measures": [{"id": "n", "op": "count"}]}}}})),
        )
        .await;
    assert_problem(&unknown, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown.body["errors"][0]["pointer"], "/spec/dataset/entity");
    let missing = api
        .call("POST", "/api/apps/shop/reports/ghost/run", Some(json!({})))
        .await;
    assert_problem(&missing, StatusCode::NOT_FOUND);
    let bad_parameter = api
        .call(
            "POST",
            "/api/apps/shop/reports/retention/run",
            Some(json!({"parameters": {"as_of": "yesterday"}})),
        )
        .await;
    assert_problem(&bad_parameter, StatusCode::UNPROCESSABLE_ENTITY);
    // A bundle with a broken report is refused whole, with the file and pointer; nothing changes.
    let mut bundle = shop_bundle();
    bundle["trellis.json"]["id"] = json!("shop2");
    bundle["reports/rfm.report.json"]["analysis"]["rfm"]["segments"][0]["r"] = json!([4, 5]);
    bundle["reports/costs.report.json"]["analysis"]["aggregate"]["dimensions"][0]["bin"] =
        json!(10);
    let refused = api.call("POST", "/api/apps", Some(bundle)).await;
    assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY);
    let problems: Vec<(String, String, String)> = refused.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["file"].as_str().unwrap_or_default().to_owned(),
                e["pointer"].as_str().unwrap_or_default().to_owned(),
                e["code"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        problems.contains(&(
            "reports/rfm.report.json".into(),
            "/analysis/rfm/segments".into(),
            "segments_overlap".into()
        )),
        "{}",
        refused.text
    );
    assert!(
        problems.contains(&(
            "reports/costs.report.json".into(),
            "/analysis/aggregate/dimensions/0/bin".into(),
            "bad_bin".into()
        )),
        "{}",
        refused.text
    );
    let apps = api.call("GET", "/api/apps", None).await;
    assert!(!apps.text.contains("shop2"));
}

async fn dashboards_share_page_filters_and_isolate_widget_errors(backend: Backend) {
    let (api, _) = setup_or_skip!(backend);
    let listed = api.call("GET", "/api/apps/shop/dashboards", None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(listed.body["items"][0]["id"], "sales");
    let reply = api
        .call(
            "POST",
            "/api/apps/shop/dashboards/sales/run",
            Some(json!({"filters": {"region": "north"}, "parameters": {"as_of": AS_OF}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let widgets = reply.body["widgets"].as_array().unwrap();
    assert_eq!(widgets.len(), 5);
    assert_eq!(
        (widgets[1]["x"].clone(), widgets[1]["w"].clone()),
        (json!(8), json!(4))
    );
    let north: Vec<Order> = fixture()
        .into_iter()
        .filter(|o| o.region == "north")
        .collect();
    // The page filter narrows every widget over orders...
    let trend: i64 = widgets[0]["result"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[1].as_i64().unwrap())
        .sum();
    assert_eq!(trend, north.len() as i64);
    let june: i64 = north
        .iter()
        .filter(|o| month(o.day) == "2026-06")
        .map(|o| o.cents)
        .sum();
    assert!(
        close(&widgets[1]["result"]["rows"][0][1], june as f64 / 100.0),
        "{}",
        widgets[1]
    );
    assert_eq!(
        widgets[2]["result"]["rows"].as_array().unwrap().len(),
        1,
        "only the north row"
    );
    // ...and leaves alone a widget whose entity has no such field.
    assert_eq!(
        widgets[3]["result"]["rows"][0][1], 0,
        "no leads yet: {}",
        widgets[3]
    );
    assert!(widgets[4]["result"]["rows"].is_array());
    // A viewer who may not see a widget's field gets that widget's problem; the rest still run.
    let (_, token) = api.user_in_role("shop", "north_rep", "rita").await;
    let as_rita = api
        .send(
            "POST",
            "/api/apps/shop/dashboards/sales/run",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(as_rita.status, StatusCode::OK, "{}", as_rita.text);
    let widgets = as_rita.body["widgets"].as_array().unwrap();
    assert_eq!(widgets[4]["error"]["status"], 403, "{}", widgets[4]);
    assert!(widgets[4]["result"].is_null());
    assert_eq!(
        widgets[3]["error"]["status"], 404,
        "leads are not hers to read: {}",
        widgets[3]
    );
    assert!(widgets[0]["result"]["rows"].is_array());
    // Unknown page filters are refused; so is a broken dashboard at publish.
    let unknown = api
        .call(
            "POST",
            "/api/apps/shop/dashboards/sales/run",
            Some(json!({"filters": {"city": "x"}})),
        )
        .await;
    assert_problem(&unknown, StatusCode::UNPROCESSABLE_ENTITY);
    let mut bundle = shop_bundle();
    bundle["trellis.json"]["id"] = json!("shop3");
    bundle["views/sales.view.json"]["widgets"][0]["report"] = json!("ghost");
    bundle["views/sales.view.json"]["widgets"][1]["x"] = json!(10);
    bundle["views/sales.view.json"]["filters"][0]["field"] = json!("nowhere");
    let refused = api.call("POST", "/api/apps", Some(bundle)).await;
    assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY);
    for pointer in ["/widgets/0/report", "/widgets/1", "/filters/0/field"] {
        assert!(
            refused.body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["file"] == "views/sales.view.json" && e["pointer"] == pointer),
            "{pointer}: {}",
            refused.text
        );
    }
}

/// Orders and revenue (cents) of the ad-hoc total report under `filters`.
async fn totals(api: &TestApi, filters: Value) -> (i64, i64) {
    let reply = api
        .call(
            "POST",
            "/api/apps/shop/query",
            Some(json!({"spec": {"dataset": {"entity": "order"}, "analysis": {"aggregate": {
                "measures": [{"id": "orders", "op": "count"}, {"id": "revenue", "op": "sum", "field": "total"}]}}},
                "filters": filters})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let row = &reply.body["rows"][0];
    (
        row[0].as_i64().unwrap(),
        (row[1].as_f64().unwrap_or(0.0) * 100.0).round() as i64,
    )
}

async fn cached_columns_follow_every_change_and_filter_like_sql(backend: Backend) {
    let (api, customers) = setup_or_skip!(backend);
    let all = Value::Null;
    let base: i64 = fixture().iter().map(|o| o.cents).sum();
    assert_eq!(totals(&api, all.clone()).await, (55, base));
    // Create, update, delete, restore and a bulk import: each shows in the next run.
    let created = api
        .call(
            "POST",
            ORDERS,
            Some(
                json!({"customer": customers[0], "ordered_on": "2026-06-01", "region": "south",
                "channel": "web", "total": {"amount": "1000.00", "currency": "CNY"}}),
            ),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(totals(&api, all.clone()).await, (56, base + 100_000));
    let patched = api
        .call_with(
            "PATCH",
            &format!("{ORDERS}/{id}"),
            &[("if-match", "\"1\"")],
            Some(json!({"total": {"amount": "10.50", "currency": "CNY"}, "channel": "kiosk"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(totals(&api, all.clone()).await, (56, base + 1_050));
    let kiosk = json!({"field": "channel", "op": "eq", "value": "kiosk"});
    assert_eq!(
        totals(&api, kiosk.clone()).await,
        (1, 1_050),
        "a value new to the dictionary"
    );
    let deleted = api.call("DELETE", &format!("{ORDERS}/{id}"), None).await;
    assert!(deleted.status.is_success(), "{}", deleted.text);
    assert_eq!(totals(&api, all.clone()).await, (55, base));
    let restored = api
        .call("POST", &format!("{ORDERS}/{id}/restore"), None)
        .await;
    assert!(restored.status.is_success(), "{}", restored.text);
    assert_eq!(totals(&api, kiosk).await, (1, 1_050));
    let imported = api
        .post_text(
            "/api/apps/shop/entities/order/import",
            "application/x-ndjson",
            &format!(
                "{}\n{}\n",
                json!({"customer": customers[1], "ordered_on": "2026-06-02", "region": "north", "channel": "app", "total": {"amount": "1.00", "currency": "CNY"}}),
                json!({"customer": customers[1], "ordered_on": "2026-06-03", "region": "north", "channel": "app", "total": {"amount": "2.00", "currency": "CNY"}})
            ),
        )
        .await;
    assert_eq!(imported.body["inserted"], 2, "{}", imported.text);
    assert_eq!(totals(&api, all.clone()).await, (58, base + 1_050 + 300));
    // A record of the first load (found by id among the loaded, id-ordered rows) goes and comes back.
    let first = api.call("GET", &format!("{ORDERS}?limit=1"), None).await;
    let first_id = first.body["items"][0]["id"].as_str().unwrap().to_owned();
    let amount = first.body["items"][0]["data"]["total"]["amount"]
        .as_str()
        .unwrap()
        .to_owned();
    let (whole, fraction) = amount.split_once('.').unwrap_or((&amount, "0"));
    let cents: i64 =
        whole.parse::<i64>().unwrap() * 100 + format!("{fraction:0<2}").parse::<i64>().unwrap();
    let deleted = api
        .call("DELETE", &format!("{ORDERS}/{first_id}"), None)
        .await;
    assert!(deleted.status.is_success(), "{}", deleted.text);
    assert_eq!(
        totals(&api, all.clone()).await,
        (57, base + 1_050 + 300 - cents)
    );
    let restored = api
        .call("POST", &format!("{ORDERS}/{first_id}/restore"), None)
        .await;
    assert!(restored.status.is_success(), "{}", restored.text);
    assert_eq!(totals(&api, all.clone()).await, (58, base + 1_050 + 300));
    // Filters evaluated over the cached columns select exactly what the records API (SQL) selects.
    let filters = [
        json!({"field": "region", "op": "eq", "value": "north"}),
        json!({"field": "region", "op": "ne", "value": "north"}),
        json!({"field": "channel", "op": "in", "value": ["web", "app"]}),
        json!({"field": "channel", "op": "contains", "value": "EB"}),
        json!({"field": "channel", "op": "starts_with", "value": "st"}),
        json!({"field": "cost", "op": "is_empty", "value": true}),
        json!({"field": "cost", "op": "gt", "value": 300}),
        json!({"field": "cost", "op": "between", "value": [100, 400]}),
        json!({"field": "ordered_on", "op": "lt", "value": "2026-03-01"}),
        json!({"field": "ordered_on", "op": "between", "value": ["2026-02-01", "2026-04-30"]}),
        json!({"not": {"field": "region", "op": "eq", "value": "south"}}),
        json!({"or": [{"field": "channel", "op": "eq", "value": "kiosk"}, {"and": [
            {"field": "region", "op": "eq", "value": "south"}, {"field": "cost", "op": "lte", "value": 250}]}]}),
        json!({"field": "customer", "op": "eq", "value": customers[3]}),
        json!({"field": "id", "op": "in", "value": [id.clone(), "no-such-id"]}),
        json!({"not": {"field": "id", "op": "eq", "value": id.clone()}}),
    ];
    for filter in filters {
        let records = records_matching(&api, &filter).await;
        let expected = (
            records.len() as i64,
            records.iter().map(cents_of).sum::<i64>(),
        );
        assert_eq!(totals(&api, filter.clone()).await, expected, "{filter}");
    }
}

fn same_rows(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-6
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_rows(x, y))
        }
        (x, y) => x == y,
    }
}

/// The scale path: the same specs grouped by PostgreSQL and by the engine give the same result (on
/// SQLite, database grouping is refused with a clear problem).
async fn grouping_in_the_database_matches_grouping_in_memory(backend: Backend) {
    let (api, _) = setup_or_skip!(backend);
    let specs = [
        shop_bundle()["reports/monthly_revenue.report.json"].clone(),
        shop_bundle()["reports/region_channel.report.json"].clone(),
        json!({"dataset": {"entity": "order", "filter": {"field": "channel", "op": "ne", "value": "app"}},
            "analysis": {"aggregate": {
                "dimensions": [{"field": "cost", "bin": 100}, {"field": "ordered_on", "bucket": "quarter"}],
                "measures": [
                    {"id": "orders", "op": "count"},
                    {"id": "typical", "op": "median", "field": "cost"},
                    {"id": "p90", "op": "percentile", "field": "total", "p": 0.9},
                    {"id": "average", "op": "avg", "field": "total"},
                    {"id": "first", "op": "min", "field": "ordered_on"},
                    {"id": "buyers", "op": "count_distinct", "field": "customer"},
                    {"id": "running", "op": "running_total", "of": ["orders"]}],
                "sort": [{"by": "orders", "descending": true}, {"by": "cost"}, {"by": "ordered_on"}]}}}),
        json!({"dataset": {"entity": "order"}, "analysis": {"aggregate": {
            "dimensions": [{"field": "ordered_on", "bucket": "week"}, {"field": "region"}],
            "measures": [{"id": "revenue", "op": "sum", "field": "total"}, {"id": "least", "op": "min", "field": "total"}]}}}),
        json!({"dataset": {"entity": "order"}, "analysis": {"aggregate": {
            "measures": [{"id": "orders", "op": "count"}, {"id": "revenue", "op": "sum", "field": "total"}]}}}),
    ];
    let page = json!({"field": "region", "op": "eq", "value": "south"});
    for spec in specs {
        for filters in [Value::Null, page.clone()] {
            let run = |execution: &str| json!({"spec": spec.clone(), "filters": filters.clone(), "execution": execution});
            let memory = api
                .call("POST", "/api/apps/shop/query", Some(run("memory")))
                .await;
            assert_eq!(memory.status, StatusCode::OK, "{}", memory.text);
            let database = api
                .call("POST", "/api/apps/shop/query", Some(run("database")))
                .await;
            if backend == Backend::Sqlite {
                assert_problem(&database, StatusCode::UNPROCESSABLE_ENTITY);
                assert!(database.text.contains("PostgreSQL"), "{}", database.text);
                continue;
            }
            assert_eq!(database.status, StatusCode::OK, "{}", database.text);
            assert!(
                !memory.body["rows"].as_array().unwrap().is_empty(),
                "{spec}"
            );
            for part in ["columns", "rows", "drill", "chart"] {
                assert!(
                    same_rows(&memory.body[part], &database.body[part]),
                    "{part} differ for {spec} / {filters}:\nmemory:   {}\ndatabase: {}",
                    memory.body[part],
                    database.body[part]
                );
            }
        }
    }
    // What the database cannot group (top-N, relation fields, other analyses) is refused, not guessed.
    if backend == Backend::Postgres {
        let top = api
            .call(
                "POST",
                "/api/apps/shop/query",
                Some(json!({"execution": "database", "spec": {"dataset": {"entity": "order"}, "analysis": {"aggregate": {
                    "dimensions": [{"field": "customer"}], "measures": [{"id": "n", "op": "count"}], "top": {"n": 2, "by": "n"}}}}})),
            )
            .await;
        assert_problem(&top, StatusCode::UNPROCESSABLE_ENTITY);
    }
}

/// Orders and revenue (cents) over all months of the stored `monthly_revenue` report, as `token`'s
/// viewer sees it (the admin without one), in `language`.
async fn stored_totals(api: &TestApi, token: Option<&str>, language: &str) -> (i64, i64, String) {
    let path = "/api/apps/shop/reports/monthly_revenue/run";
    let token = token.unwrap_or(&api.token);
    let request = axum::http::Request::builder()
        .method("POST")
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("accept-language", language)
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    let reply = api.raw(request).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let orders = rows(&reply).iter().map(|r| r[1].as_i64().unwrap()).sum();
    let revenue: f64 = rows(&reply).iter().map(|r| r[2].as_f64().unwrap()).sum();
    let label = reply.body["columns"][1]["label"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (orders, (revenue * 100.0).round() as i64, label)
}

/// Stored reports' results are kept for repeated views, and a kept result is never what a viewer
/// gets after a change of the entity's records, nor what a viewer with other rows or another
/// language gets.
async fn kept_results_follow_every_change_and_every_viewer(backend: Backend) {
    let (api, customers) = setup_or_skip!(backend);
    let base: i64 = fixture().iter().map(|o| o.cents).sum();
    let north: Vec<Order> = fixture()
        .into_iter()
        .filter(|o| o.region == "north")
        .collect();
    let north_cents: i64 = north.iter().map(|o| o.cents).sum();
    let kept_before = api.runtime.kept_report_results();
    assert_eq!(
        stored_totals(&api, None, "en").await,
        (55, base, "Orders".into())
    );
    assert_eq!(
        stored_totals(&api, None, "en").await,
        (55, base, "Orders".into())
    );
    assert_eq!(
        api.runtime.kept_report_results(),
        kept_before + 1,
        "the repeated view was answered from the kept result"
    );
    assert_eq!(
        stored_totals(&api, None, "zh-CN").await,
        (55, base, "订单数".into())
    );

    // Another viewer's row filter: their own rows, not the admin's kept result.
    let (_, nora) = api.user_in_role("shop", "north_rep", "nora").await;
    let nora_totals = stored_totals(&api, Some(&nora), "en").await;
    assert_eq!(
        (nora_totals.0, nora_totals.1),
        (north.len() as i64, north_cents)
    );

    // Every change shows in the next view, for both viewers.
    let created = api
        .call(
            "POST",
            ORDERS,
            Some(
                json!({"customer": customers[0], "ordered_on": "2026-06-01", "region": "north",
                "channel": "web", "total": {"amount": "1000.00", "currency": "CNY"}}),
            ),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(stored_totals(&api, None, "en").await.0, 56);
    assert_eq!(stored_totals(&api, None, "en").await.1, base + 100_000);
    let nora_totals = stored_totals(&api, Some(&nora), "en").await;
    assert_eq!(
        (nora_totals.0, nora_totals.1),
        (north.len() as i64 + 1, north_cents + 100_000)
    );
    let patched = api
        .call_with(
            "PATCH",
            &format!("{ORDERS}/{id}"),
            &[("if-match", "\"1\"")],
            Some(json!({"total": {"amount": "10.50", "currency": "CNY"}, "region": "south"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(stored_totals(&api, None, "en").await.1, base + 1_050);
    let nora_totals = stored_totals(&api, Some(&nora), "en").await;
    assert_eq!(
        (nora_totals.0, nora_totals.1),
        (north.len() as i64, north_cents)
    );
    let deleted = api.call("DELETE", &format!("{ORDERS}/{id}"), None).await;
    assert!(deleted.status.is_success(), "{}", deleted.text);
    assert_eq!(
        stored_totals(&api, None, "en").await,
        (55, base, "Orders".into())
    );
    let restored = api
        .call("POST", &format!("{ORDERS}/{id}/restore"), None)
        .await;
    assert!(restored.status.is_success(), "{}", restored.text);
    assert_eq!(stored_totals(&api, None, "en").await.1, base + 1_050);

    // Views with 300 different parameter values: at most 256 results are kept, the latest of them.
    for i in 0..300 {
        let reply = run(
            &api,
            "monthly_revenue",
            json!({"parameters": {"region": format!("r{i}")}}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    assert_eq!(api.runtime.kept_report_results(), 256);
}
