//! The evaluation API end to end over real sockets: gRPC (tonic clients of all
//! three services), Connect (JSON and binary, unary and streaming) and gRPC-Web,
//! against a server built exactly as `ensign serve` builds it.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use ensign_engine::EvaluationOptions;
use ensign_engine::document::{Limits, load_value};
use ensign_flagd::{ContextRules, FlagdConfig, FlagdState};
use ensign_proto::{evaluation_v1 as v1, evaluation_v2 as v2, schema_v1};
use ensign_store::Store;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use prost::Message;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn flags(banner_default: &str) -> Value {
    json!({
        "metadata": {"flagSetId": "web", "team": "growth"},
        "flags": {
            "banner": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": banner_default,
                       "metadata": {"team": "checkout"}},
            "color": {"state": "ENABLED", "variants": {"red": "#f00", "blue": "#00f"}, "defaultVariant": "red",
                      "targeting": {"if": [{"==": [{"var": "tier"}, "gold"]}, "blue", null]}},
            "limit": {"state": "ENABLED", "variants": {"small": 10, "big": 1000}, "defaultVariant": "big"},
            "ratio": {"state": "ENABLED", "variants": {"half": 0.5}, "defaultVariant": "half"},
            "theme": {"state": "ENABLED", "variants": {"dark": {"bg": "#000"}}, "defaultVariant": "dark"},
            "off": {"state": "DISABLED", "variants": {"on": true}, "defaultVariant": "on"},
            "no-default": {"state": "ENABLED", "variants": {"a": "a"}},
            "broken": {"state": "ENABLED", "variants": {"a": "a"}, "defaultVariant": "a", "targeting": {"nope": []}},
            "env": {"state": "ENABLED", "variants": {"prod": "prod", "other": "other"}, "defaultVariant": "other",
                    "targeting": {"if": [{"==": [{"var": "region"}, "eu"]}, "prod", "other"]}}
        }
    })
}

struct Server {
    address: std::net::SocketAddr,
    store: Arc<Store>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn start(config: FlagdConfig) -> Server {
    let store = Arc::new(Store::new(
        ["flags.json"],
        EvaluationOptions::default(),
        Arc::default(),
    ));
    store.replace_source(
        "flags.json",
        load_value(&flags("on"), &Limits::default())
            .unwrap()
            .document,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let state = FlagdState::new(Arc::clone(&store), config, shutdown.clone());
    let task = tokio::spawn(ensign_http::serve(
        listener,
        None,
        ensign_flagd::service(state),
        ensign_http::ListenerConfig {
            drain: Duration::from_secs(2),
            ..ensign_http::ListenerConfig::new("evaluation", Arc::clone(store.metrics()))
        },
        shutdown.clone(),
    ));
    Server {
        address,
        store,
        shutdown,
        task,
    }
}

impl Server {
    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn v1(&self) -> v1::service_client::ServiceClient<tonic::transport::Channel> {
        v1::service_client::ServiceClient::new(self.channel().await)
    }

    async fn v2(&self) -> v2::service_client::ServiceClient<tonic::transport::Channel> {
        v2::service_client::ServiceClient::new(self.channel().await)
    }

    /// An HTTP/1.1 POST, as Connect and gRPC-Web browsers send it.
    async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, http::HeaderMap, Bytes) {
        let stream = tokio::net::TcpStream::connect(self.address).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let mut request = http::Request::post(path).header("host", "localhost");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = sender
            .send_request(request.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, body)
    }

    async fn connect_json(&self, path: &str, body: Value) -> (u16, Value) {
        let (status, _, body) = self
            .post(
                path,
                &[("content-type", "application/json")],
                body.to_string().into_bytes(),
            )
            .await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }
}

fn context(value: Value) -> Option<prost_types::Struct> {
    let Value::Object(map) = value else {
        unreachable!()
    };
    Some(ensign_proto::convert::json_to_struct(&map))
}

#[tokio::test]
async fn grpc_v1_serves_typed_values_and_maps_errors() {
    let server = start(FlagdConfig::default()).await;
    let mut client = server.v1().await;
    let banner = client
        .resolve_boolean(v1::ResolveBooleanRequest {
            flag_key: "banner".into(),
            context: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(banner.value);
    assert_eq!(
        (banner.reason.as_str(), banner.variant.as_str()),
        ("STATIC", "on")
    );
    let metadata = ensign_proto::convert::struct_to_json(banner.metadata.unwrap());
    assert_eq!(
        Value::Object(metadata),
        json!({"flagSetId": "web", "team": "checkout"})
    );

    let color = client
        .resolve_string(v1::ResolveStringRequest {
            flag_key: "color".into(),
            context: context(json!({"tier": "gold"})),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (color.value.as_str(), color.reason.as_str()),
        ("#00f", "TARGETING_MATCH")
    );
    let limit = client
        .resolve_int(v1::ResolveIntRequest {
            flag_key: "limit".into(),
            context: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(limit.value, 1000);
    let ratio = client
        .resolve_float(v1::ResolveFloatRequest {
            flag_key: "ratio".into(),
            context: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ratio.value, 0.5);
    let theme = client
        .resolve_object(v1::ResolveObjectRequest {
            flag_key: "theme".into(),
            context: None,
        })
        .await
        .unwrap()
        .into_inner();
    let theme = ensign_proto::convert::struct_to_json(theme.value.unwrap());
    assert_eq!(Value::Object(theme), json!({"bg": "#000"}));

    // Disabled: success, zero value, empty variant (evaluation.v1).
    let off = client
        .resolve_boolean(v1::ResolveBooleanRequest {
            flag_key: "off".into(),
            context: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (off.value, off.reason.as_str(), off.variant.as_str()),
        (false, "DISABLED", "")
    );

    let error = |key: &str| {
        let mut client = client.clone();
        let key = key.to_owned();
        async move {
            client
                .resolve_string(v1::ResolveStringRequest {
                    flag_key: key,
                    context: None,
                })
                .await
                .unwrap_err()
                .code()
        }
    };
    assert_eq!(error("missing").await, tonic::Code::NotFound);
    // A code-default flag is "not found" on v1, so SDKs use their default.
    assert_eq!(error("no-default").await, tonic::Code::NotFound);
    assert_eq!(error("banner").await, tonic::Code::InvalidArgument);
    assert_eq!(error("broken").await, tonic::Code::DataLoss);
}

#[tokio::test]
async fn grpc_v2_omits_value_for_code_defaults_and_disabled_flags() {
    let server = start(FlagdConfig::default()).await;
    let mut client = server.v2().await;
    let code_default = client
        .resolve_string(v2::ResolveStringRequest {
            flag_key: "no-default".into(),
            context: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            code_default.value,
            code_default.variant,
            code_default.reason.as_str()
        ),
        (None, None, "DEFAULT")
    );
    let disabled = client
        .resolve_boolean(v2::ResolveBooleanRequest {
            flag_key: "off".into(),
            context: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (disabled.value, disabled.variant, disabled.reason.as_str()),
        (None, None, "DISABLED")
    );
}

#[tokio::test]
async fn schema_v1_resolve_all_and_selectors() {
    let server = start(FlagdConfig::default()).await;
    let mut client = schema_v1::service_client::ServiceClient::new(server.channel().await);
    let all = client
        .resolve_all(schema_v1::ResolveAllRequest { context: None })
        .await
        .unwrap()
        .into_inner();
    assert!(all.flags.contains_key("banner"));
    let off = &all.flags["off"];
    assert_eq!(
        (off.reason.as_str(), off.variant.as_str()),
        ("DISABLED", "")
    );
    assert_eq!(
        off.value,
        Some(schema_v1::any_flag::Value::BoolValue(false)),
        "disabled flags are included with their type's zero value"
    );
    assert!(
        !all.flags.contains_key("no-default"),
        "code-default flags are left out"
    );
    assert!(
        !all.flags.contains_key("broken"),
        "failed flags are left out"
    );

    let mut v1 = server.v1().await;
    let mut request = tonic::Request::new(v1::ResolveBooleanRequest {
        flag_key: "banner".into(),
        context: None,
    });
    request
        .metadata_mut()
        .insert("flagd-selector", "flagSetId=other".parse().unwrap());
    assert_eq!(
        v1.resolve_boolean(request).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    let mut request = tonic::Request::new(v1::ResolveBooleanRequest {
        flag_key: "banner".into(),
        context: None,
    });
    request
        .metadata_mut()
        .insert("flagd-selector", "source=flags.json".parse().unwrap());
    let answer = v1.resolve_boolean(request).await.unwrap().into_inner();
    let metadata = ensign_proto::convert::struct_to_json(answer.metadata.unwrap());
    assert_eq!(
        metadata.get("source"),
        Some(&json!("flags.json")),
        "the selector is reflected"
    );
    let mut request = tonic::Request::new(v1::ResolveBooleanRequest {
        flag_key: "banner".into(),
        context: None,
    });
    request
        .metadata_mut()
        .insert("flagd-selector", "owner=me".parse().unwrap());
    assert_eq!(
        v1.resolve_boolean(request).await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
}

#[tokio::test]
async fn static_and_header_context_override_the_request() {
    let config = FlagdConfig {
        context: ContextRules {
            static_values: [("region".to_owned(), json!("eu"))].into_iter().collect(),
            from_headers: vec![(http::HeaderName::from_static("x-tier"), "tier".to_owned())],
        },
        ..FlagdConfig::default()
    };
    let server = start(config).await;
    let (status, env) = server
        .connect_json(
            "/flagd.evaluation.v1.Service/ResolveString",
            json!({"flagKey": "env", "context": {"region": "us"}}),
        )
        .await;
    assert_eq!((status, env["value"].clone()), (200, json!("prod")));
    let (status, _, body) = server
        .post(
            "/flagd.evaluation.v2.Service/ResolveString",
            &[("content-type", "application/json"), ("x-tier", "gold")],
            br#"{"flagKey": "color"}"#.to_vec(),
        )
        .await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, body["value"].clone()), (200, json!("#00f")));
}

#[tokio::test]
async fn connect_json_follows_the_protobuf_json_mapping() {
    let server = start(FlagdConfig::default()).await;
    let (status, limit) = server
        .connect_json(
            "/flagd.evaluation.v1.Service/ResolveInt",
            json!({"flagKey": "limit"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(limit["value"], json!("1000"), "int64 is a JSON string");
    let (_, v2) = server
        .connect_json(
            "/flagd.evaluation.v2.Service/ResolveBoolean",
            json!({"flag_key": "off"}),
        )
        .await;
    assert_eq!(
        v2,
        json!({"reason": "DISABLED", "metadata": {"flagSetId": "web", "team": "growth"}})
    );
    let (_, v1) = server
        .connect_json(
            "/flagd.evaluation.v1.Service/ResolveBoolean",
            json!({"flagKey": "off"}),
        )
        .await;
    assert_eq!(v1["value"], json!(false));
    assert_eq!(v1["variant"], json!(""));
    let (status, all) = server
        .connect_json(
            "/flagd.evaluation.v1.Service/ResolveAll",
            json!({"context": {}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(all["flags"]["limit"]["doubleValue"], json!(1000.0));
    assert_eq!(all["flags"]["theme"]["objectValue"], json!({"bg": "#000"}));
    assert_eq!(all["metadata"], json!({}));
}

#[tokio::test]
async fn connect_errors_use_connect_codes_and_statuses() {
    let server = start(FlagdConfig {
        max_request_body: 2048,
        ..FlagdConfig::default()
    })
    .await;
    let cases = [
        (
            "/flagd.evaluation.v1.Service/ResolveString",
            json!({"flagKey": "missing"}),
            404,
            "not_found",
        ),
        (
            "/flagd.evaluation.v1.Service/ResolveString",
            json!({"flagKey": "banner"}),
            400,
            "invalid_argument",
        ),
        (
            "/flagd.evaluation.v1.Service/ResolveString",
            json!({"flagKey": "broken"}),
            500,
            "data_loss",
        ),
        (
            "/flagd.evaluation.v1.Service/ResolveString",
            json!({"flagKey": 7}),
            400,
            "invalid_argument",
        ),
        (
            "/flagd.evaluation.v1.Service/ResolveString",
            json!({"context": [1]}),
            400,
            "invalid_argument",
        ),
        (
            "/flagd.evaluation.v1.Service/Nope",
            json!({}),
            404,
            "unimplemented",
        ),
        (
            "/flagd.evaluation.v2.Service/ResolveAll",
            json!({}),
            404,
            "unimplemented",
        ),
        (
            "/unknown.Service/ResolveString",
            json!({}),
            404,
            "unimplemented",
        ),
    ];
    for (path, body, status, code) in cases {
        let (got_status, got) = server.connect_json(path, body.clone()).await;
        assert_eq!(
            (got_status, got["code"].as_str()),
            (status, Some(code)),
            "{path} {body}"
        );
    }
    let (status, _, body) = server
        .post(
            "/flagd.evaluation.v1.Service/ResolveString",
            &[("content-type", "application/json")],
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(status, 400, "{body:?}");
    let big = json!({"flagKey": "banner", "context": {"padding": "x".repeat(4096)}});
    let (status, error) = server
        .connect_json("/flagd.evaluation.v1.Service/ResolveBoolean", big)
        .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (429, Some("resource_exhausted"))
    );
    let nested = format!(
        "{{\"flagKey\":\"banner\",\"context\":{{\"a\":{}1{}}}}}",
        "[".repeat(600),
        "]".repeat(600)
    );
    let (status, _, _) = server
        .post(
            "/flagd.evaluation.v1.Service/ResolveBoolean",
            &[("content-type", "application/json")],
            nested.into_bytes(),
        )
        .await;
    assert_eq!(status, 400, "over-deep contexts are refused, not a crash");
    let (status, _, _) = server
        .post(
            "/flagd.evaluation.v1.Service/ResolveBoolean",
            &[("content-type", "text/plain")],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(status, 415);
}

#[tokio::test]
async fn grpc_rejects_bad_messages_without_crashing() {
    let server = start(FlagdConfig {
        max_request_body: 2048,
        ..FlagdConfig::default()
    })
    .await;
    let mut client = server.v1().await;
    let big = context(json!({"padding": "x".repeat(4096)}));
    let status = client
        .resolve_boolean(v1::ResolveBooleanRequest {
            flag_key: "banner".into(),
            context: big,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    // A flag key that is not UTF-8 fails to decode: field 1 with bytes 0xff.
    let frame = [0u8, 0, 0, 0, 3, 0x0a, 0x01, 0xff];
    let (status, headers, body) = server
        .post(
            "/flagd.evaluation.v1.Service/ResolveBoolean",
            &[("content-type", "application/grpc-web+proto")],
            frame.to_vec(),
        )
        .await;
    assert_eq!(status, 200);
    let trailers = String::from_utf8_lossy(&body).to_string() + &format!("{headers:?}");
    assert!(
        trailers.contains("grpc-status: 13")
            || trailers.contains("grpc-status\": \"13")
            || trailers.contains("grpc-status:13"),
        "{trailers}"
    );
    // The server is still serving.
    assert!(
        client
            .resolve_boolean(v1::ResolveBooleanRequest {
                flag_key: "banner".into(),
                context: None
            })
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn grpc_web_and_connect_proto_answer_like_grpc() {
    let server = start(FlagdConfig::default()).await;
    let request = v1::ResolveStringRequest {
        flag_key: "color".into(),
        context: context(json!({"tier": "gold"})),
    };
    let (status, _, body) = server
        .post(
            "/flagd.evaluation.v1.Service/ResolveString",
            &[("content-type", "application/proto")],
            request.encode_to_vec(),
        )
        .await;
    assert_eq!(status, 200);
    let answer = v1::ResolveStringResponse::decode(body).unwrap();
    assert_eq!(
        (answer.value.as_str(), answer.variant.as_str()),
        ("#00f", "blue")
    );

    let message = request.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let (status, _, mut body) = server
        .post(
            "/flagd.evaluation.v1.Service/ResolveString",
            &[("content-type", "application/grpc-web+proto")],
            frame,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body.get_u8(), 0, "a data frame first");
    let length = body.get_u32() as usize;
    let answer = v1::ResolveStringResponse::decode(body.split_to(length)).unwrap();
    assert_eq!(answer.value, "#00f");
    assert_eq!(body.get_u8(), 0x80, "then the trailers frame");
    assert!(String::from_utf8_lossy(&body).contains("grpc-status:0"));
}

fn connect_frames(mut body: Bytes) -> Vec<(u8, Value)> {
    let mut frames = Vec::new();
    while body.remaining() >= 5 {
        let flags = body.get_u8();
        let length = body.get_u32() as usize;
        frames.push((
            flags,
            serde_json::from_slice(&body.split_to(length)).unwrap(),
        ));
    }
    frames
}

#[tokio::test]
async fn event_streams_announce_changes_and_shutdown() {
    let server = start(FlagdConfig::default()).await;
    let mut client = server.v1().await;
    let mut events = client
        .event_stream(v1::EventStreamRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        events.message().await.unwrap().unwrap().r#type,
        "provider_ready"
    );
    server.store.replace_source(
        "flags.json",
        load_value(&flags("off"), &Limits::default())
            .unwrap()
            .document,
    );
    let change = tokio::time::timeout(Duration::from_secs(5), events.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(change.r#type, "configuration_change");
    let data = ensign_proto::convert::struct_to_json(change.data.unwrap());
    assert_eq!(
        Value::Object(data),
        json!({"flags": {"banner": {"type": "update"}}})
    );

    // Connect streaming sees the same events, then the end of stream at shutdown.
    let address = server.address;
    let connect = tokio::spawn(async move {
        let server = Server {
            address,
            store: Arc::new(Store::new(
                Vec::<String>::new(),
                EvaluationOptions::default(),
                Arc::default(),
            )),
            shutdown: CancellationToken::new(),
            task: tokio::spawn(async {}),
        };
        server
            .post(
                "/flagd.evaluation.v1.Service/EventStream",
                &[("content-type", "application/connect+json")],
                vec![0, 0, 0, 0, 2, b'{', b'}'],
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.shutdown.cancel();
    assert_eq!(
        events.message().await.unwrap().unwrap().r#type,
        "provider_shutdown"
    );
    let (status, headers, body) = tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/connect+json");
    let frames = connect_frames(body);
    let kinds: Vec<_> = frames
        .iter()
        .map(|(flags, message)| (*flags, message["type"].clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (0, json!("provider_ready")),
            (0, json!("provider_shutdown")),
            (2, Value::Null)
        ]
    );
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn stream_deadline_ends_streams_with_deadline_exceeded() {
    let server = start(FlagdConfig {
        stream_deadline: Some(Duration::from_millis(300)),
        ..FlagdConfig::default()
    })
    .await;
    let mut client = server.v2().await;
    let mut events = client
        .event_stream(v2::EventStreamRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        events.message().await.unwrap().unwrap().r#type,
        "provider_ready"
    );
    let end = tokio::time::timeout(Duration::from_secs(5), events.message())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(end.code(), tonic::Code::DeadlineExceeded);
}

#[tokio::test]
async fn cors_preflight_is_answered_for_configured_origins() {
    let server = start(FlagdConfig {
        cors_origins: vec!["http://app.example".into()],
        ..FlagdConfig::default()
    })
    .await;
    let stream = tokio::net::TcpStream::connect(server.address)
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = http::Request::options("/flagd.evaluation.v1.Service/ResolveAll")
        .header("host", "localhost")
        .header("origin", "http://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,connect-protocol-version",
        )
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "http://app.example"
    );
}

/// Waits until the metrics have `line`.
async fn expect_metric_line(store: &Store, line: &str) {
    let found = async {
        while !store.metrics().render().lines().any(|l| l == line) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), found)
        .await
        .is_err()
    {
        panic!("no {line:?} in\n{}", store.metrics().render());
    }
}

#[tokio::test]
async fn event_streams_over_the_cap_are_refused_on_every_transport() {
    let server = start(FlagdConfig {
        max_streams: 2,
        ..FlagdConfig::default()
    })
    .await;
    let mut client = server.v1().await;
    let mut first = client
        .event_stream(v1::EventStreamRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut second = client
        .event_stream(v1::EventStreamRequest {})
        .await
        .unwrap()
        .into_inner();
    for events in [&mut first, &mut second] {
        assert_eq!(
            events.message().await.unwrap().unwrap().r#type,
            "provider_ready"
        );
    }
    expect_metric_line(
        &server.store,
        r#"ensign_open_streams{kind="event_stream"} 2"#,
    )
    .await;

    // gRPC: RESOURCE_EXHAUSTED with a message.
    let refused = client
        .event_stream(v1::EventStreamRequest {})
        .await
        .expect_err("a third stream is refused");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(
        refused.message().contains("limit 2"),
        "{}",
        refused.message()
    );
    // Connect: the end-of-stream message carries resource_exhausted.
    let (status, _, body) = server
        .post(
            "/flagd.evaluation.v2.Service/EventStream",
            &[("content-type", "application/connect+json")],
            vec![0, 0, 0, 0, 2, b'{', b'}'],
        )
        .await;
    assert_eq!(status, 200);
    let frames = connect_frames(body);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].0, 2, "an end-of-stream frame");
    assert_eq!(frames[0].1["error"]["code"], json!("resource_exhausted"));
    assert!(
        server
            .store
            .metrics()
            .render()
            .contains(r#"ensign_streams_refused_total{kind="event_stream"} 2"#)
    );

    // The open streams still get changes.
    server.store.replace_source(
        "flags.json",
        load_value(&flags("off"), &Limits::default())
            .unwrap()
            .document,
    );
    for events in [&mut first, &mut second] {
        let change = tokio::time::timeout(Duration::from_secs(5), events.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(change.r#type, "configuration_change");
    }

    // Once one closes, a new stream is accepted.
    drop(first);
    expect_metric_line(
        &server.store,
        r#"ensign_open_streams{kind="event_stream"} 1"#,
    )
    .await;
    let mut third = server
        .v2()
        .await
        .event_stream(v2::EventStreamRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        third.message().await.unwrap().unwrap().r#type,
        "provider_ready"
    );
    expect_metric_line(
        &server.store,
        r#"ensign_open_streams{kind="event_stream"} 2"#,
    )
    .await;
}

#[tokio::test]
async fn evaluation_tokens_guard_every_protocol() {
    const TOKEN: &str = "evaluation-token-0123456789abcdef";
    let server = start(FlagdConfig {
        tokens: vec![TOKEN.into()],
        ..FlagdConfig::default()
    })
    .await;
    let request = |token: Option<&str>| {
        let mut request = tonic::Request::new(v1::ResolveBooleanRequest {
            flag_key: "banner".into(),
            context: None,
        });
        if let Some(token) = token {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        request
    };
    let mut client = server.v1().await;
    // gRPC: no token or a wrong one is UNAUTHENTICATED; the right one is served.
    for token in [None, Some("wrong"), Some("Bearer")] {
        let status = client.resolve_boolean(request(token)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{token:?}");
    }
    let answer = client.resolve_boolean(request(Some(TOKEN))).await.unwrap();
    assert!(answer.into_inner().value);

    // gRPC-Web: the status in the headers, in gRPC-Web's content type.
    let frame = [
        0u8, 0, 0, 0, 8, 0x0a, 0x06, b'b', b'a', b'n', b'n', b'e', b'r',
    ];
    let (status, headers, _) = server
        .post(
            "/flagd.evaluation.v1.Service/ResolveBoolean",
            &[("content-type", "application/grpc-web+proto")],
            frame.to_vec(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(headers["grpc-status"], "16");
    assert_eq!(headers["content-type"], "application/grpc-web+proto");
    let bearer = format!("Bearer {TOKEN}");
    let (status, headers, _) = server
        .post(
            "/flagd.evaluation.v1.Service/ResolveBoolean",
            &[
                ("content-type", "application/grpc-web+proto"),
                ("authorization", &bearer),
            ],
            frame.to_vec(),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        headers.get("grpc-status").is_none_or(|s| s == "0"),
        "{headers:?}"
    );

    // Connect unary: 401 `unauthenticated`; served with the token.
    let path = "/flagd.evaluation.v1.Service/ResolveBoolean";
    let body = json!({"flagKey": "banner"}).to_string().into_bytes();
    for authorization in ["", "Bearer wrong"] {
        let mut headers = vec![("content-type", "application/json")];
        if !authorization.is_empty() {
            headers.push(("authorization", authorization));
        }
        let (status, _, answer) = server.post(path, &headers, body.clone()).await;
        assert_eq!(status, 401, "{authorization:?}");
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(answer["code"], "unauthenticated");
    }
    let (status, _, answer) = server
        .post(
            path,
            &[
                ("content-type", "application/json"),
                ("authorization", &bearer),
            ],
            body.clone(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&answer).unwrap()["value"],
        true
    );

    // Connect streaming: the refusal is the end-of-stream message.
    let (status, _, answer) = server
        .post(
            "/flagd.evaluation.v1.Service/EventStream",
            &[("content-type", "application/connect+json")],
            vec![0, 0, 0, 0, 2, b'{', b'}'],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer[0], 0x02, "an end-of-stream envelope");
    let end: Value = serde_json::from_slice(&answer[5..]).unwrap();
    assert_eq!(end["error"]["code"], "unauthenticated");

    // Wrong tokens spend the address's budget (3 spent above): then even the
    // right token is RESOURCE_EXHAUSTED / 429 with Retry-After.
    for _ in 3..ensign_http::Throttle::default().limit() {
        let status = client
            .resolve_boolean(request(Some("wrong")))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }
    let status = client
        .resolve_boolean(request(Some(TOKEN)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(status.metadata().get("retry-after").is_some(), "{status:?}");
    let (status, headers, _) = server
        .post(
            path,
            &[
                ("content-type", "application/json"),
                ("authorization", &bearer),
            ],
            body,
        )
        .await;
    assert_eq!(status, 429);
    assert!(headers.contains_key("retry-after"));
}
