//! The admin API end to end on SQLite in a temporary directory, each request
//! sent through the router as the server would (`tower::ServiceExt::oneshot`):
//! auth and roles, environment-limited tokens, CRUD, 422 with JSON Pointers
//! and nothing written, ETags and 412s, filters and paging, import → export
//! round trips, the audit log, the OpenAPI document, 503 when the database
//! is gone, and the one error shape for malformed input.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use ensign_admin::AdminState;
use ensign_engine::EvaluationOptions;
use ensign_engine::document::{Limits, load_value};
use ensign_storage::Storage;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const BOOTSTRAP: &str = "bootstrap-secret-for-tests";

struct Api {
    router: Router,
    storage: Storage,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn etag(&self) -> String {
        self.headers
            .get("etag")
            .expect("an ETag")
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// Asserts the one error shape and returns the code.
    fn error_code(&self) -> &str {
        let error = self.body.get("error").unwrap_or_else(|| {
            panic!("no error body in {} {}", self.status, self.body);
        });
        let object = error.as_object().unwrap();
        assert!(
            object
                .keys()
                .all(|k| ["code", "message", "problems"].contains(&k.as_str()))
        );
        assert!(error["message"].is_string(), "{error}");
        assert_eq!(self.body.as_object().unwrap().len(), 1, "{}", self.body);
        error["code"].as_str().unwrap()
    }

    fn problem_paths(&self) -> BTreeSet<String> {
        self.body["error"]["problems"]
            .as_array()
            .unwrap_or_else(|| panic!("no problems in {}", self.body))
            .iter()
            .map(|p| p["path"].as_str().unwrap().to_owned())
            .collect()
    }
}

struct Call {
    router: Router,
    request: http::request::Builder,
    body: Body,
}

impl Call {
    fn token(mut self, token: &str) -> Self {
        self.request = self
            .request
            .header("authorization", format!("Bearer {token}"));
        self
    }

    /// Authenticates with a session cookie (as a browser sends it).
    fn cookie(mut self, session: &str) -> Self {
        self.request = self
            .request
            .header("cookie", format!("theme=dark; ensign_session={session}"));
        self
    }

    /// Sends the request as if from client address `ip` (as the listener
    /// records it).
    fn from(mut self, ip: &str) -> Self {
        let address = std::net::SocketAddr::new(ip.parse().unwrap(), 40_000);
        self.request = self.request.extension(ensign_http::ClientAddr(address));
        self
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.request = self.request.header(name, value);
        self
    }

    fn json(mut self, body: Value) -> Self {
        self.request = self.request.header("content-type", "application/json");
        self.body = Body::from(body.to_string());
        self
    }

    fn raw(mut self, body: impl Into<Body>) -> Self {
        self.request = self.request.header("content-type", "application/json");
        self.body = body.into();
        self
    }

    async fn send(self) -> Reply {
        let request = self.request.body(self.body).unwrap();
        let response = self.router.oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        Reply {
            status,
            headers,
            body,
        }
    }
}

impl Api {
    async fn new() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ensign.db").display());
        let storage = Storage::connect(&url).await.unwrap();
        storage.migrate().await.unwrap();
        let router =
            ensign_admin::router(AdminState::new(storage.clone(), Some(BOOTSTRAP.to_owned())));
        Api {
            router,
            storage,
            _dir: dir,
        }
    }

    fn call(&self, method: Method, path: &str) -> Call {
        Call {
            router: self.router.clone(),
            request: Request::builder()
                .method(method)
                .uri(format!("/api/v1{path}")),
            body: Body::empty(),
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path).token(BOOTSTRAP).send().await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path)
            .token(BOOTSTRAP)
            .json(body)
            .send()
            .await
    }

    /// Creates a token and returns its secret.
    async fn token(&self, name: &str, role: &str, environments: Option<Vec<&str>>) -> String {
        let mut body = json!({"name": name, "role": role});
        if let Some(environments) = environments {
            body["environments"] = json!(environments);
        }
        let reply = self.post("/tokens", body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["secret"].as_str().unwrap().to_owned()
    }

    async fn flag_set(&self, key: &str) {
        let reply = self.post("/flag-sets", json!({"key": key})).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }

    async fn flag(&self, set: &str, key: &str, extra: Value) -> Reply {
        let mut body = json!({
            "flagSet": set, "key": key,
            "variants": {"on": true, "off": false}, "defaultVariant": "off"
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let reply = self.post("/flags", body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply
    }
}

#[tokio::test]
async fn requests_need_a_valid_token() {
    let api = Api::new().await;
    let reply = api.call(Method::GET, "/flags").send().await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error_code(), "unauthorized");
    assert_eq!(reply.headers["www-authenticate"], "Bearer");

    let reply = api.call(Method::GET, "/flags").token("nope").send().await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error_code(), "unauthorized");

    let reply = api
        .call(Method::GET, "/flags")
        .header("authorization", &format!("Basic {BOOTSTRAP}"))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    // The bootstrap token is an admin; the document is public.
    assert_eq!(api.get("/tokens").await.status, StatusCode::OK);
    let reply = api.call(Method::GET, "/openapi.json").send().await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["cache-control"], "no-store");
}

#[tokio::test]
async fn roles_decide_what_a_token_may_do() {
    let api = Api::new().await;
    api.flag_set("web").await;
    api.flag("web", "banner", json!({})).await;
    let viewer = api.token("ci-viewer", "viewer", None).await;
    let editor = api.token("alice", "editor", None).await;
    let admin = api.token("root", "admin", None).await;

    // Viewers read everything but tokens.
    for path in [
        "/flags",
        "/flags/web/banner",
        "/environments",
        "/flag-sets",
        "/audit",
    ] {
        let reply = api.call(Method::GET, path).token(&viewer).send().await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
    }
    let reply = api.call(Method::GET, "/tokens").token(&viewer).send().await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.error_code(), "forbidden");
    // ... and write nothing, not even with a broken body.
    let reply = api
        .call(
            Method::POST,
            "/flags/web/banner/environments/production/toggle",
        )
        .token(&viewer)
        .raw("{broken")
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // Editors write flags, not environments or tokens.
    let reply = api
        .call(
            Method::POST,
            "/flags/web/banner/environments/production/toggle",
        )
        .token(&editor)
        .json(json!({"enabled": true}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["environments"]["production"]["state"], "ENABLED");
    let reply = api
        .call(Method::POST, "/environments")
        .token(&editor)
        .json(json!({"key": "qa"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.error_code(), "forbidden");
    let reply = api
        .call(Method::POST, "/tokens")
        .token(&editor)
        .json(json!({"name": "x", "role": "admin"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // Admins do both.
    let reply = api
        .call(Method::POST, "/environments")
        .token(&admin)
        .json(json!({"key": "qa", "name": "QA"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);

    // Secrets are shown once, stored hashed, and revocable.
    let reply = api.get("/tokens").await;
    let listed = reply.body.as_array().unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|t| t.get("secret").is_none()));
    assert!(!reply.body.to_string().contains(&editor));
    let reply = api
        .call(Method::DELETE, "/tokens/alice")
        .token(BOOTSTRAP)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(reply.body["revokedAt"].is_i64());
    let reply = api.call(Method::GET, "/flags").token(&editor).send().await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    // The bootstrap name is reserved; names are unique.
    let reply = api
        .post("/tokens", json!({"name": "bootstrap", "role": "viewer"}))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.problem_paths(), BTreeSet::from(["/name".to_owned()]));
    let reply = api
        .post("/tokens", json!({"name": "root", "role": "viewer"}))
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.error_code(), "conflict");
}

#[tokio::test]
async fn environment_limited_tokens_write_only_their_environments() {
    let api = Api::new().await;
    api.flag_set("web").await;
    api.flag("web", "banner", json!({})).await;
    let put = api
        .call(Method::PUT, "/flag-sets/web/segments/beta")
        .token(BOOTSTRAP)
        .json(json!({"rule": {"==": [{"var": "beta"}, true]}}))
        .send()
        .await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.body);
    let staging = api.token("stager", "editor", Some(vec!["staging"])).await;

    let toggle = |env: &str| format!("/flags/web/banner/environments/{env}/toggle");
    let reply = api
        .call(Method::POST, &toggle("staging"))
        .token(&staging)
        .json(json!({"enabled": true}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = api
        .call(Method::POST, &toggle("production"))
        .token(&staging)
        .json(json!({"enabled": true}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.error_code(), "forbidden");
    let reply = api
        .call(Method::PUT, "/flags/web/banner/environments/production")
        .token(&staging)
        .json(json!({"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // Copies are judged by their target.
    let copy = |from: &str, to: &str| json!({"from": from, "to": to});
    let reply = api
        .call(Method::POST, "/flags/web/banner/copy")
        .token(&staging)
        .json(copy("production", "staging"))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = api
        .call(Method::POST, "/flags/web/banner/copy")
        .token(&staging)
        .json(copy("staging", "production"))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // Changes that reach every environment are refused.
    for (method, path, body) in [
        (
            Method::POST,
            "/flags",
            json!({"flagSet": "web", "key": "x", "variants": {"a": 1}}),
        ),
        (Method::PATCH, "/flags/web/banner", json!({"owner": "me"})),
        (Method::POST, "/flags/web/banner/archive", Value::Null),
        (
            Method::PUT,
            "/flag-sets/web/segments/beta",
            json!({"rule": {"==": [1, 1]}}),
        ),
        (Method::POST, "/flag-sets", json!({"key": "mobile"})),
    ] {
        let mut call = api.call(method, path).token(&staging);
        if !body.is_null() {
            call = call.json(body);
        }
        let reply = call.send().await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            reply.body
        );
    }

    // Imports go into its environments, and may not change shared segments.
    let document = |rule: Value| {
        json!({"$evaluators": {"beta": rule},
               "flags": {"banner": {"state": "ENABLED", "variants": {"on": true, "off": false},
                                    "defaultVariant": "off",
                                    "targeting": {"if": [{"$ref": "beta"}, "on", null]}}}})
    };
    let unchanged = document(json!({"==": [{"var": "beta"}, true]}));
    let reply = api
        .call(Method::POST, "/import?environment=staging&flagSet=web")
        .token(&staging)
        .json(unchanged.clone())
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = api
        .call(Method::POST, "/import?environment=production&flagSet=web")
        .token(&staging)
        .json(unchanged)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = api
        .call(Method::POST, "/import?environment=staging&flagSet=web")
        .token(&staging)
        .json(document(json!({"==": [{"var": "beta"}, false]})))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);

    // An environment-limited admin may rename its environment only.
    let local_admin = api
        .token("stage-admin", "admin", Some(vec!["staging"]))
        .await;
    let rename = |env: &str| format!("/environments/{env}");
    let reply = api
        .call(Method::PATCH, &rename("staging"))
        .token(&local_admin)
        .json(json!({"name": "Stage"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = api
        .call(Method::PATCH, &rename("production"))
        .token(&local_admin)
        .json(json!({"name": "Prod"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = api
        .call(Method::POST, "/tokens")
        .token(&local_admin)
        .json(json!({"name": "escalate", "role": "admin"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn environment_limited_imports_cannot_change_what_every_environment_shares() {
    let api = Api::new().await;
    api.flag_set("web").await;
    api.flag(
        "web",
        "banner",
        json!({"owner": "growth", "metadata": {"owner": "growth", "ticket": "WEB-1"}}),
    )
    .await;
    let staging = api.token("stage", "editor", Some(vec!["staging"])).await;
    let stored = api.get("/flags/web/banner").await.body;
    let production = api
        .get("/export?environment=production&flagSet=web")
        .await
        .body;
    let export = api
        .get("/export?environment=staging&flagSet=web")
        .await
        .body;
    let import = |document: Value| {
        api.call(Method::POST, "/import?environment=staging&flagSet=web")
            .token(&staging)
            .json(document)
            .send()
    };

    // New flag metadata (what production serves too) and a new segment:
    // 403 naming both, and nothing changes anywhere.
    let mut shared = export.clone();
    shared["flags"]["banner"]["metadata"] = json!({"owner": "mallory"});
    shared["$evaluators"] = json!({"everyone": {"==": [1, 1]}});
    let reply = import(shared).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("metadata of flag \"web/banner\""),
        "{message}"
    );
    assert!(
        message.contains("segment \"web/everyone\" (new)"),
        "{message}"
    );
    assert_eq!(api.get("/flags/web/banner").await.body, stored);
    assert_eq!(
        api.get("/export?environment=production&flagSet=web")
            .await
            .body,
        production
    );
    let segment = api.get("/flag-sets/web/segments/everyone").await;
    assert_eq!(segment.status, StatusCode::NOT_FOUND);
    // Leaving the metadata out would wipe it: refused as well.
    let mut wiped = export.clone();
    wiped["flags"]["banner"]
        .as_object_mut()
        .unwrap()
        .remove("metadata");
    let reply = import(wiped).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    assert_eq!(api.get("/flags/web/banner").await.body, stored);

    // Only staging's configuration changes: allowed.
    let mut staging_only = export.clone();
    staging_only["flags"]["banner"]["state"] = json!("ENABLED");
    let reply = import(staging_only).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let after = api.get("/flags/web/banner").await.body;
    assert_eq!(after["environments"]["staging"]["state"], "ENABLED");
    assert_eq!(after["metadata"], stored["metadata"]);
    assert_eq!(
        api.get("/export?environment=production&flagSet=web")
            .await
            .body,
        production
    );
}

#[tokio::test]
async fn resources_are_created_read_updated_and_deleted() {
    let api = Api::new().await;

    // Environments.
    let reply = api.get("/environments").await;
    let keys: Vec<&str> = reply
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["development", "staging", "production"]);
    let reply = api
        .post("/environments", json!({"key": "qa", "name": "QA"}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.etag(), "\"1\"");
    assert_eq!(reply.headers["location"], "/api/v1/environments/qa");
    assert_eq!(reply.body, json!({"key": "qa", "name": "QA", "version": 1}));
    let reply = api
        .call(Method::PATCH, "/environments/qa")
        .token(BOOTSTRAP)
        .header("if-match", "\"1\"")
        .json(json!({"name": "Quality"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.etag(), "\"2\"");
    assert_eq!(api.get("/environments/qa").await.body["name"], "Quality");
    assert_eq!(
        api.get("/environments/nope").await.status,
        StatusCode::NOT_FOUND
    );

    // Flag sets.
    let reply = api
        .post(
            "/flag-sets",
            json!({"key": "web", "name": "Web", "metadata": {"team": "growth"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = api.get("/flag-sets/web").await;
    assert_eq!(reply.etag(), "\"1\"");
    assert_eq!(reply.body["metadata"], json!({"team": "growth"}));
    let reply = api
        .call(Method::PUT, "/flag-sets/web")
        .token(BOOTSTRAP)
        .header("if-match", "\"1\"")
        .json(json!({"name": "Website", "metadata": {"team": "web"}}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["name"], "Website");
    assert_eq!(reply.etag(), "\"2\"");
    let reply = api.post("/flag-sets", json!({"key": "web"})).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.error_code(), "conflict");

    // Segments.
    let reply = api
        .call(Method::PUT, "/flag-sets/web/segments/ghost")
        .token(BOOTSTRAP)
        .header("if-match", "\"1\"")
        .json(json!({"rule": {"==": [1, 1]}}))
        .send()
        .await;
    assert_eq!(
        reply.status,
        StatusCode::PRECONDITION_FAILED,
        "If-Match cannot create"
    );
    let rule = json!({"in": ["@example.com", {"var": "email"}]});
    let reply = api
        .call(Method::PUT, "/flag-sets/web/segments/staff")
        .token(BOOTSTRAP)
        .json(json!({"description": "Employees", "rule": rule}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["flagSet"], "web");
    let reply = api
        .call(Method::PUT, "/flag-sets/web/segments/staff")
        .token(BOOTSTRAP)
        .json(json!({"rule": rule}))
        .send()
        .await;
    assert_eq!(
        reply.status,
        StatusCode::CONFLICT,
        "replacing needs If-Match"
    );

    // Flags.
    let reply = api
        .flag("web", "new-checkout", json!({
            "description": "The new checkout", "owner": "payments", "tags": ["checkout"],
            "kind": "experiment",
            "targeting": {"if": [{"$ref": "staff"}, "on", null]},
            "environments": {"development": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}}
        }))
        .await;
    assert_eq!(reply.headers["location"], "/api/v1/flags/web/new-checkout");
    let flag = &reply.body;
    assert_eq!(flag["flagSet"], "web");
    assert_eq!(flag["kind"], "experiment");
    assert_eq!(flag["stage"], "new");
    assert_eq!(flag["environments"]["development"]["state"], "ENABLED");
    assert_eq!(flag["environments"]["production"]["state"], "DISABLED");
    assert_eq!(flag["environments"]["production"]["defaultVariant"], "off");
    assert_eq!(reply.etag(), format!("\"{}\"", flag["version"]));

    let reply = api.get("/flag-sets/web/segments/staff").await;
    assert_eq!(reply.body["usedBy"], json!(["new-checkout"]));
    let segment_tag = reply.etag();
    let reply = api
        .call(Method::PUT, "/flag-sets/web/segments/staff")
        .token(BOOTSTRAP)
        .header("if-match", &segment_tag)
        .json(json!({"description": "Staff", "rule": {"in": ["@corp.example", {"var": "email"}]}}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.etag(), "\"2\"");
    let reply = api.get("/flag-sets/web/segments").await;
    assert_eq!(reply.body.as_array().unwrap().len(), 1);
    let reply = api
        .call(Method::DELETE, "/flag-sets/web/segments/staff")
        .token(BOOTSTRAP)
        .send()
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "in use: {}",
        reply.body
    );

    let reply = api
        .call(Method::PATCH, "/flags/web/new-checkout")
        .token(BOOTSTRAP)
        .json(json!({"owner": "checkout", "stage": "active", "expiresAt": 1_900_000_000_000i64}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["owner"], "checkout");
    assert_eq!(reply.body["description"], "The new checkout");
    assert_eq!(reply.body["expiresAt"], 1_900_000_000_000i64);
    let reply = api
        .call(Method::PATCH, "/flags/web/new-checkout")
        .token(BOOTSTRAP)
        .json(json!({"expiresAt": null}))
        .send()
        .await;
    assert_eq!(reply.body["expiresAt"], Value::Null);

    // Configuration per environment, toggles and copies.
    let reply = api
        .call(Method::PUT, "/flags/web/new-checkout/environments/staging")
        .token(BOOTSTRAP)
        .json(json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body["environments"]["staging"]["defaultVariant"],
        "on"
    );
    assert_eq!(
        reply.body["environments"]["staging"]["targeting"],
        Value::Null
    );
    let reply = api
        .post(
            "/flags/web/new-checkout/copy",
            json!({"from": "staging", "to": "production"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["environments"]["production"]["state"], "ENABLED");
    assert_eq!(
        reply.body["environments"]["production"]["defaultVariant"],
        "on"
    );
    let reply = api
        .post(
            "/flags/web/new-checkout/environments/production/toggle",
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(
        reply.body["environments"]["production"]["state"],
        "DISABLED"
    );
    let reply = api
        .post(
            "/flags/web/new-checkout/environments/nowhere/toggle",
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "not_found");

    // Archive and restore: the stage comes back.
    let reply = api
        .call(Method::POST, "/flags/web/new-checkout/archive")
        .token(BOOTSTRAP)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["stage"], "archived");
    let reply = api
        .call(Method::POST, "/flags/web/new-checkout/archive")
        .token(BOOTSTRAP)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(api.get("/flags").await.body["total"], 0);
    let reply = api
        .call(Method::POST, "/flags/web/new-checkout/restore")
        .token(BOOTSTRAP)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["stage"], "active");

    // Deletion.
    let tag = api.get("/flags/web/new-checkout").await.etag();
    let reply = api
        .call(Method::DELETE, "/flags/web/new-checkout")
        .token(BOOTSTRAP)
        .header("if-match", &tag)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get("/flags/web/new-checkout").await.status,
        StatusCode::NOT_FOUND
    );
    let reply = api
        .call(Method::DELETE, "/flag-sets/web/segments/staff")
        .token(BOOTSTRAP)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let reply = api
        .call(Method::DELETE, "/flag-sets/web")
        .token(BOOTSTRAP)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get("/flag-sets/web").await.status,
        StatusCode::NOT_FOUND
    );

    // Keys with a slash travel percent-encoded.
    api.flag_set("mobile").await;
    let reply = api.flag("mobile", "ios/dark-mode", json!({})).await;
    assert_eq!(
        reply.headers["location"],
        "/api/v1/flags/mobile/ios%2Fdark-mode"
    );
    assert_eq!(
        api.get("/flags/mobile/ios%2Fdark-mode").await.body["key"],
        "ios/dark-mode"
    );
}

#[tokio::test]
async fn invalid_input_is_422_with_every_problem_and_nothing_is_written() {
    let api = Api::new().await;
    api.flag_set("web").await;
    let audit_before = api.get("/audit").await.body["items"]
        .as_array()
        .unwrap()
        .len();

    // Several problems in one flag, at their paths in the body.
    let reply = api
        .post(
            "/flags",
            json!({
                "flagSet": "web", "key": "broken",
                "variants": {"on": true, "off": "no"},
                "defaultVariant": "missing",
                "targeting": {"nope": [1]},
            }),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    assert_eq!(reply.error_code(), "invalid");
    let paths = reply.problem_paths();
    assert!(paths.len() >= 2, "{}", reply.body);
    assert!(
        paths.iter().all(|p| !p.starts_with("/environments/")),
        "{paths:?}"
    );
    assert!(paths.contains("/defaultVariant"), "{paths:?}");
    assert!(
        paths.iter().any(|p| p.starts_with("/targeting")),
        "{paths:?}"
    );
    assert!(
        paths.iter().any(|p| p.starts_with("/variants")),
        "{paths:?}"
    );
    // A per-environment configuration is reported where the body has it.
    let reply = api
        .post("/flags", json!({
            "flagSet": "web", "key": "broken", "variants": {"on": true}, "defaultVariant": "on",
            "environments": {"staging": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "off"}},
        }))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.problem_paths(),
        BTreeSet::from(["/environments/staging/defaultVariant".to_owned()])
    );
    assert_eq!(
        api.get("/flags/web/broken").await.status,
        StatusCode::NOT_FOUND
    );

    // Wrong types, missing and unknown fields name their paths too.
    let cases = [
        (
            json!({"flagSet": "web", "key": "k", "variants": {"a": 1}, "tags": "x"}),
            "/tags",
        ),
        (json!({"flagSet": "web", "key": "k"}), "/variants"),
        (
            json!({"flagSet": "web", "key": "k", "variants": {"a": 1}, "kind": "joke"}),
            "/kind",
        ),
        (
            json!({"flagSet": "web", "key": "k", "variants": {"a": 1}, "defaultvariant": "a"}),
            "/defaultvariant",
        ),
        (
            json!({"flagSet": "web", "key": "k", "variants": {"a": 1},
                "environments": {"staging": {"state": 1, "variants": {}}}}),
            "/environments/staging/state",
        ),
    ];
    for (body, path) in cases {
        let reply = api.post("/flags", body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            reply.body
        );
        assert_eq!(reply.error_code(), "invalid");
        assert_eq!(
            reply.problem_paths(),
            BTreeSet::from([path.to_owned()]),
            "{body}"
        );
    }

    // A bad configuration: paths relative to the body, the flag unchanged.
    let created = api.flag("web", "ok", json!({})).await;
    let reply = api
        .call(Method::PUT, "/flags/web/ok/environments/production")
        .token(BOOTSTRAP)
        .json(json!({"state": "ENABLED", "variants": {"a": 1, "b": "two"}, "defaultVariant": "c"}))
        .send()
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    let paths = reply.problem_paths();
    assert!(paths.contains("/defaultVariant"), "{paths:?}");
    assert!(
        paths.iter().any(|p| p.starts_with("/variants")),
        "{paths:?}"
    );
    assert_eq!(api.get("/flags/web/ok").await.body, created.body);

    // Bad keys, bad segment rules, bad environments.
    let reply = api.post("/environments", json!({"key": "Bad Key"})).await;
    assert_eq!(reply.problem_paths(), BTreeSet::from(["/key".to_owned()]));
    let reply = api
        .call(Method::PUT, "/flag-sets/web/segments/s")
        .token(BOOTSTRAP)
        .json(json!({"rule": {"frobnicate": []}}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply.problem_paths().iter().all(|p| p.starts_with("/rule")),
        "{}",
        reply.body
    );

    // Nothing of the above was written or audited.
    let audit_after = api.get("/audit").await.body["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        audit_after,
        audit_before + 1,
        "only the flag \"ok\" was created"
    );
    assert_eq!(
        api.get("/environments")
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(api.get("/flag-sets/web/segments").await.body, json!([]));
}

#[tokio::test]
async fn stale_if_match_is_412_and_no_update_is_lost() {
    let api = Api::new().await;
    api.flag_set("web").await;
    api.flag("web", "banner", json!({})).await;
    let alice = api.token("alice", "editor", None).await;
    let bob = api.token("bob", "editor", None).await;

    // Both read the same version.
    let seen = api
        .call(Method::GET, "/flags/web/banner")
        .token(&alice)
        .send()
        .await
        .etag();
    assert_eq!(
        api.call(Method::GET, "/flags/web/banner")
            .token(&bob)
            .send()
            .await
            .etag(),
        seen
    );

    let reply = api
        .call(Method::PATCH, "/flags/web/banner")
        .token(&alice)
        .header("if-match", &seen)
        .json(json!({"description": "alice was here"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let newer = reply.etag();
    assert_ne!(newer, seen);

    // Bob's writes based on the old version are refused, whatever they are.
    for (method, path, body) in [
        (Method::PATCH, "/flags/web/banner", json!({"owner": "bob"})),
        (
            Method::POST,
            "/flags/web/banner/environments/production/toggle",
            json!({"enabled": true}),
        ),
        (
            Method::PUT,
            "/flags/web/banner/environments/staging",
            json!({"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"}),
        ),
        (
            Method::POST,
            "/flags/web/banner/copy",
            json!({"from": "staging", "to": "production"}),
        ),
    ] {
        let reply = api
            .call(method, path)
            .token(&bob)
            .header("if-match", &seen)
            .json(body)
            .send()
            .await;
        assert_eq!(
            reply.status,
            StatusCode::PRECONDITION_FAILED,
            "{path}: {}",
            reply.body
        );
        assert_eq!(reply.error_code(), "precondition_failed");
    }
    let reply = api
        .call(Method::DELETE, "/flags/web/banner")
        .token(&bob)
        .header("if-match", &seen)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::PRECONDITION_FAILED);
    let flag = api.get("/flags/web/banner").await;
    assert_eq!(flag.body["description"], "alice was here");
    assert_eq!(flag.body["owner"], "");
    assert_eq!(flag.etag(), newer);

    // Re-read, retry: it applies on top of Alice's change.
    let reply = api
        .call(Method::PATCH, "/flags/web/banner")
        .token(&bob)
        .header("if-match", &newer)
        .json(json!({"owner": "bob"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["description"], "alice was here");
    assert_eq!(reply.body["owner"], "bob");

    // Many editors racing on the same version: exactly one wins.
    let current = reply.etag();
    let racers = (0..8).map(|i| {
        let call = api
            .call(Method::PATCH, "/flags/web/banner")
            .token(&alice)
            .header("if-match", &current)
            .json(json!({"description": format!("racer {i}")}));
        call.send()
    });
    let replies = futures_join_all(racers).await;
    let won: Vec<_> = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .collect();
    let lost = replies
        .iter()
        .filter(|r| r.status == StatusCode::PRECONDITION_FAILED)
        .count();
    assert_eq!(
        won.len(),
        1,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(lost, 7);
    assert_eq!(
        api.get("/flags/web/banner").await.body["description"],
        won[0].body["description"]
    );

    // Malformed preconditions are 400, as are versions of more than 18 digits
    // (the OpenAPI document's pattern for If-Match).
    for bad in [
        "3",
        "W/\"3\"",
        "\"x\"",
        "\"1\", \"2\"",
        "\"1234567890123456789\"",
    ] {
        let reply = api
            .call(Method::PATCH, "/flags/web/banner")
            .token(&alice)
            .header("if-match", bad)
            .json(json!({"owner": "x"}))
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(reply.error_code(), "bad_request");
    }
    // Environments and flag sets have versions too.
    let reply = api
        .call(Method::PATCH, "/environments/staging")
        .token(BOOTSTRAP)
        .header("if-match", "\"7\"")
        .json(json!({"name": "S"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::PRECONDITION_FAILED);
    let reply = api
        .call(Method::PUT, "/flag-sets/web")
        .token(BOOTSTRAP)
        .header("if-match", "\"7\"")
        .json(json!({"name": "W"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::PRECONDITION_FAILED);
}

/// Runs the futures concurrently and collects their outputs in order.
async fn futures_join_all<F: std::future::Future<Output = Reply> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<Reply> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut replies = Vec::new();
    for handle in handles {
        replies.push(handle.await.unwrap());
    }
    replies
}

#[tokio::test]
async fn flags_are_listed_with_filters_and_pages() {
    let api = Api::new().await;
    api.flag_set("web").await;
    api.flag_set("mobile").await;
    for (set, key, extra) in [
        (
            "web",
            "alpha",
            json!({"tags": ["ui", "q3"], "owner": "growth", "kind": "experiment"}),
        ),
        (
            "web",
            "beta",
            json!({"tags": ["ui"], "owner": "growth", "description": "Checkout BETA"}),
        ),
        (
            "web",
            "gamma",
            json!({"owner": "platform", "kind": "operational"}),
        ),
        ("web", "delta", json!({"tags": ["q3"], "owner": "platform"})),
        ("mobile", "epsilon", json!({"kind": "permission"})),
        ("mobile", "zeta", json!({"tags": ["ui"]})),
        ("mobile", "eta", json!({})),
    ] {
        api.flag(set, key, extra).await;
    }
    api.post(
        "/flags/web/alpha/environments/production/toggle",
        json!({"enabled": true}),
    )
    .await;
    api.post(
        "/flags/mobile/zeta/environments/staging/toggle",
        json!({"enabled": true}),
    )
    .await;
    api.call(Method::POST, "/flags/mobile/eta/archive")
        .token(BOOTSTRAP)
        .send()
        .await;

    let keys = |reply: &Reply| -> Vec<String> {
        reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["key"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = |query: &'static str| {
        let api = &api;
        async move {
            let reply = api.get(&format!("/flags{query}")).await;
            assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
            reply
        }
    };

    let all = list("").await;
    assert_eq!(all.body["total"], 6, "archived flags are hidden");
    assert_eq!(
        keys(&all),
        ["epsilon", "zeta", "alpha", "beta", "delta", "gamma"]
    );
    assert_eq!(
        keys(&list("?flagSet=web").await),
        ["alpha", "beta", "delta", "gamma"]
    );
    assert_eq!(keys(&list("?tag=ui").await), ["zeta", "alpha", "beta"]);
    assert_eq!(keys(&list("?owner=platform").await), ["delta", "gamma"]);
    assert_eq!(keys(&list("?kind=experiment").await), ["alpha"]);
    assert_eq!(keys(&list("?stage=archived").await), ["eta"]);
    assert_eq!(keys(&list("?q=beta").await), ["beta"]);
    assert_eq!(keys(&list("?q=checkout").await), ["beta"]);
    assert_eq!(keys(&list("?state=enabled").await), ["alpha"]);
    assert_eq!(
        keys(&list("?state=ENABLED&environment=staging").await),
        ["zeta"]
    );
    assert_eq!(
        keys(&list("?state=disabled&flagSet=web&tag=q3").await),
        ["delta"]
    );
    let scoped = list("?environment=staging&flagSet=mobile").await;
    for flag in scoped.body["items"].as_array().unwrap() {
        let envs: Vec<&String> = flag["environments"].as_object().unwrap().keys().collect();
        assert_eq!(envs, ["staging"]);
    }

    // Pages do not overlap and cover everything.
    let mut paged = Vec::new();
    for offset in [0, 2, 4, 6] {
        let reply = api.get(&format!("/flags?limit=2&offset={offset}")).await;
        assert_eq!(reply.body["total"], 6);
        assert_eq!(reply.body["limit"], 2);
        assert_eq!(reply.body["offset"], offset);
        paged.extend(keys(&reply));
    }
    assert_eq!(paged, keys(&all));

    // Bad parameters are 400 in the one shape.
    for query in ["?stage=zombie", "?limit=many", "?state=maybe"] {
        let reply = api.get(&format!("/flags{query}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(reply.error_code(), "bad_request");
    }
}

fn round_trip_document() -> Value {
    json!({
        "$schema": "https://flagd.dev/schema/v0/flags.json",
        "metadata": {"flagSetId": "shop", "team": "checkout"},
        "$evaluators": {
            "staff": {"ends_with": [{"var": "email"}, "@example.com"]},
            "eu": {"in": [{"var": "country"}, ["de", "fr", "nl"]]}
        },
        "flags": {
            "new-checkout": {
                "state": "ENABLED",
                "variants": {"on": true, "off": false},
                "defaultVariant": "off",
                "targeting": {"if": [{"$ref": "staff"}, "on", {"fractional": [{"var": "targetingKey"}, ["on", 25], ["off", 75]]}]},
                "metadata": {"owner": "payments"}
            },
            "color": {
                "state": "ENABLED",
                "variants": {"red": "#f00", "blue": "#00f", "green": "#0f0"},
                "defaultVariant": "red",
                "targeting": {"if": [{"$ref": "eu"}, "blue", {"sem_ver": [{"var": "version"}, ">=", "2.0.0"]}, "green", null]}
            },
            "limit": {"state": "ENABLED", "variants": {"small": 10, "big": 1000}, "defaultVariant": "big"},
            "ratio": {"state": "ENABLED", "variants": {"half": 0.5, "tenth": 0.1}, "defaultVariant": "half",
                      "targeting": {"if": [{">": [{"var": "age"}, 40]}, "tenth", null]}},
            "theme": {"state": "ENABLED", "variants": {"dark": {"bg": "#000"}, "light": {"bg": "#fff"}}, "defaultVariant": "dark"},
            "retired": {"state": "DISABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
            "code-default": {"state": "ENABLED", "variants": {"a": "a", "b": "b"}, "defaultVariant": null,
                             "targeting": {"if": [{"==": [{"var": "tier"}, "gold"]}, "b", null]}}
        }
    })
}

/// Every flag's resolution for every context, as comparable text.
fn evaluations(document: &Value) -> Vec<String> {
    let loaded = load_value(document, &Limits::default()).expect("a valid document");
    let contexts = [
        json!({}),
        json!({"targetingKey": "user-1", "email": "ann@example.com"}),
        json!({"targetingKey": "user-2", "email": "bob@else.org", "country": "de"}),
        json!({"targetingKey": "user-3", "version": "2.1.0", "age": 50, "tier": "gold"}),
        json!({"targetingKey": "user-4", "version": "1.9.9", "age": 20, "tier": "silver"}),
    ];
    let mut results = Vec::new();
    let mut flags: Vec<_> = loaded.document.flags.iter().collect();
    flags.sort_by(|a, b| a.key().cmp(b.key()));
    for flag in flags {
        for context in &contexts {
            let context = context.as_object().unwrap().clone();
            let resolution = flag.evaluate(&context, 1_700_000_000, &EvaluationOptions::default());
            results.push(format!(
                "{} {} {:?} {:?} {:?} {:?} {:?}",
                flag.key(),
                serde_json::to_string(&context).unwrap(),
                resolution.value,
                resolution.variant,
                resolution.reason,
                resolution.error.map(|e| e.code),
                resolution.metadata,
            ));
        }
    }
    results
}

#[tokio::test]
async fn import_then_export_preserves_every_evaluation() {
    let api = Api::new().await;
    let document = round_trip_document();
    let reply = api
        .call(Method::POST, "/import?environment=production")
        .token(BOOTSTRAP)
        .header("x-ensign-comment", "initial import")
        .json(document.clone())
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["flagSet"], "shop", "named by metadata.flagSetId");
    assert_eq!(reply.body["imported"].as_array().unwrap().len(), 7);

    let exported = api.get("/export?environment=production&flagSet=shop").await;
    assert_eq!(exported.status, StatusCode::OK, "{}", exported.body);
    assert_eq!(evaluations(&exported.body), evaluations(&document));
    assert_eq!(exported.body["$evaluators"], document["$evaluators"]);
    assert_eq!(
        exported.body["flags"]["new-checkout"]["targeting"],
        document["flags"]["new-checkout"]["targeting"],
        "segments stay shared through $ref"
    );

    // The export imports elsewhere to the same evaluations, and again to the
    // same document.
    let reply = api
        .call(Method::POST, "/import?environment=staging&flagSet=shop")
        .token(BOOTSTRAP)
        .json(exported.body.clone())
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let staging = api.get("/export?environment=staging&flagSet=shop").await;
    assert_eq!(evaluations(&staging.body), evaluations(&document));
    assert_eq!(staging.body, exported.body);
    // Other environments got the new flags disabled.
    let development = api
        .get("/export?environment=development&flagSet=shop")
        .await;
    for (key, flag) in development.body["flags"].as_object().unwrap() {
        assert_eq!(flag["state"], "DISABLED", "{key}");
    }

    // An invalid document is refused whole, with paths into it.
    let broken = json!({
        "flags": {
            "a": {"state": "ENABLED", "variants": {"x": 1}, "defaultVariant": "y"},
            "b": {"state": "SOMETIMES", "variants": {"x": 1}, "defaultVariant": "x"}
        }
    });
    let reply = api
        .call(Method::POST, "/import?environment=production&flagSet=other")
        .token(BOOTSTRAP)
        .json(broken)
        .send()
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    let paths = reply.problem_paths();
    assert!(paths.iter().any(|p| p.starts_with("/flags/a")), "{paths:?}");
    assert!(paths.iter().any(|p| p.starts_with("/flags/b")), "{paths:?}");
    assert_eq!(
        api.get("/flag-sets/other").await.status,
        StatusCode::NOT_FOUND
    );

    // Without a flag set anywhere.
    let reply = api
        .post("/import?environment=production", json!({"flags": {}}))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.problem_paths(),
        BTreeSet::from(["/metadata/flagSetId".to_owned()])
    );
    let reply = api.get("/export?environment=nowhere&flagSet=shop").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = api.get("/export?environment=production").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn every_write_is_audited_with_actor_diff_and_comment() {
    let api = Api::new().await;
    let alice = api.token("alice", "editor", None).await;
    api.flag_set("web").await;
    let reply = api
        .call(Method::POST, "/flags")
        .token(&alice)
        .json(
            json!({"flagSet": "web", "key": "banner", "variants": {"on": true, "off": false},
                     "defaultVariant": "off", "comment": "from the body"}),
        )
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let reply = api
        .call(
            Method::POST,
            "/flags/web/banner/environments/production/toggle",
        )
        .token(&alice)
        .header("x-ensign-comment", "launch day")
        .json(json!({"enabled": true, "comment": "the header wins"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    let reply = api
        .get("/audit?resourceType=flag&resourceKey=web/banner")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let items = reply.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let toggle = &items[0];
    assert_eq!(toggle["action"], "flag.toggle");
    assert_eq!(toggle["actor"], "token:alice");
    assert_eq!(toggle["environment"], "production");
    assert_eq!(toggle["comment"], "launch day");
    assert_eq!(toggle["before"]["state"], "DISABLED");
    assert_eq!(toggle["after"]["state"], "ENABLED");
    assert!(
        toggle["after"].get("defaultVariant").is_some(),
        "camelCase: {toggle}"
    );
    let changed: Vec<&str> = toggle["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(changed.contains(&"/state"), "{changed:?}");
    assert!(toggle["at"].as_i64().unwrap() > 1_600_000_000_000);
    let create = &items[1];
    assert_eq!(create["action"], "flag.create");
    assert_eq!(create["comment"], "from the body");
    assert_eq!(create["after"]["flagSet"], "web");
    assert!(create["after"].get("comment").is_none());

    // Filters and paging backwards.
    let reply = api.get("/audit?actor=token:bootstrap").await;
    let actions: Vec<&str> = reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["flag_set.create", "token.create"]);
    let reply = api.get("/audit?environment=production").await;
    assert_eq!(
        reply.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        reply.body
    );
    let first = api.get("/audit?limit=2").await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    let next = first.body["nextBefore"].as_i64().unwrap();
    let second = api.get(&format!("/audit?limit=2&before={next}")).await;
    assert_eq!(second.body["items"].as_array().unwrap().len(), 2);
    assert!(
        second.body["nextBefore"].is_i64(),
        "a full page may have more"
    );
    let ids: Vec<i64> = first.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second.body["items"].as_array().unwrap())
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    let rest = api.get(&format!("/audit?before={}", ids[3])).await;
    assert_eq!(rest.body["items"], json!([]));
    assert_eq!(rest.body["nextBefore"], Value::Null);
}

#[tokio::test]
async fn only_admins_read_audit_entries_of_tokens_users_sessions_and_receivers() {
    let api = Api::new().await;
    let viewer = api.token("victor", "viewer", None).await;
    let editor = api.token("edith", "editor", None).await;
    let admin = api.token("ada", "admin", None).await;
    api.flag_set("web").await;
    let password = "correct horse battery staple";
    create_user(&api, "alice", "editor", password).await;
    sign_in(&api, json!({"username": "alice", "password": password})).await;
    let receiver = api
        .post(
            "/integrations/alertmanager/receivers",
            json!({"name": "am"}),
        )
        .await;
    assert_eq!(receiver.status, StatusCode::CREATED, "{}", receiver.body);
    api.flag("web", "banner", json!({})).await;
    let hidden = ["token", "user", "session", "alertmanager_receiver"];

    let audit = |secret: String, query: String| {
        let call = api
            .call(Method::GET, &format!("/audit{query}"))
            .token(&secret);
        async move {
            let reply = call.send().await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            reply
        }
    };
    let types = |reply: &Reply| -> Vec<String> {
        reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resourceType"].as_str().unwrap().to_owned())
            .collect()
    };
    for secret in [&viewer, &editor] {
        for resource_type in hidden {
            let reply = audit(secret.clone(), format!("?resourceType={resource_type}")).await;
            assert_eq!(reply.body["items"], json!([]), "{resource_type}");
        }
        // Left out by the query: a page is full of what the caller may see
        // (the newest two entries they may read are the flag and the flag
        // set, though tokens, a user, a session and a receiver came between).
        let page = audit(secret.clone(), "?limit=2".to_owned()).await;
        assert_eq!(types(&page), ["flag", "flag_set"]);
        let rest = audit(
            secret.clone(),
            format!("?before={}", page.body["nextBefore"]),
        )
        .await;
        assert_eq!(types(&rest), Vec::<String>::new());
    }
    for resource_type in hidden {
        let reply = audit(admin.clone(), format!("?resourceType={resource_type}")).await;
        assert!(
            !reply.body["items"].as_array().unwrap().is_empty(),
            "{resource_type}"
        );
    }
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let api = Api::new().await;
    let reply = api.call(Method::GET, "/openapi.json").send().await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["content-type"], "application/json");
    let document = reply.body;
    let mut documented = BTreeSet::new();
    let mut operation_ids = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if let Some(operation) = item.get(method) {
                documented.insert(format!("{} {path}", method.to_uppercase()));
                let id = operation["operationId"].as_str().unwrap().to_owned();
                assert!(operation_ids.insert(id.clone()), "operationId {id} twice");
            }
        }
    }
    let expected: BTreeSet<String> = [
        "GET /api/v1/environments",
        "POST /api/v1/environments",
        "GET /api/v1/environments/{env}",
        "PATCH /api/v1/environments/{env}",
        "GET /api/v1/flag-sets",
        "POST /api/v1/flag-sets",
        "GET /api/v1/flag-sets/{set}",
        "PUT /api/v1/flag-sets/{set}",
        "DELETE /api/v1/flag-sets/{set}",
        "GET /api/v1/flag-sets/{set}/segments",
        "GET /api/v1/flag-sets/{set}/segments/{key}",
        "PUT /api/v1/flag-sets/{set}/segments/{key}",
        "DELETE /api/v1/flag-sets/{set}/segments/{key}",
        "GET /api/v1/flags",
        "POST /api/v1/flags",
        "GET /api/v1/flags/{set}/{key}",
        "PATCH /api/v1/flags/{set}/{key}",
        "DELETE /api/v1/flags/{set}/{key}",
        "PUT /api/v1/flags/{set}/{key}/environments/{env}",
        "POST /api/v1/flags/{set}/{key}/environments/{env}/toggle",
        "POST /api/v1/flags/{set}/{key}/environments/{env}/evaluate",
        "POST /api/v1/flags/{set}/{key}/environments/{env}/validate",
        "POST /api/v1/flags/{set}/{key}/copy",
        "POST /api/v1/flags/{set}/{key}/archive",
        "POST /api/v1/flags/{set}/{key}/restore",
        "GET /api/v1/audit",
        "GET /api/v1/export",
        "POST /api/v1/import",
        "GET /api/v1/tokens",
        "POST /api/v1/tokens",
        "DELETE /api/v1/tokens/{name}",
        "GET /api/v1/slos",
        "GET /api/v1/slos/{name}",
        "PUT /api/v1/slos/{name}",
        "DELETE /api/v1/slos/{name}",
        "GET /api/v1/slos/{name}/status",
        "GET /api/v1/users",
        "POST /api/v1/users",
        "DELETE /api/v1/users/{name}",
        "POST /api/v1/session",
        "GET /api/v1/session",
        "DELETE /api/v1/session",
        "GET /api/v1/kill-switches",
        "POST /api/v1/kill-switches",
        "GET /api/v1/kill-switches/{name}",
        "PUT /api/v1/kill-switches/{name}",
        "DELETE /api/v1/kill-switches/{name}",
        "GET /api/v1/flags/{set}/{key}/kill-switch",
        "POST /api/v1/flags/{set}/{key}/environments/{env}/kill-switch/restore",
        "POST /api/v1/integrations/alertmanager",
        "GET /api/v1/integrations/alertmanager/receivers",
        "POST /api/v1/integrations/alertmanager/receivers",
        "DELETE /api/v1/integrations/alertmanager/receivers/{name}",
        "GET /api/v1/openapi.json",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(documented, expected);
    assert_eq!(
        ensign_admin::openapi().paths.paths.len(),
        document["paths"].as_object().unwrap().len()
    );

    // Every documented route answers (here: without a token, 401, not 404/405).
    for route in &expected {
        let (method, path) = route.split_once(' ').unwrap();
        let path = path
            .trim_start_matches("/api/v1")
            .replace("{env}", "staging")
            .replace("{set}", "web")
            .replace("{key}", "k")
            .replace("{name}", "n");
        let reply = api.call(method.parse().unwrap(), &path).send().await;
        // Signing in needs JSON; signing out without a session has nothing
        // to end.
        let expected_status = match route.as_str() {
            "GET /api/v1/openapi.json" => StatusCode::OK,
            "POST /api/v1/session" => StatusCode::BAD_REQUEST,
            "DELETE /api/v1/session" => StatusCode::NO_CONTENT,
            _ => StatusCode::UNAUTHORIZED,
        };
        assert_eq!(reply.status, expected_status, "{route}");
    }

    // Bodies, parameters and errors are described.
    let flags = &document["paths"]["/api/v1/flags"];
    let parameters: BTreeSet<&str> = flags["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in [
        "flagSet",
        "environment",
        "state",
        "stage",
        "kind",
        "tag",
        "owner",
        "q",
        "limit",
        "offset",
    ] {
        assert!(parameters.contains(name), "{name} in {parameters:?}");
    }
    assert!(flags["post"]["responses"]["422"].is_object());
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for schema in [
        "ErrorBody",
        "Flag",
        "NewFlag",
        "FlagConfig",
        "AuditEntry",
        "Token",
        "CreatedToken",
    ] {
        assert!(schemas.contains_key(schema), "{schema}");
    }
    assert!(
        schemas["Flag"]["properties"].get("flagSet").is_some(),
        "camelCase"
    );
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

/// What the OpenAPI document's request schemas allow, the server takes, and
/// what they refuse, it refuses: integers may be written `1488.0` (JSON
/// Schema's integers), a flag key is up to 256 characters (not bytes), a
/// token name is printable and not only spaces.
#[tokio::test]
async fn request_bodies_take_what_the_openapi_document_allows() {
    let api = Api::new().await;
    api.flag_set("web").await;
    let reply = api
        .flag("web", "banner", json!({"expiresAt": 1488.0}))
        .await;
    assert_eq!(reply.body["expiresAt"], 1488);
    let reply = api
        .call(Method::PATCH, "/flags/web/banner")
        .token(BOOTSTRAP)
        .json(json!({"expiresAt": 2000.0}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["expiresAt"], 2000);
    for fraction in [json!(1.5), json!(1e19)] {
        let reply = api
            .call(Method::PATCH, "/flags/web/banner")
            .token(BOOTSTRAP)
            .json(json!({"expiresAt": fraction}))
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{fraction}");
        assert_eq!(
            reply.problem_paths(),
            BTreeSet::from(["/expiresAt".to_owned()])
        );
    }

    // 256 two-byte characters are 512 bytes, and a valid key.
    let long_key = "é".repeat(256);
    api.flag("web", &long_key, json!({})).await;
    let reply = api
        .post(
            "/flags",
            json!({"flagSet": "web", "key": "é".repeat(257), "variants": {"on": true}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.problem_paths(), BTreeSet::from(["/key".to_owned()]));

    for bad in ["  ", "a\u{7}b", "\u{85}", &"t".repeat(129)] {
        let reply = api
            .post("/tokens", json!({"name": bad, "role": "viewer"}))
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        assert_eq!(reply.problem_paths(), BTreeSet::from(["/name".to_owned()]));
    }
    for good in ["ci deploy", "ü", &"t".repeat(128)] {
        let reply = api
            .post("/tokens", json!({"name": good, "role": "viewer"}))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{good:?}: {}",
            reply.body
        );
    }
}

/// Every status the layers around the handlers answer with is documented on
/// every operation they wrap: 401/403 where credentials are needed, 400/412
/// where `If-Match` is read (with the pattern the server accepts), 400/413/422
/// where a JSON body is read; sign-in documents its lockout (429) and 503.
#[tokio::test]
async fn the_openapi_document_lists_what_the_layers_enforce() {
    let api = Api::new().await;
    let document = api.call(Method::GET, "/openapi.json").send().await.body;
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let route = format!("{method} {path}");
            let responses = operation["responses"].as_object().unwrap();
            let has = |status: &str| responses.contains_key(status);
            let public = operation["security"] == json!([{}]);
            if !public && path != "/api/v1/integrations/alertmanager" {
                assert!(has("401") && has("403"), "{route}: {responses:?}");
            }
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if let Some(if_match) = parameters.iter().find(|p| p["name"] == "If-Match") {
                assert_eq!(if_match["in"], "header", "{route}");
                assert_eq!(
                    if_match["schema"]["pattern"], r#"^(\*|"[0-9]{1,18}")$"#,
                    "{route}"
                );
                assert!(if_match["example"].is_string(), "{route}");
                assert!(has("400") && has("412"), "{route}");
            }
            if operation.get("requestBody").is_some() {
                assert!(has("400") && has("413") && has("422"), "{route}");
            }
            assert!(has("500") && has("503"), "{route}");
            checked += 1;
        }
    }
    assert!(checked > 50, "{checked}");
    let session = &document["paths"]["/api/v1/session"];
    for status in ["200", "400", "401", "413", "422", "429", "503"] {
        assert!(
            session["post"]["responses"].get(status).is_some(),
            "sign-in documents {status}"
        );
    }
    assert_eq!(session["post"]["security"], json!([{}]));
    assert_eq!(session["delete"]["security"], json!([{}]));
    assert!(session["get"]["responses"].get("401").is_some());
}

#[tokio::test]
async fn a_lost_database_is_503_fast_without_details() {
    let api = Api::new().await;
    api.flag_set("web").await;
    let editor = api.token("alice", "editor", None).await;
    api.storage.pool().close().await;

    let started = Instant::now();
    for reply in [
        api.post(
            "/flags",
            json!({"flagSet": "web", "key": "k", "variants": {"a": 1}}),
        )
        .await,
        api.post("/flag-sets", json!({"key": "mobile"})).await,
        api.get("/flags").await,
        api.call(Method::GET, "/flags").token(&editor).send().await,
    ] {
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.body
        );
        assert_eq!(reply.error_code(), "unavailable");
        assert_eq!(
            reply.body["error"]["message"],
            "the database is unavailable; retry later"
        );
        assert_eq!(reply.headers["retry-after"], "5");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn malformed_requests_get_the_one_error_shape() {
    let api = Api::new().await;
    api.flag_set("web").await;
    let post = |body: &'static str| {
        api.call(Method::POST, "/flags")
            .token(BOOTSTRAP)
            .raw(body)
            .send()
    };

    let reply = post("{\"flagSet\": ").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "bad_request");
    let reply = post("not json").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "bad_request");
    let reply = post("").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = post("{} {}").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = post("[1, 2]").await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.error_code(), "invalid");
    let reply = post("{\"flagSet\": 5, \"key\": \"k\", \"variants\": {}}").await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.problem_paths(),
        BTreeSet::from(["/flagSet".to_owned()])
    );

    let huge = format!(
        "{{\"flagSet\": \"{}\"}}",
        "x".repeat(ensign_admin::MAX_REQUEST_BODY + 1)
    );
    let reply = api
        .call(Method::POST, "/flags")
        .token(BOOTSTRAP)
        .raw(huge)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.error_code(), "payload_too_large");

    let reply = api.get("/flags/web/%FF%FE").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "bad_request");
    let reply = api.get("/nothing-here").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "not_found");
    let reply = api
        .call(Method::DELETE, "/flags")
        .token(BOOTSTRAP)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.error_code(), "method_not_allowed");
    let reply = api
        .call(Method::POST, "/flags/web/x/copy")
        .token(BOOTSTRAP)
        .header("x-ensign-comment", "ok")
        .json(json!({"from": "staging", "to": "staging"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.problem_paths(), BTreeSet::from(["/to".to_owned()]));
}

#[tokio::test]
async fn concurrent_writes_without_if_match_all_apply() {
    let api = Api::new().await;
    api.flag_set("web").await;
    let created = api.flag("web", "banner", json!({})).await;
    let racers = (0..8).map(|i| {
        api.call(
            Method::POST,
            "/flags/web/banner/environments/production/toggle",
        )
        .token(BOOTSTRAP)
        .json(json!({"enabled": i % 2 == 0}))
        .send()
    });
    let replies = futures_join_all(racers).await;
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    let flag = api.get("/flags/web/banner").await;
    assert_eq!(
        flag.body["version"].as_i64().unwrap(),
        created.body["version"].as_i64().unwrap() + 8,
        "every toggle applied on top of the others"
    );
    let audit = api
        .get("/audit?resourceKey=web/banner&environment=production")
        .await;
    assert_eq!(audit.body["items"].as_array().unwrap().len(), 8);
}

// ---------------------------------------------------------------------------
// Web UI sessions and users

/// A signed-in browser: the cookie's value and the session's CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

/// Signs in with `body`; asserts success and the cookie's attributes.
async fn sign_in(api: &Api, body: Value) -> (Browser, Value) {
    let reply = api.call(Method::POST, "/session").json(body).send().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let set_cookie = reply.headers["set-cookie"].to_str().unwrap().to_owned();
    let (pair, attributes) = set_cookie.split_once("; ").unwrap();
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=43200",
    ] {
        assert!(
            attributes.split("; ").any(|a| a == attribute),
            "{attribute} missing in {set_cookie}"
        );
    }
    let cookie = pair.strip_prefix("ensign_session=").unwrap().to_owned();
    assert_eq!(cookie.len(), 64, "256 random bits");
    let csrf = reply.body["csrfToken"].as_str().unwrap().to_owned();
    assert_ne!(csrf, cookie);
    (Browser { cookie, csrf }, reply.body)
}

async fn create_user(api: &Api, name: &str, role: &str, password: &str) {
    let reply = api
        .post(
            "/users",
            json!({"name": name, "password": password, "role": role}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

#[tokio::test]
async fn sign_in_with_a_token_and_use_the_cookie() {
    let api = Api::new().await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (browser, session) = sign_in(&api, json!({"token": BOOTSTRAP})).await;
    assert_eq!(session["actor"], "token:bootstrap");
    assert_eq!(session["role"], "admin");
    assert_eq!(session["environments"], Value::Null);
    let expires_at = session["expiresAt"].as_i64().unwrap();
    assert!(expires_at >= before + 12 * 3600 * 1000, "{session}");
    assert!(
        expires_at <= before + 12 * 3600 * 1000 + 60_000,
        "{session}"
    );

    // The cookie authenticates reads, and says who is signed in.
    let reply = api
        .call(Method::GET, "/flags")
        .cookie(&browser.cookie)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = api
        .call(Method::GET, "/session")
        .cookie(&browser.cookie)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, session);

    // A bearer caller gets its identity too, without a session.
    let reply = api
        .call(Method::GET, "/session")
        .token(BOOTSTRAP)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["actor"], "token:bootstrap");
    assert_eq!(reply.body["csrfToken"], Value::Null);

    // Without credentials, or with an unknown cookie: 401.
    let reply = api.call(Method::GET, "/session").send().await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error_code(), "unauthorized");
    let reply = api
        .call(Method::GET, "/flags")
        .cookie(&"0".repeat(64))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    // An API token signs in as that token, with its role.
    let viewer = api.token("ci", "viewer", Some(vec!["staging"])).await;
    let (_, session) = sign_in(&api, json!({"token": viewer})).await;
    assert_eq!(session["actor"], "token:ci");
    assert_eq!(session["role"], "viewer");
    assert_eq!(session["environments"], json!(["staging"]));
}

#[tokio::test]
async fn cookie_writes_need_the_csrf_token() {
    let api = Api::new().await;
    api.flag_set("web").await;
    api.flag("web", "banner", json!({})).await;
    let (browser, _) = sign_in(&api, json!({"token": BOOTSTRAP})).await;
    let toggle = "/flags/web/banner/environments/production/toggle";
    let state = || async {
        api.get("/flags/web/banner").await.body["environments"]["production"]["state"].clone()
    };
    let audited = || async {
        api.get("/audit").await.body["items"]
            .as_array()
            .unwrap()
            .len()
    };
    let audit_before = audited().await;

    // Without the header, or with another one: 403, nothing changes.
    for csrf in [None, Some("wrong"), Some(&browser.cookie[..])] {
        let mut call = api
            .call(Method::POST, toggle)
            .cookie(&browser.cookie)
            .json(json!({"enabled": true}));
        if let Some(csrf) = csrf {
            call = call.header("x-csrf-token", csrf);
        }
        let reply = call.send().await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{csrf:?}");
        assert_eq!(reply.error_code(), "forbidden");
        assert_eq!(state().await, "DISABLED");
    }
    assert_eq!(audited().await, audit_before);

    // With it, the write goes through as the signed-in actor.
    let reply = api
        .call(Method::POST, toggle)
        .cookie(&browser.cookie)
        .header("x-csrf-token", &browser.csrf)
        .json(json!({"enabled": true}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(state().await, "ENABLED");
    let audit = api.get("/audit?resourceType=flag").await;
    assert_eq!(audit.body["items"][0]["actor"], "token:bootstrap");

    // A bearer token needs no CSRF token, even next to a cookie.
    let reply = api
        .call(Method::POST, toggle)
        .cookie(&browser.cookie)
        .token(BOOTSTRAP)
        .json(json!({"enabled": false}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn sign_in_with_a_password() {
    let api = Api::new().await;
    api.flag_set("web").await;
    api.flag("web", "banner", json!({})).await;
    let password = "correct horse battery staple";
    create_user(&api, "alice", "editor", password).await;
    create_user(&api, "victor", "viewer", password).await;

    let (browser, session) =
        sign_in(&api, json!({"username": "alice", "password": password})).await;
    assert_eq!(session["actor"], "user:alice");
    assert_eq!(session["role"], "editor");

    // Writes are audited as the user.
    let reply = api
        .call(
            Method::POST,
            "/flags/web/banner/environments/staging/toggle",
        )
        .cookie(&browser.cookie)
        .header("x-csrf-token", &browser.csrf)
        .json(json!({"enabled": true, "comment": "try it"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let audit = api.get("/audit?resourceType=flag").await;
    assert_eq!(audit.body["items"][0]["actor"], "user:alice");

    // A wrong password and an unknown name get the same 401.
    let wrong = api
        .call(Method::POST, "/session")
        .json(json!({"username": "alice", "password": "correct horse battery stapler"}))
        .send()
        .await;
    let unknown = api
        .call(Method::POST, "/session")
        .json(json!({"username": "mallory", "password": password}))
        .send()
        .await;
    for reply in [&wrong, &unknown] {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(reply.headers.get("set-cookie").is_none());
    }
    assert_eq!(wrong.body, unknown.body);
    let bad_token = api
        .call(Method::POST, "/session")
        .json(json!({"token": "ens_nope"}))
        .send()
        .await;
    assert_eq!(bad_token.status, StatusCode::UNAUTHORIZED);

    // A viewer signs in and reads, but writes nothing, CSRF token or not.
    let (viewer, _) = sign_in(&api, json!({"username": "victor", "password": password})).await;
    let reply = api
        .call(
            Method::POST,
            "/flags/web/banner/environments/staging/toggle",
        )
        .cookie(&viewer.cookie)
        .header("x-csrf-token", &viewer.csrf)
        .json(json!({"enabled": false}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // Malformed sign-ins: 400 without JSON, 422 for mixed credentials, 413
    // when oversized.
    let reply = api
        .call(Method::POST, "/session")
        .header("content-type", "text/plain")
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = api
        .call(Method::POST, "/session")
        .json(json!({"token": BOOTSTRAP, "username": "alice", "password": password}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.error_code(), "invalid");
    let reply = api
        .call(Method::POST, "/session")
        .json(json!({"username": "alice", "password": "x".repeat(10_000)}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);

    // The password appears in no answer and no audit entry.
    let everything = format!(
        "{} {}",
        api.get("/users").await.body,
        api.get("/audit?limit=500").await.body
    );
    assert!(everything.contains("alice"));
    assert!(!everything.contains("horse"), "{everything}");
}

/// Failed password sign-ins before a name is locked out (the handler's
/// `LOCKOUT_AFTER`).
const LOCKOUT_AFTER: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_passwords_sent_at_once_all_count_toward_the_lockout() {
    let api = Api::new().await;
    let password = "correct horse battery staple";
    create_user(&api, "alice", "editor", password).await;
    // Three times the lockout's worth of wrong passwords, all at once: each
    // counts when it starts, so only the first LOCKOUT_AFTER are checked at
    // all (401, or 503 when no check was free in time) and the rest are 429.
    let attempts = 3 * LOCKOUT_AFTER;
    let racers = (0..attempts).map(|i| {
        api.call(Method::POST, "/session")
            .json(json!({"username": "alice", "password": format!("wrong password {i:03}")}))
            .send()
    });
    let replies = futures_join_all(racers).await;
    let locked = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    for reply in &replies {
        assert!(
            [
                StatusCode::UNAUTHORIZED,
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::SERVICE_UNAVAILABLE
            ]
            .contains(&reply.status),
            "{} {}",
            reply.status,
            reply.body
        );
    }
    assert_eq!(locked, attempts - LOCKOUT_AFTER);
    // The name is locked: even the right password is refused now.
    let reply = api
        .call(Method::POST, "/session")
        .json(json!({"username": "alice", "password": password}))
        .send()
        .await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.body
    );
    assert_eq!(reply.error_code(), "too_many_requests");
}

#[tokio::test]
async fn sessions_end_at_sign_out_revocation_and_deletion() {
    let api = Api::new().await;
    let password = "correct horse battery staple";

    // Signing out deletes the session and clears the cookie.
    let (browser, _) = sign_in(&api, json!({"token": BOOTSTRAP})).await;
    let reply = api
        .call(Method::DELETE, "/session")
        .cookie(&browser.cookie)
        .send()
        .await;
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "sign-out needs the CSRF token"
    );
    let reply = api
        .call(Method::DELETE, "/session")
        .cookie(&browser.cookie)
        .header("x-csrf-token", &browser.csrf)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let cleared = reply.headers["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("ensign_session=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let reply = api
        .call(Method::GET, "/session")
        .cookie(&browser.cookie)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // Signing out again has nothing to end.
    let reply = api
        .call(Method::DELETE, "/session")
        .cookie(&browser.cookie)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);

    // Revoking a token ends the sessions signed in with it.
    let secret = api.token("ops", "editor", None).await;
    let (browser, _) = sign_in(&api, json!({"token": secret})).await;
    let reply = api
        .call(Method::GET, "/flags")
        .cookie(&browser.cookie)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = api
        .call(Method::DELETE, "/tokens/ops")
        .token(BOOTSTRAP)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = api
        .call(Method::GET, "/flags")
        .cookie(&browser.cookie)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    // Deleting a user ends their sessions.
    create_user(&api, "alice", "admin", password).await;
    let (browser, _) = sign_in(&api, json!({"username": "alice", "password": password})).await;
    let reply = api
        .call(Method::DELETE, "/users/alice")
        .token(BOOTSTRAP)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = api
        .call(Method::GET, "/session")
        .cookie(&browser.cookie)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = api
        .call(Method::POST, "/session")
        .json(json!({"username": "alice", "password": password}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    // A session signed in with a bootstrap token that has since changed ends.
    let (browser, _) = sign_in(&api, json!({"token": BOOTSTRAP})).await;
    let rotated = ensign_admin::router(AdminState::new(
        api.storage.clone(),
        Some("another-bootstrap-token".to_owned()),
    ));
    let request = Request::builder()
        .uri("/api/v1/session")
        .header("cookie", format!("ensign_session={}", browser.cookie))
        .body(Body::empty())
        .unwrap();
    let response = rotated.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn users_are_managed_by_admins() {
    let api = Api::new().await;
    let password = "correct horse battery staple";
    let editor = api.token("ed", "editor", None).await;
    let reply = api.call(Method::GET, "/users").token(&editor).send().await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = api
        .call(Method::POST, "/users")
        .token(&editor)
        .json(json!({"name": "bob", "password": password, "role": "admin"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    let reply = api
        .post(
            "/users",
            json!({"name": "bob", "password": password, "role": "editor", "environments": ["staging"]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["name"], "bob");
    assert_eq!(reply.body["environments"], json!(["staging"]));
    assert!(reply.body.get("password").is_none());

    // Invalid users: 422 with pointers, nothing written.
    let reply = api
        .post(
            "/users",
            json!({"name": "carol", "password": "short", "role": "editor"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.problem_paths(),
        BTreeSet::from(["/password".to_owned()])
    );
    let reply = api
        .post(
            "/users",
            json!({"name": "carol", "password": password, "role": "chief"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.problem_paths(), BTreeSet::from(["/role".to_owned()]));
    let reply = api
        .post(
            "/users",
            json!({"name": "bob", "password": password, "role": "editor"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    let users = api.get("/users").await;
    assert_eq!(users.body.as_array().unwrap().len(), 1);
    assert_eq!(users.body[0]["name"], "bob");

    let reply = api
        .call(Method::DELETE, "/users/bob")
        .token(BOOTSTRAP)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = api
        .call(Method::DELETE, "/users/bob")
        .token(BOOTSTRAP)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let audit = api.get("/audit?resourceType=user").await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["user.delete", "user.create"]);
}

// ---------------------------------------------------------------------------
// Evaluate and validate in the editor

#[tokio::test]
async fn evaluate_answers_as_served_and_explains_fractional() {
    let api = Api::new().await;
    api.flag_set("web").await;
    let put = api
        .call(Method::PUT, "/flag-sets/web/segments/staff")
        .token(BOOTSTRAP)
        .json(json!({"rule": {"ends_with": [{"var": "email"}, "@example.com"]}}))
        .send()
        .await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.body);
    api.flag(
        "web",
        "checkout",
        json!({
            "state": "ENABLED",
            "variants": {"old": "old", "new": "new", "beta": "beta"},
            "defaultVariant": "old",
            "targeting": {"if": [
                {"$ref": "staff"}, "beta",
                {"fractional": [["old", 30], ["new", 70]]}
            ]}
        }),
    )
    .await;
    let export = api.get("/export?environment=production&flagSet=web").await;
    let loaded = load_value(&export.body, &Limits::default()).unwrap();
    let flag = loaded.document.flags[0].clone();
    let viewer = api.token("looker", "viewer", None).await;
    let path = "/flags/web/checkout/environments/production/evaluate";
    let mut seen = BTreeSet::new();
    for i in 0..40 {
        let context =
            json!({"targetingKey": format!("user-{i}"), "email": format!("u{i}@else.org")});
        // Viewers may evaluate: it writes nothing.
        let reply = api
            .call(Method::POST, path)
            .token(&viewer)
            .json(json!({"context": context}))
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let served = flag.evaluate(
            context.as_object().unwrap(),
            1_700_000_000,
            &EvaluationOptions::default(),
        );
        let variant = served.variant.unwrap();
        assert_eq!(reply.body["variant"], variant, "{}", reply.body);
        assert_eq!(reply.body["value"], variant);
        assert_eq!(reply.body["reason"], "TARGETING_MATCH");
        assert_eq!(reply.body["errorCode"], Value::Null);
        seen.insert(variant.to_owned());
        let explanation = reply.body["explanation"].as_array().unwrap();
        let fractional: Vec<&Value> = explanation
            .iter()
            .filter(|step| step["kind"] == "fractional")
            .collect();
        assert_eq!(fractional.len(), 1, "{}", reply.body);
        let step = fractional[0];
        assert_eq!(
            step["bucketBy"],
            json!(["checkout", format!("user-{i}")]).to_string()
        );
        assert_eq!(step["totalWeight"], 100);
        assert_eq!(step["variant"], variant);
        let bucket = step["bucket"].as_u64().unwrap();
        assert!(bucket < 100);
        assert_eq!(
            step["buckets"],
            json!([
                {"variant": "old", "weight": 30, "from": 0, "to": 30},
                {"variant": "new", "weight": 70, "from": 30, "to": 100}
            ])
        );
        let expected = if bucket < 30 { "old" } else { "new" };
        assert_eq!(variant, expected);
        assert!(explanation.iter().any(|step| step.is_string()));
    }
    assert_eq!(seen, BTreeSet::from(["new".to_owned(), "old".to_owned()]));

    // A segment match never reaches the fractional.
    let reply = api
        .post(
            path,
            json!({"context": {"targetingKey": "x", "email": "ann@example.com"}}),
        )
        .await;
    assert_eq!(reply.body["variant"], "beta");
    assert!(
        !reply.body["explanation"]
            .as_array()
            .unwrap()
            .iter()
            .any(|step| step["kind"] == "fractional")
    );

    // Without a targeting key nothing is placed: the default is served.
    let reply = api.post(path, json!({"context": {}})).await;
    assert_eq!(reply.body["variant"], "old");
    assert_eq!(reply.body["reason"], "DEFAULT");

    // Disabled: the code default, said so.
    let reply = api
        .post(
            "/flags/web/checkout/environments/staging/toggle",
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = api
        .post(
            "/flags/web/checkout/environments/staging/evaluate",
            json!({"context": {"targetingKey": "x"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["reason"], "DISABLED");
    assert_eq!(reply.body["value"], Value::Null);
    assert!(
        reply.body["explanation"][0]
            .as_str()
            .unwrap()
            .contains("DISABLED")
    );

    // Unknown flags and environments are 404; bad bodies 422.
    let reply = api
        .post(
            "/flags/web/nope/environments/production/evaluate",
            json!({}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = api
        .post(
            "/flags/web/checkout/environments/nowhere/evaluate",
            json!({}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = api.post(path, json!({"context": 5})).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.problem_paths(),
        BTreeSet::from(["/context".to_owned()])
    );
}

#[tokio::test]
async fn validate_reports_what_put_refuses_and_writes_nothing() {
    let api = Api::new().await;
    api.flag_set("web").await;
    api.flag("web", "banner", json!({})).await;
    let before = api.get("/flags/web/banner").await;
    let audit_before = api.get("/audit").await.body["items"]
        .as_array()
        .unwrap()
        .len();
    let validate = "/flags/web/banner/environments/production/validate";

    let bad = json!({
        "state": "ENABLED",
        "variants": {"on": true, "off": false},
        "defaultVariant": "maybe",
        "targeting": {"if": [{"no_such_operator": [1]}, "on", "off"]}
    });
    let reply = api.post(validate, bad.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["valid"], false);
    let problems = reply.body["problems"].as_array().unwrap();
    let pointers: BTreeSet<String> = problems
        .iter()
        .map(|p| p["pointer"].as_str().unwrap().to_owned())
        .collect();
    assert!(pointers.contains("/defaultVariant"), "{pointers:?}");
    assert!(
        pointers.iter().any(|p| p.starts_with("/targeting")),
        "{pointers:?}"
    );
    assert!(
        problems
            .iter()
            .all(|p| p["severity"] == "error" && p["message"].is_string())
    );

    // The same pointers the PUT refuses with.
    let put = api
        .call(Method::PUT, "/flags/web/banner/environments/production")
        .token(BOOTSTRAP)
        .json(bad)
        .send()
        .await;
    assert_eq!(put.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(put.problem_paths(), pointers);

    // A body that is not the PUT's shape is refused as the PUT refuses it
    // (the OpenAPI document says what the body is; 200 is for configurations).
    let wrong_shape = json!({"variants": {"on": true}, "stat": "ENABLED"});
    let reply = api.post(validate, wrong_shape.clone()).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    let put = api
        .call(Method::PUT, "/flags/web/banner/environments/production")
        .token(BOOTSTRAP)
        .json(wrong_shape)
        .send()
        .await;
    assert_eq!(put.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.problem_paths(), put.problem_paths());
    let reply = api
        .call(Method::POST, validate)
        .token(BOOTSTRAP)
        .raw("{not json")
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);

    // A good configuration is valid.
    let good = json!({
        "state": "ENABLED",
        "variants": {"on": true, "off": false},
        "defaultVariant": "off",
        "targeting": {"fractional": [["on", 10], ["off", 90]]}
    });
    let reply = api.post(validate, good).await;
    assert_eq!(reply.body, json!({"valid": true, "problems": []}));

    // Nothing was written.
    let after = api.get("/flags/web/banner").await;
    assert_eq!(after.etag(), before.etag());
    assert_eq!(after.body, before.body);
    let audit_after = api.get("/audit").await.body["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(audit_after, audit_before);
    let reply = api
        .post(
            "/flags/web/nope/environments/production/validate",
            json!({"state": "ENABLED", "variants": {"a": 1}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn rules_multiplying_a_segment_past_the_limits_are_refused_at_their_targeting() {
    let api = Api::new().await;
    api.flag_set("web").await;
    api.flag("web", "banner", json!({})).await;
    // A segment of about 6 KB and a 680 KB rule referencing it 40,000 times
    // (issue #11): 240 MB once inlined.
    let emails: Vec<String> = (0..250)
        .map(|i| format!("user-{i:05}@example.com"))
        .collect();
    let reply = api
        .call(Method::PUT, "/flag-sets/web/segments/customers")
        .token(BOOTSTRAP)
        .json(json!({"rule": {"in": [{"var": "email"}, emails]}}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let attack = json!({
        "state": "ENABLED",
        "variants": {"on": true, "off": false},
        "defaultVariant": "off",
        "targeting": {"if": [{"or": vec![json!({"$ref": "customers"}); 40_000]}, "on", "off"]}
    });
    let limit = "limit of 1048576 bytes per flag";
    let before = api.get("/flags/web/banner").await;
    let audit = || async {
        api.get("/audit").await.body["items"]
            .as_array()
            .unwrap()
            .len()
    };
    let viewer = api.token("viewer", "viewer", None).await;
    let audit_before = audit().await;

    // A viewer's validation reports it, as every problem, with its pointer.
    let reply = api
        .call(
            Method::POST,
            "/flags/web/banner/environments/production/validate",
        )
        .token(&viewer)
        .json(attack.clone())
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["valid"], false);
    let problem = &reply.body["problems"][0];
    assert_eq!(problem["pointer"], "/targeting", "{}", reply.body);
    assert_eq!(problem["severity"], "error");
    assert!(problem["message"].as_str().unwrap().contains(limit));

    // The PUT refuses it with 422 at the same pointer.
    let put = api
        .call(Method::PUT, "/flags/web/banner/environments/production")
        .token(BOOTSTRAP)
        .json(attack.clone())
        .send()
        .await;
    assert_eq!(put.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", put.body);
    assert_eq!(put.error_code(), "invalid");
    assert_eq!(
        put.problem_paths(),
        BTreeSet::from(["/targeting".to_owned()])
    );
    let message = put.body["error"]["problems"][0]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains(limit), "{message}");

    // So does creating a flag with it, and importing it.
    let mut new = attack.clone();
    new["flagSet"] = json!("web");
    new["key"] = json!("other");
    let reply = api.post("/flags", new).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    assert!(
        reply
            .problem_paths()
            .iter()
            .all(|p| p.ends_with("/targeting")),
        "{}",
        reply.body
    );
    let document = json!({
        "$evaluators": {"customers": {"in": [{"var": "email"}, emails]}},
        "flags": {"imported": attack}
    });
    let reply = api
        .post("/import?environment=production&flagSet=web", document)
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    assert_eq!(
        reply.problem_paths(),
        BTreeSet::from(["/flags/imported/targeting".to_owned()])
    );

    // Nothing was stored.
    let after = api.get("/flags/web/banner").await;
    assert_eq!(after.etag(), before.etag());
    assert_eq!(after.body, before.body);
    assert_eq!(audit().await, audit_before);
    assert_eq!(
        api.get("/flags/web/other").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get("/flags/web/imported").await.status,
        StatusCode::NOT_FOUND
    );
}

/// Wrong bearer tokens, token sign-ins and webhook secrets count against the
/// client address: past the limit, 429 with Retry-After even for the right
/// secret; other addresses are unaffected.
#[tokio::test]
async fn wrong_secrets_throttle_their_client_address() {
    const ALERTMANAGER: &str = "alertmanager-secret-0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ensign.db").display());
    let storage = Storage::connect(&url).await.unwrap();
    storage.migrate().await.unwrap();
    let api = Api {
        router: ensign_admin::router(
            AdminState::new(storage.clone(), Some(BOOTSTRAP.to_owned()))
                .with_alertmanager_token(Some(ALERTMANAGER.to_owned())),
        ),
        storage,
        _dir: dir,
    };
    let limit = ensign_http::Throttle::default().limit();
    let attacker = "192.0.2.66";
    // No credentials at all are not guesses: never throttled.
    for _ in 0..=limit {
        let reply = api.call(Method::GET, "/flags").from(attacker).send().await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    // Wrong secrets by every route that checks one.
    let webhook = "/integrations/alertmanager";
    for n in 0..limit {
        let reply = match n % 3 {
            0 => {
                api.call(Method::GET, "/flags")
                    .token("wrong")
                    .from(attacker)
                    .send()
                    .await
            }
            1 => {
                api.call(Method::POST, "/session")
                    .json(json!({"token": "wrong"}))
                    .from(attacker)
                    .send()
                    .await
            }
            _ => {
                api.call(Method::POST, webhook)
                    .token("wrong")
                    .json(json!({}))
                    .from(attacker)
                    .send()
                    .await
            }
        };
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{n}: {}",
            reply.body
        );
    }
    // Now even the right secrets are refused, with Retry-After.
    let throttled = [
        api.call(Method::GET, "/flags")
            .token(BOOTSTRAP)
            .from(attacker)
            .send()
            .await,
        api.call(Method::POST, "/session")
            .json(json!({"token": BOOTSTRAP}))
            .from(attacker)
            .send()
            .await,
        api.call(Method::POST, webhook)
            .token(ALERTMANAGER)
            .json(json!({"version": "4", "status": "firing", "alerts": []}))
            .from(attacker)
            .send()
            .await,
    ];
    for reply in throttled {
        assert_eq!(
            reply.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            reply.body
        );
        assert_eq!(reply.error_code(), "too_many_requests");
        let seconds: u64 = reply.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&seconds), "{seconds}");
    }
    // Another address is served.
    let reply = api
        .call(Method::GET, "/flags")
        .token(BOOTSTRAP)
        .from("192.0.2.67")
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // Requests without a recorded address (in-process) are not throttled.
    assert_eq!(api.get("/flags").await.status, StatusCode::OK);
}
