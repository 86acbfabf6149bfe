//! The listener's limits against slow and greedy clients, over real sockets:
//! half-sent headers are dropped after the header-read timeout, idle
//! kept-alive connections are closed after the idle timeout while streams in
//! progress are never cut, and connections over the limit are closed at once
//! while the first ones keep being served.
//!
//! Timeouts are shortened to fractions of a second; every wait for something
//! to happen has a generous deadline, and nothing asserts how fast it happens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ensign_http::{ListenerConfig, ListenerLimits};
use ensign_metrics::Metrics;
use http_body_util::BodyExt;
use http_body_util::channel::Channel;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How long anything that should happen may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(10);
/// A timeout shortened for tests.
const SHORT: Duration = Duration::from_millis(200);
/// Chunks of `/stream`, one per [`TICK`]: the stream lasts several timeouts.
const TICKS: usize = 8;
const TICK: Duration = Duration::from_millis(100);

/// `/stream` sends [`TICKS`] chunks [`TICK`] apart; anything else answers `ok`.
fn service() -> impl tower::Service<
    http::Request<hyper::body::Incoming>,
    Response = http::Response<Channel<Bytes, Infallible>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(|request: http::Request<hyper::body::Incoming>| async move {
        let (mut sender, body) = Channel::<Bytes, Infallible>::new(1);
        let streaming = request.uri().path() == "/stream";
        tokio::spawn(async move {
            if streaming {
                for _ in 0..TICKS {
                    tokio::time::sleep(TICK).await;
                    if sender
                        .send_data(Bytes::from_static(b"tick\n"))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            } else {
                let _ = sender.send_data(Bytes::from_static(b"ok")).await;
            }
        });
        Ok::<_, Infallible>(http::Response::new(body))
    })
}

struct Server {
    address: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(limits: ListenerLimits) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new());
        let shutdown = CancellationToken::new();
        let config = ListenerConfig {
            limits,
            ..ListenerConfig::new("test", Arc::clone(&metrics))
        };
        let task = tokio::spawn(ensign_http::serve(
            listener,
            None,
            service(),
            config,
            shutdown.clone(),
        ));
        Server {
            address,
            metrics,
            shutdown,
            task,
        }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.address).await.unwrap()
    }

    /// Waits for `line` in the metrics: the server counts a connection's
    /// end just after the client sees it.
    async fn expect_metric(&self, line: &str) {
        let found = async {
            while !self.metrics.render().lines().any(|l| l == line) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        if tokio::time::timeout(DEADLINE, found).await.is_err() {
            panic!("no `{line}` in\n{}", self.metrics.render());
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("the listener drains")
            .unwrap();
    }
}

/// Sends a keep-alive `GET path` and reads its chunked answer's body.
async fn get(stream: &mut TcpStream, path: &str) -> std::io::Result<String> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    while !answer.ends_with(b"0\r\n\r\n") {
        let read = tokio::time::timeout(DEADLINE, stream.read(&mut buffer))
            .await
            .expect("an answer arrives")?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        answer.extend_from_slice(&buffer[..read]);
    }
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    Ok(answer.split_once("\r\n\r\n").unwrap().1.to_owned())
}

/// Whether the server closes `stream` (EOF or reset) before [`DEADLINE`],
/// ignoring anything it sends first.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 1024];
    let wait = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait).await.is_ok()
}

#[tokio::test]
async fn half_sent_headers_are_dropped_after_the_header_read_timeout() {
    let server = Server::start(ListenerLimits {
        header_read_timeout: Some(SHORT),
        idle_timeout: None,
        ..ListenerLimits::default()
    })
    .await;
    let mut slow = server.connect().await;
    slow.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow")
        .await
        .unwrap();
    assert!(
        closed_by_server(&mut slow).await,
        "half-sent headers kept the connection open"
    );

    // A kept-alive connection's next request gets the same bound.
    let mut kept = server.connect().await;
    assert_eq!(get(&mut kept, "/").await.unwrap(), "2\r\nok\r\n0\r\n\r\n");
    kept.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    assert!(closed_by_server(&mut kept).await);

    // So does a connection that sends nothing at all.
    let mut silent = server.connect().await;
    assert!(closed_by_server(&mut silent).await);

    server
        .expect_metric(
            r#"ensign_connection_timeouts_total{listener="test",timeout="header_read"} 3"#,
        )
        .await;
    server.stop().await;
}

#[tokio::test]
async fn idle_kept_alive_connections_are_closed_but_streams_in_progress_are_not() {
    let server = Server::start(ListenerLimits {
        header_read_timeout: Some(SHORT),
        idle_timeout: Some(SHORT),
        ..ListenerLimits::default()
    })
    .await;
    let mut client = server.connect().await;
    // The stream lasts four times both timeouts and arrives whole.
    let body = get(&mut client, "/stream").await.unwrap();
    assert_eq!(body.matches("tick").count(), TICKS, "{body}");
    // With nothing in flight, the connection is closed.
    assert!(
        closed_by_server(&mut client).await,
        "an idle connection stayed open"
    );
    server
        .expect_metric(r#"ensign_connection_timeouts_total{listener="test",timeout="idle"} 1"#)
        .await;
    server.stop().await;
}

#[tokio::test]
async fn idle_http2_connections_get_goaway_but_streams_in_progress_do_not() {
    let server = Server::start(ListenerLimits {
        header_read_timeout: Some(SHORT),
        idle_timeout: Some(SHORT),
        ..ListenerLimits::default()
    })
    .await;
    let io = TokioIo::new(server.connect().await);
    let (mut sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let request = http::Request::get(format!("http://{}/stream", server.address))
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        String::from_utf8_lossy(&body).matches("tick").count(),
        TICKS,
        "the stream was cut"
    );
    // With no stream in flight, the server ends the connection.
    tokio::time::timeout(DEADLINE, connection)
        .await
        .expect("an idle HTTP/2 connection stayed open")
        .unwrap()
        .unwrap();
    server
        .expect_metric(r#"ensign_connection_timeouts_total{listener="test",timeout="idle"} 1"#)
        .await;
    server.stop().await;
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_while_the_first_ones_are_served() {
    let server = Server::start(ListenerLimits {
        max_connections: 2,
        ..ListenerLimits::default()
    })
    .await;
    let mut first = server.connect().await;
    let mut second = server.connect().await;
    get(&mut first, "/").await.unwrap();
    get(&mut second, "/").await.unwrap();

    let mut third = server.connect().await;
    assert!(
        closed_by_server(&mut third).await,
        "a third connection stayed open"
    );
    server
        .expect_metric(r#"ensign_connections_refused_total{listener="test"} 1"#)
        .await;
    server
        .expect_metric(r#"ensign_open_connections{listener="test"} 2"#)
        .await;

    // The first two are still served.
    get(&mut first, "/").await.unwrap();
    get(&mut second, "/").await.unwrap();

    // Once one closes, new connections are served again (as soon as the
    // server has seen the close).
    drop(first);
    let served = async {
        loop {
            let mut next = server.connect().await;
            if get(&mut next, "/").await.is_ok() {
                return next;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let _next = tokio::time::timeout(DEADLINE, served)
        .await
        .expect("a new connection is served after one closed");
    server
        .expect_metric(r#"ensign_open_connections{listener="test"} 2"#)
        .await;
    server.stop().await;
}

#[test]
fn connection_limits_fit_in_the_open_files_limit() {
    let limits = ListenerLimits::default();
    // Plenty of descriptors: unchanged.
    assert_eq!(limits.fit_open_files(5, Some(1 << 20)), limits);
    assert_eq!(limits.fit_open_files(5, None), limits);
    // 1024 descriptors for 5 listeners: each gets its share after the reserve.
    let fitted = limits.fit_open_files(5, Some(1024));
    assert_eq!(
        fitted.max_connections,
        (1024 - ListenerLimits::RESERVED_FILE_DESCRIPTORS as usize) / 5
    );
    assert_eq!(fitted.header_read_timeout, limits.header_read_timeout);
    // Even an absurdly low limit leaves one connection per listener.
    assert_eq!(limits.fit_open_files(5, Some(10)).max_connections, 1);
}
