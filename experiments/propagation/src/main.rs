//! Commit → served across replicas, as SDKs see it.
//!
//! `ensign-propagation run --database-url URL --replica NAME:OFREP:EVAL:MANAGEMENT ...
//! [--environment production] [--iterations 200] [--warmup 5] [--gap-ms 25] [--deadline-s 120]`
//!
//! Seeds flag `propagation-toggle` in flag set `bench` (through `ensign_storage::Storage`,
//! the code the admin API writes with), opens on every replica the OFREP event stream
//! (`GET /ofrep/v1/events`, server-sent events) and the flagd `EventStream` over Connect
//! (JSON), then toggles the flag `--iterations` times, one commit at a time. For each commit
//! it waits for the change event on every stream and records its arrival time. Latency is
//! arrival − `committedAt`, the commit time the storage stamps on the change (unix ms, set
//! just before `NOTIFY` and `COMMIT`; the same origin as the servers'
//! `ensign_propagation_seconds`). Every replica's `/metrics` is scraped before and after,
//! and the histogram's growth over the measured commits is reported too.
//!
//! A missing event (none within 2 s) is counted and makes the exit status 1. The run is
//! bounded: at most 5,000 commits, a hard deadline, timeouts on every request.
//!
//! `ensign-propagation create-database --server-url URL --name NAME` creates a database and
//! prints its URL; `drop-database --server-url URL --name NAME` drops it (`WITH (FORCE)`).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::str::FromStr as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail, ensure};
use bytes::{Buf as _, Bytes, BytesMut};
use ensign_storage::model::{Actor, FlagKind};
use ensign_storage::{NewFlag, Storage, StorageError};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use sqlx::Connection as _;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const HOST: &str = "127.0.0.1";
const FLAG_SET: &str = "bench";
const FLAG: &str = "propagation-toggle";
const MAX_ITERATIONS: usize = 5_000;
/// How long a change event may take before it counts as missed.
const EVENT_TIMEOUT: Duration = Duration::from_secs(2);
/// Every HTTP request and database step.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ensign-propagation: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match args.first().map(String::as_str) {
            Some("run") => run(Options::parse(&args[1..])?).await,
            Some("create-database") => create_database(&Options::parse(&args[1..])?).await,
            Some("drop-database") => drop_database(&Options::parse(&args[1..])?).await,
            _ => bail!(
                "usage: ensign-propagation run|create-database|drop-database [--option value]..."
            ),
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ensign-propagation: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--name value` pairs; `--replica` may repeat.
struct Options(Vec<(String, String)>);

impl Options {
    fn parse(args: &[String]) -> anyhow::Result<Options> {
        let mut pairs = Vec::new();
        let mut args = args.iter();
        while let Some(name) = args.next() {
            let name = name
                .strip_prefix("--")
                .ok_or_else(|| anyhow!("expected --option, got \"{name}\""))?;
            let value = args
                .next()
                .ok_or_else(|| anyhow!("--{name} needs a value"))?;
            pairs.push((name.to_owned(), value.clone()));
        }
        Ok(Options(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &str) -> anyhow::Result<&str> {
        self.get(name)
            .ok_or_else(|| anyhow!("--{name} is required"))
    }

    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> anyhow::Result<T> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|_| anyhow!("--{name} \"{text}\" is not a number")),
        }
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Databases

/// `url` with its database (path) replaced by `name`, query kept.
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base
        .find("://")
        .map(|i| i + 3)
        .ok_or_else(|| anyhow!("\"{url}\" is not a postgres:// URL"))?;
    let base = match base[authority..].find('/') {
        Some(slash) => &base[..authority + slash],
        None => base,
    };
    Ok(match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    })
}

fn database_name(options: &Options) -> anyhow::Result<&str> {
    let name = options.required("name")?;
    ensure!(
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "--name \"{name}\": use lowercase letters, digits and '_'"
    );
    Ok(name)
}

async fn server_execute(server_url: &str, sql: String) -> anyhow::Result<()> {
    let options = sqlx::postgres::PgConnectOptions::from_str(server_url)
        .with_context(|| format!("--server-url \"{server_url}\""))?;
    let mut connection = tokio::time::timeout(
        STEP_TIMEOUT,
        sqlx::postgres::PgConnection::connect_with(&options),
    )
    .await
    .context("connecting to PostgreSQL timed out")?
    .with_context(|| format!("connecting to {server_url}"))?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
        .execute(&mut connection)
        .await
        .with_context(|| sql.clone())?;
    let _ = connection.close().await;
    Ok(())
}

async fn create_database(options: &Options) -> anyhow::Result<ExitCode> {
    let server = options.required("server-url")?;
    let name = database_name(options)?;
    server_execute(server, format!("CREATE DATABASE {name}")).await?;
    println!("{}", with_database(server, name)?);
    Ok(ExitCode::SUCCESS)
}

async fn drop_database(options: &Options) -> anyhow::Result<ExitCode> {
    let server = options.required("server-url")?;
    let name = database_name(options)?;
    server_execute(
        server,
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------
// HTTP on loopback

async fn send(
    port: u16,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Bytes,
) -> anyhow::Result<hyper::Response<Incoming>> {
    let stream = TcpStream::connect((HOST, port))
        .await
        .with_context(|| format!("connecting to {HOST}:{port}"))?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", format!("{HOST}:{port}"));
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let request = request.body(Full::new(body))?;
    let response = sender.send_request(request).await?;
    // The sender may go: the connection lives until the body is read.
    drop(sender);
    Ok(response)
}

/// A whole response body, with its status.
async fn fetch(
    port: u16,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Bytes,
) -> anyhow::Result<(u16, Bytes)> {
    tokio::time::timeout(STEP_TIMEOUT, async {
        let response = send(port, method, path, content_type, body).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    })
    .await
    .with_context(|| format!("{method} {HOST}:{port}{path} timed out"))?
}

fn unix_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

// ---------------------------------------------------------------------------
// Event streams

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `GET /ofrep/v1/events`, `refetchEvaluation` events.
    Sse,
    /// `flagd.evaluation.v1.Service/EventStream` over Connect (JSON),
    /// `configuration_change` events.
    Connect,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Sse => "OFREP SSE",
            Kind::Connect => "EventStream (Connect)",
        }
    }
}

enum Message {
    /// The stream is open (`: connected` / `provider_ready`).
    Ready(usize),
    /// A change event arrived (unix µs).
    Event(usize, i64),
    /// The stream ended or failed.
    Closed(usize, String),
}

#[derive(Debug, Clone)]
struct Replica {
    name: String,
    ofrep_port: u16,
    evaluation_port: u16,
    management_port: u16,
}

impl Replica {
    fn parse(text: &str) -> anyhow::Result<Replica> {
        let parts: Vec<&str> = text.split(':').collect();
        let [name, ofrep, evaluation, management] = parts[..] else {
            bail!("--replica \"{text}\": expected NAME:OFREP_PORT:EVALUATION_PORT:MANAGEMENT_PORT");
        };
        let port = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| anyhow!("--replica \"{text}\": \"{p}\" is not a port"))
        };
        Ok(Replica {
            name: name.to_owned(),
            ofrep_port: port(ofrep)?,
            evaluation_port: port(evaluation)?,
            management_port: port(management)?,
        })
    }
}

/// Reads one stream until it ends, reporting to `messages` as stream `id`.
async fn watch(id: usize, kind: Kind, replica: Replica, messages: mpsc::UnboundedSender<Message>) {
    let result = match kind {
        Kind::Sse => watch_sse(id, &replica, &messages).await,
        Kind::Connect => watch_connect(id, &replica, &messages).await,
    };
    let reason = match result {
        Ok(()) => "the stream ended".to_owned(),
        Err(error) => format!("{error:#}"),
    };
    let _ = messages.send(Message::Closed(id, reason));
}

async fn watch_sse(
    id: usize,
    replica: &Replica,
    messages: &mpsc::UnboundedSender<Message>,
) -> anyhow::Result<()> {
    let response = send(
        replica.ofrep_port,
        "GET",
        "/ofrep/v1/events",
        None,
        Bytes::new(),
    )
    .await?;
    ensure!(
        response.status() == 200,
        "OFREP events: HTTP {}",
        response.status()
    );
    let mut body = response.into_body();
    let mut text = String::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        let at = unix_micros();
        text.push_str(std::str::from_utf8(data)?);
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            for line in event.lines() {
                if line.starts_with(": connected") {
                    let _ = messages.send(Message::Ready(id));
                } else if let Some(data) = line.strip_prefix("data:") {
                    let event: Value = serde_json::from_str(data.trim())?;
                    if event["type"] == "refetchEvaluation" {
                        let _ = messages.send(Message::Event(id, at));
                    }
                }
            }
        }
    }
    Ok(())
}

async fn watch_connect(
    id: usize,
    replica: &Replica,
    messages: &mpsc::UnboundedSender<Message>,
) -> anyhow::Result<()> {
    // One Connect envelope: flags 0, big-endian length, the JSON request.
    let mut request = vec![0u8];
    request.extend_from_slice(&2u32.to_be_bytes());
    request.extend_from_slice(b"{}");
    let response = send(
        replica.evaluation_port,
        "POST",
        "/flagd.evaluation.v1.Service/EventStream",
        Some("application/connect+json"),
        Bytes::from(request),
    )
    .await?;
    ensure!(
        response.status() == 200,
        "EventStream: HTTP {}",
        response.status()
    );
    let mut body = response.into_body();
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        let at = unix_micros();
        buffer.extend_from_slice(data);
        while buffer.len() >= 5 {
            let flags = buffer[0];
            let length = u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
            if buffer.len() < 5 + length {
                break;
            }
            buffer.advance(5);
            let message = buffer.split_to(length);
            if flags & 0x02 != 0 {
                bail!(
                    "end of stream: {}",
                    String::from_utf8_lossy(&message).into_owned()
                );
            }
            let message: Value = serde_json::from_slice(&message)?;
            match message["type"].as_str() {
                Some("provider_ready") => {
                    let _ = messages.send(Message::Ready(id));
                }
                Some("configuration_change") if message["data"]["flags"].get(FLAG).is_some() => {
                    let _ = messages.send(Message::Event(id, at));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The server histogram

/// `ensign_propagation_seconds` as scraped: cumulative buckets, sum, count.
#[derive(Debug, Clone, Default)]
struct Histogram {
    buckets: Vec<(String, f64)>,
    sum: f64,
    count: f64,
}

impl Histogram {
    fn parse(text: &str) -> Histogram {
        let mut histogram = Histogram::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("ensign_propagation_seconds_bucket{le=\"") {
                if let Some((le, value)) = rest.split_once("\"} ") {
                    histogram
                        .buckets
                        .push((le.to_owned(), value.trim().parse().unwrap_or(0.0)));
                }
            } else if let Some(value) = line.strip_prefix("ensign_propagation_seconds_sum ") {
                histogram.sum = value.trim().parse().unwrap_or(0.0);
            } else if let Some(value) = line.strip_prefix("ensign_propagation_seconds_count ") {
                histogram.count = value.trim().parse().unwrap_or(0.0);
            }
        }
        histogram
    }

    /// What was observed since `before`.
    fn since(&self, before: &Histogram) -> Histogram {
        let earlier: BTreeMap<&str, f64> = before
            .buckets
            .iter()
            .map(|(le, v)| (le.as_str(), *v))
            .collect();
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|(le, v)| {
                    (
                        le.clone(),
                        v - earlier.get(le.as_str()).copied().unwrap_or(0.0),
                    )
                })
                .collect(),
            sum: self.sum - before.sum,
            count: self.count - before.count,
        }
    }

    /// The upper bound of the bucket holding quantile `q`.
    fn quantile_bound(&self, q: f64) -> String {
        let rank = (q * self.count).ceil().max(1.0);
        self.buckets
            .iter()
            .find(|(_, cumulative)| *cumulative >= rank)
            .map_or_else(|| "-".to_owned(), |(le, _)| format_bound(le))
    }

    fn describe(&self) -> String {
        if self.count == 0.0 {
            return "no observations".to_owned();
        }
        let mut previous = 0.0;
        let buckets: Vec<String> = self
            .buckets
            .iter()
            .filter_map(|(le, cumulative)| {
                let in_bucket = cumulative - previous;
                previous = *cumulative;
                (in_bucket > 0.0).then(|| format!("≤{}: {in_bucket}", format_bound(le)))
            })
            .collect();
        format!(
            "count {}, mean {:.1} ms, p50 ≤ {}, p90 ≤ {}, p99 ≤ {}; buckets {}",
            self.count,
            self.sum / self.count * 1000.0,
            self.quantile_bound(0.50),
            self.quantile_bound(0.90),
            self.quantile_bound(0.99),
            buckets.join(", ")
        )
    }
}

fn format_bound(le: &str) -> String {
    match le.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() => format!("{} ms", seconds * 1000.0),
        _ => "+Inf".to_owned(),
    }
}

async fn scrape(replica: &Replica) -> anyhow::Result<Histogram> {
    let (status, body) = fetch(
        replica.management_port,
        "GET",
        "/metrics",
        None,
        Bytes::new(),
    )
    .await
    .with_context(|| format!("scraping replica {}", replica.name))?;
    ensure!(
        status == 200,
        "replica {}: /metrics HTTP {status}",
        replica.name
    );
    Ok(Histogram::parse(&String::from_utf8_lossy(&body)))
}

// ---------------------------------------------------------------------------
// Statistics

/// Latencies in µs.
#[derive(Debug, Default, Clone)]
struct Samples(Vec<i64>);

impl Samples {
    fn quantile(&self, q: f64) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1] as f64 / 1000.0
    }

    fn max(&self) -> f64 {
        self.0
            .iter()
            .copied()
            .max()
            .map_or(f64::NAN, |m| m as f64 / 1000.0)
    }

    fn row(&self, label: &str, missed: usize) -> String {
        format!(
            "| {label} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {missed} |",
            self.0.len(),
            self.quantile(0.50),
            self.quantile(0.90),
            self.quantile(0.99),
            self.max()
        )
    }

    fn summary(&self) -> Value {
        json!({
            "n": self.0.len(),
            "p50_ms": self.quantile(0.50),
            "p90_ms": self.quantile(0.90),
            "p99_ms": self.quantile(0.99),
            "max_ms": self.max(),
        })
    }
}

// ---------------------------------------------------------------------------
// The run

fn actor() -> Actor {
    Actor::new("automation:propagation-bench")
}

async fn seed(storage: &Storage) -> anyhow::Result<()> {
    match storage
        .create_flag_set(&actor(), FLAG_SET, "Benchmark", Map::new())
        .await
    {
        Ok(_) | Err(StorageError::Conflict(_)) => {}
        Err(error) => return Err(error).context("creating the flag set"),
    }
    let variants = match json!({"on": true, "off": false}) {
        Value::Object(map) => map,
        _ => unreachable!("an object"),
    };
    let flag = NewFlag {
        flag_set: FLAG_SET.to_owned(),
        key: FLAG.to_owned(),
        description: "Toggled by the propagation benchmark".to_owned(),
        owner: String::new(),
        tags: Vec::new(),
        kind: FlagKind::Operational,
        expires_at: None,
        metadata: Map::new(),
        state: "ENABLED".to_owned(),
        variants,
        default_variant: Some("on".to_owned()),
        targeting: None,
        environments: BTreeMap::new(),
    };
    match storage.create_flag(&actor(), flag).await {
        Ok(_) | Err(StorageError::Conflict(_)) => Ok(()),
        Err(error) => Err(error).context("creating the flag"),
    }
}

/// Waits until `replica` serves the flag over OFREP.
async fn wait_served(replica: &Replica) -> anyhow::Result<()> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let path = format!("/ofrep/v1/evaluate/flags/{FLAG}");
    loop {
        let answer = fetch(
            replica.ofrep_port,
            "POST",
            &path,
            Some("application/json"),
            Bytes::from_static(br#"{"context":{}}"#),
        )
        .await;
        if let Ok((200, _)) = answer {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "replica {} does not serve {FLAG} after {STEP_TIMEOUT:?}: {answer:?}",
            replica.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run(options: Options) -> anyhow::Result<ExitCode> {
    let url = options.required("database-url")?.to_owned();
    let environment = options
        .get("environment")
        .unwrap_or("production")
        .to_owned();
    let iterations: usize = options.number("iterations", 200)?;
    let warmup: usize = options.number("warmup", 5)?;
    let gap = Duration::from_millis(options.number("gap-ms", 25)?);
    let deadline_s: u64 = options.number("deadline-s", 120)?;
    ensure!(
        (1..=MAX_ITERATIONS).contains(&iterations),
        "--iterations: 1 to {MAX_ITERATIONS}"
    );
    ensure!(warmup <= 100, "--warmup: at most 100");
    ensure!(gap <= Duration::from_secs(1), "--gap-ms: at most 1000");
    ensure!((1..=900).contains(&deadline_s), "--deadline-s: 1 to 900");
    let deadline = Instant::now() + Duration::from_secs(deadline_s);
    let replicas = options
        .all("replica")
        .into_iter()
        .map(Replica::parse)
        .collect::<anyhow::Result<Vec<_>>>()?;
    ensure!(!replicas.is_empty(), "give at least one --replica");

    let storage = tokio::time::timeout(STEP_TIMEOUT, Storage::connect(&url))
        .await
        .context("connecting to the database timed out")?
        .context("connecting to the database")?;
    storage.migrate().await.context("migrating")?;
    let server_version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(
            &mut sqlx::postgres::PgConnection::connect(&url)
                .await
                .context("connecting to the database")?,
        )
        .await
        .context("asking the server version")?;
    seed(&storage).await?;
    for replica in &replicas {
        wait_served(replica).await?;
    }

    // Streams: for replica r, 2r is its SSE stream and 2r + 1 its EventStream.
    let kinds = [Kind::Sse, Kind::Connect];
    let streams: Vec<(usize, Kind)> = (0..replicas.len())
        .flat_map(|r| kinds.iter().map(move |kind| (r, *kind)))
        .collect();
    let (sender, mut messages) = mpsc::unbounded_channel();
    for (id, (replica, kind)) in streams.iter().enumerate() {
        tokio::spawn(watch(id, *kind, replicas[*replica].clone(), sender.clone()));
    }
    drop(sender);
    let mut ready = vec![false; streams.len()];
    let opened = Instant::now() + STEP_TIMEOUT;
    while ready.iter().any(|r| !r) {
        match tokio::time::timeout_at(opened.into(), messages.recv()).await {
            Ok(Some(Message::Ready(id))) => ready[id] = true,
            Ok(Some(Message::Event(..))) => {}
            Ok(Some(Message::Closed(id, reason))) => bail!("stream {id}: {reason}"),
            Ok(None) | Err(_) => bail!("the event streams did not open within {STEP_TIMEOUT:?}"),
        }
    }

    let flag = storage
        .flag(FLAG_SET, FLAG)
        .await
        .context("reading the flag")?;
    let mut enabled = flag
        .environments
        .get(&environment)
        .ok_or_else(|| anyhow!("no environment \"{environment}\""))?
        .state
        == "ENABLED";
    let mut local = storage.local_changes();
    let mut before = Vec::new();
    let mut latencies = vec![Samples::default(); streams.len()];
    let mut missed = vec![0usize; streams.len()];
    let mut unexpected = 0usize;
    let mut writes = Samples::default();
    let mut measured = 0usize;
    let started = Instant::now();

    for round in 0..warmup + iterations {
        if round == warmup {
            for replica in &replicas {
                before.push(scrape(replica).await?);
            }
        }
        if Instant::now() >= deadline {
            eprintln!("ensign-propagation: deadline reached after {measured} measured commits");
            break;
        }
        // Nothing should be pending between commits.
        while let Ok(message) = messages.try_recv() {
            match message {
                Message::Closed(id, reason) => bail!("stream {id}: {reason}"),
                _ => unexpected += 1,
            }
        }
        enabled = !enabled;
        let call = Instant::now();
        tokio::time::timeout(
            STEP_TIMEOUT,
            storage.toggle_flag(&actor(), FLAG_SET, FLAG, &environment, enabled, None),
        )
        .await
        .context("the write timed out")?
        .context("toggling the flag")?;
        let write = call.elapsed();
        let change = tokio::time::timeout(STEP_TIMEOUT, local.recv())
            .await
            .context("no local change announced")?
            .context("the change broadcast")?;
        let committed_at = change.committed_at * 1000;

        let mut arrived: Vec<Option<i64>> = vec![None; streams.len()];
        let wait_until = tokio::time::Instant::now() + EVENT_TIMEOUT;
        while arrived.iter().any(Option::is_none) {
            match tokio::time::timeout_at(wait_until, messages.recv()).await {
                Ok(Some(Message::Event(id, at))) => match arrived[id] {
                    None => arrived[id] = Some(at),
                    Some(_) => unexpected += 1,
                },
                Ok(Some(Message::Ready(_))) => unexpected += 1,
                Ok(Some(Message::Closed(id, reason))) => bail!("stream {id}: {reason}"),
                Ok(None) => bail!("every stream ended"),
                Err(_) => break,
            }
        }
        if round >= warmup {
            measured += 1;
            writes.0.push(write.as_micros() as i64);
            for (id, at) in arrived.iter().enumerate() {
                match at {
                    Some(at) => latencies[id].0.push(at - committed_at),
                    None => missed[id] += 1,
                }
            }
        }
        tokio::time::sleep(gap).await;
    }
    let elapsed = started.elapsed();
    let mut after = Vec::new();
    for replica in &replicas {
        after.push(scrape(replica).await?);
    }

    // Report.
    let total_missed: usize = missed.iter().sum();
    println!(
        "propagation: {measured} measured commits ({warmup} warm-up), {} replicas, {} streams, \
         {gap:?} between commits, {elapsed:.1?} in all; PostgreSQL {server_version}",
        replicas.len(),
        streams.len()
    );
    println!();
    println!("commit → change event (ms): arrival on the stream − committedAt");
    println!();
    println!("| stream | n | p50 | p90 | p99 | max | missed |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut overall = Samples::default();
    let mut json_replicas = Vec::new();
    for (r, replica) in replicas.iter().enumerate() {
        let mut both = Samples::default();
        let mut replica_missed = 0;
        let mut json_streams = Map::new();
        for (id, (owner, kind)) in streams.iter().enumerate() {
            if *owner != r {
                continue;
            }
            println!(
                "{}",
                latencies[id].row(&format!("{} {}", replica.name, kind.name()), missed[id])
            );
            both.0.extend_from_slice(&latencies[id].0);
            replica_missed += missed[id];
            let mut summary = latencies[id].summary();
            summary["missed"] = json!(missed[id]);
            json_streams.insert(kind.name().to_owned(), summary);
        }
        println!(
            "{}",
            both.row(
                &format!("**{} (both streams)**", replica.name),
                replica_missed
            )
        );
        overall.0.extend_from_slice(&both.0);
        let histogram = after[r].since(&before[r]);
        let mut summary = both.summary();
        summary["name"] = json!(replica.name);
        summary["missed"] = json!(replica_missed);
        summary["streams"] = Value::Object(json_streams);
        summary["server_histogram"] = json!({
            "count": histogram.count,
            "sum_s": histogram.sum,
            "p50_le": histogram.quantile_bound(0.5),
            "p90_le": histogram.quantile_bound(0.9),
            "p99_le": histogram.quantile_bound(0.99),
        });
        json_replicas.push(summary);
    }
    println!("{}", overall.row("**overall**", total_missed));
    println!();
    println!(
        "write (Storage::toggle_flag, read + transaction + commit + re-read), ms: p50 {:.1}, p99 {:.1}, max {:.1}",
        writes.quantile(0.5),
        writes.quantile(0.99),
        writes.max()
    );
    println!();
    println!("server histogram ensign_propagation_seconds, growth over the measured commits:");
    for (r, replica) in replicas.iter().enumerate() {
        println!(
            "- {}: {}",
            replica.name,
            after[r].since(&before[r]).describe()
        );
    }
    let worst_p99 = json_replicas
        .iter()
        .filter_map(|r| r["p99_ms"].as_f64())
        .fold(overall.quantile(0.99), f64::max);
    let met = worst_p99 <= 100.0 && total_missed == 0;
    println!();
    println!(
        "target p99 ≤ 100 ms on every replica, no missed events: {}",
        if met { "met" } else { "NOT met" }
    );
    println!(
        "{}",
        json!({
            "measured": measured,
            "warmup": warmup,
            "gap_ms": gap.as_millis() as u64,
            "replicas": json_replicas,
            "overall": overall.summary(),
            "missed": total_missed,
            "unexpected_events": unexpected,
            "write": writes.summary(),
            "target_met": met,
        })
    );
    Ok(if total_missed == 0 && measured == iterations {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
