//! Ensign's web admin UI: hand-written ES modules and CSS under `assets/`,
//! embedded in the binary at build time (`build.rs` lists the folder) and
//! served by [`router`] on the admin port next to `/api/v1`. There is no build
//! step and nothing is fetched from elsewhere: every page talks to the admin
//! API of the same origin.
//!
//! Every answer carries a strict Content-Security-Policy (`default-src
//! 'self'`, no inline scripts or styles, no framing) and the usual hardening
//! headers. Assets are revalidated on every load (`Cache-Control: no-cache`)
//! against an `ETag` derived from their content, so a new binary's UI is
//! picked up at once and an unchanged one costs a 304.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use axum::routing::get;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use sha2::{Digest as _, Sha256};

/// Every file under `assets/`: its URL path and its bytes.
static ASSETS: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The Content-Security-Policy of every UI answer.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Headers sent with every asset besides its type, tag and the CSP.
const HARDENING: &[(&str, &str)] = &[
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=()",
    ),
    ("cache-control", "no-cache"),
];

/// One embedded file, ready to serve.
#[derive(Debug)]
struct Asset {
    body: &'static [u8],
    content_type: HeaderValue,
    etag: HeaderValue,
}

/// The media type of a file name, by its extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

impl Asset {
    fn new(path: &str, body: &'static [u8]) -> Self {
        let digest = Sha256::digest(body);
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Asset {
            body,
            content_type: HeaderValue::from_static(content_type(path)),
            etag: HeaderValue::from_str(&format!("\"{hex}\""))
                .unwrap_or(HeaderValue::from_static("\"0\"")),
        }
    }

    /// The asset, or 304 when the caller's copy is current.
    fn respond(&self, request: &HeaderMap) -> Response {
        let fresh = request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|tag| tag.trim() == self.etag || tag.trim() == "*");
        let mut response = if fresh {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            response
        } else {
            let mut response = Response::new(Body::from(self.body));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, self.content_type.clone());
            response
        };
        let headers = response.headers_mut();
        headers.insert(header::ETAG, self.etag.clone());
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        for (name, value) in HARDENING {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        response
    }
}

/// The UI's routes: `/` (the shell, `index.html`) and every other asset at
/// its path under `assets/` (`/app.js`, `/pages/flags.js`, ...). Merge it
/// with the admin API's router; it has no fallback of its own.
pub fn router() -> Router {
    ASSETS.iter().fold(Router::new(), |router, (path, body)| {
        let asset = Arc::new(Asset::new(path, body));
        let route = if *path == "/index.html" { "/" } else { path };
        router.route(
            route,
            get(move |headers: HeaderMap| async move { asset.respond(&headers) }),
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use axum::body::to_bytes;
    use http::Request;
    use tower::ServiceExt as _;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        router()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn text(path: &str) -> &'static str {
        let (_, body) = ASSETS.iter().find(|(p, _)| *p == path).unwrap();
        std::str::from_utf8(body).unwrap()
    }

    #[tokio::test]
    async fn serves_the_shell_at_the_root_with_a_strict_policy() {
        let response = get("/", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        assert!(std::str::from_utf8(&body).unwrap().contains("/app.js"));
    }

    #[tokio::test]
    async fn serves_modules_and_styles_with_their_types() {
        for (path, expected) in [
            ("/app.js", "text/javascript; charset=utf-8"),
            ("/pages/flags.js", "text/javascript; charset=utf-8"),
            ("/app.css", "text/css; charset=utf-8"),
        ] {
            let response = get(path, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], expected, "{path}");
        }
        assert_eq!(
            get("/nothing.js", None).await.status(),
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn a_current_copy_is_not_sent_again() {
        let first = get("/app.css", None).await;
        let tag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
        let again = get("/app.css", Some(&tag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(again.headers().get(header::CONTENT_TYPE).is_none());
        assert_eq!(
            get("/app.css", Some("\"stale\"")).await.status(),
            StatusCode::OK
        );
    }

    /// Whether HTML has an attribute like ` onclick=`.
    fn has_event_attribute(html: &str) -> bool {
        html.match_indices(" on").any(|(at, _)| {
            let name: String = html[at + 3..]
                .chars()
                .take_while(char::is_ascii_alphabetic)
                .collect();
            !name.is_empty() && html[at + 3 + name.len()..].starts_with('=')
        })
    }

    #[test]
    fn no_asset_needs_inline_script_or_style() {
        for (path, body) in ASSETS {
            let Ok(source) = std::str::from_utf8(body) else {
                continue;
            };
            let source = source.to_ascii_lowercase();
            if path.ends_with(".html") {
                assert!(!source.contains(" style="), "{path}: style attribute");
                assert!(!source.contains("<style"), "{path}: style element");
                for script in source.split("<script").skip(1) {
                    let tag = script.split('>').next().unwrap_or_default();
                    assert!(tag.contains("src="), "{path}: inline script");
                }
                assert!(
                    !has_event_attribute(&source),
                    "{path}: inline event handler"
                );
            }
            if path.ends_with(".js") {
                assert!(!source.contains("setattribute('style'"), "{path}");
                assert!(!source.contains("eval("), "{path}");
                assert!(!source.contains("new function("), "{path}");
            }
        }
        assert!(text("/index.html").contains("type=\"module\""));
    }
}
