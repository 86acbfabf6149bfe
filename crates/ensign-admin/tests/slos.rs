//! The SLO routes through the router on SQLite: file SLOs (read-only, 409 on
//! writes), stored SLOs (create, replace with If-Match, delete, audit), 422
//! with JSON Pointers into the spec, and the status route's answers when
//! Prometheus cannot be used: none configured, refused connections, a
//! non-2xx answer, garbage, an answer that never comes — always 200 JSON with
//! `"status": "unreachable"` — and 404 with `"status": "unknown"` for an
//! unknown SLO. (Statuses computed from real data are proven against a real
//! Prometheus by scripts/slo-rules.sh.)

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use ensign_admin::prometheus::PrometheusClient;
use ensign_admin::{AdminState, FileSlo, SloSettings};
use ensign_storage::Storage;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const TOKEN: &str = "bootstrap-secret-for-slo-tests";

const CHECKOUT: &str = r#"
version: prometheus/v1
service: checkout
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total[{{.window}}]))
    alerting:
      name: CheckoutAvailability
      page_alert: {labels: {ensign_flag: new-checkout}}
"#;

fn search_spec(objective: f64) -> String {
    format!(
        "version: prometheus/v1\nservice: search\nslos:\n  - name: availability\n    \
         objective: {objective}\n    sli: {{raw: {{error_ratio_query: \"x[{{{{.window}}}}]\"}}}}\n    \
         alerting: {{name: SearchAvailability}}\n"
    )
}

struct Api {
    router: Router,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    etag: Option<String>,
    body: Value,
}

impl Api {
    async fn new(prometheus: Option<PrometheusClient>) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ensign.db").display());
        let storage = Storage::connect(&url).await.unwrap();
        storage.migrate().await.unwrap();
        let spec = ensign_slo::spec::parse(CHECKOUT).unwrap();
        let settings = SloSettings {
            files: vec![FileSlo::new(
                spec.single(0).unwrap(),
                "slos/checkout.yml".to_owned(),
            )],
            prometheus,
            window_scale: ensign_slo::WindowScale::new(60).unwrap(),
        };
        let state = AdminState::new(storage, Some(TOKEN.to_owned())).with_slos(settings);
        Api {
            router: ensign_admin::router(state),
            _dir: dir,
        }
    }

    async fn send(&self, method: Method, path: &str, body: &str, if_match: Option<&str>) -> Reply {
        self.send_typed(method, path, body, if_match, None).await
    }

    /// Sends `body` with `content_type`, if any.
    async fn send_typed(
        &self,
        method: Method,
        path: &str,
        body: &str,
        if_match: Option<&str>,
        content_type: Option<&str>,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("/api/v1{path}"))
            .header("authorization", format!("Bearer {TOKEN}"));
        if let Some(etag) = if_match {
            request = request.header("if-match", etag);
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let request = request.body(Body::from(body.to_owned())).unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let etag = response
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        Reply { status, etag, body }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, "", None).await
    }
}

#[tokio::test]
async fn file_slos_are_listed_and_read_only() {
    let api = Api::new(None).await;
    let list = api.get("/slos").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    let slo = &list.body[0];
    assert_eq!(slo["name"], "checkout-availability");
    assert_eq!(slo["source"], "file");
    assert_eq!(slo["file"], "slos/checkout.yml");
    assert_eq!(slo["readOnly"], true);
    assert_eq!(slo["version"], Value::Null);
    assert_eq!(
        slo["spec"]["slos"][0]["alerting"]["page_alert"]["labels"]["ensign_flag"],
        "new-checkout"
    );
    let read = api.get("/slos/checkout-availability").await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.etag, None);
    assert_eq!(read.body, *slo);

    for method in [Method::PUT, Method::DELETE] {
        let reply = api
            .send(
                method.clone(),
                "/slos/checkout-availability",
                CHECKOUT,
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{method}");
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("slos/checkout.yml")
        );
    }
    assert_eq!(api.get("/slos/nope").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn stored_slos_are_created_replaced_and_deleted() {
    let api = Api::new(None).await;
    let created = api
        .send(
            Method::PUT,
            "/slos/search-availability",
            &search_spec(99.5),
            None,
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.etag.as_deref(), Some("\"1\""));
    assert_eq!(created.body["source"], "api");
    assert_eq!(created.body["readOnly"], false);
    assert_eq!(created.body["objective"], 99.5);

    // JSON works as well as YAML; replacing needs If-Match.
    let json_spec = serde_json::to_string(
        &ensign_slo::spec::parse(&search_spec(99.0))
            .unwrap()
            .to_value(),
    )
    .unwrap();
    let blind = api
        .send(Method::PUT, "/slos/search-availability", &json_spec, None)
        .await;
    assert_eq!(blind.status, StatusCode::CONFLICT);
    let stale = api
        .send(
            Method::PUT,
            "/slos/search-availability",
            &json_spec,
            Some("\"7\""),
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let replaced = api
        .send(
            Method::PUT,
            "/slos/search-availability",
            &json_spec,
            Some("\"1\""),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    assert_eq!(replaced.etag.as_deref(), Some("\"2\""));
    assert_eq!(replaced.body["objective"], 99.0);

    let names: Vec<Value> = api
        .get("/slos")
        .await
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(
        names,
        [json!("checkout-availability"), json!("search-availability")]
    );

    let deleted = api
        .send(
            Method::DELETE,
            "/slos/search-availability",
            "",
            Some("\"2\""),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get("/slos/search-availability").await.status,
        StatusCode::NOT_FOUND
    );

    // Every write is in the audit log, with the bootstrap token as actor.
    let audit = api.get("/audit?resourceType=slo").await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.body);
    let actions: Vec<(&str, &str)> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("slo.delete", "token:bootstrap"),
            ("slo.update", "token:bootstrap"),
            ("slo.create", "token:bootstrap"),
        ]
    );
}

#[tokio::test]
async fn invalid_specs_are_422_with_pointers_and_write_nothing() {
    let api = Api::new(None).await;
    let broken = search_spec(100.0).replace("x[{{.window}}]", "x[5m]");
    let reply = api
        .send(Method::PUT, "/slos/search-availability", &broken, None)
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let paths: Vec<&str> = reply.body["error"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["/slos/0/objective", "/slos/0/sli/raw/error_ratio_query"]
    );

    // The spec must hold the SLO the path names.
    let reply = api
        .send(
            Method::PUT,
            "/slos/search-latency",
            &search_spec(99.0),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.body["error"]["problems"][0]["path"], "/slos/0/name");

    let reply = api
        .send(
            Method::PUT,
            "/slos/search-availability",
            "{not yaml: [",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.body["error"]["problems"][0]["path"], "");

    assert_eq!(api.get("/slos").await.body.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn json_bodies_are_read_as_json_surrogate_pair_escapes_included() {
    let api = Api::new(None).await;
    // What Python's json.dumps writes for "Search 😀": YAML refuses the
    // escaped surrogate pair, JSON reads it as one character.
    let spec = |objective: f64| {
        format!(
            r#"{{"version": "prometheus/v1", "service": "search", "slos": [{{"name": "availability",
            "objective": {objective}, "description": "Search \ud83d\ude00",
            "sli": {{"raw": {{"error_ratio_query": "x[{{{{.window}}}}]"}}}},
            "alerting": {{"name": "SearchAvailability"}}}}]}}"#
        )
    };
    let created = api
        .send_typed(
            Method::PUT,
            "/slos/search-availability",
            &spec(99.5),
            None,
            Some("application/json; charset=utf-8"),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["description"], "Search \u{1F600}");
    // Without a Content-Type a body starting with `{` is JSON too.
    let replaced = api
        .send(
            Method::PUT,
            "/slos/search-availability",
            &spec(99.0),
            Some("\"1\""),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    assert_eq!(replaced.body["description"], "Search \u{1F600}");
    // YAML sent as YAML is still YAML, flow mappings included.
    let yaml = search_spec(98.0);
    let replaced = api
        .send_typed(
            Method::PUT,
            "/slos/search-availability",
            &yaml,
            Some("\"2\""),
            Some("application/yaml"),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    assert_eq!(replaced.body["objective"], 98.0);
}

async fn status(api: &Api, name: &str) -> Reply {
    let reply = api.get(&format!("/slos/{name}/status")).await;
    assert!(reply.body["status"].is_string(), "{}", reply.body);
    reply
}

fn assert_unreachable(reply: &Reply, reason: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["status"], "unreachable", "{}", reply.body);
    assert_eq!(reply.body["windowScale"], 60);
    assert_eq!(reply.body["objective"], 99.9);
    assert_eq!(reply.body["errorBudget"], 0.001);
    assert_eq!(reply.body["burnRates"]["5m"], Value::Null);
    assert_eq!(reply.body["burnRates"].as_object().unwrap().len(), 8);
    let message = reply.body["message"].as_str().unwrap();
    assert!(message.contains(reason), "{message}");
}

#[tokio::test]
async fn without_prometheus_the_status_is_unreachable_and_unknown_slos_are_404() {
    let api = Api::new(None).await;
    assert_unreachable(
        &status(&api, "checkout-availability").await,
        "--prometheus-url",
    );
    let unknown = status(&api, "checkout-latency").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.body["status"], "unknown");
    assert_eq!(unknown.body["error"]["code"], "not_found");
}

/// A raw HTTP/1.1 answer.
fn answer(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A fake Prometheus on a loopback port that answers every connection with
/// `answer`, or never, for `None`. Its port.
async fn fake_prometheus(answer: Option<String>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                match answer {
                    Some(answer) => {
                        let _ = stream.write_all(answer.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    port
}

fn client(port: u16) -> PrometheusClient {
    PrometheusClient::new(
        &format!("http://127.0.0.1:{port}"),
        Duration::from_millis(300),
    )
    .unwrap()
}

#[tokio::test]
async fn a_prometheus_that_fails_in_any_way_is_unreachable_in_a_200() {
    // Nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let json = "application/json";
    let cases = [
        (closed, "cannot connect"),
        (
            fake_prometheus(Some(answer("200 OK", "text/html", "<html>a proxy</html>"))).await,
            "not its query API's JSON",
        ),
        (
            fake_prometheus(Some(answer("502 Bad Gateway", "text/plain", "bad"))).await,
            "HTTP 502",
        ),
        (
            fake_prometheus(Some(answer(
                "400 Bad Request",
                json,
                r#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#,
            )))
            .await,
            "parse error at char 3",
        ),
        (
            fake_prometheus(Some(answer(
                "200 OK",
                json,
                r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
            )))
            .await,
            "did not answer an instant vector",
        ),
        (
            fake_prometheus(Some(answer(
                "200 OK",
                json,
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}}"#,
            )))
            .await,
            "not its query API's JSON",
        ),
        (fake_prometheus(None).await, "did not answer within"),
    ];
    for (port, reason) in cases {
        let api = Api::new(Some(client(port))).await;
        assert_unreachable(&status(&api, "checkout-availability").await, reason);
    }
}
