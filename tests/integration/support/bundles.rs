//! Sample bundles used across tests.

use serde_json::{Value, json};

/// A valid bundle with two entities (a relation between them, selects, an auto number).
pub fn two_entity_bundle(app: &str) -> Value {
    json!({
        "trellis.json": {
            "format_version": 1,
            "id": app,
            "version": "1.0.0",
            "name": {"en": "Service desk", "zh-CN": "服务台"},
            "publisher": "Trellis tests",
            "license": "Apache-2.0"
        },
        "entities/account.schema.json": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "x-trellis": {"format_version": 1, "label": {"en": "Account", "zh-CN": "账户"}, "title_field": "name"},
            "properties": {
                "name": {"type": "string", "minLength": 1, "x-trellis": {"label": {"en": "Name", "zh-CN": "名称"}}},
                "tier": {"type": "string", "enum": ["gold", "silver"],
                         "x-trellis": {"options": [{"value": "gold", "label": {"en": "Gold", "zh-CN": "金"}, "color": "#d4b106"},
                                                   {"value": "silver", "label": {"en": "Silver", "zh-CN": "银"}}]}}
            },
            "required": ["name"]
        },
        "entities/ticket.schema.json": {
            "type": "object",
            "x-trellis": {"format_version": 1, "label": {"en": "Ticket", "zh-CN": "工单"}},
            "properties": {
                "number": {"type": "string", "x-trellis": {"kind": "auto_number", "pattern": "T-{0000}"}},
                "subject": {"type": "string", "maxLength": 200},
                "account": {"type": "string", "x-trellis": {"kind": "relation_one", "relation": {"entity": "account"}}},
                "severity": {"type": "integer", "minimum": 1, "maximum": 4},
                "opened_on": {"type": "string", "format": "date"}
            },
            "required": ["subject"]
        },
        "i18n/en.json": {"format_version": 1, "messages": {"app.title": "Service desk"}},
        "i18n/zh-CN.json": {"format_version": 1, "messages": {"app.title": "服务台"}},
        "data/account.csv": "name,tier\nAcme,gold\n",
        "rules/escalate.rule.json": {"format_version": 1, "id": "escalate", "entity": "ticket", "trigger": {"record_created": {}},
                                     "actions": [{"notify": {"to": {"users": ["admin"]}, "message": {"en": "Urgent ticket", "zh-CN": "紧急工单"}}}]},
        "rules/escalate.rhai": "record.severity >= 3"
    })
}

/// A bundle with several independent problems; the pointers every one of them must be reported at.
pub fn broken_bundle() -> (Value, Vec<(&'static str, &'static str)>) {
    let bundle = json!({
        "trellis.json": {"format_version": 1, "id": "broken", "version": "one", "name": {"en": "Broken"}},
        "entities/thing.schema.json": {
            "type": "object",
            "x-trellis": {"format_version": 1, "title_field": "missing"},
            "properties": {
                "count": {"type": "integer", "x-trellis": {"kind": "email"}},
                "owner": {"type": "string", "x-trellis": {"kind": "relation_one", "relation": {"entity": "ghost"}}},
                "Bad Name": {"type": "string"}
            },
            "required": ["nope"]
        },
        "flows/lifecycle.flow.json": {"format_version": 2, "id": "other", "entity": "nowhere"},
        "secrets/../../etc/passwd": "x"
    });
    let expected = vec![
        ("trellis.json", "/version"),
        ("entities/thing.schema.json", "/properties/count/type"),
        (
            "entities/thing.schema.json",
            "/properties/owner/x-trellis/relation/entity",
        ),
        ("entities/thing.schema.json", "/properties/Bad Name"),
        ("entities/thing.schema.json", "/required/0"),
        ("entities/thing.schema.json", "/x-trellis/title_field"),
        ("flows/lifecycle.flow.json", "/format_version"),
        ("flows/lifecycle.flow.json", "/id"),
        ("flows/lifecycle.flow.json", "/entity"),
        ("secrets/../../etc/passwd", ""),
    ];
    (bundle, expected)
}

/// A small CRM defined only as JSON Schema with annotations: accounts and customers.
pub fn crm_bundle() -> Value {
    json!({
        "trellis.json": {"format_version": 1, "id": "crm", "version": "1.0.0", "name": {"en": "CRM", "zh-CN": "客户管理"}},
        "entities/account.schema.json": {
            "type": "object",
            "x-trellis": {"format_version": 1, "label": {"en": "Account", "zh-CN": "账户"}, "title_field": "name"},
            "properties": {
                "name": {"type": "string", "minLength": 1, "x-trellis": {"label": {"en": "Name", "zh-CN": "名称"}}},
                "tier": {"type": "string", "enum": ["gold", "silver", "bronze"]}
            },
            "required": ["name"]
        },
        "entities/customer.schema.json": {
            "type": "object",
            "x-trellis": {"format_version": 1, "label": {"en": "Customer", "zh-CN": "客户"}},
            "properties": {
                "code": {"type": "string", "x-trellis": {"kind": "auto_number", "pattern": "CUS-{YYYY}-{0000}"}},
                "name": {"type": "string", "minLength": 1, "maxLength": 50, "x-trellis": {"label": {"en": "Name", "zh-CN": "姓名"}}},
                "email": {"type": "string", "format": "email", "x-trellis": {"unique": true, "label": {"en": "Email", "zh-CN": "邮箱"}}},
                "score": {"type": "integer", "minimum": 0, "maximum": 100, "x-trellis": {"label": {"en": "Score", "zh-CN": "评分"}}},
                "region": {"type": "string", "x-trellis": {"label": {"en": "Region", "zh-CN": "区域"}}},
                "stage": {"type": "string", "enum": ["lead", "customer", "churned"], "default": "lead"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "notes": {"type": "string", "x-trellis": {"kind": "long_text"}},
                "external_ref": {"type": "string"},
                "joined_on": {"type": "string", "format": "date"},
                "vip": {"type": "boolean"},
                "account": {"type": "string", "x-trellis": {"kind": "relation_one", "relation": {"entity": "account", "on_delete": "restrict"}}},
                "created": {"type": "string", "x-trellis": {"kind": "created_at"}},
                "grade": {"type": "integer", "x-trellis": {"computed": "if score == () { () } else { (score + 9) / 10 }"}},
                "churn_reason": {"type": "string", "x-trellis": {"required_if": "stage == \"churned\""}},
                "segment": {"type": "string", "x-trellis": {"read_only_if": "vip == true"}}
            },
            "required": ["name"]
        }
    })
}
