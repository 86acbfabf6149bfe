//! The demo's Prometheus metrics: requests by route and status code, request
//! latency by route, and which checkout path served each request.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The routes the demo serves; anything else is counted as `other`, so
/// request paths cannot grow the label set.
pub const ROUTES: [&str; 4] = ["/checkout", "/healthz", "/readyz", "/metrics"];

/// Labels of `demo_http_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// One of [`ROUTES`] or `other`.
    pub route: String,
    /// The HTTP status code, e.g. `200`.
    pub code: String,
}

/// Labels of `demo_http_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// One of [`ROUTES`] or `other`.
    pub route: String,
}

/// Labels of `demo_checkout_path_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabels {
    /// `stable` (the safe path) or `v2` (the flag-guarded new path).
    pub path: String,
}

/// Every metric family, registered once.
#[derive(Debug)]
pub struct DemoMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    paths: Family<PathLabels, Counter>,
}

impl Default for DemoMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl DemoMetrics {
    /// A registry with every family registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "demo_http_requests",
            "HTTP requests answered, by route and status code",
            requests.clone(),
        );
        let durations = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        registry.register(
            "demo_http_request_duration_seconds",
            "Time from request to response, by route",
            durations.clone(),
        );
        let paths = Family::<PathLabels, Counter>::default();
        registry.register(
            "demo_checkout_path",
            "Checkout requests by the code path the flag chose",
            paths.clone(),
        );
        Self {
            registry,
            requests,
            durations,
            paths,
        }
    }

    /// The route label for a request path.
    pub fn route_label(path: &str) -> &'static str {
        ROUTES
            .iter()
            .find(|route| **route == path)
            .copied()
            .unwrap_or("other")
    }

    /// Counts one answered request and its latency.
    pub fn observe_request(&self, route: &str, code: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                code: code.to_string(),
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// Counts one checkout served on `path`.
    pub fn observe_path(&self, path: &str) {
        self.paths
            .get_or_create(&PathLabels {
                path: path.to_owned(),
            })
            .inc();
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::DemoMetrics;

    #[test]
    fn unknown_paths_share_one_label() {
        assert_eq!(DemoMetrics::route_label("/checkout"), "/checkout");
        assert_eq!(DemoMetrics::route_label("/admin/../x"), "other");
    }

    #[test]
    fn renders_counts_by_route_and_code() {
        let metrics = DemoMetrics::new();
        metrics.observe_request("/checkout", 500, 0.01);
        metrics.observe_request("/checkout", 500, 0.02);
        metrics.observe_path("v2");
        let text = metrics.render().unwrap();
        assert!(text.contains(r#"demo_http_requests_total{route="/checkout",code="500"} 2"#));
        assert!(text.contains(r#"demo_http_request_duration_seconds_count{route="/checkout"} 2"#));
        assert!(text.contains(r#"demo_checkout_path_total{path="v2"} 1"#));
    }
}
