//! Trellis HTTP server (axum): the only crate that speaks HTTP.
//!
//! [`router`] builds the whole API as an axum `Router` (tests drive it with `oneshot`, no socket);
//! [`serve`] runs it on a listener until a shutdown signal. Every error leaves as
//! `application/problem+json` ([`problem`]); every request gets an `x-request-id` that appears in its
//! tracing span; the OpenAPI 3.1 document is generated from the handlers ([`routes`]).
//!
//! Architecture invariant: handlers hold no business logic — they parse, call `trellis-runtime`, and map
//! the result. Runtime errors become HTTP statuses in exactly one place (`problem::ApiError::from`).

mod extract;
mod middleware;
pub mod problem;
mod routes;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use trellis_runtime::Runtime;

pub use routes::{openapi_document, ui_built};

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Largest file accepted by imports, in bytes (files are bigger than API documents).
    pub max_import_bytes: usize,
    /// Longest a request may take before it gets 503.
    pub request_timeout: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 * 1024 * 1024,
            max_import_bytes: 1024 * 1024 * 1024,
            request_timeout: Duration::from_secs(600),
        }
    }
}

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    pub runtime: Runtime,
    openapi: Arc<String>,
    max_import_bytes: usize,
}

/// Build the complete router.
pub fn router(runtime: Runtime, settings: &ServerSettings) -> Router {
    let (api, openapi) = routes::api_router().split_for_parts();
    let openapi = Arc::new(openapi.to_pretty_json().unwrap_or_else(|_| "{}".into()));
    let state = AppState {
        runtime,
        openapi,
        max_import_bytes: settings.max_import_bytes,
    };
    middleware::wrap(
        api.merge(routes::public_router()).with_state(state),
        settings,
    )
}

/// Serve `router` on `listener` until `shutdown` resolves, then finish in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
