//! The demo service against a stand-in OFREP server, through the real
//! OpenFeature SDK and flagd provider: the bad variant fails at the configured
//! rate, a disabled flag means the safe path, metrics are exported, readiness
//! follows start-up, and SIGTERM-style shutdown drains in-flight requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::routing::post;
use ensign_demo::{
    BadRelease, CheckoutFlag, DemoState, Lifecycle, NEW_PATH, SAFE_PATH, ofrep_client, router,
    serve,
};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tower::ServiceExt;

/// What the stand-in OFREP server answers.
#[derive(Default)]
struct Stub {
    /// The served value; `None` answers as Ensign does for a DISABLED flag.
    value: Mutex<Option<String>>,
    /// When set, every evaluation signals `arrived` and waits for `release`.
    hold: Mutex<bool>,
    arrived: Notify,
    release: Notify,
}

async fn evaluate(State(stub): State<Arc<Stub>>, Path(key): Path<String>) -> Json<Value> {
    if *stub.hold.lock().unwrap() {
        stub.arrived.notify_one();
        stub.release.notified().await;
    }
    let value = stub.value.lock().unwrap().clone();
    Json(match value {
        Some(value) => json!({"key": key, "value": value, "variant": value, "reason": "STATIC"}),
        None => json!({"key": key, "reason": "DISABLED", "metadata": {}}),
    })
}

/// Starts the stand-in OFREP server; returns its base URL.
async fn start_stub(stub: Arc<Stub>) -> String {
    let app = axum::Router::new()
        .route("/ofrep/v1/evaluate/flags/{key}", post(evaluate))
        .with_state(stub);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

async fn demo(stub: Arc<Stub>, bad: BadRelease) -> Arc<DemoState> {
    let url = start_stub(stub).await;
    let flags = ofrep_client(&url, Duration::from_secs(5)).await.unwrap();
    Arc::new(DemoState::new(
        flags,
        CheckoutFlag {
            key: "checkout-v2".to_owned(),
            new_path_value: NEW_PATH.to_owned(),
        },
        bad,
    ))
}

fn failing(error_rate: f64) -> BadRelease {
    BadRelease {
        error_rate,
        latency_rate: 0.0,
        latency: Duration::ZERO,
    }
}

async fn get(state: &Arc<DemoState>, uri: &str) -> (u16, Option<String>, String) {
    let response = router(state.clone())
        .oneshot(axum::http::Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let path = response
        .headers()
        .get("x-checkout-path")
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, path, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn the_bad_variant_fails_at_the_configured_rate() {
    let stub = Arc::new(Stub::default());
    *stub.value.lock().unwrap() = Some(NEW_PATH.to_owned());
    let state = demo(stub, failing(0.25)).await;
    let mut errors = 0;
    for user in 0..40 {
        let (status, path, _) = get(&state, &format!("/checkout?user=u{user}")).await;
        assert_eq!(path.as_deref(), Some(NEW_PATH));
        if status == 500 {
            errors += 1;
        } else {
            assert_eq!(status, 200);
        }
    }
    assert_eq!(errors, 10);
}

#[tokio::test]
async fn a_disabled_flag_or_another_value_takes_the_safe_path_without_errors() {
    let stub = Arc::new(Stub::default());
    let state = demo(stub.clone(), failing(1.0)).await;
    let (status, path, body) = get(&state, "/checkout").await;
    assert_eq!((status, path.as_deref()), (200, Some(SAFE_PATH)));
    assert!(body.contains(r#""path":"stable""#), "{body}");
    *stub.value.lock().unwrap() = Some("v1".to_owned());
    let (status, path, _) = get(&state, "/checkout").await;
    assert_eq!((status, path.as_deref()), (200, Some(SAFE_PATH)));
    *stub.value.lock().unwrap() = Some(NEW_PATH.to_owned());
    let (status, path, _) = get(&state, "/checkout").await;
    assert_eq!((status, path.as_deref()), (500, Some(NEW_PATH)));
}

#[tokio::test]
async fn an_unreachable_flag_server_means_the_safe_path() {
    let unused = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", unused.local_addr().unwrap());
    drop(unused);
    let flags = ofrep_client(&url, Duration::from_secs(1)).await.unwrap();
    let state = Arc::new(DemoState::new(
        flags,
        CheckoutFlag {
            key: "checkout-v2".to_owned(),
            new_path_value: NEW_PATH.to_owned(),
        },
        failing(1.0),
    ));
    let (status, path, _) = get(&state, "/checkout").await;
    assert_eq!((status, path.as_deref()), (200, Some(SAFE_PATH)));
}

#[tokio::test]
async fn metrics_count_requests_by_route_code_and_path() {
    let stub = Arc::new(Stub::default());
    *stub.value.lock().unwrap() = Some(NEW_PATH.to_owned());
    let state = demo(stub.clone(), failing(0.5)).await;
    for _ in 0..4 {
        get(&state, "/checkout").await;
    }
    *stub.value.lock().unwrap() = None;
    get(&state, "/checkout").await;
    get(&state, "/nowhere").await;
    let (status, _, text) = get(&state, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        r#"demo_http_requests_total{route="/checkout",code="500"} 2"#,
        r#"demo_http_requests_total{route="/checkout",code="200"} 3"#,
        r#"demo_http_requests_total{route="other",code="404"} 1"#,
        r#"demo_http_request_duration_seconds_count{route="/checkout"} 5"#,
        r#"demo_checkout_path_total{path="v2"} 4"#,
        r#"demo_checkout_path_total{path="stable"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

/// Sends one raw HTTP/1.1 request and reads the whole response.
async fn raw_get(address: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(address).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nhost: demo\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

#[tokio::test]
async fn readiness_waits_for_the_startup_delay() {
    let stub = Arc::new(Stub::default());
    let state = demo(stub, failing(0.0)).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let lifecycle = Lifecycle {
        startup_delay: Duration::from_secs(3600),
        drain_timeout: Duration::from_secs(5),
    };
    let server = tokio::spawn(serve(listener, state.clone(), lifecycle, async {
        let _ = stop_rx.await;
    }));
    let starting = raw_get(address, "/readyz").await.unwrap();
    assert!(starting.starts_with("HTTP/1.1 503"), "{starting}");
    let alive = raw_get(address, "/healthz").await.unwrap();
    assert!(alive.starts_with("HTTP/1.1 200"), "{alive}");
    state.set_ready(true);
    let ready = raw_get(address, "/readyz").await.unwrap();
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_lets_the_in_flight_request_finish_then_refuses_new_ones() {
    let stub = Arc::new(Stub::default());
    *stub.value.lock().unwrap() = Some(NEW_PATH.to_owned());
    let state = demo(stub.clone(), failing(0.0)).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let lifecycle = Lifecycle {
        startup_delay: Duration::ZERO,
        drain_timeout: Duration::from_secs(30),
    };
    state.set_ready(true);
    let server = tokio::spawn(serve(listener, state.clone(), lifecycle, async {
        let _ = stop_rx.await;
    }));
    *stub.hold.lock().unwrap() = true;
    let in_flight = tokio::spawn(raw_get(address, "/checkout"));
    // The request is inside the handler, waiting on its flag evaluation.
    stub.arrived.notified().await;
    stop_tx.send(()).unwrap();
    // Shutdown has begun once readiness drops.
    while state.is_ready() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stub.release.notify_one();
    let response = in_flight.await.unwrap().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""path":"v2""#), "{response}");
    server.await.unwrap().unwrap();
    assert!(raw_get(address, "/healthz").await.is_err());
}
