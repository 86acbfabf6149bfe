//! A small client of the admin REST API, shared by the subcommands that talk
//! to a running server (`ensign flags`, `ensign token`).
//!
//! One HTTP/1.1 request per call over a fresh connection, `http://` or
//! `https://` (the admin port with `ensign serve -c/-k`): certificates are
//! verified against the system's roots and, with `--ca-file`, a private CA;
//! there is no way to skip verification. `Authorization: Bearer <token>`, JSON
//! in and out. A failed request becomes a [`ServerError`] carrying the server's own
//! message and every problem with its JSON Pointer; a server that cannot be
//! reached becomes an error that says which address was tried and why.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;

use super::serve::parse_duration;

/// The prefix of every admin API route.
const API_PREFIX: &str = "/api/v1";

/// Where the server is and how to authenticate (every API subcommand takes these).
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The admin API's base URL (`http://HOST:PORT` or `https://HOST:PORT`,
    /// the `--admin-port` of `ensign serve`).
    #[arg(
        long,
        env = "ENSIGN_SERVER",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL",
        value_parser = parse_server,
        global = true
    )]
    server: ServerUrl,
    /// An API token (or the server's bootstrap `ENSIGN_ADMIN_TOKEN`).
    #[arg(
        long,
        env = "ENSIGN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        global = true
    )]
    token: Option<String>,
    /// How long one request may take, e.g. `30s`.
    #[arg(
        long,
        env = "ENSIGN_TIMEOUT",
        default_value = "30s",
        value_parser = parse_duration,
        global = true
    )]
    timeout: Duration,
    /// A PEM file of CA certificates trusted for `https://` besides the
    /// system's roots (a private CA, or the server's self-signed certificate's
    /// issuer).
    #[arg(long, env = "ENSIGN_CA_FILE", value_name = "PATH", global = true)]
    ca_file: Option<PathBuf>,
}

/// A parsed `--server`: scheme, host, port and an optional path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    /// Whether the scheme is `https`.
    tls: bool,
    /// `host:port` as given (for the `Host` header and messages).
    authority: String,
    /// The host to connect to (IPv6 without brackets).
    host: String,
    /// The port (80 or 443 when the URL names none).
    port: u16,
    /// A path prefix without a trailing `/` (empty for none).
    prefix: String,
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority, self.prefix)
    }
}

/// Parses `--server`: `http[s]://HOST[:PORT][/PREFIX]`.
fn parse_server(text: &str) -> Result<ServerUrl, String> {
    let uri: Uri = text
        .trim()
        .parse()
        .map_err(|e| format!("\"{text}\" is not a URL: {e}"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return Err(format!(
                "\"{text}\" is not an http://HOST:PORT or https://HOST:PORT URL"
            ));
        }
    };
    let Some(authority) = uri.authority() else {
        return Err(format!("\"{text}\" names no host"));
    };
    if uri.query().is_some() {
        return Err(format!("\"{text}\": a server URL takes no query"));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok(ServerUrl {
        tls,
        authority: authority.as_str().to_owned(),
        host,
        port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
        prefix: uri.path().trim_end_matches('/').to_owned(),
    })
}

/// A request the server refused: its status and its error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The error code of the body (`invalid`, `unauthorized`, ...), if it had one.
    pub code: Option<String>,
    /// The server's message (or, for a body not in the API's shape, what it was).
    pub message: String,
    /// Every problem with the input: JSON Pointer and message.
    pub problems: Vec<(String, String)>,
}

impl ServerError {
    /// Reads an error answer: the API's `{"error": {...}}` body, or whatever else came.
    fn from_answer(status: StatusCode, body: &[u8]) -> Self {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        match parsed.as_ref().and_then(|v| v.get("error")) {
            Some(error) => ServerError {
                status,
                code: error.get("code").and_then(Value::as_str).map(str::to_owned),
                message: error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("no message")
                    .to_owned(),
                problems: error
                    .get("problems")
                    .and_then(Value::as_array)
                    .map(|problems| {
                        problems
                            .iter()
                            .map(|p| {
                                let text = |key: &str| {
                                    p.get(key).and_then(Value::as_str).unwrap_or("").to_owned()
                                };
                                (text("path"), text("message"))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            None => {
                // Not the admin API (a proxy's page, another service on the port).
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                let snippet: String = text.chars().take(200).collect();
                ServerError {
                    status,
                    code: None,
                    message: if snippet.is_empty() {
                        "the answer has no body; is --server the admin port?".to_owned()
                    } else {
                        format!("unexpected answer (is --server the admin port?): {snippet}")
                    },
                    problems: Vec::new(),
                }
            }
        }
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (HTTP {}", self.message, self.status.as_u16())?;
        if let Some(code) = &self.code {
            write!(f, ", {code}")?;
        }
        write!(f, ")")?;
        for (path, message) in &self.problems {
            let path = if path.is_empty() { "/" } else { path };
            write!(f, "\n  at {path}: {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ServerError {}

/// Percent-encodes `text` for a path segment or a query value (RFC 3986
/// unreserved characters pass unchanged).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A query string (`?a=1&b=2`) of the pairs whose value is present.
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(key, value)| value.map(|v| format!("{key}={}", encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// A TLS client configuration trusting the system's roots and the CA
/// certificates of `ca_file`; fails when it would trust nothing.
fn tls_connector(ca_file: Option<&Path>) -> anyhow::Result<TlsConnector> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped: the CA file may be enough.
    let system = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(system.certs);
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .with_context(|| format!("--ca-file: reading {}", path.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("--ca-file: parsing {}", path.display()))?;
        if certs.is_empty() {
            bail!("--ca-file: {} holds no PEM certificate", path.display());
        }
        for cert in certs {
            roots
                .add(cert)
                .with_context(|| format!("--ca-file: a certificate of {}", path.display()))?;
        }
    } else if added == 0 {
        bail!("no system CA certificates found to verify https:// servers; give --ca-file PATH");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // One HTTP/1.1 request per connection.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// A client of one server with one token.
#[derive(Clone)]
pub struct Client {
    server: ServerUrl,
    authorization: HeaderValue,
    timeout: Duration,
    comment: Option<HeaderValue>,
    /// For `https://` servers.
    tls: Option<TlsConnector>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.server)
            .field("timeout", &self.timeout)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client from the common options; fails without a token.
    pub fn new(args: &ClientArgs) -> anyhow::Result<Client> {
        let Some(token) = args
            .token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            bail!("no API token: give --token TOKEN or set ENSIGN_TOKEN");
        };
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
            .context("the token has characters an HTTP header cannot carry")?;
        authorization.set_sensitive(true);
        let tls = args
            .server
            .tls
            .then(|| tls_connector(args.ca_file.as_deref()))
            .transpose()?;
        Ok(Client {
            server: args.server.clone(),
            authorization,
            timeout: args.timeout,
            comment: None,
            tls,
        })
    }

    /// Sends `comment` as `X-Ensign-Comment` (recorded in the audit log).
    pub fn with_comment(mut self, comment: Option<&str>) -> anyhow::Result<Client> {
        self.comment = comment
            .map(|c| {
                HeaderValue::from_str(c)
                    .context("the comment has characters an HTTP header cannot carry")
            })
            .transpose()?;
        Ok(self)
    }

    /// `GET /api/v1{path}`, the JSON answer.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None).await
    }

    /// `POST /api/v1{path}` with a JSON body, the JSON answer.
    pub async fn post(&self, path: &str, body: Bytes) -> anyhow::Result<Value> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `DELETE /api/v1{path}`, the JSON answer.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::DELETE, path, None).await
    }

    async fn call(&self, method: Method, path: &str, body: Option<Bytes>) -> anyhow::Result<Value> {
        let target = format!("{}{API_PREFIX}{path}", self.server.prefix);
        let exchange = self.exchange(method.clone(), &target, body);
        let (status, body) = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result?,
            Err(_) => bail!(
                "{method} {}{API_PREFIX}{path}: no answer within {:?}",
                self.server,
                self.timeout
            ),
        };
        if !status.is_success() {
            return Err(ServerError::from_answer(status, &body).into());
        }
        if body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).with_context(|| {
            format!(
                "{method} {}{API_PREFIX}{path}: the answer is not JSON; is --server the admin port?",
                self.server
            )
        })
    }

    /// One request over a new connection: the status and the whole body.
    async fn exchange(
        &self,
        method: Method,
        target: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let stream = tokio::net::TcpStream::connect((self.server.host.as_str(), self.server.port))
            .await
            .with_context(|| {
                format!(
                    "cannot reach the Ensign server at {} (is `ensign serve` running with \
                     its admin port there? set --server or ENSIGN_SERVER)",
                    self.server
                )
            })?;
        let Some(connector) = &self.tls else {
            return self.send(stream, method, target, body).await;
        };
        let name = rustls::pki_types::ServerName::try_from(self.server.host.clone())
            .with_context(|| format!("\"{}\" is not a TLS server name", self.server.host))?;
        let stream = connector.connect(name, stream).await.with_context(|| {
            format!(
                "TLS handshake with {} failed (a certificate from a private CA needs \
                 --ca-file PATH or ENSIGN_CA_FILE)",
                self.server
            )
        })?;
        self.send(stream, method, target, body).await
    }

    /// The request over an open connection: the status and the whole body.
    async fn send<I>(
        &self,
        io: I,
        method: Method,
        target: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<(StatusCode, Bytes)>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .with_context(|| format!("talking to {}", self.server))?;
        let driver = tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(target)
            .header(HOST, &self.server.authority)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/json")
            .header(
                USER_AGENT,
                concat!("ensign-cli/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(comment) = &self.comment {
            request = request.header(ensign_admin::COMMENT_HEADER, comment.clone());
        }
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .with_context(|| format!("building the request for {target}"))?;
        let response = sender
            .send_request(request)
            .await
            .with_context(|| format!("{} closed the connection without an answer", self.server))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading the answer of {}", self.server))?
            .to_bytes();
        driver.abort();
        Ok((status, bytes))
    }
}

/// Runs `work` on a single-threaded runtime (the API commands make a few
/// requests one after another).
pub fn block_on<T>(work: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(work)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn server_urls() {
        let url = parse_server("http://127.0.0.1:8080").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("127.0.0.1", 8080));
        assert_eq!(url.prefix, "");
        assert_eq!(url.to_string(), "http://127.0.0.1:8080");
        let url = parse_server("http://[::1]:9000/ensign/").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 9000));
        assert_eq!(url.prefix, "/ensign");
        assert_eq!(parse_server("http://flags.internal").unwrap().port, 80);
        let url = parse_server("https://flags.internal").unwrap();
        assert_eq!((url.tls, url.port), (true, 443));
        assert_eq!(url.to_string(), "https://flags.internal");
        assert_eq!(parse_server("https://h:8443").unwrap().port, 8443);
        assert!(parse_server("ftp://flags.internal").is_err());
        assert!(parse_server("flags.internal:8080").is_err());
        assert!(parse_server("http://h:1/?x=1").is_err());
    }

    #[test]
    fn queries_are_encoded() {
        assert_eq!(encode("a b/c&d=é"), "a%20b%2Fc%26d%3D%C3%A9");
        assert_eq!(
            query(&[("environment", Some("prod")), ("flagSet", None)]),
            "?environment=prod"
        );
        assert_eq!(query(&[("a", None)]), "");
    }

    #[test]
    fn error_answers_keep_the_server_message_and_problems() {
        let body = br#"{"error": {"code": "invalid", "message": "the input has 2 problems",
            "problems": [{"path": "/flags/a/defaultVariant", "message": "names no variant"},
                         {"path": "", "message": "whole"}]}}"#;
        let error = ServerError::from_answer(StatusCode::UNPROCESSABLE_ENTITY, body);
        assert_eq!(
            error.to_string(),
            "the input has 2 problems (HTTP 422, invalid)\n  \
             at /flags/a/defaultVariant: names no variant\n  at /: whole"
        );
        let error = ServerError::from_answer(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert!(error.to_string().contains("bad gateway"), "{error}");
        assert!(error.to_string().contains("HTTP 502"), "{error}");
    }
}
