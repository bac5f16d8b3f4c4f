//! The HTTP API in process: the real router driven with `oneshot` (no socket), signed in as admin.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use trellis_server::ServerSettings;

use crate::support::{Backend, TestDatabase, fresh_database};

pub const ADMIN_PASSWORD: &str = "correct horse battery";

pub struct TestApi {
    pub router: axum::Router,
    pub runtime: trellis_runtime::Runtime,
    pub token: String,
    db: TestDatabase,
}

fn server_settings() -> ServerSettings {
    ServerSettings {
        max_body_bytes: 64 * 1024,
        ..Default::default()
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl TestApi {
    pub async fn start(backend: Backend) -> Option<Self> {
        Self::start_with(backend, trellis_runtime::RuntimeSettings::default()).await
    }

    /// [`TestApi::start`] with the runtime's settings given (SMTP, trusted certificates, …).
    pub async fn start_with(
        backend: Backend,
        runtime_settings: trellis_runtime::RuntimeSettings,
    ) -> Option<Self> {
        let db = fresh_database(backend).await?;
        let runtime =
            trellis_runtime::Runtime::new(db.runtime().await.store().clone(), runtime_settings);
        runtime.bootstrap_admin(Some(ADMIN_PASSWORD)).await.unwrap();
        let router = trellis_server::router(runtime.clone(), &server_settings());
        let mut api = Self {
            router,
            runtime,
            token: String::new(),
            db,
        };
        let login = api
            .send(
                "POST",
                "/api/auth/login",
                None,
                Some(json!({"username": "admin", "password": ADMIN_PASSWORD})),
            )
            .await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.text);
        api.token = login.body["token"].as_str().unwrap().to_owned();
        Some(api)
    }

    /// The database's URL, for raw SQL that checks or breaks what the API cannot reach.
    pub fn database_url(&self) -> &str {
        &self.db.url
    }

    /// A restart: a new runtime (empty caches) over the same database behind a new router; the
    /// admin's session stays valid.
    pub fn restart(&mut self, runtime_settings: trellis_runtime::RuntimeSettings) {
        self.runtime =
            trellis_runtime::Runtime::new(self.runtime.store().clone(), runtime_settings);
        self.router = trellis_server::router(self.runtime.clone(), &server_settings());
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.send(method, path, Some(&self.token.clone()), body)
            .await
    }

    /// A new user (password `password-1`) given `role` in `app`, signed in: (their id, their token).
    pub async fn user_in_role(&self, app: &str, role: &str, username: &str) -> (String, String) {
        let user = self
            .call(
                "POST",
                "/api/users",
                Some(json!({"username": username, "password": "password-1"})),
            )
            .await;
        assert_eq!(user.status, StatusCode::CREATED, "{}", user.text);
        let id = user.body["id"].as_str().unwrap().to_owned();
        let assigned = self
            .call(
                "PUT",
                &format!("/api/apps/{app}/roles/{role}/user/{id}"),
                None,
            )
            .await;
        assert_eq!(assigned.status, StatusCode::NO_CONTENT, "{}", assigned.text);
        let login = self
            .send(
                "POST",
                "/api/auth/login",
                None,
                Some(json!({"username": username, "password": "password-1"})),
            )
            .await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.text);
        (id, login.body["token"].as_str().unwrap().to_owned())
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        self.raw(request.unwrap()).await
    }

    pub async fn raw(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }
}

macro_rules! api_or_skip_impl {
    ($backend:expr) => {
        match $crate::support::api::TestApi::start($backend).await {
            Some(api) => api,
            None => return,
        }
    };
}
pub(crate) use api_or_skip_impl as api_or_skip;

pub fn assert_problem(reply: &Reply, status: StatusCode) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "application/problem+json",
        "{}",
        reply.text
    );
    assert_eq!(reply.body["status"], status.as_u16());
    for key in ["type", "title", "detail"] {
        assert!(
            reply.body[key].is_string(),
            "problem lacks {key}: {}",
            reply.text
        );
    }
    assert!(
        !reply.text.to_lowercase().contains("sqlx") && !reply.text.contains("SELECT"),
        "leaks internals: {}",
        reply.text
    );
}

impl TestApi {
    /// A signed-in request with extra headers.
    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        self.raw(request.unwrap()).await
    }

    /// Post a raw text body (imports).
    pub async fn post_text(&self, path: &str, content_type: &str, text: &str) -> Reply {
        let request = Request::builder()
            .method("POST")
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(text.to_owned()))
            .unwrap();
        self.raw(request).await
    }
}

impl TestApi {
    /// Post a binary body (template packages).
    pub async fn post_bytes(&self, path: &str, content_type: &str, bytes: Vec<u8>) -> Reply {
        let request = Request::builder()
            .method("POST")
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(bytes))
            .unwrap();
        self.raw(request).await
    }

    /// GET the raw body bytes (binary downloads).
    pub async fn raw_bytes(&self, path: &str) -> Vec<u8> {
        let request = Request::builder()
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(Body::empty())
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec()
    }
}
