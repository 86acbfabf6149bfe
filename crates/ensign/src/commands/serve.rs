//! `ensign serve`: the flagd-compatible server. Flags come from `--uri`
//! sources; the evaluation API listens on `--port`, health, readiness and
//! metrics on `--management-port`.
//!
//! Secrets and transport: every shared secret (`ENSIGN_ADMIN_TOKEN`, the
//! Alertmanager token, the port tokens) needs 32 characters or the command
//! fails before binding; `-c/-k` put every port but management on TLS; the
//! admin port binds `--admin-bind` (127.0.0.1 by default), the others
//! `--bind` (0.0.0.0).
//!
//! Shutdown on SIGTERM or SIGINT: readiness fails first, then the listeners
//! close, event streams get `provider_shutdown`, and in-flight requests have
//! `--drain-timeout` to finish; the exit code is 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use ensign_engine::{EvaluationOptions, FractionalGeneration, Limits};
use ensign_flagd::{ContextRules, FlagdConfig, FlagdState};
use ensign_management::ManagementState;
use ensign_metrics::Metrics;
use ensign_sources::SourceSpec;
use ensign_store::Store;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Options of `ensign serve` (flagd's spellings where flagd has the option).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port of the evaluation API (gRPC, gRPC-Web, Connect).
    #[arg(short = 'p', long, env = "ENSIGN_PORT", default_value_t = 8013)]
    port: u16,
    /// Port of /healthz, /readyz, /metrics and gRPC health.
    #[arg(
        short = 'm',
        long,
        env = "ENSIGN_MANAGEMENT_PORT",
        default_value_t = 8014
    )]
    management_port: u16,
    /// Port of the flagd sync service for in-process providers.
    #[arg(short = 'g', long, env = "ENSIGN_SYNC_PORT", default_value_t = 8015)]
    sync_port: u16,
    /// Port of OFREP (OpenFeature Remote Evaluation Protocol).
    #[arg(short = 'r', long, env = "ENSIGN_OFREP_PORT", default_value_t = 8016)]
    ofrep_port: u16,
    /// Tokens OFREP clients must present (`Authorization: Bearer` or
    /// `X-API-Key`; the event stream also takes the stream key the bulk answer
    /// advertises); at least 32 characters each.
    #[arg(
        long = "ofrep-auth-token",
        env = "ENSIGN_OFREP_AUTH_TOKEN",
        value_delimiter = ',',
        hide_env_values = true
    )]
    ofrep_tokens: Vec<String>,
    /// Tokens clients of the evaluation port must send as `Authorization:
    /// Bearer` (gRPC metadata `authorization`); at least 32 characters each.
    /// Default: none (as flagd).
    #[arg(
        long = "evaluation-auth-token",
        env = "ENSIGN_EVALUATION_AUTH_TOKEN",
        value_delimiter = ',',
        hide_env_values = true
    )]
    evaluation_tokens: Vec<String>,
    /// Tokens in-process providers must send to the sync port as
    /// `authorization: Bearer` metadata; at least 32 characters each.
    /// Default: none (as flagd).
    #[arg(
        long = "sync-auth-token",
        env = "ENSIGN_SYNC_AUTH_TOKEN",
        value_delimiter = ',',
        hide_env_values = true
    )]
    sync_tokens: Vec<String>,
    /// Answer the deprecated sync `GetMetadata` with UNIMPLEMENTED.
    #[arg(long, env = "ENSIGN_DISABLE_SYNC_METADATA")]
    disable_sync_metadata: bool,
    /// The database: `sqlite://PATH` (created when missing) or `postgres://…`.
    #[arg(
        long,
        env = "ENSIGN_DATABASE_URL",
        default_value = "sqlite://ensign.db",
        hide_env_values = true
    )]
    database_url: String,
    /// Serve flags from files only, without a database.
    #[arg(long, env = "ENSIGN_NO_DATABASE", conflicts_with = "database_url")]
    no_database: bool,
    /// Port of the admin REST API and web UI (needs the database).
    #[arg(long, env = "ENSIGN_ADMIN_PORT", default_value_t = 8080)]
    admin_port: u16,
    /// Address the admin port binds: loopback by default, since it takes
    /// tokens and passwords; `0.0.0.0` to reach it from other hosts or from
    /// outside a container (with -c/-k for TLS).
    #[arg(long, env = "ENSIGN_ADMIN_BIND", default_value = "127.0.0.1")]
    admin_bind: std::net::IpAddr,
    /// The shared secret Alertmanager sends to the kill-switch webhook
    /// (`Authorization: Bearer` or Basic), at least 32 characters; receivers
    /// created in the API have their own.
    #[arg(long, env = "ENSIGN_ALERTMANAGER_TOKEN", hide_env_values = true)]
    alertmanager_token: Option<String>,
    /// The environment whose flags this process serves.
    #[arg(long, env = "ENSIGN_ENVIRONMENT", default_value = "production")]
    environment: String,
    /// Address the evaluation, sync, OFREP and management ports bind (the
    /// admin port has --admin-bind).
    #[arg(long, env = "ENSIGN_BIND", default_value = "0.0.0.0")]
    bind: std::net::IpAddr,
    /// A flag source, `file:PATH` (JSON or YAML); repeat for more, later ones win.
    #[arg(short = 'f', long = "uri", env = "ENSIGN_URI", value_delimiter = ',')]
    uris: Vec<String>,
    /// Static context `key=value` added to every evaluation.
    #[arg(
        short = 'X',
        long = "context-value",
        env = "ENSIGN_CONTEXT_VALUE",
        value_delimiter = ','
    )]
    context_values: Vec<String>,
    /// A request header to copy into the context, `Header=key`.
    #[arg(
        short = 'H',
        long = "context-from-header",
        env = "ENSIGN_CONTEXT_FROM_HEADER",
        value_delimiter = ','
    )]
    context_from_headers: Vec<String>,
    /// Origins browsers may call from (CORS); `*` for any.
    #[arg(
        short = 'C',
        long = "cors-origin",
        env = "ENSIGN_CORS_ORIGIN",
        value_delimiter = ','
    )]
    cors_origins: Vec<String>,
    /// The largest request body, in bytes.
    #[arg(
        short = 'B',
        long,
        env = "ENSIGN_MAX_REQUEST_BODY",
        default_value_t = 1_000_000
    )]
    max_request_body: usize,
    /// The largest flag file (`--uri`) served, in bytes: a larger file is
    /// refused by its length, unread, like any invalid update (logged,
    /// counted in `ensign_source_errors_total`, the last good flags kept).
    #[arg(
        long,
        env = "ENSIGN_MAX_FLAG_DOCUMENT_BYTES",
        default_value_t = ensign_sources::DEFAULT_MAX_DOCUMENT_BYTES,
        value_parser = clap::value_parser!(usize)
    )]
    max_flag_document_bytes: usize,
    /// End event streams after this long (`0`: never), e.g. `10m`.
    #[arg(long, env = "ENSIGN_STREAM_DEADLINE", default_value = "0", value_parser = parse_duration)]
    stream_deadline: Duration,
    /// TLS certificate (PEM) of every port but management: evaluation, sync,
    /// OFREP and admin (API and web UI).
    #[arg(
        short = 'c',
        long,
        env = "ENSIGN_SERVER_CERT_PATH",
        requires = "server_key_path"
    )]
    server_cert_path: Option<PathBuf>,
    /// TLS private key (PEM) of the certificate of --server-cert-path.
    #[arg(
        short = 'k',
        long,
        env = "ENSIGN_SERVER_KEY_PATH",
        requires = "server_cert_path"
    )]
    server_key_path: Option<PathBuf>,
    /// The `fractional` bucketing generation.
    #[arg(long, env = "ENSIGN_FRACTIONAL", default_value = "v3", value_parser = parse_generation)]
    fractional: FractionalGeneration,
    /// How long in-flight requests may take to finish at shutdown.
    #[arg(long, env = "ENSIGN_DRAIN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// How long a client may take to send a request's headers (from connect,
    /// TLS included, or from the first byte of its next request) before the
    /// connection is dropped, on every port (`0`: unbounded).
    #[arg(long, env = "ENSIGN_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    header_read_timeout: Duration,
    /// How long a connection may stay open with no request or stream in
    /// flight before it is closed (HTTP/2: GOAWAY), on every port (`0`: never).
    #[arg(long, env = "ENSIGN_IDLE_TIMEOUT", default_value = "120s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// The most connections each port keeps open; more are closed on accept.
    /// Lowered at start when the open-files limit cannot hold every port's.
    #[arg(long, env = "ENSIGN_MAX_CONNECTIONS", default_value_t = ensign_http::ListenerLimits::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// The most event streams each kind keeps open (OFREP SSE, EventStream
    /// over every transport, SyncFlags); more are refused (503 / RESOURCE_EXHAUSTED).
    #[arg(long, env = "ENSIGN_MAX_STREAMS", default_value_t = ensign_http::DEFAULT_MAX_STREAMS)]
    max_streams: usize,
    /// Worker threads of the async runtime (default: one per CPU). On a host
    /// shared with other busy processes, fewer workers shorten latency tails.
    #[arg(long, env = "ENSIGN_WORKERS")]
    workers: Option<usize>,
    /// An SLO spec file (Sloth prometheus/v1, YAML or JSON), read at start and
    /// served read-only by the admin API; repeat for more.
    #[arg(
        long = "slo",
        env = "ENSIGN_SLO",
        value_delimiter = ',',
        value_name = "FILE"
    )]
    slo_files: Vec<String>,
    /// The Prometheus SLO statuses are read from, `http://HOST:PORT[/PREFIX]`.
    #[arg(long, env = "ENSIGN_PROMETHEUS_URL", value_name = "URL")]
    prometheus_url: Option<String>,
    /// How long one SLO status query to Prometheus may take.
    #[arg(long, env = "ENSIGN_PROMETHEUS_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    prometheus_timeout: Duration,
    /// The `--window-scale` the SLO rules in that Prometheus were generated
    /// with (reported by the SLO status).
    #[arg(long, env = "ENSIGN_SLO_WINDOW_SCALE", default_value = "1", value_parser = ensign_slo::WindowScale::parse)]
    slo_window_scale: ensign_slo::WindowScale,
    /// Log format: `console` or `json`.
    #[arg(short = 'z', long, env = "ENSIGN_LOG_FORMAT", default_value = "console", value_parser = ["console", "json"])]
    log_format: String,
}

fn parse_generation(text: &str) -> Result<FractionalGeneration, String> {
    FractionalGeneration::parse(text).ok_or_else(|| "expected v2 or v3".to_owned())
}

/// A Go-style duration: `0`, `250ms`, `30s`, `10m`, `1h30m`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(digits);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("invalid duration \"{text}\": expected e.g. 30s, 10m, 1h"))?;
        let unit_length = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_length);
        total += match unit {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number * 60),
            "h" => Duration::from_secs(number * 3600),
            _ => {
                return Err(format!(
                    "invalid duration unit \"{unit}\" in \"{text}\": use ms, s, m or h"
                ));
            }
        };
        rest = tail;
    }
    Ok(total)
}

fn parse_context(args: &ServeArgs) -> anyhow::Result<ContextRules> {
    let mut rules = ContextRules::default();
    for pair in &args.context_values {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("--context-value \"{pair}\": expected key=value");
        };
        rules
            .static_values
            .insert(key.to_owned(), Value::from(value));
    }
    for pair in &args.context_from_headers {
        let Some((header, key)) = pair.split_once('=') else {
            bail!("--context-from-header \"{pair}\": expected Header=key");
        };
        let header = http::HeaderName::try_from(header.to_ascii_lowercase())
            .with_context(|| format!("--context-from-header: \"{header}\" is not a header name"))?;
        rules.from_headers.push((header, key.to_owned()));
    }
    Ok(rules)
}

/// The SLO files and the Prometheus of `--slo`, `--prometheus-url` and
/// `--slo-window-scale`.
fn slo_settings(args: &ServeArgs) -> anyhow::Result<ensign_admin::SloSettings> {
    let prometheus = args
        .prometheus_url
        .as_deref()
        .map(|url| ensign_admin::prometheus::PrometheusClient::new(url, args.prometheus_timeout))
        .transpose()
        .map_err(|error| anyhow::anyhow!("--prometheus-url: {error}"))?;
    if args.no_database && (!args.slo_files.is_empty() || prometheus.is_some()) {
        tracing::warn!(
            "--slo and --prometheus-url serve the admin API, which --no-database turns off"
        );
    }
    Ok(ensign_admin::SloSettings {
        files: super::slo::load_slo_files(&args.slo_files)?,
        prometheus,
        window_scale: args.slo_window_scale,
    })
}

/// Refuses shared secrets shorter than `ensign_http::MIN_SECRET_LENGTH`:
/// the bootstrap admin token, the Alertmanager token and the port tokens.
fn check_secrets(args: &ServeArgs, bootstrap: Option<&str>) -> anyhow::Result<()> {
    let lists = [
        ("--ofrep-auth-token", &args.ofrep_tokens),
        ("--evaluation-auth-token", &args.evaluation_tokens),
        ("--sync-auth-token", &args.sync_tokens),
    ];
    let singles = [
        ("ENSIGN_ADMIN_TOKEN", bootstrap),
        ("--alertmanager-token", args.alertmanager_token.as_deref()),
    ];
    let secrets = lists
        .iter()
        .flat_map(|(option, tokens)| tokens.iter().map(move |token| (*option, token.as_str())))
        .chain(
            singles
                .into_iter()
                .filter_map(|(option, secret)| Some((option, secret?))),
        )
        // An empty secret means "none" (as before); a list's empty items are dropped.
        .filter(|(_, secret)| !secret.trim().is_empty());
    for (option, secret) in secrets {
        ensign_http::check_secret_strength(option, secret).map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ENSIGN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Runs the command.
pub fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging(&args.log_format);
    // The bootstrap admin token comes only from the environment, never a flag.
    let bootstrap = std::env::var("ENSIGN_ADMIN_TOKEN").ok();
    check_secrets(args, bootstrap.as_deref())?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = args.workers {
        runtime.worker_threads(workers.max(1));
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args, bootstrap))?;
    Ok(ExitCode::SUCCESS)
}

/// The connection limits of every port, from `--header-read-timeout`,
/// `--idle-timeout` and `--max-connections`, fitted into the open-files limit
/// (raised to its hard limit first) for `listeners` ports.
fn listener_limits(args: &ServeArgs, listeners: usize) -> ensign_http::ListenerLimits {
    let nonzero = |duration: Duration| (!duration.is_zero()).then_some(duration);
    ensign_http::ListenerLimits {
        header_read_timeout: nonzero(args.header_read_timeout),
        idle_timeout: nonzero(args.idle_timeout),
        max_connections: args.max_connections.max(1),
    }
    .fit_open_files(listeners, ensign_http::raise_open_files_limit())
}

async fn bind(address: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("binding the {what} port {address}"))
}

async fn serve(args: &ServeArgs, bootstrap: Option<String>) -> anyhow::Result<()> {
    let specs = args
        .uris
        .iter()
        .map(|uri| {
            uri.parse::<SourceSpec>()
                .with_context(|| format!("--uri {uri}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let config = FlagdConfig {
        context: parse_context(args)?,
        max_request_body: args.max_request_body,
        stream_deadline: (!args.stream_deadline.is_zero()).then_some(args.stream_deadline),
        cors_origins: args.cors_origins.clone(),
        max_streams: args.max_streams,
        tokens: args.evaluation_tokens.clone(),
        ..FlagdConfig::default()
    };
    let tls = match (&args.server_cert_path, &args.server_key_path) {
        (Some(cert), Some(key)) => Some(ensign_http::tls_acceptor(cert, key)?),
        _ => None,
    };
    let slo_settings = slo_settings(args)?;
    let evaluation_listener = bind((args.bind, args.port).into(), "evaluation").await?;
    let management_listener = bind((args.bind, args.management_port).into(), "management").await?;
    let sync_listener = bind((args.bind, args.sync_port).into(), "sync").await?;
    let admin_listener = if args.no_database {
        None
    } else {
        if tls.is_none() && !args.admin_bind.is_loopback() {
            tracing::warn!(
                admin_bind = %args.admin_bind,
                "the admin port is reachable from other hosts without TLS: tokens, passwords and \
                 session cookies cross the network in clear text (give -c/-k)"
            );
        }
        Some(bind((args.admin_bind, args.admin_port).into(), "admin").await?)
    };
    let ofrep_listener = bind((args.bind, args.ofrep_port).into(), "OFREP").await?;
    let limits = listener_limits(args, if args.no_database { 4 } else { 5 });

    let metrics = Arc::new(Metrics::new());
    // Every port listens the same way; only names and HTTP/2 settings differ.
    let listener = |name: &'static str| ensign_http::ListenerConfig {
        limits,
        drain: args.drain_timeout,
        ..ensign_http::ListenerConfig::new(name, Arc::clone(&metrics))
    };
    let options = EvaluationOptions {
        fractional: args.fractional,
    };
    let storage = if args.no_database {
        None
    } else {
        let storage = ensign_storage::Storage::connect(&args.database_url)
            .await
            .context("connecting to the database")?;
        storage
            .migrate()
            .await
            .context("applying database migrations")?;
        Some(storage)
    };
    // The database has the lowest priority: file sources given with --uri
    // override it, later files overriding earlier ones.
    let slots = storage
        .iter()
        .map(|_| ensign_sources::DATABASE_SOURCE.to_owned())
        .chain(specs.iter().map(|spec| spec.name().to_owned()));
    let store = Arc::new(Store::new(slots, options, Arc::clone(&metrics)));
    if specs.is_empty() && storage.is_none() {
        tracing::warn!("no flag sources (--uri file:flags.json) and no database; serving no flags");
    }
    let shutdown = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    if let (Some(storage), Some(admin_listener)) = (&storage, admin_listener) {
        let state = ensign_admin::AdminState::new(storage.clone(), bootstrap)
            .with_alertmanager_token(args.alertmanager_token.clone())
            .with_default_environment(args.environment.clone())
            .with_metrics(Arc::clone(&metrics))
            .with_slos(slo_settings)
            .with_evaluation(options);
        // The web UI shares the admin port: its assets at `/`, the API under `/api/v1`.
        let admin = ensign_admin::router(state).merge(ensign_ui::router());
        tasks.spawn(ensign_http::serve(
            admin_listener,
            tls.clone(),
            admin,
            listener("admin"),
            shutdown.clone(),
        ));
    }
    if let Some(storage) = &storage {
        tasks.spawn(ensign_admin::run_due_restores(
            storage.clone(),
            Arc::clone(&metrics),
            shutdown.clone(),
        ));
        tasks.spawn(ensign_sources::run_database_source(
            storage.clone(),
            args.database_url.clone(),
            args.environment.clone(),
            Arc::clone(&store),
            shutdown.clone(),
        ));
    }
    let file_limits = Limits {
        max_document_bytes: args.max_flag_document_bytes,
        ..Limits::default()
    };
    for spec in specs {
        tasks.spawn(ensign_sources::run_file_source(
            spec,
            file_limits,
            Arc::clone(&store),
            shutdown.clone(),
        ));
    }
    let management = ManagementState::new(Arc::clone(&store));
    {
        let (management, shutdown) = (management.clone(), shutdown.clone());
        tasks.spawn(async move {
            if let Err(error) =
                ensign_management::serve(management_listener, management, limits, shutdown).await
            {
                tracing::error!(%error, "management port failed");
            }
        });
    }
    let sync = ensign_sync::SyncService::new(
        Arc::clone(&store),
        ensign_sync::SyncConfig {
            static_context: config.context.static_values.clone(),
            disable_metadata: args.disable_sync_metadata,
            max_streams: args.max_streams,
            tokens: args.sync_tokens.clone(),
        },
        shutdown.clone(),
    );
    let ofrep = ensign_ofrep::OfrepState::new(
        Arc::clone(&store),
        ensign_ofrep::OfrepConfig {
            context: config.context.clone(),
            max_request_body: args.max_request_body,
            tokens: args.ofrep_tokens.clone(),
            cors_origins: args.cors_origins.clone(),
            max_streams: args.max_streams,
            ..ensign_ofrep::OfrepConfig::default()
        },
        shutdown.clone(),
    );
    let state = FlagdState::new(Arc::clone(&store), config, shutdown.clone());
    tasks.spawn(ensign_http::serve(
        evaluation_listener,
        tls.clone(),
        ensign_flagd::service(state),
        listener("evaluation"),
        shutdown.clone(),
    ));
    tasks.spawn(ensign_http::serve(
        sync_listener,
        tls.clone(),
        sync.into_router(args.max_request_body),
        ensign_http::ListenerConfig {
            http2: ensign_http::Http2Settings {
                keep_alive_interval: Some(ensign_sync::KEEP_ALIVE_INTERVAL),
                ..ensign_http::Http2Settings::default()
            },
            ..listener("sync")
        },
        shutdown.clone(),
    ));
    tasks.spawn(ensign_http::serve(
        ofrep_listener,
        tls.clone(),
        ensign_ofrep::router(ofrep),
        listener("ofrep"),
        shutdown.clone(),
    ));
    tracing::info!(
        port = args.port,
        management_port = args.management_port,
        sync_port = args.sync_port,
        ofrep_port = args.ofrep_port,
        admin_port = (!args.no_database).then_some(args.admin_port),
        admin_bind = %args.admin_bind,
        tls = tls.is_some(),
        environment = %args.environment,
        fractional = ?args.fractional,
        "ensign serving"
    );

    wait_for_signal().await?;
    tracing::info!("shutting down: readiness off, draining");
    management.start_draining();
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = terminate.recv() => {}
        result = tokio::signal::ctrl_c() => result.context("waiting for SIGINT")?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_flagd() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("m").is_err());
    }
}
