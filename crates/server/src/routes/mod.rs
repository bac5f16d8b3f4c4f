//! Routes and the OpenAPI document generated from them (utoipa): a route that is served is a route
//! that is documented, because both come from the same `routes!` list.

mod access;
pub(crate) mod apps;
mod auth;
mod flows;
mod merges;
mod records;
mod reports;
mod rules;
mod saved_views;
mod system;
mod templates;
mod ui;

pub use ui::ui_built;

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Trellis API",
        description = "Metadata-driven no-code app builder. Errors are application/problem+json (RFC 9457).",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "system", description = "Health and API description"),
        (name = "auth", description = "Sign-in and tokens"),
        (name = "apps", description = "Apps, bundles and published versions"),
        (name = "templates", description = "Template gallery, installs, upgrades and rollbacks"),
        (name = "records", description = "Records of an app's entities"),
        (name = "reports", description = "Reports, ad-hoc queries and exports"),
        (name = "rules", description = "Rule dry runs, batch runs and run logs"),
        (name = "flows", description = "Flows on records, tasks and notifications"),
        (name = "access", description = "Users, departments, roles, tokens and the audit log"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every documented route.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::healthz))
        .routes(routes!(system::openapi_json))
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(access::list_tokens, access::create_token))
        .routes(routes!(access::revoke_token))
        .routes(routes!(access::change_password))
        .routes(routes!(access::list_users, access::create_user))
        .routes(routes!(access::update_user))
        .routes(routes!(access::list_departments, access::create_department))
        .routes(routes!(
            access::update_department,
            access::delete_department
        ))
        .routes(routes!(access::app_roles))
        .routes(routes!(access::app_people))
        .routes(routes!(access::assign_role, access::unassign_role))
        .routes(routes!(access::explain))
        .routes(routes!(access::audit_log))
        .routes(routes!(flows::record_flows))
        .routes(routes!(flows::fire_event))
        .routes(routes!(flows::list_tasks))
        .routes(routes!(flows::complete_task))
        .routes(routes!(flows::reassign_task))
        .routes(routes!(flows::notifications))
        .routes(routes!(rules::test_rule))
        .routes(routes!(rules::run_rule))
        .routes(routes!(rules::run_rules_together))
        .routes(routes!(rules::rule_runs))
        .routes(routes!(rules::inbound_webhook))
        .routes(routes!(rules::rule_batches))
        .routes(routes!(reports::list_reports))
        .routes(routes!(reports::run_report))
        .routes(routes!(reports::export_report))
        .routes(routes!(reports::query))
        .routes(routes!(reports::list_dashboards))
        .routes(routes!(reports::run_dashboard))
        .routes(routes!(apps::list_apps, apps::create_app))
        .routes(routes!(apps::get_app, apps::delete_app))
        .routes(routes!(apps::restore_app))
        .routes(routes!(apps::export_bundle, apps::publish_bundle))
        .routes(routes!(apps::list_versions))
        .routes(routes!(
            templates::list_templates,
            templates::publish_template
        ))
        .routes(routes!(templates::install_template))
        .routes(routes!(templates::publish_app_template))
        .routes(routes!(templates::template_file))
        .routes(routes!(templates::upgrade_app))
        .routes(routes!(templates::rollback_upgrade))
        .routes(routes!(templates::list_upgrades))
        .routes(routes!(records::list_records, records::create_record))
        .routes(routes!(
            records::get_record,
            records::update_record,
            records::delete_record
        ))
        .routes(routes!(records::restore_record))
        .routes(routes!(saved_views::list_views, saved_views::save_view))
        .routes(routes!(saved_views::delete_view))
        .routes(routes!(records::record_history))
        .routes(routes!(merges::duplicates))
        .routes(routes!(merges::merge))
        .routes(routes!(merges::undo_merge))
        .routes(routes!(records::import_records))
        .routes(routes!(records::export_records))
}

/// The builder UI (embedded) and the problem+json 404 for unknown API routes.
pub fn public_router() -> Router<AppState> {
    Router::new().fallback(ui::fallback)
}

/// The OpenAPI document as a JSON value (for tests and tooling).
pub fn openapi_document() -> serde_json::Value {
    let (_, openapi) = api_router().split_for_parts();
    serde_json::to_value(openapi).unwrap_or_default()
}
