//! `flagd.sync.v1.FlagSyncService` end to end over a real socket: a tonic
//! client against the sync router served by `ensign_http::serve`, checking the
//! payload shape, selectors, change fan-out, metadata, shutdown and the
//! open-streams gauge (wire contract §2).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use ensign_engine::document::{Limits, load_value};
use ensign_engine::{EvaluationOptions, FlagDocument};
use ensign_proto::convert::struct_to_json;
use ensign_proto::sync_v1::flag_sync_service_client::FlagSyncServiceClient;
use ensign_proto::sync_v1::{
    FetchAllFlagsRequest, GetMetadataRequest, SyncFlagsRequest, SyncFlagsResponse,
};
use ensign_store::Store;
use ensign_sync::{SyncConfig, SyncService};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use tonic::Streaming;
use tonic::transport::Channel;

/// How long a test waits for something that must happen.
const PATIENCE: Duration = Duration::from_secs(5);
/// How long a test waits to be sure something does not happen.
const QUIET: Duration = Duration::from_millis(400);

fn web(banner_default: &str) -> Value {
    json!({
        "metadata": {"flagSetId": "web", "version": 3},
        "$evaluators": {"gold": {"==": [{"var": "tier"}, "gold"]}},
        "flags": {
            "banner": {"state": "ENABLED", "variants": {"on": true, "off": false},
                       "defaultVariant": banner_default, "metadata": {"owner": "growth"},
                       "targeting": {"if": [{"$ref": "gold"}, "on", null]}},
            "no-default": {"state": "ENABLED", "variants": {"a": "a", "b": "b"}},
            "off": {"state": "DISABLED", "variants": {"x": 1}, "defaultVariant": null}
        }
    })
}

fn team(limit_default: &str) -> Value {
    json!({
        "metadata": {"flagSetId": "team"},
        "flags": {
            "limit": {"state": "ENABLED", "variants": {"small": 10, "big": 1000},
                      "defaultVariant": limit_default}
        }
    })
}

/// The payload `web(banner_default)` and `team(limit_default)` give unselected.
fn web_payload(banner_default: &str) -> Value {
    json!({
        "banner": {"state": "ENABLED", "variants": {"on": true, "off": false},
                   "defaultVariant": banner_default,
                   "targeting": {"if": [{"==": [{"var": "tier"}, "gold"]}, "on", null]},
                   "source": "web.json",
                   "metadata": {"flagSetId": "web", "version": 3, "owner": "growth"}},
        "no-default": {"state": "ENABLED", "variants": {"a": "a", "b": "b"}, "defaultVariant": "",
                       "source": "web.json", "metadata": {"flagSetId": "web", "version": 3}},
        "off": {"state": "DISABLED", "variants": {"x": 1}, "defaultVariant": "",
                "source": "web.json", "metadata": {"flagSetId": "web", "version": 3}}
    })
}

fn team_payload(limit_default: &str) -> Value {
    json!({
        "limit": {"state": "ENABLED", "variants": {"small": 10, "big": 1000},
                  "defaultVariant": limit_default, "source": "team.json",
                  "metadata": {"flagSetId": "team"}}
    })
}

fn full_payload(banner_default: &str, limit_default: &str) -> Value {
    let Value::Object(mut flags) = web_payload(banner_default) else {
        unreachable!()
    };
    let Value::Object(team) = team_payload(limit_default) else {
        unreachable!()
    };
    flags.extend(team);
    json!({ "flags": flags })
}

fn document(value: &Value) -> FlagDocument {
    load_value(value, &Limits::default()).unwrap().document
}

fn static_context() -> Map<String, Value> {
    let Value::Object(map) = json!({"injectedmetadata": "set", "replicas": 3, "canary": true})
    else {
        unreachable!()
    };
    map
}

/// The static context as a protobuf `Struct` carries it: numbers are doubles.
fn wire_context() -> Map<String, Value> {
    let Value::Object(map) = json!({"injectedmetadata": "set", "replicas": 3.0, "canary": true})
    else {
        unreachable!()
    };
    map
}

struct Server {
    address: std::net::SocketAddr,
    store: Arc<Store>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    service: SyncService,
}

async fn start(config: SyncConfig) -> Server {
    let store = Arc::new(Store::new(
        ["web.json", "team.json"],
        EvaluationOptions::default(),
        Arc::default(),
    ));
    store.replace_source("web.json", document(&web("on")));
    store.replace_source("team.json", document(&team("big")));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let service = SyncService::new(Arc::clone(&store), config, shutdown.clone());
    let task = tokio::spawn(ensign_http::serve(
        listener,
        None,
        service.clone().into_router(4 * 1024 * 1024),
        // As `ensign serve` runs the sync port.
        ensign_http::ListenerConfig {
            http2: ensign_http::Http2Settings {
                keep_alive_interval: Some(ensign_sync::KEEP_ALIVE_INTERVAL),
                ..ensign_http::Http2Settings::default()
            },
            drain: Duration::from_secs(2),
            ..ensign_http::ListenerConfig::new("sync", Arc::clone(store.metrics()))
        },
        shutdown.clone(),
    ));
    Server {
        address,
        store,
        shutdown,
        task,
        service,
    }
}

fn default_config() -> SyncConfig {
    SyncConfig {
        static_context: static_context(),
        ..SyncConfig::default()
    }
}

impl Server {
    async fn client(&self) -> FlagSyncServiceClient<Channel> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.address))
            .unwrap()
            .connect()
            .await
            .unwrap();
        FlagSyncServiceClient::new(channel)
    }

    fn open_sync_streams(&self) -> String {
        self.store
            .metrics()
            .render()
            .lines()
            .find(|line| line.starts_with(r#"ensign_open_streams{kind="sync"}"#))
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the sync-stream gauge reads `value`.
    async fn expect_open_streams(&self, value: u32) {
        let expected = format!(r#"ensign_open_streams{{kind="sync"}} {value}"#);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let line = self.open_sync_streams();
            if line == expected {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "open streams: {line:?}, expected {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A `SyncFlags` request with a body selector and, optionally, the header.
fn sync_request(body_selector: &str, header: Option<&str>) -> tonic::Request<SyncFlagsRequest> {
    let mut request = tonic::Request::new(SyncFlagsRequest {
        provider_id: "test-provider".into(),
        selector: body_selector.into(),
    });
    if let Some(header) = header {
        request
            .metadata_mut()
            .insert("flagd-selector", header.parse().unwrap());
    }
    request
}

async fn next(stream: &mut Streaming<SyncFlagsResponse>) -> SyncFlagsResponse {
    tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("a sync message in time")
        .expect("no stream error")
        .expect("the stream is still open")
}

fn payload(message: &SyncFlagsResponse) -> Value {
    serde_json::from_str(&message.flag_configuration).unwrap()
}

async fn assert_quiet(stream: &mut Streaming<SyncFlagsResponse>) {
    if let Ok(message) = tokio::time::timeout(QUIET, stream.message()).await {
        panic!("expected no sync message, got {message:?}");
    }
}

#[tokio::test]
async fn first_message_is_the_full_payload_with_the_static_context() {
    let server = start(default_config()).await;
    let mut client = server.client().await;
    let mut stream = client
        .sync_flags(sync_request("", None))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut stream).await;
    assert_eq!(payload(&first), full_payload("on", "big"));
    assert_eq!(
        struct_to_json(first.sync_context.clone().expect("sync_context is set")),
        wire_context()
    );
    // Nothing else until something changes.
    assert_quiet(&mut stream).await;
}

#[tokio::test]
async fn a_change_sends_a_new_full_payload() {
    let server = start(default_config()).await;
    let mut client = server.client().await;
    let mut stream = client
        .sync_flags(sync_request("", None))
        .await
        .unwrap()
        .into_inner();
    next(&mut stream).await;
    server
        .store
        .replace_source("web.json", document(&web("off")));
    let update = next(&mut stream).await;
    assert_eq!(payload(&update), full_payload("off", "big"));
    assert_eq!(
        struct_to_json(update.sync_context.clone().unwrap()),
        wire_context(),
        "every message carries the sync context"
    );
    // Re-publishing an identical document changes nothing the stream sees.
    server
        .store
        .replace_source("web.json", document(&web("off")));
    assert_quiet(&mut stream).await;
    // A removed flag is a change too: the payload is the full new set.
    let mut smaller = web("off");
    smaller["flags"].as_object_mut().unwrap().remove("off");
    server.store.replace_source("web.json", document(&smaller));
    let update = next(&mut stream).await;
    let mut expected = full_payload("off", "big");
    expected["flags"].as_object_mut().unwrap().remove("off");
    assert_eq!(payload(&update), expected);
}

#[tokio::test]
async fn changes_outside_the_selector_send_nothing() {
    let server = start(default_config()).await;
    let mut client = server.client().await;
    let mut stream = client
        .sync_flags(sync_request("flagSetId=team", None))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut stream).await;
    assert_eq!(payload(&first), json!({"flags": team_payload("big")}));
    server
        .store
        .replace_source("web.json", document(&web("off")));
    assert_quiet(&mut stream).await;
    server
        .store
        .replace_source("team.json", document(&team("small")));
    let update = next(&mut stream).await;
    assert_eq!(payload(&update), json!({"flags": team_payload("small")}));
}

#[tokio::test]
async fn the_selector_header_wins_over_the_body() {
    let server = start(default_config()).await;
    let mut client = server.client().await;
    let mut stream = client
        .sync_flags(sync_request("flagSetId=web", Some("flagSetId=team")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        payload(&next(&mut stream).await),
        json!({"flags": team_payload("big")})
    );
    // The body selector alone is honoured.
    let mut stream = client
        .sync_flags(sync_request("flagSetId=web", None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        payload(&next(&mut stream).await),
        json!({"flags": web_payload("on")})
    );
    // Selecting by source, with the legacy bare form in the body.
    let mut stream = client
        .sync_flags(sync_request("team.json", None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        payload(&next(&mut stream).await),
        json!({"flags": team_payload("big")})
    );
    // A selector that matches nothing is an empty payload, not an error.
    let mut stream = client
        .sync_flags(sync_request("", Some("flagSetId=nobody")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(payload(&next(&mut stream).await), json!({"flags": {}}));
}

#[tokio::test]
async fn invalid_selectors_are_invalid_arguments() {
    let server = start(default_config()).await;
    let mut client = server.client().await;
    let status = client
        .sync_flags(sync_request("", Some("owner=me")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let status = client
        .sync_flags(sync_request("owner=me", None))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    // A valid header wins over an invalid body selector.
    let mut stream = client
        .sync_flags(sync_request("owner=me", Some("flagSetId=team")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        payload(&next(&mut stream).await),
        json!({"flags": team_payload("big")})
    );
    let status = client
        .fetch_all_flags(FetchAllFlagsRequest {
            provider_id: String::new(),
            selector: "owner=me".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    // Rejected streams never count as open.
    assert_eq!(
        server.open_sync_streams(),
        r#"ensign_open_streams{kind="sync"} 1"#
    );
}

/// Issue #11: distinct selectors from unauthenticated clients filled the
/// payload cache (150 of 900 KB grew the process by 140 MB).
#[tokio::test]
async fn client_selectors_cannot_grow_the_payload_cache() {
    let server = start(default_config()).await;
    let mut client = server.client().await;
    let fetch = |selector: String| FetchAllFlagsRequest {
        provider_id: String::new(),
        selector,
    };
    for i in 0..150 {
        let selector = format!("source={i:01017}");
        assert_eq!(selector.len(), ensign_engine::MAX_SELECTOR_BYTES);
        let answer = client.fetch_all_flags(fetch(selector)).await.unwrap();
        assert_eq!(answer.into_inner().flag_configuration, r#"{"flags":{}}"#);
    }
    assert_eq!(server.service.cached_payloads().entries, 0);

    let status = client
        .fetch_all_flags(fetch("w".repeat(900 * 1024)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("the limit is 1024 bytes"),
        "{status:?}"
    );
    let status = client
        .sync_flags(sync_request(
            &format!("flagSetId={}", "w".repeat(1024)),
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    // Selectors that match flags are cached, once each (`web.json` is
    // `source=web.json`).
    for selector in [
        "",
        "flagSetId=web",
        "web.json",
        "source=web.json",
        "flagSetId=team",
    ] {
        client
            .fetch_all_flags(fetch(selector.to_owned()))
            .await
            .unwrap();
    }
    let usage = server.service.cached_payloads();
    assert_eq!(usage.entries, 4);
    assert!(usage.bytes < 4 * 1024, "{usage:?}");
}

#[tokio::test]
async fn fetch_all_flags_returns_the_sync_payload() {
    let server = start(default_config()).await;
    let mut client = server.client().await;
    let mut stream = client
        .sync_flags(sync_request("", None))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut stream).await;
    let fetched = client
        .fetch_all_flags(FetchAllFlagsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.flag_configuration, first.flag_configuration);
    assert_eq!(
        serde_json::from_str::<Value>(&fetched.flag_configuration).unwrap(),
        full_payload("on", "big")
    );

    let mut request = tonic::Request::new(FetchAllFlagsRequest {
        provider_id: String::new(),
        selector: "flagSetId=web".into(),
    });
    request
        .metadata_mut()
        .insert("flagd-selector", "flagSetId=team".parse().unwrap());
    let fetched = client.fetch_all_flags(request).await.unwrap().into_inner();
    assert_eq!(
        serde_json::from_str::<Value>(&fetched.flag_configuration).unwrap(),
        json!({"flags": team_payload("big")})
    );

    server
        .store
        .replace_source("team.json", document(&team("small")));
    let fetched = client
        .fetch_all_flags(FetchAllFlagsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serde_json::from_str::<Value>(&fetched.flag_configuration).unwrap(),
        full_payload("on", "small"),
        "a fetch sees the latest flags"
    );
}

#[tokio::test]
async fn get_metadata_returns_the_static_context_unless_disabled() {
    let server = start(default_config()).await;
    let mut client = server.client().await;
    let metadata = client
        .get_metadata(GetMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(struct_to_json(metadata.metadata.unwrap()), wire_context());

    let server = start(SyncConfig {
        static_context: static_context(),
        disable_metadata: true,
        ..SyncConfig::default()
    })
    .await;
    let mut client = server.client().await;
    let status = client
        .get_metadata(GetMetadataRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
    // The context still reaches in-process providers through sync_context.
    let mut stream = client
        .sync_flags(sync_request("", None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        struct_to_json(next(&mut stream).await.sync_context.unwrap()),
        wire_context()
    );
}

#[tokio::test]
async fn an_empty_static_context_is_an_empty_sync_context() {
    let server = start(SyncConfig::default()).await;
    let mut client = server.client().await;
    let mut stream = client
        .sync_flags(sync_request("", None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        struct_to_json(next(&mut stream).await.sync_context.unwrap()),
        Map::new()
    );
    let metadata = client
        .get_metadata(GetMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(struct_to_json(metadata.metadata.unwrap()), Map::new());
}

#[tokio::test]
async fn streams_end_at_shutdown_and_the_gauge_follows() {
    let server = start(default_config()).await;
    assert_eq!(
        server.open_sync_streams(),
        r#"ensign_open_streams{kind="sync"} 0"#,
        "no sync stream has been counted yet"
    );
    let mut client = server.client().await;
    let mut stream = client
        .sync_flags(sync_request("", None))
        .await
        .unwrap()
        .into_inner();
    next(&mut stream).await;
    server.expect_open_streams(1).await;
    let mut second = client
        .sync_flags(sync_request("flagSetId=team", None))
        .await
        .unwrap()
        .into_inner();
    next(&mut second).await;
    server.expect_open_streams(2).await;

    server.shutdown.cancel();
    for stream in [&mut stream, &mut second] {
        let end = tokio::time::timeout(PATIENCE, stream.message())
            .await
            .expect("the stream ends at shutdown");
        assert!(
            matches!(end, Ok(None)),
            "a clean end of stream, got {end:?}"
        );
    }
    server.expect_open_streams(0).await;
    tokio::time::timeout(PATIENCE, server.task)
        .await
        .expect("the server drains")
        .unwrap();
}

#[tokio::test]
async fn a_client_going_away_closes_its_stream() {
    let server = start(default_config()).await;
    let mut client = server.client().await;
    let mut stream = client
        .sync_flags(sync_request("", None))
        .await
        .unwrap()
        .into_inner();
    next(&mut stream).await;
    server.expect_open_streams(1).await;
    drop(stream);
    drop(client);
    server.expect_open_streams(0).await;
}

#[tokio::test]
async fn streams_over_the_cap_are_refused_until_one_closes() {
    let server = start(SyncConfig {
        max_streams: 2,
        ..default_config()
    })
    .await;
    let mut client = server.client().await;
    let mut first = client
        .sync_flags(sync_request("", None))
        .await
        .unwrap()
        .into_inner();
    next(&mut first).await;
    let mut second = client
        .sync_flags(sync_request("", None))
        .await
        .unwrap()
        .into_inner();
    next(&mut second).await;

    let refused = client
        .sync_flags(sync_request("", None))
        .await
        .expect_err("a third stream is refused");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(
        refused.message().contains("limit 2"),
        "{}",
        refused.message()
    );
    server.expect_open_streams(2).await;
    assert!(
        server
            .store
            .metrics()
            .render()
            .contains(r#"ensign_streams_refused_total{kind="sync"} 1"#)
    );

    // The two open streams still get updates.
    server
        .store
        .replace_source("web.json", document(&web("off")));
    next(&mut first).await;
    next(&mut second).await;

    drop(first);
    server.expect_open_streams(1).await;
    let mut third = client
        .sync_flags(sync_request("", None))
        .await
        .unwrap()
        .into_inner();
    next(&mut third).await;
    server.expect_open_streams(2).await;
}

#[tokio::test]
async fn sync_tokens_guard_every_call() {
    const TOKEN: &str = "sync-token-0123456789abcdef01234";
    let server = start(SyncConfig {
        tokens: vec![TOKEN.into()],
        ..SyncConfig::default()
    })
    .await;
    let mut client = server.client().await;
    let with = |token: Option<&str>| {
        let mut request = tonic::Request::new(FetchAllFlagsRequest::default());
        if let Some(token) = token {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        request
    };
    for token in [None, Some("wrong")] {
        let status = client.fetch_all_flags(with(token)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{token:?}");
    }
    let status = client.sync_flags(sync_request("", None)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let answer = client.fetch_all_flags(with(Some(TOKEN))).await.unwrap();
    let flags: Value = serde_json::from_str(&answer.into_inner().flag_configuration).unwrap();
    assert_eq!(flags, full_payload("on", "big"));
    let mut request = sync_request("", None);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let mut stream = client.sync_flags(request).await.unwrap().into_inner();
    next(&mut stream).await;

    // Wrong tokens spend the address's budget (1 spent above).
    for _ in 1..ensign_http::Throttle::default().limit() {
        let status = client
            .fetch_all_flags(with(Some("wrong")))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }
    let status = client.fetch_all_flags(with(Some(TOKEN))).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(status.metadata().get("retry-after").is_some(), "{status:?}");
}
