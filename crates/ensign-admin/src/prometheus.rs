//! A small client of the Prometheus HTTP API: instant queries only, one
//! HTTP/1.1 request over a fresh connection (`http://` only), the whole
//! exchange within a timeout, the answer bounded in size. Whatever goes wrong
//! (no connection, timeout, a non-2xx status, a body that is not Prometheus's
//! JSON, a query error) is a [`QueryError`] saying what, for the SLO status to
//! report as `unreachable`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use http::header::{ACCEPT, HOST, USER_AGENT};
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use crate::extract::path_segment;

/// The largest answer read, in bytes.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Where Prometheus is and how long a query may take.
#[derive(Clone)]
pub struct PrometheusClient {
    /// The URL as given (for messages).
    url: String,
    /// `host:port` for the `Host` header.
    authority: String,
    /// The host to connect to (IPv6 without brackets).
    host: String,
    /// The port (80 when the URL names none).
    port: u16,
    /// A path prefix without a trailing `/` (Prometheus's `--web.route-prefix`).
    prefix: String,
    /// The limit on one whole query.
    timeout: Duration,
}

impl fmt::Debug for PrometheusClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusClient")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// One series of an instant vector: its labels (`__name__` included) and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// The value (NaN and infinities as Prometheus sent them).
    pub value: f64,
}

/// Why a query has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(String);

/// Prometheus's answer envelope.
#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<VectorSample>,
}

#[derive(Deserialize)]
struct VectorSample {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

impl PrometheusClient {
    /// A client of the Prometheus at `url` (`http://HOST[:PORT][/PREFIX]`).
    pub fn new(url: &str, timeout: Duration) -> Result<PrometheusClient, String> {
        let uri: Uri = url
            .trim()
            .parse()
            .map_err(|e| format!("\"{url}\" is not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "\"{url}\" is not an http://HOST:PORT URL (https is not supported)"
            ));
        }
        let Some(authority) = uri.authority() else {
            return Err(format!("\"{url}\" names no host"));
        };
        if uri.query().is_some() {
            return Err(format!("\"{url}\": the Prometheus URL takes no query"));
        }
        Ok(PrometheusClient {
            url: url.trim().trim_end_matches('/').to_owned(),
            authority: authority.as_str().to_owned(),
            host: authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: authority.port_u16().unwrap_or(80),
            prefix: uri.path().trim_end_matches('/').to_owned(),
            timeout,
        })
    }

    /// The URL as configured.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs the instant query `promql` now; the vector it returns.
    pub async fn query(&self, promql: &str) -> Result<Vec<Sample>, QueryError> {
        let target = format!(
            "{}/api/v1/query?query={}",
            self.prefix,
            path_segment(promql)
        );
        let body = tokio::time::timeout(self.timeout, self.get(&target))
            .await
            .map_err(|_| {
                QueryError(format!(
                    "Prometheus at {} did not answer within {:?}",
                    self.url, self.timeout
                ))
            })??;
        let answer: Answer = serde_json::from_slice(&body).map_err(|_| {
            QueryError(format!(
                "Prometheus at {} answered with something that is not its query API's JSON",
                self.url
            ))
        })?;
        if answer.status != "success" {
            return Err(QueryError(format!(
                "Prometheus at {} refused the query: {}",
                self.url,
                answer.error.unwrap_or_else(|| "no reason given".to_owned())
            )));
        }
        match answer.data {
            Some(data) if data.result_type == "vector" => Ok(data
                .result
                .into_iter()
                .map(|sample| Sample {
                    labels: sample.metric,
                    value: sample.value.1.parse().unwrap_or(f64::NAN),
                })
                .collect()),
            _ => Err(QueryError(format!(
                "Prometheus at {} did not answer an instant vector",
                self.url
            ))),
        }
    }

    /// `GET target` over a new connection: the body of a 2xx answer.
    async fn get(&self, target: &str) -> Result<Bytes, QueryError> {
        let unreachable = |what: &str, error: &dyn fmt::Display| {
            QueryError(format!("Prometheus at {}: {what}: {error}", self.url))
        };
        let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| unreachable("cannot connect", &e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable("HTTP handshake failed", &e))?;
        let driver = tokio::spawn(connection);
        let request = Request::get(target)
            .header(HOST, &self.authority)
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, concat!("ensign/", env!("CARGO_PKG_VERSION")))
            .body(Empty::<Bytes>::new())
            .map_err(|e| unreachable("cannot build the request", &e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unreachable("no answer", &e))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| unreachable("reading the answer failed", &e))?
            .to_bytes();
        driver.abort();
        // Prometheus answers query errors (400, 422, 503) with its JSON
        // envelope; keep those for their message.
        if !status.is_success() && serde_json::from_slice::<Answer>(&body).is_err() {
            return Err(QueryError(format!(
                "Prometheus at {} answered HTTP {}",
                self.url,
                status.as_u16()
            )));
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn urls() {
        let client =
            PrometheusClient::new("http://127.0.0.1:9090/", Duration::from_secs(1)).unwrap();
        assert_eq!((client.host.as_str(), client.port), ("127.0.0.1", 9090));
        assert_eq!(client.prefix, "");
        assert_eq!(client.url(), "http://127.0.0.1:9090");
        let client =
            PrometheusClient::new("http://[::1]:9090/prometheus", Duration::from_secs(1)).unwrap();
        assert_eq!(
            (client.host.as_str(), client.prefix.as_str()),
            ("::1", "/prometheus")
        );
        assert!(PrometheusClient::new("https://p:9090", Duration::from_secs(1)).is_err());
        assert!(PrometheusClient::new("p:9090", Duration::from_secs(1)).is_err());
        assert!(PrometheusClient::new("http://p:9090/?x=1", Duration::from_secs(1)).is_err());
    }
}
