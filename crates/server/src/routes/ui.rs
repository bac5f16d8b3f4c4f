//! The builder UI, embedded at build time (see `build.rs`): hashed assets with a year-long cache,
//! `index.html` for `/` and for every other path a browser asks HTML for (client-side routing), gzip
//! when the browser accepts it. Unknown `/api/…` paths still get a problem+json 404. A build without the UI serves a page
//! that says why and how to fix it. For UI development, `TRELLIS_UI_DIR=builder-ui/dist` serves that
//! directory instead of the embedded copy (rebuild it with `npm run build`, no server rebuild).

use axum::extract::OriginalUri;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::system::route_not_found;

mod embedded {
    /// One file of the built UI.
    pub struct Asset {
        /// Path under `dist/`, e.g. `assets/index-abc.js`.
        pub path: &'static str,
        pub kind: &'static str,
        pub bytes: &'static [u8],
        /// The same, gzip-compressed (text files only).
        pub gzip: Option<&'static [u8]>,
    }

    include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));
}

use embedded::Asset;

/// Whether this build carries the UI.
pub fn ui_built() -> bool {
    embedded::UI_PROBLEM.is_none() && !embedded::ASSETS.is_empty()
}

fn asset(path: &str) -> Option<&'static Asset> {
    embedded::ASSETS.iter().find(|a| a.path == path)
}

fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|part| part.trim().starts_with("gzip")))
}

fn respond(entry: &'static Asset, headers: &HeaderMap, cache: &'static str) -> Response {
    let Asset {
        kind, bytes, gzip, ..
    } = *entry;
    let mut response = match gzip {
        Some(zipped) if accepts_gzip(headers) => {
            let mut r = zipped.into_response();
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r
        }
        _ => bytes.into_response(),
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

fn not_built_page() -> Response {
    let reason = embedded::UI_PROBLEM.unwrap_or("the UI was not built");
    let reason = reason
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let page = format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Trellis</title>\
         <body style=\"font-family:sans-serif;max-width:44em;margin:4em auto;line-height:1.5\">\
         <h1>Trellis is running · Trellis 已运行</h1>\
         <p>The builder UI is not part of this build: <strong>{reason}</strong>.</p>\
         <p>Install Node.js 20+ with npm, then build again (<code>cargo run --release -- serve --demo</code>); \
         the build runs the UI build by itself. The API works meanwhile: <a href=\"/api/openapi.json\">/api/openapi.json</a>.</p>\
         <p>此版本未包含可视化界面：{reason}。请安装 Node.js 20 及以上版本（含 npm）后重新构建；构建会自动编译界面。接口仍可使用：/api/openapi.json。</p>\
         </body></html>"
    );
    (StatusCode::SERVICE_UNAVAILABLE, Html(page)).into_response()
}

/// Development mode: files from a directory, `index.html` for other paths.
async fn from_directory(dir: &std::path::Path, relative: &str, uri: axum::http::Uri) -> Response {
    let safe = !relative
        .split('/')
        .any(|part| part == ".." || part.contains('\\'));
    let file = dir.join(relative);
    let (path, name) = if safe && !relative.is_empty() && file.is_file() {
        (file, relative.to_owned())
    } else if relative.starts_with("assets/") {
        return route_not_found(OriginalUri(uri)).await.into_response();
    } else {
        (dir.join("index.html"), "index.html".to_owned())
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let kind = if name.ends_with(".js") {
                "text/javascript; charset=utf-8"
            } else if name.ends_with(".css") {
                "text/css; charset=utf-8"
            } else if name.ends_with(".html") {
                "text/html; charset=utf-8"
            } else if name.ends_with(".svg") {
                "image/svg+xml"
            } else {
                "application/octet-stream"
            };
            (
                [
                    (header::CONTENT_TYPE, kind),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                bytes,
            )
                .into_response()
        }
        Err(_) => not_built_page(),
    }
}

/// Everything no API route matched.
pub async fn fallback(
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().to_owned();
    if path.starts_with("/api/")
        || path == "/api"
        || (method != Method::GET && method != Method::HEAD)
    {
        return route_not_found(OriginalUri(uri)).await.into_response();
    }
    let relative = path.trim_start_matches('/');
    if let Some(dir) = std::env::var_os("TRELLIS_UI_DIR")
        && (relative.is_empty() || accepts_html(&headers) || relative.starts_with("assets/"))
    {
        return from_directory(std::path::Path::new(&dir), relative, uri).await;
    }
    // Only `/` and what a browser asks HTML for are pages; files are the built UI's, if any.
    let page = relative.is_empty() || accepts_html(&headers);
    if !ui_built() {
        return if page {
            not_built_page()
        } else {
            route_not_found(OriginalUri(uri)).await.into_response()
        };
    }
    if let Some(entry) = asset(relative).filter(|_| !relative.is_empty()) {
        let cache = if relative.starts_with("assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        return respond(entry, &headers, cache);
    }
    if relative.starts_with("assets/") {
        return route_not_found(OriginalUri(uri)).await.into_response();
    }
    // Client-side routes are pages: browsers ask for HTML. Other clients get the API's 404.
    if !page {
        return route_not_found(OriginalUri(uri)).await.into_response();
    }
    match asset("index.html") {
        Some(entry) => respond(entry, &headers, "no-cache"),
        None => not_built_page(),
    }
}
