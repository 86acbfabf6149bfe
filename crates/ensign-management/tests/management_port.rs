//! The management port end to end on 127.0.0.1: HTTP/1.1 and h2c requests,
//! readiness through a source's first load and through draining, metrics,
//! gRPC health, and graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ensign_engine::EvaluationOptions;
use ensign_engine::document::{Format, Limits, load};
use ensign_management::{METRICS_CONTENT_TYPE, ManagementState, serve};
use ensign_metrics::Metrics;
use ensign_store::Store;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const WAIT: Duration = Duration::from_secs(5);
const SOURCE: &str = "flags/allFlags.json";

struct Server {
    addr: SocketAddr,
    state: ManagementState,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start() -> Server {
        let store = Arc::new(Store::new(
            [SOURCE],
            EvaluationOptions::default(),
            Arc::new(Metrics::new()),
        ));
        let state = ManagementState::new(store);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(
            listener,
            state.clone(),
            ensign_http::ListenerLimits::default(),
            shutdown.clone(),
        ));
        Server {
            addr,
            state,
            shutdown,
            task,
        }
    }

    fn load_source(&self) {
        let text = r#"{"flags": {"f": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"}}}"#;
        let loaded = load(text, Format::Json, &Limits::default()).unwrap();
        self.state
            .store()
            .replace_source(SOURCE, loaded.document)
            .expect("known source");
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("server stops")
            .expect("no panic")
            .expect("no error");
    }
}

/// Status, content type and body of a GET over HTTP/1.1.
async fn get_http1(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.version(), hyper::Version::HTTP_11);
    read(response).await
}

/// Status, content type and body of a GET over HTTP/2 with prior knowledge.
async fn get_h2c(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = Request::get(format!("http://{addr}{path}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    read(response).await
}

async fn read(response: hyper::Response<hyper::body::Incoming>) -> (u16, String, String) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

async fn health_client(addr: SocketAddr) -> HealthClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
}

async fn health_status(client: &mut HealthClient<Channel>) -> ServingStatus {
    let response = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    response.into_inner().status()
}

/// Waits until gRPC health reports `expected` (it follows readiness asynchronously).
async fn wait_for_health(client: &mut HealthClient<Channel>, expected: ServingStatus) {
    let waited = tokio::time::timeout(WAIT, async {
        while health_status(client).await != expected {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "gRPC health never became {expected:?}");
}

#[tokio::test]
async fn healthz_is_always_ok_over_http1_and_h2c() {
    let server = Server::start().await;
    assert_eq!(get_http1(server.addr, "/healthz").await.0, 200);
    assert_eq!(get_http1(server.addr, "/healthz").await.2, "ok");
    assert_eq!(get_h2c(server.addr, "/healthz").await.0, 200);
    server.state.start_draining();
    assert_eq!(get_http1(server.addr, "/healthz").await.0, 200);
    assert_eq!(get_http1(server.addr, "/nope").await.0, 404);
    server.stop().await;
}

#[tokio::test]
async fn readyz_follows_the_first_load_and_draining() {
    let server = Server::start().await;
    assert_eq!(get_http1(server.addr, "/readyz").await.0, 412);
    assert_eq!(get_h2c(server.addr, "/readyz").await.0, 412);

    server.load_source();
    assert_eq!(get_http1(server.addr, "/readyz").await.0, 200);
    assert_eq!(get_h2c(server.addr, "/readyz").await.0, 200);

    server.state.start_draining();
    assert!(server.state.is_draining());
    assert_eq!(get_http1(server.addr, "/readyz").await.0, 412);
    assert_eq!(get_h2c(server.addr, "/readyz").await.0, 412);
    server.stop().await;
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let server = Server::start().await;
    server.load_source();
    server.state.store().reject_update(SOURCE, "test");
    for (status, content_type, body) in [
        get_http1(server.addr, "/metrics").await,
        get_h2c(server.addr, "/metrics").await,
    ] {
        assert_eq!(status, 200);
        assert_eq!(content_type, METRICS_CONTENT_TYPE);
        assert!(
            body.contains("# TYPE ensign_snapshot_generation gauge"),
            "{body}"
        );
        assert!(body.contains("ensign_snapshot_generation 1"), "{body}");
        assert!(
            body.contains(r#"ensign_source_errors_total{source="flags/allFlags.json"} 1"#),
            "{body}"
        );
        assert!(body.ends_with("# EOF\n"), "{body}");
    }
    server.stop().await;
}

#[tokio::test]
async fn grpc_health_follows_readiness() {
    let server = Server::start().await;
    let mut client = health_client(server.addr).await;
    assert_eq!(health_status(&mut client).await, ServingStatus::NotServing);

    server.load_source();
    wait_for_health(&mut client, ServingStatus::Serving).await;

    server.state.start_draining();
    wait_for_health(&mut client, ServingStatus::NotServing).await;

    let unknown = client
        .check(HealthCheckRequest {
            service: "no.such.Service".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    server.stop().await;
}

async fn next_status(
    updates: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>,
) -> ServingStatus {
    let message = tokio::time::timeout(WAIT, updates.message())
        .await
        .expect("an update in time")
        .expect("no error");
    message.expect("stream open").status()
}

#[tokio::test]
async fn grpc_health_watch_streams_changes() {
    let server = Server::start().await;
    let mut client = health_client(server.addr).await;
    let mut updates = client
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_status(&mut updates).await, ServingStatus::NotServing);
    server.load_source();
    assert_eq!(next_status(&mut updates).await, ServingStatus::Serving);
    // Shutdown sends a last NOT_SERVING and ends the stream, so an open
    // Watch does not hold up the drain.
    let server_task = tokio::spawn(server.stop());
    assert_eq!(next_status(&mut updates).await, ServingStatus::NotServing);
    let end = tokio::time::timeout(WAIT, updates.message())
        .await
        .expect("the stream ends in time");
    assert!(matches!(end, Ok(None)), "stream ended cleanly: {end:?}");
    server_task.await.unwrap();
}

#[tokio::test]
async fn shutdown_stops_accepting_and_drains() {
    let server = Server::start().await;
    server.load_source();
    let addr = server.addr;
    let state = server.state.clone();
    server.stop().await;
    assert!(state.is_draining(), "shutdown forces readiness down");
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}
