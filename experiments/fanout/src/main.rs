//! Fan-out and OFREP benchmark for `ensign serve` on 127.0.0.1.
//!
//! ```text
//! ensign-fanout init   --flags-file PATH --base PATH
//! ensign-fanout fanout --flags-file PATH --base PATH --sync-port P --ofrep-port P
//!                      [--management-port P] [--server-pid PID] [--sync-streams 1000]
//!                      [--sync-connections 50] [--sse 1000] [--changes 20] [--gap 1s]
//!                      [--threads 2] [--label TEXT]
//! ensign-fanout ofrep  --ofrep-port P [--server-pid PID] [--connections 64] [--warmup 3s]
//!                      [--duration 20s] [--flag ofrep-flag] [--threads 2] [--timeout 5s]
//! ```
//!
//! The flag document is `--base` (a flagd document, by default the shared scenario document
//! `benches/scenarios/flags.json`) plus two flags of this benchmark: `fanout-flag`, a string
//! flag whose value `fanout-iteration-NNNNNN` names the change, and `ofrep-flag`, a boolean
//! flag with an `if`/`and` rule leading to a 50/50 `fractional` split. `init` writes
//! iteration 0, before the server starts.
//!
//! `fanout`: opens `--sync-streams` `flagd.sync.v1.FlagSyncService/SyncFlags` streams spread
//! round-robin over `--sync-connections` HTTP/2 connections (one tonic channel each), and
//! `--sse` OFREP event streams (`GET /ofrep/v1/events`), each on its own HTTP/1.1
//! connection; waits until every stream has its first message (the full payload, or the SSE
//! `: connected` comment); then `--changes` times, `--gap` apart, writes the next document to
//! a temporary file in the same directory and renames it over the flag file, taking the
//! time just before the rename. Every subscriber timestamps each message as it is read; a
//! delivery's latency is that timestamp minus the rename time of its change. Sync messages
//! are matched to their change by the marker in the payload; SSE events by arrival window
//! (between one rename and the next), with their `etag` checked for agreement. A change a
//! subscriber never sees is a missed delivery. The server's VmRSS is sampled every 50 ms.
//!
//! `ofrep`: `POST /ofrep/v1/evaluate/flags/{flag}` over `--connections` HTTP/1.1 keep-alive
//! connections, one request in flight each, with the 1,024 shared benchmark contexts
//! (benches/scenarios/README.md), connection `c` starting at context `16 c`. Requests that
//! start after the warm-up and end inside the measured window are timed.
//!
//! Every phase is bounded by a timeout. Each mode prints a summary and one JSON line.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use ensign_proto::sync_v1::SyncFlagsRequest;
use ensign_proto::sync_v1::flag_sync_service_client::FlagSyncServiceClient;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tonic::transport::{Channel, Endpoint};

const HOST: &str = "127.0.0.1";
const MARKER: &str = "fanout-iteration-";
const CONTEXTS: usize = 1024;
/// How long opening every stream and receiving every first message may take.
const CONNECT_DEADLINE: Duration = Duration::from_secs(60);
/// How many SSE connections are being opened at the same time.
const CONNECTING_AT_ONCE: usize = 64;
/// Longest run of changes accepted (`--changes` x `--gap`), and longest OFREP run.
const MAX_RUN: Duration = Duration::from_secs(240);

// ---------------------------------------------------------------------------------------
// Arguments

const USAGE: &str = "usage:
  ensign-fanout init   --flags-file PATH --base PATH
  ensign-fanout fanout --flags-file PATH --base PATH --sync-port P --ofrep-port P
                       [--management-port P] [--server-pid PID] [--sync-streams 1000]
                       [--sync-connections 50] [--sse 1000] [--changes 20] [--gap 1s]
                       [--threads 2] [--label TEXT]
  ensign-fanout ofrep  --ofrep-port P [--server-pid PID] [--connections 64] [--warmup 3s]
                       [--duration 20s] [--flag ofrep-flag] [--threads 2] [--timeout 5s]
Targets 127.0.0.1 only.";

/// `--name value` pairs, each taken once.
struct Options(HashMap<String, String>);

impl Options {
    fn parse(args: impl Iterator<Item = String>) -> anyhow::Result<Options> {
        let mut map = HashMap::new();
        let mut args = args.peekable();
        while let Some(name) = args.next() {
            if name == "-h" || name == "--help" {
                println!("{USAGE}");
                std::process::exit(0);
            }
            let Some(key) = name.strip_prefix("--") else {
                bail!("unexpected argument {name:?}\n{USAGE}");
            };
            let value = args
                .next()
                .ok_or_else(|| anyhow!("{name} needs a value\n{USAGE}"))?;
            if map.insert(key.to_owned(), value).is_some() {
                bail!("{name} given twice");
            }
        }
        Ok(Options(map))
    }

    fn take(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    fn required(&mut self, key: &str) -> anyhow::Result<String> {
        self.take(key)
            .ok_or_else(|| anyhow!("--{key} is required\n{USAGE}"))
    }

    fn number<T: std::str::FromStr>(&mut self, key: &str, default: T) -> anyhow::Result<T> {
        match self.take(key) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|_| anyhow!("--{key}: not a number: {text:?}")),
        }
    }

    fn duration(&mut self, key: &str, default: Duration) -> anyhow::Result<Duration> {
        match self.take(key) {
            None => Ok(default),
            Some(text) => parse_duration(&text).with_context(|| format!("--{key}")),
        }
    }

    fn finish(self) -> anyhow::Result<()> {
        if let Some(key) = self.0.keys().next() {
            bail!("unknown option --{key}\n{USAGE}");
        }
        Ok(())
    }
}

fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let (digits, unit) = match text.strip_suffix("ms") {
        Some(d) => (d, 0.001),
        None => match text.strip_suffix('s') {
            Some(d) => (d, 1.0),
            None => (text, 1.0),
        },
    };
    let value: f64 = digits
        .parse()
        .map_err(|_| anyhow!("bad duration {text:?}"))?;
    if !value.is_finite() || value < 0.0 {
        bail!("bad duration {text:?}");
    }
    Ok(Duration::from_secs_f64(value * unit))
}

struct FanoutArgs {
    flags_file: PathBuf,
    base: PathBuf,
    sync_port: u16,
    ofrep_port: u16,
    management_port: Option<u16>,
    server_pid: Option<u32>,
    sync_streams: usize,
    sync_connections: usize,
    sse: usize,
    changes: usize,
    gap: Duration,
    label: String,
}

struct OfrepArgs {
    ofrep_port: u16,
    server_pid: Option<u32>,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    flag: String,
    timeout: Duration,
}

// ---------------------------------------------------------------------------------------
// The flag document

/// The benchmark's boolean flag: a rule on three attributes, then a 50/50 split.
fn ofrep_flag() -> Value {
    json!({
        "state": "ENABLED",
        "variants": {"on": true, "off": false},
        "defaultVariant": "off",
        "targeting": {
            "if": [
                {"and": [
                    {"in": [{"var": "country"}, ["US", "DE", "GB", "FR", "CA"]]},
                    {">=": [{"var": "age"}, 18]},
                    {"==": [{"var": "plan"}, "pro"]}
                ]},
                {"fractional": [
                    {"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]},
                    ["on", 50],
                    ["off", 50]
                ]},
                "off"
            ]
        }
    })
}

fn marker(iteration: usize) -> String {
    format!("{MARKER}{iteration:06}")
}

/// The document of change `iteration` (0: the one the server starts with).
fn document(base: &Value, iteration: usize) -> anyhow::Result<String> {
    let mut document = base.clone();
    let flags = document
        .get_mut("flags")
        .and_then(Value::as_object_mut)
        .context("the base document has no \"flags\" object")?;
    flags.insert(
        "fanout-flag".to_owned(),
        json!({
            "state": "ENABLED",
            "variants": {"current": marker(iteration), "other": "none"},
            "defaultVariant": "current"
        }),
    );
    flags.insert("ofrep-flag".to_owned(), ofrep_flag());
    Ok(serde_json::to_string_pretty(&document)?)
}

fn read_base(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Replaces `target` by `text` with a rename; returns the time taken just before the rename.
fn replace_file(target: &Path, text: &str) -> anyhow::Result<Instant> {
    let name = target
        .file_name()
        .context("the flag file has no name")?
        .to_string_lossy();
    let temp = target.with_file_name(format!(".{name}.fanout-tmp"));
    std::fs::write(&temp, text).with_context(|| format!("writing {}", temp.display()))?;
    let at = Instant::now();
    std::fs::rename(&temp, target).with_context(|| format!("renaming to {}", target.display()))?;
    Ok(at)
}

/// The change number in a sync payload.
fn find_marker(payload: &str) -> Option<usize> {
    let start = payload.find(MARKER)? + MARKER.len();
    payload.get(start..start + 6)?.parse().ok()
}

// ---------------------------------------------------------------------------------------
// The server process

/// VmRSS and VmHWM of `pid`, in kB.
fn server_memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// User + system CPU seconds of a process (`self` or a pid), USER_HZ = 100.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / 100.0)
}

/// Jiffies of the whole machine (all CPUs) from /proc/stat: busy (user, nice, system, irq,
/// softirq) and steal.
fn machine_jiffies() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)?;
    Some((busy, *v.get(7)?))
}

/// CPU use over a window, in cores: the machine, the server, this generator, everything else.
struct CpuWindow {
    start: Instant,
    machine: Option<(f64, f64)>,
    server: Option<f64>,
    own: Option<f64>,
    pid: Option<u32>,
}

impl CpuWindow {
    fn start(pid: Option<u32>) -> CpuWindow {
        CpuWindow {
            start: Instant::now(),
            machine: machine_jiffies(),
            server: pid.and_then(|p| cpu_seconds(&p.to_string())),
            own: cpu_seconds("self"),
            pid,
        }
    }

    /// `{"wall_s", "server_cpu_s", "generator_cpu_s", "machine_cores", "server_cores",
    /// "generator_cores", "other_cores", "steal_cores"}`; absent figures are null.
    fn finish(&self) -> Value {
        let wall = self.start.elapsed().as_secs_f64();
        let server = match (self.server, self.pid) {
            (Some(a), Some(p)) => cpu_seconds(&p.to_string()).map(|b| b - a),
            _ => None,
        };
        let own = self.own.and_then(|a| cpu_seconds("self").map(|b| b - a));
        let machine = match (self.machine, machine_jiffies()) {
            (Some((b0, s0)), Some((b1, s1))) => Some(((b1 - b0) / 100.0, (s1 - s0) / 100.0)),
            _ => None,
        };
        let cores = |x: Option<f64>| x.map(|x| (x / wall * 100.0).round() / 100.0);
        let other = match (machine, server, own) {
            (Some((m, _)), Some(s), Some(o)) => Some(m - s - o),
            _ => None,
        };
        json!({
            "wall_s": (wall * 100.0).round() / 100.0,
            "server_cpu_s": server.map(|x| (x * 100.0).round() / 100.0),
            "generator_cpu_s": own.map(|x| (x * 100.0).round() / 100.0),
            "machine_cores": cores(machine.map(|m| m.0)),
            "server_cores": cores(server),
            "generator_cores": cores(own),
            "other_cores": cores(other),
            "steal_cores": cores(machine.map(|m| m.1)),
        })
    }
}

fn cpu_line(cpu: &Value) -> String {
    let f = |k: &str| {
        cpu[k]
            .as_f64()
            .map_or("n/a".to_owned(), |x| format!("{x:.2}"))
    };
    format!(
        "CPU over {} s, in cores of {}: machine {}, server {}, generator {}, everything else {} (incl. softirq not charged to a process), steal {}",
        f("wall_s"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        f("machine_cores"),
        f("server_cores"),
        f("generator_cores"),
        f("other_cores"),
        f("steal_cores")
    )
}

/// Samples the server's VmRSS every 50 ms until dropped.
struct RssSampler {
    peak_kb: Arc<Mutex<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: Option<u32>) -> RssSampler {
        let peak_kb = Arc::new(Mutex::new(0));
        let peak = Arc::clone(&peak_kb);
        let task = tokio::spawn(async move {
            let Some(pid) = pid else { return };
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            loop {
                tick.tick().await;
                if let Some((rss, _)) = server_memory(pid) {
                    let mut p = peak.lock().unwrap_or_else(|e| e.into_inner());
                    *p = (*p).max(rss);
                }
            }
        });
        RssSampler { peak_kb, task }
    }

    /// The highest VmRSS seen since the last reset, then resets it.
    fn take_peak(&self) -> u64 {
        std::mem::take(&mut *self.peak_kb.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn mb(kb: u64) -> f64 {
    (kb as f64 / 1024.0 * 10.0).round() / 10.0
}

// ---------------------------------------------------------------------------------------
// HTTP/1.1 helpers

type Sender<B> = hyper::client::conn::http1::SendRequest<B>;

async fn http1_connect<B>(port: u16) -> anyhow::Result<Sender<B>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect((HOST, port)))
        .await
        .context("TCP connect timed out")??;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// The value of `name{kind="sync"}` etc. in a Prometheus text page, per label set.
async fn scrape_open_streams(port: u16) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut sender = http1_connect::<Empty<Bytes>>(port).await?;
    let request = hyper::Request::get("/metrics")
        .header(hyper::header::HOST, format!("{HOST}:{port}"))
        .body(Empty::new())?;
    let response = tokio::time::timeout(Duration::from_secs(5), sender.send_request(request))
        .await
        .context("/metrics timed out")??;
    let body = response.into_body().collect().await?.to_bytes();
    let text = String::from_utf8_lossy(&body);
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("ensign_open_streams{")
            && let Some((labels, value)) = rest.split_once("} ")
            && let Ok(v) = value.trim().parse::<f64>()
        {
            out.insert(labels.to_owned(), v);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Fan-out

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Sync,
    Sse,
}

/// Counters the coordinator watches while subscribers run.
struct Progress {
    initial: AtomicUsize,
    /// Size of the latest sync payload seen, in bytes.
    payload_bytes: AtomicUsize,
    failed: AtomicUsize,
    /// Subscribers that have their message for change `k`, by `k`.
    delivered: Vec<AtomicUsize>,
}

impl Progress {
    fn new(changes: usize) -> Progress {
        Progress {
            initial: AtomicUsize::new(0),
            payload_bytes: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            delivered: (0..=changes + 1).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    fn delivered(&self, change: usize) {
        if let Some(counter) = self.delivered.get(change) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One message after the first.
struct Message {
    at: Instant,
    /// The change number in a sync payload.
    marker: Option<usize>,
    /// The `etag` of an SSE event.
    etag: Option<String>,
}

/// What one subscriber saw.
struct Log {
    kind: Kind,
    /// The first message: the sync payload (with the change number it carried) or `: connected`.
    initial: Option<(Instant, Option<usize>)>,
    messages: Vec<Message>,
    error: Option<String>,
}

impl Log {
    fn new(kind: Kind) -> Log {
        Log {
            kind,
            initial: None,
            messages: Vec::new(),
            error: None,
        }
    }
}

async fn sync_subscriber(
    mut client: FlagSyncServiceClient<Channel>,
    id: usize,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
) -> Log {
    let mut log = Log::new(Kind::Sync);
    let request = SyncFlagsRequest {
        provider_id: format!("fanout-{id}"),
        selector: String::new(),
    };
    let opened = tokio::select! {
        opened = client.sync_flags(request) => opened,
        _ = stop.changed() => {
            log.error = Some("stopped before the stream opened".to_owned());
            return log;
        }
    };
    let mut stream = match opened {
        Ok(response) => response.into_inner(),
        Err(status) => {
            progress.failed.fetch_add(1, Ordering::Relaxed);
            log.error = Some(format!("SyncFlags: {} {}", status.code(), status.message()));
            return log;
        }
    };
    loop {
        let next = tokio::select! {
            biased;
            next = stream.message() => next,
            _ = stop.changed() => break,
        };
        let at = Instant::now();
        match next {
            Ok(Some(message)) => {
                let marker = find_marker(&message.flag_configuration);
                progress
                    .payload_bytes
                    .store(message.flag_configuration.len(), Ordering::Relaxed);
                if log.initial.is_none() {
                    log.initial = Some((at, marker));
                    progress.initial.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if let Some(change) = marker {
                    progress.delivered(change);
                }
                log.messages.push(Message {
                    at,
                    marker,
                    etag: None,
                });
            }
            Ok(None) => {
                progress.failed.fetch_add(1, Ordering::Relaxed);
                log.error = Some("the server ended the stream".to_owned());
                break;
            }
            Err(status) => {
                progress.failed.fetch_add(1, Ordering::Relaxed);
                log.error = Some(format!("stream: {} {}", status.code(), status.message()));
                break;
            }
        }
    }
    log
}

async fn sse_subscriber(
    port: u16,
    gate: Arc<Semaphore>,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
) -> Log {
    let mut log = Log::new(Kind::Sse);
    let opened = async {
        let _permit = gate.acquire().await?;
        let mut sender = http1_connect::<Empty<Bytes>>(port).await?;
        let request = hyper::Request::get("/ofrep/v1/events")
            .header(hyper::header::HOST, format!("{HOST}:{port}"))
            .header(hyper::header::ACCEPT, "text/event-stream")
            .body(Empty::new())?;
        let response = sender.send_request(request).await?;
        if response.status() != hyper::StatusCode::OK {
            bail!("status {}", response.status());
        }
        // Keep the sender: dropping it would not close the connection, but be explicit.
        Ok::<_, anyhow::Error>((sender, response.into_body()))
    };
    let opened = tokio::select! {
        opened = tokio::time::timeout(CONNECT_DEADLINE, opened) => opened,
        _ = stop.changed() => {
            log.error = Some("stopped before the stream opened".to_owned());
            return log;
        }
    };
    let (_sender, mut body) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(error)) => {
            progress.failed.fetch_add(1, Ordering::Relaxed);
            log.error = Some(format!("opening: {error:#}"));
            return log;
        }
        Err(_) => {
            progress.failed.fetch_add(1, Ordering::Relaxed);
            log.error = Some("opening timed out".to_owned());
            return log;
        }
    };
    let mut buffer: Vec<u8> = Vec::new();
    let mut data_events = 0usize;
    loop {
        let frame = tokio::select! {
            biased;
            frame = body.frame() => frame,
            _ = stop.changed() => break,
        };
        let at = Instant::now();
        let data = match frame {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
            Some(Err(error)) => {
                progress.failed.fetch_add(1, Ordering::Relaxed);
                log.error = Some(format!("reading: {error}"));
                break;
            }
            None => {
                progress.failed.fetch_add(1, Ordering::Relaxed);
                log.error = Some("the server ended the stream".to_owned());
                break;
            }
        };
        buffer.extend_from_slice(&data);
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = buffer.drain(..end + 2).collect();
            let mut data_line = None;
            let mut connected = false;
            for line in event.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if let Some(payload) = line.strip_prefix(b"data:") {
                    data_line = Some(payload.trim_ascii().to_vec());
                } else if line.starts_with(b": connected") {
                    connected = true;
                }
            }
            if connected && log.initial.is_none() {
                log.initial = Some((at, None));
                progress.initial.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(payload) = data_line {
                let parsed: Option<Value> = serde_json::from_slice(&payload).ok();
                let is_refetch = parsed
                    .as_ref()
                    .and_then(|v| v.get("type"))
                    .and_then(Value::as_str)
                    == Some("refetchEvaluation");
                let etag = parsed
                    .as_ref()
                    .and_then(|v| v.get("etag"))
                    .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned));
                if is_refetch {
                    data_events += 1;
                    progress.delivered(data_events);
                }
                log.messages.push(Message {
                    at,
                    marker: is_refetch.then_some(data_events),
                    etag,
                });
            }
        }
    }
    log
}

fn new_histogram() -> Histogram<u64> {
    // Nanoseconds, 1 ns to 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000_000, 3)
        .unwrap_or_else(|e| panic!("histogram bounds: {e}"))
}

fn ms(nanos: u64) -> f64 {
    (nanos as f64 / 1e6 * 1000.0).round() / 1000.0
}

fn summary(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"count": 0});
    }
    json!({
        "count": h.len(),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p90_ms": ms(h.value_at_quantile(0.90)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "p999_ms": ms(h.value_at_quantile(0.999)),
        "max_ms": ms(h.max()),
        "mean_ms": (h.mean() / 1e6 * 1000.0).round() / 1000.0,
    })
}

fn summary_line(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no deliveries".to_owned();
    }
    format!(
        "{} deliveries; ms p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  mean {:.2}",
        h.len(),
        h.value_at_quantile(0.50) as f64 / 1e6,
        h.value_at_quantile(0.90) as f64 / 1e6,
        h.value_at_quantile(0.99) as f64 / 1e6,
        h.value_at_quantile(0.999) as f64 / 1e6,
        h.max() as f64 / 1e6,
        h.mean() / 1e6
    )
}

/// Per kind: the latencies and what went wrong.
struct Outcome {
    latency: Histogram<u64>,
    missed: u64,
    duplicates: u64,
    unexpected: u64,
    failed_subscribers: u64,
    /// Per change, the latest delivery (ns after the rename).
    last_per_change: Vec<u64>,
    /// Changes whose SSE events carried more than one etag.
    etag_disagreements: u64,
    errors: BTreeMap<String, u64>,
}

fn analyse(kind: Kind, logs: &[Log], writes: &[Instant]) -> Outcome {
    let changes = writes.len();
    let mut out = Outcome {
        latency: new_histogram(),
        missed: 0,
        duplicates: 0,
        unexpected: 0,
        failed_subscribers: 0,
        last_per_change: vec![0; changes],
        etag_disagreements: 0,
        errors: BTreeMap::new(),
    };
    let mut etags: Vec<BTreeSet<String>> = vec![BTreeSet::new(); changes];
    for log in logs.iter().filter(|l| l.kind == kind) {
        if let Some(error) = &log.error {
            out.failed_subscribers += 1;
            // Group errors by their first words.
            let key: String = error.chars().take(60).collect();
            *out.errors.entry(key).or_default() += 1;
        }
        let mut seen = vec![false; changes];
        for message in &log.messages {
            // Which change this message answers: sync payloads name it; SSE events are
            // matched by arrival window (after its rename, before the next one).
            let change = match kind {
                Kind::Sync => message.marker.filter(|&m| (1..=changes).contains(&m)),
                Kind::Sse => message
                    .marker
                    .and_then(|_| writes.iter().rposition(|&w| w <= message.at))
                    .map(|i| i + 1),
            };
            let Some(change) = change else {
                out.unexpected += 1;
                continue;
            };
            let index = change - 1;
            let Some(latency) = message.at.checked_duration_since(writes[index]) else {
                out.unexpected += 1;
                continue;
            };
            if seen[index] {
                out.duplicates += 1;
                continue;
            }
            seen[index] = true;
            let nanos = (latency.as_nanos() as u64).max(1);
            out.latency.saturating_record(nanos);
            out.last_per_change[index] = out.last_per_change[index].max(nanos);
            if let Some(etag) = &message.etag {
                etags[index].insert(etag.clone());
            }
        }
        out.missed += seen.iter().filter(|s| !**s).count() as u64;
    }
    out.etag_disagreements = etags.iter().filter(|e| e.len() > 1).count() as u64;
    out
}

async fn open_channels(port: u16, count: usize) -> anyhow::Result<Vec<Channel>> {
    let endpoint = Endpoint::from_shared(format!("http://{HOST}:{port}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10));
    let mut channels = Vec::with_capacity(count);
    // A few connections at a time; each `connect` opens one HTTP/2 connection.
    for chunk in (0..count).collect::<Vec<_>>().chunks(CONNECTING_AT_ONCE) {
        let mut pending = Vec::new();
        for _ in chunk {
            let endpoint = endpoint.clone();
            pending.push(tokio::spawn(async move { endpoint.connect().await }));
        }
        for task in pending {
            channels.push(
                task.await?
                    .with_context(|| format!("HTTP/2 connection to {HOST}:{port}"))?,
            );
        }
    }
    Ok(channels)
}

async fn fanout(args: FanoutArgs) -> anyhow::Result<()> {
    let base = read_base(&args.base)?;
    let documents: Vec<String> = (0..=args.changes)
        .map(|k| document(&base, k))
        .collect::<anyhow::Result<_>>()?;
    let on_disk = std::fs::read_to_string(&args.flags_file)
        .with_context(|| format!("reading {}", args.flags_file.display()))?;
    if on_disk != documents[0] {
        bail!(
            "{} is not iteration 0 of {}; run `ensign-fanout init` first",
            args.flags_file.display(),
            args.base.display()
        );
    }
    let sampler = RssSampler::start(args.server_pid);
    let memory = || args.server_pid.and_then(server_memory);
    let rss_before = memory();

    let sync_progress = Arc::new(Progress::new(args.changes));
    let sse_progress = Arc::new(Progress::new(args.changes));
    let (stop_tx, stop_rx) = watch::channel(false);

    // Open everything.
    let opening = Instant::now();
    let channels = if args.sync_streams == 0 {
        Vec::new()
    } else {
        open_channels(args.sync_port, args.sync_connections).await?
    };
    let mut tasks = Vec::with_capacity(args.sync_streams + args.sse);
    for i in 0..args.sync_streams {
        let client = FlagSyncServiceClient::new(channels[i % channels.len()].clone())
            .max_decoding_message_size(64 << 20);
        tasks.push(tokio::spawn(sync_subscriber(
            client,
            i,
            Arc::clone(&sync_progress),
            stop_rx.clone(),
        )));
    }
    drop(channels);
    let gate = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    for _ in 0..args.sse {
        tasks.push(tokio::spawn(sse_subscriber(
            args.ofrep_port,
            Arc::clone(&gate),
            Arc::clone(&sse_progress),
            stop_rx.clone(),
        )));
    }
    let ready = loop {
        let sync_ready = sync_progress.initial.load(Ordering::Relaxed);
        let sse_ready = sse_progress.initial.load(Ordering::Relaxed);
        let failed = sync_progress.failed.load(Ordering::Relaxed)
            + sse_progress.failed.load(Ordering::Relaxed);
        if sync_ready == args.sync_streams && sse_ready == args.sse {
            break true;
        }
        if failed > 0 || opening.elapsed() > CONNECT_DEADLINE {
            eprintln!(
                "not every stream opened: sync {sync_ready}/{}, sse {sse_ready}/{}, {failed} failed",
                args.sync_streams, args.sse
            );
            break false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let open_s = opening.elapsed().as_secs_f64();
    println!(
        "opened {} sync streams over {} HTTP/2 connections and {} SSE streams (one HTTP/1.1 connection each) in {open_s:.2} s",
        args.sync_streams, args.sync_connections, args.sse
    );
    // Let the server settle, then read its gauges and memory.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let gauges = match args.management_port {
        Some(port) => match scrape_open_streams(port).await {
            Ok(g) => Some(g),
            Err(error) => {
                eprintln!("could not read /metrics: {error:#}");
                None
            }
        },
        None => None,
    };
    if let Some(g) = &gauges {
        println!("ensign_open_streams: {g:?}");
    }
    let payload_bytes = sync_progress.payload_bytes.load(Ordering::Relaxed);
    if args.sync_streams > 0 {
        println!("sync payload (flag_configuration): {payload_bytes} bytes");
    }
    let rss_connected = memory();
    let peak_connecting = sampler.take_peak();

    // The changes.
    let mut writes = Vec::with_capacity(args.changes);
    let mut all_in = Vec::with_capacity(args.changes);
    let cpu_window = CpuWindow::start(args.server_pid);
    let changes_start = Instant::now();
    if ready {
        for (k, text) in documents.iter().enumerate().skip(1) {
            let at = replace_file(&args.flags_file, text)?;
            writes.push(at);
            let next = at + args.gap;
            let mut complete = None;
            while Instant::now() < next {
                let sync_done = sync_progress.delivered[k].load(Ordering::Relaxed);
                let sse_done = sse_progress.delivered[k].load(Ordering::Relaxed);
                if complete.is_none() && sync_done >= args.sync_streams && sse_done >= args.sse {
                    complete = Some(at.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let sync_done = sync_progress.delivered[k].load(Ordering::Relaxed);
            let sse_done = sse_progress.delivered[k].load(Ordering::Relaxed);
            println!(
                "change {k:>3}: sync {sync_done}/{}, sse {sse_done}/{} within {:.0} ms{}",
                args.sync_streams,
                args.sse,
                args.gap.as_secs_f64() * 1000.0,
                match complete {
                    Some(d) => format!(" (all seen after ≤ {:.1} ms)", d.as_secs_f64() * 1000.0),
                    None => " (INCOMPLETE)".to_owned(),
                }
            );
            all_in.push(complete);
        }
    }
    let changes_s = changes_start.elapsed().as_secs_f64();
    let cpu = cpu_window.finish();
    let peak_changes = sampler.take_peak();
    let rss_after = memory();

    // Stop the subscribers and collect what they saw.
    let _ = stop_tx.send(true);
    let mut logs = Vec::with_capacity(tasks.len());
    let collect_by = Instant::now() + Duration::from_secs(15);
    let mut unfinished = 0;
    for task in tasks {
        let left = collect_by.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, task).await {
            Ok(Ok(log)) => logs.push(log),
            Ok(Err(error)) => bail!("a subscriber task failed: {error}"),
            Err(_) => unfinished += 1,
        }
    }
    drop(sampler);

    let wrong_initial = logs
        .iter()
        .filter(|l| l.kind == Kind::Sync)
        .filter(|l| matches!(l.initial, Some((_, m)) if m != Some(0)))
        .count();
    let sync = analyse(Kind::Sync, &logs, &writes);
    let sse = analyse(Kind::Sse, &logs, &writes);
    let mut both = new_histogram();
    both.add(&sync.latency)?;
    both.add(&sse.latency)?;
    let incomplete = all_in.iter().filter(|c| c.is_none()).count();
    let slowest_change = sync
        .last_per_change
        .iter()
        .zip(&sse.last_per_change)
        .map(|(a, b)| *a.max(b))
        .max()
        .unwrap_or(0);

    println!();
    println!(
        "{}: {} sync streams / {} HTTP/2 connections, {} SSE streams; {} changes {:.0} ms apart",
        args.label,
        args.sync_streams,
        args.sync_connections,
        args.sse,
        writes.len(),
        args.gap.as_secs_f64() * 1000.0
    );
    for (name, outcome) in [("sync", &sync), ("sse", &sse)] {
        println!(
            "{name:>4}: {}; missed {}, duplicates {}, unexpected {}, failed subscribers {}{}",
            summary_line(&outcome.latency),
            outcome.missed,
            outcome.duplicates,
            outcome.unexpected,
            outcome.failed_subscribers,
            if outcome.errors.is_empty() {
                String::new()
            } else {
                format!(" {:?}", outcome.errors)
            }
        );
    }
    println!(" all: {}", summary_line(&both));
    println!(
        "slowest change reached its last subscriber after {:.1} ms; SSE etag disagreements: {}; sync first payloads without change 0: {wrong_initial}; subscriber tasks not finished: {unfinished}",
        slowest_change as f64 / 1e6,
        sse.etag_disagreements
    );
    let fmt_mem = |m: Option<(u64, u64)>| match m {
        Some((rss, hwm)) => format!("VmRSS {:.1} MB (VmHWM {:.1} MB)", mb(rss), mb(hwm)),
        None => "n/a".to_owned(),
    };
    println!(
        "server memory: before {}; connected {}; after the changes {}; sampled peak while connecting {:.1} MB, during the changes {:.1} MB",
        fmt_mem(rss_before),
        fmt_mem(rss_connected),
        fmt_mem(rss_after),
        mb(peak_connecting),
        mb(peak_changes)
    );
    println!("during the changes: {}", cpu_line(&cpu));
    if let (Some(server), Some(own)) = (
        cpu["server_cpu_s"].as_f64(),
        cpu["generator_cpu_s"].as_f64(),
    ) {
        let n = writes.len().max(1) as f64;
        println!(
            "CPU per change: server {:.1} ms, generator {:.1} ms",
            server * 1000.0 / n,
            own * 1000.0 / n
        );
    }
    let kind_json = |o: &Outcome| {
        let mut v = summary(&o.latency);
        v["missed"] = json!(o.missed);
        v["duplicates"] = json!(o.duplicates);
        v["unexpected"] = json!(o.unexpected);
        v["failed_subscribers"] = json!(o.failed_subscribers);
        v["errors"] = json!(o.errors);
        v
    };
    let hwm_kb = rss_after.map(|(_, h)| h);
    let line = json!({
        "mode": "fanout",
        "label": args.label,
        "sync_streams": args.sync_streams,
        "sync_connections": args.sync_connections,
        "sse_streams": args.sse,
        "changes": writes.len(),
        "gap_ms": args.gap.as_millis() as u64,
        "ready": ready,
        "open_s": (open_s * 100.0).round() / 100.0,
        "open_streams_gauge": gauges,
        "sync_payload_bytes": payload_bytes,
        "sync": kind_json(&sync),
        "sse": kind_json(&sse),
        "all": summary(&both),
        "missed_total": sync.missed + sse.missed,
        "incomplete_changes": incomplete,
        "slowest_change_ms": ms(slowest_change),
        "sse_etag_disagreements": sse.etag_disagreements,
        "wrong_initial_payloads": wrong_initial,
        "unfinished_subscribers": unfinished,
        "rss_before_mb": rss_before.map(|(r, _)| mb(r)),
        "rss_connected_mb": rss_connected.map(|(r, _)| mb(r)),
        "rss_after_mb": rss_after.map(|(r, _)| mb(r)),
        "rss_peak_sampled_connecting_mb": mb(peak_connecting),
        "rss_peak_sampled_changes_mb": mb(peak_changes),
        "vmhwm_mb": hwm_kb.map(mb),
        "cpu_during_changes": cpu,
        "changes_wall_s": (changes_s * 100.0).round() / 100.0,
    });
    println!("{line}");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// OFREP evaluation

/// Context `i` of the shared benchmark contexts, as an OFREP request body.
fn ofrep_body(i: usize) -> Bytes {
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
    let context = json!({
        "targetingKey": format!("user-{i}"),
        "email": format!("user-{i}@{}", DOMAINS[i % 7]),
        "country": COUNTRIES[i % 8],
        "plan": if i % 6 == 5 { "free" } else { "pro" },
        "age": 17 + 6 * (i % 9),
        "appVersion": format!("2.{}.{}", i % 11, i % 13),
    });
    Bytes::from(json!({ "context": context }).to_string())
}

struct Tally {
    latency: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<&'static str, u64>,
    warmup: u64,
    warmup_errors: u64,
    trues: u64,
    reasons: BTreeMap<String, u64>,
    reconnects: u64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency: new_histogram(),
            ok: 0,
            errors: BTreeMap::new(),
            warmup: 0,
            warmup_errors: 0,
            trues: 0,
            reasons: BTreeMap::new(),
            reconnects: 0,
        }
    }

    fn add(&mut self, other: Tally) {
        self.latency
            .add(&other.latency)
            .unwrap_or_else(|e| panic!("histogram add: {e}"));
        self.ok += other.ok;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.warmup += other.warmup;
        self.warmup_errors += other.warmup_errors;
        self.trues += other.trues;
        for (k, v) in other.reasons {
            *self.reasons.entry(k).or_default() += v;
        }
        self.reconnects += other.reconnects;
    }
}

/// The answer to one evaluation: the value and reason, or an error kind.
async fn evaluate(
    sender: &mut Sender<Full<Bytes>>,
    path: &str,
    authority: &str,
    body: Bytes,
) -> Result<(bool, String), &'static str> {
    sender.ready().await.map_err(|_| "transport")?;
    let request = hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|_| "request")?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|_| "transport")?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|_| "transport")?
        .to_bytes();
    if status != hyper::StatusCode::OK {
        return Err("http_status");
    }
    let answer: Value = serde_json::from_slice(&body).map_err(|_| "bad_body")?;
    let value = answer
        .get("value")
        .and_then(Value::as_bool)
        .ok_or("no_boolean_value")?;
    let reason = answer
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    Ok((value, reason))
}

async fn ofrep_worker(
    port: u16,
    mut sender: Sender<Full<Bytes>>,
    path: Arc<str>,
    bodies: Arc<Vec<Bytes>>,
    first: usize,
    window: (Instant, Instant),
    timeout: Duration,
) -> Tally {
    let (start, end) = window;
    let authority = format!("{HOST}:{port}");
    let mut tally = Tally::new();
    let mut healthy = true;
    let mut n = first;
    loop {
        if Instant::now() >= end {
            break;
        }
        if !healthy {
            match http1_connect::<Full<Bytes>>(port).await {
                Ok(s) => {
                    sender = s;
                    healthy = true;
                    tally.reconnects += 1;
                }
                Err(_) => {
                    *tally.errors.entry("connect").or_default() += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        let body = bodies[n % CONTEXTS].clone();
        n += 1;
        let sent = Instant::now();
        let answer = tokio::time::timeout(timeout, evaluate(&mut sender, &path, &authority, body))
            .await
            .unwrap_or(Err("timeout"));
        let done = Instant::now();
        if matches!(answer, Err("transport" | "timeout")) {
            healthy = false;
        }
        if sent < start {
            tally.warmup += 1;
            tally.warmup_errors += u64::from(answer.is_err());
            continue;
        }
        if done > end {
            continue; // straddles the end: not counted
        }
        match answer {
            Ok((value, reason)) => {
                tally
                    .latency
                    .saturating_record(((done - sent).as_nanos() as u64).max(1));
                tally.ok += 1;
                tally.trues += u64::from(value);
                match tally.reasons.get_mut(&reason) {
                    Some(count) => *count += 1,
                    None => {
                        tally.reasons.insert(reason, 1);
                    }
                }
            }
            Err(kind) => *tally.errors.entry(kind).or_default() += 1,
        }
    }
    tally
}

async fn ofrep(args: OfrepArgs, threads: usize) -> anyhow::Result<()> {
    let bodies: Arc<Vec<Bytes>> = Arc::new((0..CONTEXTS).map(ofrep_body).collect());
    let path: Arc<str> = Arc::from(format!("/ofrep/v1/evaluate/flags/{}", args.flag).as_str());
    let mut senders = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        senders.push(
            http1_connect::<Full<Bytes>>(args.ofrep_port)
                .await
                .with_context(|| format!("HTTP/1.1 connection to {HOST}:{}", args.ofrep_port))?,
        );
    }
    let sampler = RssSampler::start(args.server_pid);
    let begin = Instant::now();
    let start = begin + args.warmup;
    let end = start + args.duration;
    let stride = CONTEXTS / args.connections.max(1);
    let mut tasks = Vec::with_capacity(args.connections);
    for (c, sender) in senders.into_iter().enumerate() {
        tasks.push(tokio::spawn(ofrep_worker(
            args.ofrep_port,
            sender,
            Arc::clone(&path),
            Arc::clone(&bodies),
            c * stride,
            (start, end),
            args.timeout,
        )));
    }
    // CPU of the measured window only.
    tokio::time::sleep_until(start.into()).await;
    let cpu_window = CpuWindow::start(args.server_pid);
    let _ = sampler.take_peak();
    tokio::time::sleep_until(end.into()).await;
    let cpu = cpu_window.finish();
    let peak = sampler.take_peak();
    let mut total = Tally::new();
    let mut unfinished = 0u64;
    let deadline = end + args.timeout + Duration::from_secs(5);
    for task in tasks {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, task).await {
            Ok(Ok(tally)) => total.add(tally),
            Ok(Err(error)) => bail!("a connection task failed: {error}"),
            Err(_) => unfinished += 1,
        }
    }
    if unfinished > 0 {
        *total.errors.entry("unfinished_connection").or_default() += unfinished;
    }
    let memory = args.server_pid.and_then(server_memory);
    let seconds = args.duration.as_secs_f64();
    let throughput = total.ok as f64 / seconds;
    let errors: u64 = total.errors.values().sum();
    let h = &total.latency;
    println!(
        "OFREP POST {path}: {} HTTP/1.1 keep-alive connections, 1 request in flight each, {threads} generator threads",
        args.connections
    );
    println!(
        "warm-up {:.1} s ({} requests, {} errors); measured {seconds:.1} s",
        args.warmup.as_secs_f64(),
        total.warmup,
        total.warmup_errors
    );
    println!(
        "evaluations {}  throughput {throughput:.0}/s  errors {errors}{}",
        total.ok,
        if errors > 0 {
            format!(" {:?}", total.errors)
        } else {
            String::new()
        }
    );
    println!("latency: {}", summary_line(h));
    println!(
        "answers: {} true, {} false; reasons {:?}; reconnects {}",
        total.trues,
        total.ok - total.trues,
        total.reasons,
        total.reconnects
    );
    println!("measured window: {}", cpu_line(&cpu));
    if let Some((rss, hwm)) = memory {
        println!(
            "server memory: VmRSS {:.1} MB after, sampled peak {:.1} MB, VmHWM {:.1} MB",
            mb(rss),
            mb(peak),
            mb(hwm)
        );
    }
    let mut line = summary(h);
    line["mode"] = json!("ofrep");
    line["flag"] = json!(args.flag);
    line["connections"] = json!(args.connections);
    line["threads"] = json!(threads);
    line["warmup_s"] = json!(args.warmup.as_secs_f64());
    line["duration_s"] = json!(seconds);
    line["throughput_per_s"] = json!((throughput * 10.0).round() / 10.0);
    line["errors"] = json!(errors);
    line["error_kinds"] = json!(total.errors);
    line["warmup_requests"] = json!(total.warmup);
    line["true_values"] = json!(total.trues);
    line["reasons"] = json!(total.reasons);
    line["reconnects"] = json!(total.reconnects);
    line["server_cores"] = cpu["server_cores"].clone();
    line["generator_cores"] = cpu["generator_cores"].clone();
    line["other_cores"] = cpu["other_cores"].clone();
    line["cpu"] = cpu;
    line["rss_peak_sampled_mb"] = json!(mb(peak));
    line["vmhwm_mb"] = json!(memory.map(|(_, h)| mb(h)));
    println!("{line}");
    Ok(())
}

// ---------------------------------------------------------------------------------------

fn main() -> anyhow::Result<()> {
    let mut argv = std::env::args().skip(1);
    let mode = argv.next().ok_or_else(|| anyhow!("{USAGE}"))?;
    let mut o = Options::parse(argv)?;
    let threads: usize = o.number("threads", 2)?;
    if threads == 0 {
        bail!("--threads must be at least 1");
    }
    let server_pid = o.take("server-pid").map(|p| p.parse()).transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    match mode.as_str() {
        "init" => {
            let flags_file = PathBuf::from(o.required("flags-file")?);
            let base = read_base(Path::new(&o.required("base")?))?;
            o.finish()?;
            std::fs::write(&flags_file, document(&base, 0)?)
                .with_context(|| format!("writing {}", flags_file.display()))?;
            Ok(())
        }
        "fanout" => {
            let args = FanoutArgs {
                flags_file: PathBuf::from(o.required("flags-file")?),
                base: PathBuf::from(o.required("base")?),
                sync_port: o.required("sync-port")?.parse().context("--sync-port")?,
                ofrep_port: o.required("ofrep-port")?.parse().context("--ofrep-port")?,
                management_port: o
                    .take("management-port")
                    .map(|p| p.parse())
                    .transpose()
                    .context("--management-port")?,
                server_pid,
                sync_streams: o.number("sync-streams", 1000)?,
                sync_connections: o.number("sync-connections", 50)?,
                sse: o.number("sse", 1000)?,
                changes: o.number("changes", 20)?,
                gap: o.duration("gap", Duration::from_secs(1))?,
                label: o.take("label").unwrap_or_else(|| "fanout".to_owned()),
            };
            o.finish()?;
            if args.sync_streams > 0
                && (args.sync_connections == 0 || args.sync_connections > args.sync_streams)
            {
                bail!("--sync-connections must be 1 to --sync-streams");
            }
            if args.sync_streams + args.sse == 0 {
                bail!("nothing to measure: --sync-streams and --sse are both 0");
            }
            if args.sync_streams > 20_000 || args.sse > 20_000 {
                bail!("at most 20,000 streams of each kind");
            }
            if !(1..=999_999).contains(&args.changes)
                || args.gap < Duration::from_millis(100)
                || args.gap * args.changes as u32 > MAX_RUN
            {
                bail!(
                    "--changes must be at least 1, --gap at least 100ms, and --changes x --gap at most {MAX_RUN:?}"
                );
            }
            runtime.block_on(fanout(args))
        }
        "ofrep" => {
            let args = OfrepArgs {
                ofrep_port: o.required("ofrep-port")?.parse().context("--ofrep-port")?,
                server_pid,
                connections: o.number("connections", 64)?,
                warmup: o.duration("warmup", Duration::from_secs(3))?,
                duration: o.duration("duration", Duration::from_secs(20))?,
                flag: o.take("flag").unwrap_or_else(|| "ofrep-flag".to_owned()),
                timeout: o.duration("timeout", Duration::from_secs(5))?,
            };
            o.finish()?;
            if !(1..=1024).contains(&args.connections) {
                bail!("--connections must be 1 to 1024");
            }
            if args.duration.is_zero() || args.warmup + args.duration > MAX_RUN {
                bail!("--duration must be above 0 and --warmup + --duration at most {MAX_RUN:?}");
            }
            if args.timeout.is_zero() || args.timeout > Duration::from_secs(60) {
                bail!("--timeout must be above 0 and at most 60s");
            }
            runtime.block_on(ofrep(args, threads))
        }
        _ => bail!("unknown mode {mode:?}\n{USAGE}"),
    }
}
