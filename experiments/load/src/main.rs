//! A bounded load generator for Ensign's flagd evaluation API on 127.0.0.1.
//!
//! `ensign-load --target grpc|connect --port PORT [--connections 64] [--duration 20s]
//! [--warmup 3s] [--flag load-flag] [--threads 2] [--timeout 5s]`
//!
//! - grpc: `flagd.evaluation.v1.Service/ResolveBoolean` over `--connections` separate HTTP/2
//!   connections (one tonic channel each), one request in flight per connection.
//! - connect: `POST /flagd.evaluation.v1.Service/ResolveBoolean`, `application/json`, over
//!   `--connections` HTTP/1.1 keep-alive connections, one request in flight per connection.
//!
//! Contexts are the 1,024 shared benchmark contexts (benches/scenarios/README.md): five
//! attributes plus `targetingKey`, built once before timing; connection `c` starts at
//! context `c * (1024 / connections)` and each connection walks the contexts in order.
//!
//! A request is measured when it starts after the warm-up and ends before the end of the
//! measured window; its latency (send to full answer) goes into an HDR histogram. The run
//! stops by itself: every request has a timeout and the whole run a hard deadline. Prints a
//! text summary, then one JSON line.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use ensign_proto::evaluation_v1::ResolveBooleanRequest;
use ensign_proto::evaluation_v1::service_client::ServiceClient;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use prost_types::value::Kind;
use serde_json::json;
use tokio::net::TcpStream;

const HOST: &str = "127.0.0.1";
const CONTEXTS: usize = 1024;
const CONNECT_PATH: &str = "/flagd.evaluation.v1.Service/ResolveBoolean";
/// Longest measured window accepted, so that a run is always bounded.
const MAX_RUN: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Grpc,
    Connect,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Grpc => "grpc",
            Target::Connect => "connect",
        }
    }
}

#[derive(Debug, Clone)]
struct Args {
    target: Target,
    port: u16,
    connections: usize,
    duration: Duration,
    warmup: Duration,
    flag: String,
    threads: usize,
    timeout: Duration,
}

const USAGE: &str = "usage: ensign-load --target grpc|connect --port PORT [--connections 64] \
[--duration 20s] [--warmup 3s] [--flag load-flag] [--threads 2] [--timeout 5s]
Targets 127.0.0.1 only.";

fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .parse()
        .with_context(|| format!("bad duration {text:?}"))?;
    if !(value.is_finite() && value >= 0.0) {
        bail!("bad duration {text:?}");
    }
    Ok(Duration::from_secs_f64(value * scale))
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        target: Target::Grpc,
        port: 0,
        connections: 64,
        duration: Duration::from_secs(20),
        warmup: Duration::from_secs(3),
        flag: "load-flag".to_owned(),
        threads: 2,
        timeout: Duration::from_secs(5),
    };
    let mut target = None;
    let mut it = std::env::args().skip(1);
    while let Some(name) = it.next() {
        if name == "-h" || name == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it
            .next()
            .ok_or_else(|| anyhow!("{name} needs a value\n{USAGE}"))?;
        match name.as_str() {
            "--target" => {
                target = Some(match value.as_str() {
                    "grpc" => Target::Grpc,
                    "connect" => Target::Connect,
                    _ => bail!("--target is grpc or connect, not {value:?}"),
                })
            }
            "--port" => args.port = value.parse().context("--port")?,
            "--connections" => args.connections = value.parse().context("--connections")?,
            "--duration" => args.duration = parse_duration(&value)?,
            "--warmup" => args.warmup = parse_duration(&value)?,
            "--flag" => args.flag = value,
            "--threads" => args.threads = value.parse().context("--threads")?,
            "--timeout" => args.timeout = parse_duration(&value)?,
            _ => bail!("unknown option {name}\n{USAGE}"),
        }
    }
    args.target = target.ok_or_else(|| anyhow!("--target is required\n{USAGE}"))?;
    if args.port == 0 {
        bail!("--port is required\n{USAGE}");
    }
    if !(1..=1024).contains(&args.connections) {
        bail!("--connections must be 1 to 1024");
    }
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    if args.duration.is_zero() || args.duration + args.warmup > MAX_RUN {
        bail!("--duration must be above 0 and --warmup + --duration at most {MAX_RUN:?}");
    }
    if args.timeout.is_zero() || args.timeout > Duration::from_secs(60) {
        bail!("--timeout must be above 0 and at most 60s");
    }
    Ok(args)
}

/// One of the shared benchmark contexts.
struct Ctx {
    targeting_key: String,
    email: String,
    country: &'static str,
    plan: &'static str,
    age: i64,
    app_version: String,
}

fn context(i: usize) -> Ctx {
    const COUNTRIES: [&str; 8] = ["US", "DE", "GB", "FR", "CA", "NL", "SE", "BR"];
    const DOMAINS: [&str; 7] = [
        "example.com",
        "acme.com",
        "mail.com",
        "corp.com",
        "shop.com",
        "dev.com",
        "example.org",
    ];
    Ctx {
        targeting_key: format!("user-{i}"),
        email: format!("user-{i}@{}", DOMAINS[i % 7]),
        country: COUNTRIES[i % 8],
        plan: if i % 6 == 5 { "free" } else { "pro" },
        age: 17 + 6 * (i as i64 % 9),
        app_version: format!("2.{}.{}", i % 11, i % 13),
    }
}

fn proto_context(c: &Ctx) -> prost_types::Struct {
    let string = |s: &str| prost_types::Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    };
    let mut fields = BTreeMap::new();
    fields.insert("targetingKey".to_owned(), string(&c.targeting_key));
    fields.insert("email".to_owned(), string(&c.email));
    fields.insert("country".to_owned(), string(c.country));
    fields.insert("plan".to_owned(), string(c.plan));
    fields.insert(
        "age".to_owned(),
        prost_types::Value {
            kind: Some(Kind::NumberValue(c.age as f64)),
        },
    );
    fields.insert("appVersion".to_owned(), string(&c.app_version));
    prost_types::Struct { fields }
}

fn json_body(flag: &str, c: &Ctx) -> Bytes {
    let body = json!({
        "flagKey": flag,
        "context": {
            "targetingKey": c.targeting_key,
            "email": c.email,
            "country": c.country,
            "plan": c.plan,
            "age": c.age,
            "appVersion": c.app_version,
        }
    });
    Bytes::from(body.to_string())
}

/// What one connection saw.
struct Tally {
    histogram: Histogram<u64>,
    measured_ok: u64,
    /// Errors by kind, for requests started in the measured window.
    errors: BTreeMap<&'static str, u64>,
    warmup_requests: u64,
    warmup_errors: u64,
    reasons: BTreeMap<String, u64>,
    true_values: u64,
    reconnects: u64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            // Nanoseconds, 1 ns to 120 s, 3 significant digits.
            histogram: Histogram::new_with_bounds(1, 120_000_000_000, 3)
                .unwrap_or_else(|e| panic!("histogram bounds: {e}")),
            measured_ok: 0,
            errors: BTreeMap::new(),
            warmup_requests: 0,
            warmup_errors: 0,
            reasons: BTreeMap::new(),
            true_values: 0,
            reconnects: 0,
        }
    }

    fn merge(&mut self, other: Tally) {
        self.histogram
            .add(&other.histogram)
            .unwrap_or_else(|e| panic!("histogram merge: {e}"));
        self.measured_ok += other.measured_ok;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.warmup_requests += other.warmup_requests;
        self.warmup_errors += other.warmup_errors;
        for (k, v) in other.reasons {
            *self.reasons.entry(k).or_default() += v;
        }
        self.true_values += other.true_values;
        self.reconnects += other.reconnects;
    }

    fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The answer to one request, as far as the tally is concerned.
enum Answer {
    Ok { value: bool, reason: String },
    Error(&'static str),
}

/// The measured window, shared by every connection.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn record(&self, tally: &mut Tally, sent: Instant, done: Instant, answer: Answer) {
        if sent < self.start {
            tally.warmup_requests += 1;
            if matches!(answer, Answer::Error(_)) {
                tally.warmup_errors += 1;
            }
            return;
        }
        if done > self.end {
            // Straddles the end of the window: neither counted nor timed.
            return;
        }
        match answer {
            Answer::Ok { value, reason } => {
                let nanos = (done - sent).as_nanos().clamp(1, u64::MAX as u128) as u64;
                tally.histogram.saturating_record(nanos);
                tally.measured_ok += 1;
                tally.true_values += u64::from(value);
                // Reason strings are few (TARGETING_MATCH, DEFAULT, ...).
                if let Some(n) = tally.reasons.get_mut(&reason) {
                    *n += 1;
                } else {
                    tally.reasons.insert(reason, 1);
                }
            }
            Answer::Error(kind) => *tally.errors.entry(kind).or_default() += 1,
        }
    }
}

async fn grpc_connect(port: u16) -> anyhow::Result<ServiceClient<tonic::transport::Channel>> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{HOST}:{port}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5));
    // Each `connect` opens its own HTTP/2 connection.
    let channel = endpoint.connect().await?;
    Ok(ServiceClient::new(channel))
}

async fn grpc_worker(
    mut client: ServiceClient<tonic::transport::Channel>,
    contexts: Arc<Vec<prost_types::Struct>>,
    flag: Arc<str>,
    first: usize,
    window: Window,
    timeout: Duration,
) -> Tally {
    let mut tally = Tally::new();
    let mut n = first;
    loop {
        let sent = Instant::now();
        if sent >= window.end {
            break;
        }
        let request = ResolveBooleanRequest {
            flag_key: flag.to_string(),
            context: Some(contexts[n % CONTEXTS].clone()),
        };
        n += 1;
        let answer = match tokio::time::timeout(timeout, client.resolve_boolean(request)).await {
            Err(_) => Answer::Error("timeout"),
            Ok(Err(status)) => {
                if status.code() == tonic::Code::Unavailable
                    || status.code() == tonic::Code::Unknown
                {
                    Answer::Error("grpc_transport")
                } else {
                    Answer::Error("grpc_status")
                }
            }
            Ok(Ok(response)) => {
                let r = response.into_inner();
                if r.reason == "ERROR" {
                    Answer::Error("reason_error")
                } else {
                    Answer::Ok {
                        value: r.value,
                        reason: r.reason,
                    }
                }
            }
        };
        let done = Instant::now();
        let failed = matches!(answer, Answer::Error(_));
        window.record(&mut tally, sent, done, answer);
        if failed {
            // Do not spin on a broken connection; tonic reconnects by itself.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    tally
}

type Http1Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn http1_connect(port: u16) -> anyhow::Result<Http1Sender> {
    let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect((HOST, port)))
        .await
        .context("connect timed out")??;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

async fn connect_request(
    sender: &mut Http1Sender,
    body: Bytes,
    authority: &str,
) -> Result<Answer, &'static str> {
    sender.ready().await.map_err(|_| "http_transport")?;
    let request = hyper::Request::post(CONNECT_PATH)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|_| "http_request")?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|_| "http_transport")?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|_| "http_transport")?
        .to_bytes();
    if status != hyper::StatusCode::OK {
        return Ok(Answer::Error("http_status"));
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return Ok(Answer::Error("bad_body"));
    };
    let reason = value.get("reason").and_then(|r| r.as_str()).unwrap_or("");
    match value.get("value").and_then(|v| v.as_bool()) {
        Some(_) if reason == "ERROR" => Ok(Answer::Error("reason_error")),
        Some(v) => Ok(Answer::Ok {
            value: v,
            reason: reason.to_owned(),
        }),
        None => Ok(Answer::Error("bad_body")),
    }
}

async fn connect_worker(
    mut sender: Http1Sender,
    bodies: Arc<Vec<Bytes>>,
    port: u16,
    first: usize,
    window: Window,
    timeout: Duration,
) -> Tally {
    let mut tally = Tally::new();
    let authority = format!("{HOST}:{port}");
    let mut sender_ok = true;
    let mut n = first;
    loop {
        let now = Instant::now();
        if now >= window.end {
            break;
        }
        if !sender_ok {
            match http1_connect(port).await {
                Ok(s) => {
                    sender = s;
                    sender_ok = true;
                    tally.reconnects += 1;
                }
                Err(_) => {
                    window.record(&mut tally, now, Instant::now(), Answer::Error("connect"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let sent = Instant::now();
        let body = bodies[n % CONTEXTS].clone();
        n += 1;
        let answer =
            match tokio::time::timeout(timeout, connect_request(&mut sender, body, &authority))
                .await
            {
                Err(_) => {
                    sender_ok = false;
                    Answer::Error("timeout")
                }
                Ok(Err(kind)) => {
                    sender_ok = false;
                    Answer::Error(kind)
                }
                Ok(Ok(answer)) => answer,
            };
        window.record(&mut tally, sent, Instant::now(), answer);
    }
    tally
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat (USER_HZ = 100).
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based on the whole line).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn percentile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1e6
}

async fn run(args: Args) -> anyhow::Result<()> {
    let contexts: Vec<Ctx> = (0..CONTEXTS).map(context).collect();
    let stride = CONTEXTS / args.connections.max(1);

    // Connect everything before the clock starts.
    let mut grpc_clients = Vec::new();
    let mut http1_senders = Vec::new();
    for _ in 0..args.connections {
        match args.target {
            Target::Grpc => grpc_clients.push(
                grpc_connect(args.port)
                    .await
                    .with_context(|| format!("gRPC connection to {HOST}:{}", args.port))?,
            ),
            Target::Connect => http1_senders.push(
                http1_connect(args.port)
                    .await
                    .with_context(|| format!("HTTP/1.1 connection to {HOST}:{}", args.port))?,
            ),
        }
    }

    let begin = Instant::now();
    let window = Window {
        start: begin + args.warmup,
        end: begin + args.warmup + args.duration,
    };
    let mut tasks = Vec::new();
    match args.target {
        Target::Grpc => {
            let protos = Arc::new(contexts.iter().map(proto_context).collect::<Vec<_>>());
            let flag: Arc<str> = Arc::from(args.flag.as_str());
            for (c, client) in grpc_clients.into_iter().enumerate() {
                tasks.push(tokio::spawn(grpc_worker(
                    client,
                    protos.clone(),
                    flag.clone(),
                    c * stride,
                    window,
                    args.timeout,
                )));
            }
        }
        Target::Connect => {
            let bodies = Arc::new(
                contexts
                    .iter()
                    .map(|c| json_body(&args.flag, c))
                    .collect::<Vec<_>>(),
            );
            for (c, sender) in http1_senders.into_iter().enumerate() {
                tasks.push(tokio::spawn(connect_worker(
                    sender,
                    bodies.clone(),
                    args.port,
                    c * stride,
                    window,
                    args.timeout,
                )));
            }
        }
    }

    // Hard deadline: the window, one request timeout and a little slack.
    let deadline = window.end + args.timeout + Duration::from_secs(5);
    let mut total = Tally::new();
    let mut unfinished = 0u64;
    for task in tasks {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, task).await {
            Ok(Ok(tally)) => total.merge(tally),
            Ok(Err(e)) => bail!("a connection task failed: {e}"),
            Err(_) => unfinished += 1,
        }
    }
    if unfinished > 0 {
        *total.errors.entry("unfinished_connection").or_default() += unfinished;
    }

    let seconds = args.duration.as_secs_f64();
    let elapsed = begin.elapsed().as_secs_f64();
    let cpu = own_cpu_seconds().unwrap_or(f64::NAN);
    let h = &total.histogram;
    let throughput = total.measured_ok as f64 / seconds;
    let errors = total.errors_total();
    let transport = match args.target {
        Target::Grpc => "gRPC (HTTP/2, h2c), one channel per connection",
        Target::Connect => "Connect unary JSON (HTTP/1.1 keep-alive)",
    };
    println!(
        "target: {} — {transport}, {CONNECT_PATH}",
        args.target.name()
    );
    println!(
        "server: {HOST}:{}  flag: {}  connections: {}  in flight per connection: 1  client threads: {}",
        args.port, args.flag, args.connections, args.threads
    );
    println!(
        "warm-up: {:.1} s ({} requests, {} errors)  measured: {:.1} s",
        args.warmup.as_secs_f64(),
        total.warmup_requests,
        total.warmup_errors,
        seconds
    );
    println!(
        "evaluations: {}  throughput: {:.0} /s  errors: {}{}",
        total.measured_ok,
        throughput,
        errors,
        if errors > 0 {
            format!(" {:?}", total.errors)
        } else {
            String::new()
        }
    );
    println!(
        "latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}",
        percentile_ms(h, 0.50),
        percentile_ms(h, 0.90),
        percentile_ms(h, 0.99),
        percentile_ms(h, 0.999),
        h.max() as f64 / 1e6,
        h.mean() / 1e6
    );
    println!(
        "answers: {} true, {} false; reasons {:?}; reconnects {}",
        total.true_values,
        total.measured_ok - total.true_values,
        total.reasons,
        total.reconnects
    );
    println!(
        "load generator CPU: {cpu:.1} s over {elapsed:.1} s of load ({:.2} cores)",
        cpu / elapsed
    );
    let line = json!({
        "target": args.target.name(),
        "flag": args.flag,
        "connections": args.connections,
        "client_threads": args.threads,
        "warmup_s": args.warmup.as_secs_f64(),
        "duration_s": seconds,
        "evaluations": total.measured_ok,
        "throughput_per_s": (throughput * 10.0).round() / 10.0,
        "p50_ms": percentile_ms(h, 0.50),
        "p90_ms": percentile_ms(h, 0.90),
        "p99_ms": percentile_ms(h, 0.99),
        "p999_ms": percentile_ms(h, 0.999),
        "max_ms": h.max() as f64 / 1e6,
        "mean_ms": h.mean() / 1e6,
        "errors": errors,
        "error_kinds": total.errors,
        "warmup_requests": total.warmup_requests,
        "warmup_errors": total.warmup_errors,
        "true_values": total.true_values,
        "reasons": total.reasons,
        "reconnects": total.reconnects,
        "client_cpu_s": (cpu * 100.0).round() / 100.0,
        "client_elapsed_s": (elapsed * 100.0).round() / 100.0,
    });
    println!("{line}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}
