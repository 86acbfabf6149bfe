//! The kill switch through the admin API on SQLite, each request sent through
//! the router as the server would: the Alertmanager webhook's own secrets
//! (wrong ones, API tokens and the webhook secret elsewhere are 401 and
//! change nothing), payload checks, repeats acting once, bindings with
//! ETags and 422s, keep and restore after the cool-down, dry runs, pinned
//! variants and zero weights, manual restore, the per-flag status, audit
//! entries carrying the alert, metrics, and 503 when the database is gone.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use base64::Engine as _;
use ensign_admin::AdminState;
use ensign_metrics::Metrics;
use ensign_storage::Storage;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const BOOTSTRAP: &str = "bootstrap-secret-for-tests";
const ALERTMANAGER: &str = "alertmanager-secret-for-tests";
const WEBHOOK: &str = "/api/v1/integrations/alertmanager";

struct Server {
    router: Router,
    storage: Storage,
    metrics: Arc<Metrics>,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Server {
    /// A server with flag set `shop` holding `checkout` (string variants
    /// `safe`, `new`, `bad`; a 50/30/20 rollout; enabled everywhere).
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ensign.db").display());
        let storage = Storage::connect(&url).await.unwrap();
        storage.migrate().await.unwrap();
        let metrics = Arc::new(Metrics::new());
        let state = AdminState::new(storage.clone(), Some(BOOTSTRAP.to_owned()))
            .with_alertmanager_token(Some(ALERTMANAGER.to_owned()))
            .with_default_environment("production")
            .with_metrics(Arc::clone(&metrics));
        let server = Server {
            router: ensign_admin::router(state),
            storage,
            metrics,
            _dir: dir,
        };
        let admin = server.bearer(BOOTSTRAP);
        let created = server
            .send(
                Method::POST,
                "/api/v1/flag-sets",
                &admin,
                Some(json!({"key": "shop", "name": "Shop"})),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let flag = json!({
            "flagSet": "shop", "key": "checkout", "state": "ENABLED",
            "variants": {"safe": "S", "new": "N", "bad": "B"}, "defaultVariant": "safe",
            "targeting": {"fractional": [["safe", 50], ["new", 30], ["bad", 20]]}
        });
        let created = server
            .send(Method::POST, "/api/v1/flags", &admin, Some(flag))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        server
    }

    fn bearer(&self, secret: &str) -> Vec<(String, String)> {
        vec![("authorization".to_owned(), format!("Bearer {secret}"))]
    }

    fn basic(&self, user: &str, secret: &str) -> Vec<(String, String)> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
        vec![("authorization".to_owned(), format!("Basic {encoded}"))]
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(String, String)],
        body: Option<Value>,
    ) -> Answer {
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        self.send_raw(method, path, headers, body).await
    }

    async fn send_raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(String, String)],
        body: Body,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Posts an Alertmanager notification with the shared secret.
    async fn notify(&self, payload: &Value) -> Answer {
        self.send(
            Method::POST,
            WEBHOOK,
            &self.bearer(ALERTMANAGER),
            Some(payload.clone()),
        )
        .await
    }

    /// The secret of a new token with `role` limited to `staging`.
    async fn staging_token(&self, name: &str, role: &str) -> String {
        let (_, secret) = self
            .storage
            .create_token(
                &ensign_storage::model::Actor::new("test"),
                ensign_storage::NewToken {
                    name: name.to_owned(),
                    role: ensign_storage::model::Role::parse(role).unwrap(),
                    environments: Some(vec!["staging".to_owned()]),
                },
            )
            .await
            .unwrap();
        secret
    }

    async fn config(&self, environment: &str) -> Value {
        let flag = self
            .send(
                Method::GET,
                "/api/v1/flags/shop/checkout",
                &self.bearer(BOOTSTRAP),
                None,
            )
            .await;
        assert_eq!(flag.status, StatusCode::OK);
        flag.body["environments"][environment].clone()
    }

    async fn receipts(&self) -> i64 {
        use sqlx::Row as _;
        sqlx::query("SELECT COUNT(*) AS n FROM alert_receipts")
            .fetch_one(self.storage.pool())
            .await
            .unwrap()
            .try_get("n")
            .unwrap()
    }

    fn metric(&self, series: &str) -> f64 {
        let prefix = format!("{series} ");
        self.metrics
            .render()
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }
}

/// A version-4 notification of one alert.
fn notification(status: &str, fingerprint: &str, labels: Value) -> Value {
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"CheckoutBurn\"}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "ensign",
        "groupLabels": {"alertname": "CheckoutBurn"},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": {"title": "burning"},
            "startsAt": "2026-11-29T18:00:00.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example:9090/graph",
            "fingerprint": fingerprint,
            "someFieldOfALaterVersion": {"ignored": true}
        }]
    })
}

fn slo_page() -> Value {
    json!({"alertname": "CheckoutBurn", "slo": "checkout-availability", "severity": "page"})
}

fn binding(name: &str, action: &str, on_resolved: &str, dry_run: bool) -> Value {
    json!({
        "name": name,
        "description": "checkout burns its error budget",
        "matchers": {"slo": "checkout-availability", "severity": "page"},
        "targets": [{"flagSet": "shop", "flag": "checkout", "environment": "production", "action": action}],
        "onResolved": on_resolved,
        "cooldownSeconds": 30,
        "dryRun": dry_run
    })
}

#[tokio::test]
async fn wrong_secrets_are_401_and_change_nothing() {
    let server = Server::start().await;
    let before = server.config("production").await;
    let (_, api_token) = server
        .storage
        .create_token(
            &ensign_storage::model::Actor::new("test"),
            ensign_storage::NewToken {
                name: "ci".to_owned(),
                role: ensign_storage::model::Role::Admin,
                environments: None,
            },
        )
        .await
        .unwrap();
    let payload = notification("firing", "fp1", json!({"ensign_flag": "checkout"}));
    let refused = [
        vec![],
        server.bearer("wrong"),
        // Admin credentials are not webhook credentials.
        server.bearer(BOOTSTRAP),
        server.bearer(&api_token),
        server.basic("ensign", "wrong"),
        vec![("authorization".to_owned(), "Token abc".to_owned())],
    ];
    for headers in refused {
        let answer = server
            .send(Method::POST, WEBHOOK, &headers, Some(payload.clone()))
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert_eq!(answer.body["error"]["code"], "unauthorized");
    }
    // Not even a malformed body is looked at before the secret.
    let answer = server
        .send_raw(
            Method::POST,
            WEBHOOK,
            &server.bearer("wrong"),
            Body::from("{"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(server.receipts().await, 0);
    assert_eq!(server.config("production").await, before);
    assert_eq!(
        server.metric("ensign_killswitch_webhook_requests_total{outcome=\"unauthorized\"}"),
        7.0
    );
    // The webhook secret opens nothing else.
    for path in ["/api/v1/flags", "/api/v1/kill-switches", "/api/v1/audit"] {
        let answer = server
            .send(Method::GET, path, &server.bearer(ALERTMANAGER), None)
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
    }
}

#[tokio::test]
async fn receiver_secrets_work_by_bearer_and_basic_until_deleted() {
    let server = Server::start().await;
    let admin = server.bearer(BOOTSTRAP);
    let created = server
        .send(
            Method::POST,
            "/api/v1/integrations/alertmanager/receivers",
            &admin,
            Some(json!({"name": "prod-am"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    let listed = server
        .send(
            Method::GET,
            "/api/v1/integrations/alertmanager/receivers",
            &admin,
            None,
        )
        .await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    assert!(!listed.body.to_string().contains(&secret));
    // Only admins manage receivers.
    let (_, editor) = server
        .storage
        .create_token(
            &ensign_storage::model::Actor::new("test"),
            ensign_storage::NewToken {
                name: "ed".to_owned(),
                role: ensign_storage::model::Role::Editor,
                environments: None,
            },
        )
        .await
        .unwrap();
    let refused = server
        .send(
            Method::GET,
            "/api/v1/integrations/alertmanager/receivers",
            &server.bearer(&editor),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let payload = |fp: &str| notification("firing", fp, json!({"alertname": "Nothing"}));
    let ok = server
        .send(
            Method::POST,
            WEBHOOK,
            &server.bearer(&secret),
            Some(payload("a")),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let ok = server
        .send(
            Method::POST,
            WEBHOOK,
            &server.basic("prod-am", &secret),
            Some(payload("b")),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    // The shared secret takes any user name.
    let ok = server
        .send(
            Method::POST,
            WEBHOOK,
            &server.basic("anyone", ALERTMANAGER),
            Some(payload("c")),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    // A receiver's secret under another receiver's name is refused.
    let refused = server
        .send(
            Method::POST,
            WEBHOOK,
            &server.basic("other", &secret),
            Some(payload("d")),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    // A receiver secret is no API token.
    let refused = server
        .send(Method::GET, "/api/v1/flags", &server.bearer(&secret), None)
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    let deleted = server
        .send(
            Method::DELETE,
            "/api/v1/integrations/alertmanager/receivers/prod-am",
            &admin,
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let refused = server
        .send(
            Method::POST,
            WEBHOOK,
            &server.bearer(&secret),
            Some(payload("e")),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(server.receipts().await, 3);
}

#[tokio::test]
async fn a_staging_receiver_kills_nothing_in_production() {
    let server = Server::start().await;
    let receivers = "/api/v1/integrations/alertmanager/receivers";
    // An admin limited to staging may create receivers limited to staging
    // only.
    let local_admin = server.bearer(&server.staging_token("stage-admin", "admin").await);
    for environments in [
        None,
        Some(json!(["production"])),
        Some(json!(["staging", "production"])),
    ] {
        let mut body = json!({"name": "staging-am"});
        if let Some(environments) = environments {
            body["environments"] = environments;
        }
        let refused = server
            .send(Method::POST, receivers, &local_admin, Some(body))
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    }
    let created = server
        .send(
            Method::POST,
            receivers,
            &local_admin,
            Some(json!({"name": "staging-am", "environments": ["staging"]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["receiver"]["environments"], json!(["staging"]));
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    let listed = server
        .send(Method::GET, receivers, &server.bearer(BOOTSTRAP), None)
        .await;
    assert_eq!(listed.body[0]["environments"], json!(["staging"]));
    let empty = server
        .send(
            Method::POST,
            receivers,
            &server.bearer(BOOTSTRAP),
            Some(json!({"name": "nowhere", "environments": []})),
        )
        .await;
    assert_eq!(
        empty.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        empty.body
    );

    // Its alert names production: acknowledged, out of scope, nothing killed.
    let production = server.config("production").await;
    let labels =
        json!({"alertname": "Burn", "ensign_flag": "checkout", "ensign_environment": "production"});
    let answer = server
        .send(
            Method::POST,
            WEBHOOK,
            &server.basic("staging-am", &secret),
            Some(notification("firing", "fp-prod", labels)),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["actions"][0]["outcome"], "out_of_scope");
    assert_eq!(answer.body["actions"][0]["environment"], "production");
    assert!(
        answer.body["actions"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was done")
    );
    assert_eq!(server.config("production").await, production);
    assert_eq!(
        server
            .metric(r#"ensign_killswitch_actions_total{action="disable",outcome="out_of_scope"}"#),
        1.0
    );
    // The same alert for staging acts.
    let labels =
        json!({"alertname": "Burn", "ensign_flag": "checkout", "ensign_environment": "staging"});
    let answer = server
        .send(
            Method::POST,
            WEBHOOK,
            &server.bearer(&secret),
            Some(notification("firing", "fp-staging", labels)),
        )
        .await;
    assert_eq!(
        answer.body["actions"][0]["outcome"], "applied",
        "{}",
        answer.body
    );
    assert_eq!(server.config("staging").await["state"], "DISABLED");
    assert_eq!(server.config("production").await, production);
}

#[tokio::test]
async fn bad_payloads_are_4xx_and_change_nothing() {
    let server = Server::start().await;
    let auth = server.bearer(ALERTMANAGER);
    let mut old = notification("firing", "fp", json!({"ensign_flag": "checkout"}));
    old["version"] = json!("3");
    let answer = server.send(Method::POST, WEBHOOK, &auth, Some(old)).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.body["error"]["problems"][0]["path"], "/version");

    let mut bad_time = notification("firing", "fp", json!({"ensign_flag": "checkout"}));
    bad_time["alerts"][0]["startsAt"] = json!("yesterday");
    bad_time["alerts"][0]["fingerprint"] = json!("");
    let answer = server
        .send(Method::POST, WEBHOOK, &auth, Some(bad_time))
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let paths: Vec<&str> = answer.body["error"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/alerts/0/fingerprint", "/alerts/0/startsAt"]);

    let mut bad_status = notification("firing", "fp", json!({}));
    bad_status["alerts"][0]["status"] = json!("exploding");
    let answer = server
        .send(Method::POST, WEBHOOK, &auth, Some(bad_status))
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        answer.body["error"]["problems"][0]["path"],
        "/alerts/0/status"
    );

    let answer = server
        .send_raw(Method::POST, WEBHOOK, &auth, Body::from("{not json"))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);

    let huge = "x".repeat(ensign_admin::MAX_WEBHOOK_BODY + 1);
    let answer = server
        .send_raw(Method::POST, WEBHOOK, &auth, Body::from(huge))
        .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(server.receipts().await, 0);
    assert_eq!(server.config("production").await["state"], "ENABLED");
    assert_eq!(
        server.metric("ensign_killswitch_webhook_requests_total{outcome=\"bad_request\"}"),
        4.0
    );
}

#[tokio::test]
async fn a_repeated_notification_acts_once_and_is_audited_with_the_alert() {
    let server = Server::start().await;
    let payload = notification(
        "firing",
        "fp-direct",
        json!({"alertname": "CheckoutBurn", "ensign_flag": "checkout", "team": "payments"}),
    );
    let first = server.notify(&payload).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let action = &first.body["actions"][0];
    assert_eq!(action["outcome"], "applied");
    assert_eq!(action["flagSet"], "shop");
    assert_eq!(action["environment"], "production");
    assert_eq!(action["action"], "disable");
    let killed = server.config("production").await;
    assert_eq!(killed["state"], "DISABLED");
    assert_eq!(server.config("staging").await["state"], "ENABLED");

    // Alertmanager repeats; an HA peer sends the same.
    for _ in 0..2 {
        let again = server.notify(&payload).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.body["actions"][0]["outcome"], "duplicate");
    }
    assert_eq!(server.config("production").await, killed);
    assert_eq!(
        server.metric("ensign_killswitch_actions_total{action=\"disable\",outcome=\"applied\"}"),
        1.0
    );
    assert_eq!(
        server.metric("ensign_killswitch_actions_total{action=\"none\",outcome=\"duplicate\"}"),
        2.0
    );
    assert_eq!(
        server.metric("ensign_killswitch_webhook_requests_total{outcome=\"ok\"}"),
        3.0
    );

    let audit = server
        .send(
            Method::GET,
            "/api/v1/audit?actor=automation:alertmanager",
            &server.bearer(BOOTSTRAP),
            None,
        )
        .await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.body);
    let items = audit.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", audit.body);
    assert_eq!(items[0]["action"], "flag.kill");
    assert_eq!(items[0]["after"]["state"], "DISABLED");
    let comment: Value = serde_json::from_str(items[0]["comment"].as_str().unwrap()).unwrap();
    assert_eq!(comment["alert"]["fingerprint"], "fp-direct");
    assert_eq!(comment["alert"]["receiver"], "ensign");
    assert_eq!(comment["alert"]["labels"]["team"], "payments");

    // The flag's kill-switch status.
    let status = server
        .send(
            Method::GET,
            "/api/v1/flags/shop/checkout/kill-switch",
            &server.bearer(BOOTSTRAP),
            None,
        )
        .await;
    assert_eq!(status.status, StatusCode::OK);
    let active = &status.body["active"][0];
    assert_eq!(active["environment"], "production");
    assert_eq!(active["binding"], Value::Null);
    assert_eq!(active["alert"]["fingerprint"], "fp-direct");
    assert_eq!(active["alert"]["startsAt"], 1_795_975_200_123_i64);
    assert_eq!(active["dryRun"], false);
    assert_eq!(status.body["history"], json!([]));
}

#[tokio::test]
async fn bindings_have_etags_and_422s() {
    let server = Server::start().await;
    let admin = server.bearer(BOOTSTRAP);
    let created = server
        .send(
            Method::POST,
            "/api/v1/kill-switches",
            &admin,
            Some(binding("checkout", "disable", "keep", false)),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.headers["etag"], "\"1\"");
    assert_eq!(
        created.headers["location"],
        "/api/v1/kill-switches/checkout"
    );
    assert_eq!(created.body["version"], 1);

    let mut invalid = binding("broken", "variant:absent", "keep", false);
    invalid["targets"]
        .as_array_mut()
        .unwrap()
        .push(json!({"flagSet": "shop", "flag": "nope", "environment": "production", "action": "disable"}));
    invalid["matchers"] = json!({});
    let refused = server
        .send(Method::POST, "/api/v1/kill-switches", &admin, Some(invalid))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    let mut paths: Vec<&str> = refused.body["error"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    paths.sort_unstable();
    assert_eq!(paths, ["/matchers", "/targets/0/action", "/targets/1/flag"]);
    let unknown = server
        .send(
            Method::POST,
            "/api/v1/kill-switches",
            &admin,
            Some(json!({"name": "x", "matchers": {}, "targets": [], "typo": 1})),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);

    // A binding read can be sent back as it is.
    let mut read = server
        .send(Method::GET, "/api/v1/kill-switches/checkout", &admin, None)
        .await;
    assert_eq!(read.headers["etag"], "\"1\"");
    read.body["dryRun"] = json!(true);
    let mut if_match = admin.clone();
    if_match.push(("if-match".to_owned(), "\"1\"".to_owned()));
    let updated = server
        .send(
            Method::PUT,
            "/api/v1/kill-switches/checkout",
            &if_match,
            Some(read.body.clone()),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.headers["etag"], "\"2\"");
    let stale = server
        .send(
            Method::PUT,
            "/api/v1/kill-switches/checkout",
            &if_match,
            Some(read.body.clone()),
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let renamed = server
        .send(
            Method::PUT,
            "/api/v1/kill-switches/checkout",
            &admin,
            Some(binding("other", "disable", "keep", false)),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::UNPROCESSABLE_ENTITY);

    let listed = server
        .send(Method::GET, "/api/v1/kill-switches", &admin, None)
        .await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    let status = server
        .send(
            Method::GET,
            "/api/v1/flags/shop/checkout/kill-switch",
            &admin,
            None,
        )
        .await;
    assert_eq!(status.body["bindings"][0]["name"], "checkout");

    let deleted = server
        .send(
            Method::DELETE,
            "/api/v1/kill-switches/checkout",
            &if_match,
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::PRECONDITION_FAILED);
    let deleted = server
        .send(
            Method::DELETE,
            "/api/v1/kill-switches/checkout",
            &admin,
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = server
        .send(Method::GET, "/api/v1/kill-switches/checkout", &admin, None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);

    // Environment-limited editors may only bind flags in their environments.
    let staging = server.staging_token("staging-editor", "editor").await;
    let refused = server
        .send(
            Method::POST,
            "/api/v1/kill-switches",
            &server.bearer(&staging),
            Some(binding("b", "disable", "keep", false)),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_limited_editor_cannot_replace_or_delete_another_environments_binding() {
    let server = Server::start().await;
    let admin = server.bearer(BOOTSTRAP);
    let created = server
        .send(
            Method::POST,
            "/api/v1/kill-switches",
            &admin,
            Some(binding("checkout", "disable", "keep", false)),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let staging = server.bearer(&server.staging_token("staging-editor", "editor").await);

    // Replacing the production binding with a staging one (its target,
    // matchers and dry run) is refused, with or without If-Match.
    let mut replacement = binding("checkout", "disable", "keep", true);
    replacement["targets"][0]["environment"] = json!("staging");
    replacement["matchers"] = json!({"slo": "anything"});
    for if_match in [None, Some(created.headers["etag"].to_str().unwrap())] {
        let mut headers = staging.clone();
        headers.extend(if_match.map(|tag| ("if-match".to_owned(), tag.to_owned())));
        let refused = server
            .send(
                Method::PUT,
                "/api/v1/kill-switches/checkout",
                &headers,
                Some(replacement.clone()),
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
        assert!(
            refused.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("\"production\""),
            "{}",
            refused.body
        );
    }
    let refused = server
        .send(
            Method::DELETE,
            "/api/v1/kill-switches/checkout",
            &staging,
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let stored = server
        .send(Method::GET, "/api/v1/kill-switches/checkout", &admin, None)
        .await;
    assert_eq!(stored.body, created.body, "the binding is unchanged");

    // A staging binding is the staging editor's to replace and delete.
    let mut staging_binding = binding("staging-checkout", "disable", "keep", false);
    staging_binding["targets"][0]["environment"] = json!("staging");
    let created = server
        .send(
            Method::POST,
            "/api/v1/kill-switches",
            &staging,
            Some(staging_binding),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    replacement["name"] = json!("staging-checkout");
    let replaced = server
        .send(
            Method::PUT,
            "/api/v1/kill-switches/staging-checkout",
            &staging,
            Some(replacement),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    assert_eq!(replaced.body["dryRun"], true);
    // ... but not into production.
    let refused = server
        .send(
            Method::PUT,
            "/api/v1/kill-switches/staging-checkout",
            &staging,
            Some(binding("staging-checkout", "disable", "keep", false)),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let deleted = server
        .send(
            Method::DELETE,
            "/api/v1/kill-switches/staging-checkout",
            &staging,
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
}

#[tokio::test]
async fn a_matching_binding_restores_after_the_cooldown() {
    let server = Server::start().await;
    let admin = server.bearer(BOOTSTRAP);
    let before = server.config("production").await;
    let created = server
        .send(
            Method::POST,
            "/api/v1/kill-switches",
            &admin,
            Some(binding("checkout", "disable", "restore", false)),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);

    // Labels that do not match every matcher do nothing.
    let other = server
        .notify(&notification(
            "firing",
            "fp-ticket",
            json!({"slo": "checkout-availability", "severity": "ticket"}),
        ))
        .await;
    assert_eq!(other.body["actions"][0]["outcome"], "no_match");
    assert_eq!(server.config("production").await, before);

    let fired = server
        .notify(&notification("firing", "fp", slo_page()))
        .await;
    assert_eq!(
        fired.body["actions"][0]["outcome"], "applied",
        "{}",
        fired.body
    );
    assert_eq!(fired.body["actions"][0]["binding"], "checkout");
    assert_eq!(server.config("production").await["state"], "DISABLED");

    let resolved = server
        .notify(&notification("resolved", "fp", slo_page()))
        .await;
    assert_eq!(resolved.body["actions"][0]["outcome"], "restore_scheduled");
    let status = server
        .send(
            Method::GET,
            "/api/v1/flags/shop/checkout/kill-switch",
            &admin,
            None,
        )
        .await;
    let due = status.body["active"][0]["restoreDueAt"].as_i64().unwrap();
    assert!(
        server
            .storage
            .apply_due_restores(due - 1)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(server.config("production").await["state"], "DISABLED");
    let restored = server.storage.apply_due_restores(due).await.unwrap();
    assert_eq!(restored.len(), 1);
    let now = server.config("production").await;
    assert_eq!(now["state"], before["state"]);
    assert_eq!(now["targeting"], before["targeting"]);
    let status = server
        .send(
            Method::GET,
            "/api/v1/flags/shop/checkout/kill-switch",
            &admin,
            None,
        )
        .await;
    assert_eq!(status.body["active"], json!([]));
    assert_eq!(
        status.body["history"][0]["restoredBy"],
        "automation:alertmanager"
    );
    assert_eq!(status.body["history"][0]["restoreOutcome"], "restored");
}

#[tokio::test]
async fn keep_waits_for_a_manual_restore() {
    let server = Server::start().await;
    let admin = server.bearer(BOOTSTRAP);
    let before = server.config("production").await;
    server
        .send(
            Method::POST,
            "/api/v1/kill-switches",
            &admin,
            Some(binding("checkout", "variant:safe", "keep", false)),
        )
        .await;
    let fired = server
        .notify(&notification("firing", "fp", slo_page()))
        .await;
    assert_eq!(fired.body["actions"][0]["outcome"], "applied");
    let pinned = server.config("production").await;
    assert_eq!(pinned["defaultVariant"], "safe");
    assert_eq!(pinned["targeting"], Value::Null);
    let resolved = server
        .notify(&notification("resolved", "fp", slo_page()))
        .await;
    assert_eq!(resolved.body["actions"][0]["outcome"], "kept");
    assert!(
        server
            .storage
            .apply_due_restores(i64::MAX)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(server.config("production").await, pinned);

    let restore = "/api/v1/flags/shop/checkout/environments/production/kill-switch/restore";
    let restored = server
        .send(
            Method::POST,
            restore,
            &admin,
            Some(json!({"comment": "error rate back to normal"})),
        )
        .await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.body);
    assert_eq!(restored.body["active"], json!([]));
    assert_eq!(restored.body["history"][0]["restoredBy"], "token:bootstrap");
    let now = server.config("production").await;
    assert_eq!(now["targeting"], before["targeting"]);
    assert_eq!(now["defaultVariant"], before["defaultVariant"]);
    let again = server.send(Method::POST, restore, &admin, None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    // A `null` body is no request (the OpenAPI document's body is nullable),
    // not a 422.
    let null_body = server
        .send(Method::POST, restore, &admin, Some(Value::Null))
        .await;
    assert_eq!(
        null_body.status,
        StatusCode::NOT_FOUND,
        "{}",
        null_body.body
    );
    let audit = server
        .send(
            Method::GET,
            "/api/v1/audit?actor=token:bootstrap",
            &admin,
            None,
        )
        .await;
    let entry = &audit.body["items"][0];
    assert_eq!(entry["action"], "flag.kill_restore");
    assert_eq!(entry["comment"], "error rate back to normal");
}

#[tokio::test]
async fn dry_run_and_zero_weight() {
    let server = Server::start().await;
    let admin = server.bearer(BOOTSTRAP);
    let before = server.config("production").await;
    server
        .send(
            Method::POST,
            "/api/v1/kill-switches",
            &admin,
            Some(binding("dry", "disable", "restore", true)),
        )
        .await;
    let fired = server
        .notify(&notification("firing", "fp", slo_page()))
        .await;
    assert_eq!(
        fired.body["actions"][0]["outcome"], "dry_run",
        "{}",
        fired.body
    );
    assert_eq!(server.config("production").await, before);
    let status = server
        .send(
            Method::GET,
            "/api/v1/flags/shop/checkout/kill-switch",
            &admin,
            None,
        )
        .await;
    assert_eq!(status.body["active"][0]["dryRun"], true);
    assert_eq!(status.body["active"][0]["after"]["state"], "DISABLED");
    let resolved = server
        .notify(&notification("resolved", "fp", slo_page()))
        .await;
    assert_eq!(resolved.body["actions"][0]["outcome"], "closed");
    assert_eq!(server.config("production").await, before);

    let zero = server
        .notify(&notification(
            "firing",
            "fp-zero",
            json!({"ensign_flag": "checkout", "ensign_action": "zero-weight:bad"}),
        ))
        .await;
    assert_eq!(
        zero.body["actions"][0]["outcome"], "applied",
        "{}",
        zero.body
    );
    assert_eq!(
        server.config("production").await["targeting"],
        json!({"fractional": [["safe", 50], ["new", 30], ["bad", 0]]})
    );
}

#[tokio::test]
async fn the_openapi_document_lists_the_kill_switch() {
    let server = Server::start().await;
    let document = server
        .send(Method::GET, "/api/v1/openapi.json", &[], None)
        .await;
    let paths = document.body["paths"].as_object().unwrap();
    for path in [
        "/api/v1/integrations/alertmanager",
        "/api/v1/integrations/alertmanager/receivers",
        "/api/v1/integrations/alertmanager/receivers/{name}",
        "/api/v1/kill-switches",
        "/api/v1/kill-switches/{name}",
        "/api/v1/flags/{set}/{key}/kill-switch",
        "/api/v1/flags/{set}/{key}/environments/{env}/kill-switch/restore",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
}

#[tokio::test]
async fn the_webhook_is_503_when_the_database_is_gone() {
    let server = Server::start().await;
    server.storage.pool().close().await;
    let answer = server
        .notify(&notification(
            "firing",
            "fp",
            json!({"ensign_flag": "checkout"}),
        ))
        .await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    assert_eq!(
        server.metric("ensign_killswitch_webhook_requests_total{outcome=\"unavailable\"}"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_from_ha_peers_act_once() {
    let server = Server::start().await;
    let payload = notification("firing", "fp-ha", json!({"ensign_flag": "checkout"}));
    let answers = four_at_once(&server, &payload).await;
    let mut outcomes: Vec<String> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, StatusCode::OK, "{}", a.body);
            a.body["actions"][0]["outcome"].as_str().unwrap().to_owned()
        })
        .collect();
    outcomes.sort();
    assert_eq!(outcomes, ["applied", "duplicate", "duplicate", "duplicate"]);
    assert_eq!(server.receipts().await, 1);
    assert_eq!(server.config("production").await["state"], "DISABLED");
}

/// The same notification four times at once, as Alertmanager HA peers send it.
async fn four_at_once(server: &Server, payload: &Value) -> Vec<Answer> {
    let (a, b, c, d) = tokio::join!(
        server.notify(payload),
        server.notify(payload),
        server.notify(payload),
        server.notify(payload)
    );
    vec![a, b, c, d]
}
