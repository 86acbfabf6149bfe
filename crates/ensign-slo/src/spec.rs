//! Sloth `prometheus/v1` SLO specs: parsing and validation.
//!
//! ```yaml
//! version: "prometheus/v1"
//! service: checkout
//! labels: {team: payments}
//! slos:
//!   - name: availability
//!     objective: 99.9
//!     description: Checkout requests succeed.
//!     sli:
//!       events:
//!         error_query: sum(rate(http_requests_total{job="checkout",code=~"5.."}[{{.window}}]))
//!         total_query: sum(rate(http_requests_total{job="checkout"}[{{.window}}]))
//!     alerting:
//!       name: CheckoutAvailability
//!       page_alert: {labels: {severity: page, ensign_flag: new-checkout}}
//!       ticket_alert: {labels: {severity: ticket}}
//! ```
//!
//! Every problem is reported at once, each with the JSON Pointer of the value
//! at fault (`/slos/0/sli/events/error_query`) and a reason. Validation is
//! stricter than Sloth's where Sloth would silently do something useless:
//! unknown fields are errors (a misspelt `page_alert` would otherwise drop its
//! labels), an objective of 100 % is refused (no error budget, burn rates are
//! undefined), queries must use `{{.window}}` and nothing else from Go
//! templates, and names are limited to characters that are safe in URLs. The
//! PromQL itself is not parsed here (only its brackets are checked);
//! `promtool check rules` on the generated rules is the full check.

use std::collections::BTreeMap;

use ensign_engine::document::{self, Format, Limits, Problem, Severity};
use serde::Serialize;
use serde_json::{Map, Value};

/// The only spec version understood.
pub const SPEC_VERSION: &str = "prometheus/v1";
/// The largest spec text accepted, in bytes.
pub const MAX_SPEC_BYTES: usize = 1024 * 1024;
/// The most SLOs one spec may hold.
pub const MAX_SLOS: usize = 64;
/// The most entries one label or annotation map may hold.
pub const MAX_LABELS: usize = 64;
/// The longest query, in bytes.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// The longest description, label value or annotation, in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;
/// The longest service or SLO name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// The deepest nesting accepted (a spec is 5 levels deep).
const MAX_DEPTH: usize = 16;

/// Labels the generated rules set themselves; a spec may not set them.
pub const RESERVED_LABELS: [&str; 5] = [
    "sloth_id",
    "sloth_service",
    "sloth_slo",
    "sloth_window",
    "sloth_severity",
];

/// Prometheus label (or annotation) name → value, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// A valid spec: one service and its SLOs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spec {
    /// Always [`SPEC_VERSION`].
    pub version: String,
    /// The service the SLOs are about (`sloth_service`).
    pub service: String,
    /// Labels of every series and alert of every SLO.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: Labels,
    /// The SLOs, in spec order, at least one.
    pub slos: Vec<Slo>,
}

/// One service level objective.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Slo {
    /// The SLO's name within its service (`sloth_slo`).
    pub name: String,
    /// The objective in percent, above 0 and below 100 (99.9).
    pub objective: f64,
    /// What the SLO promises, for people.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Labels of this SLO's series and alerts (over the service's).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: Labels,
    /// How the error ratio is measured.
    pub sli: Sli,
    /// The alerts.
    pub alerting: Alerting,
}

/// How an SLO's error ratio is measured, with `{{.window}}` standing for the
/// window in every query.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sli {
    /// Bad events over all events.
    Events {
        /// The rate of bad events.
        error_query: String,
        /// The rate of all events.
        total_query: String,
    },
    /// An error ratio (0 to 1) computed by the query itself.
    Raw {
        /// The error ratio.
        error_ratio_query: String,
    },
}

/// The alerts of an SLO.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Alerting {
    /// The alert name of both alerts (required unless both are disabled).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Labels of both alerts.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: Labels,
    /// Annotations of both alerts.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: Labels,
    /// The page alert (fast burn).
    pub page_alert: AlertOptions,
    /// The ticket alert (slow burn).
    pub ticket_alert: AlertOptions,
}

/// One of the two alerts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AlertOptions {
    /// No rule is generated for it.
    #[serde(skip_serializing_if = "is_false")]
    pub disable: bool,
    /// Its own labels (over the alerting labels), e.g. `ensign_flag`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: Labels,
    /// Its own annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: Labels,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// A spec that was rejected, with every problem found in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SLO spec: {}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct SpecError {
    /// Every problem, in spec order.
    pub problems: Vec<Problem>,
}

impl SpecError {
    fn whole(message: String) -> Self {
        SpecError {
            problems: vec![error("", message)],
        }
    }
}

fn error(path: &str, message: impl Into<String>) -> Problem {
    Problem {
        path: path.to_owned(),
        message: message.into(),
        severity: Severity::Error,
    }
}

/// Parses and validates a spec written in YAML (or JSON that YAML reads).
pub fn parse(text: &str) -> Result<Spec, SpecError> {
    parse_as(text, Format::Yaml)
}

/// Parses and validates a spec written in `format`. JSON must be read as
/// JSON: YAML refuses some valid JSON, such as the `\uD83D\uDE00`
/// surrogate-pair escapes JSON writers use for characters beyond the BMP.
pub fn parse_as(text: &str, format: Format) -> Result<Spec, SpecError> {
    let limits = Limits {
        max_document_bytes: MAX_SPEC_BYTES,
        max_depth: MAX_DEPTH,
        ..Limits::default()
    };
    let value = document::parse(text, format, &limits).map_err(SpecError::whole)?;
    from_value(&value)
}

/// Validates a spec already parsed into JSON values (an API body).
pub fn from_value(value: &Value) -> Result<Spec, SpecError> {
    let mut checker = Checker::default();
    let spec = checker.spec(value);
    match spec {
        Some(spec) if checker.problems.is_empty() => Ok(spec),
        _ => Err(SpecError {
            problems: checker.problems,
        }),
    }
}

impl Spec {
    /// The spec as JSON, in Sloth's field names (what [`from_value`] reads).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The spec of one of its SLOs alone (service and labels kept), as the
    /// admin API stores SLOs one by one.
    pub fn single(&self, index: usize) -> Option<Spec> {
        self.slos.get(index).map(|slo| Spec {
            slos: vec![slo.clone()],
            ..self.clone()
        })
    }

    /// The id of an SLO of this spec: `<service>-<name>` (`sloth_id`).
    pub fn id(&self, slo: &Slo) -> String {
        format!("{}-{}", self.service, slo.name)
    }

    /// The labels of `slo`'s series: the service's, then the SLO's over them.
    pub fn labels_of(&self, slo: &Slo) -> Labels {
        let mut labels = self.labels.clone();
        labels.extend(slo.labels.clone());
        labels
    }

    /// Things that are valid but will not behave as one might expect (an
    /// objective so low that an alert can never fire), each with its pointer.
    pub fn warnings(&self) -> Vec<Problem> {
        let mut warnings = Vec::new();
        for (index, slo) in self.slos.iter().enumerate() {
            let budget = slo.error_budget();
            for alert in crate::rules::BURN_RATE_ALERTS {
                if alert.factor * budget >= 1.0 && !slo.alert(alert.severity).disable {
                    warnings.push(Problem {
                        path: format!("/slos/{index}/objective"),
                        message: format!(
                            "with an objective of {}, the {} alert's {}x burn rate over {} needs an \
                             error ratio above {}: it can never fire",
                            slo.objective,
                            alert.severity.as_str(),
                            alert.factor,
                            alert.long.name,
                            round(alert.factor * budget)
                        ),
                        severity: Severity::Warning,
                    });
                }
            }
        }
        warnings
    }
}

/// Rounds to 12 decimal places, so that `100 - 99.9` is exactly the budget
/// people mean (0.001) and thresholds print as they are written.
pub(crate) fn round(value: f64) -> f64 {
    (value * 1e12).round() / 1e12
}

impl Slo {
    /// The objective as a ratio (0.999).
    pub fn objective_ratio(&self) -> f64 {
        round(self.objective / 100.0)
    }

    /// The error budget as a ratio (0.001 for 99.9 %).
    pub fn error_budget(&self) -> f64 {
        round((100.0 - self.objective) / 100.0)
    }

    /// The options of the page or ticket alert.
    pub fn alert(&self, severity: crate::rules::AlertSeverity) -> &AlertOptions {
        match severity {
            crate::rules::AlertSeverity::Page => &self.alerting.page_alert,
            crate::rules::AlertSeverity::Ticket => &self.alerting.ticket_alert,
        }
    }
}

/// A part of a query: literal text or the `{{.window}}` placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueryPart<'q> {
    Text(&'q str),
    Window,
}

/// Splits a query at its `{{.window}}` placeholders (spaces inside the braces
/// allowed); any other template action is an error.
pub(crate) fn query_parts(query: &str) -> Result<Vec<QueryPart<'_>>, String> {
    let mut parts = Vec::new();
    let mut rest = query;
    while let Some(start) = rest.find("{{") {
        let Some(length) = rest[start..].find("}}") else {
            return Err("has a \"{{\" without its \"}}\"".to_owned());
        };
        let action = rest[start + 2..start + length].trim();
        if action != ".window" {
            return Err(format!(
                "uses the template action \"{{{{{action}}}}}\"; only {{{{.window}}}} is supported"
            ));
        }
        if start > 0 {
            parts.push(QueryPart::Text(&rest[..start]));
        }
        parts.push(QueryPart::Window);
        rest = &rest[start + length + 2..];
    }
    if rest.contains("}}") {
        return Err("has a \"}}\" without its \"{{\"".to_owned());
    }
    if !rest.is_empty() {
        parts.push(QueryPart::Text(rest));
    }
    Ok(parts)
}

/// The query with every `{{.window}}` replaced by `range`.
pub(crate) fn render_query(query: &str, range: &str) -> String {
    match query_parts(query) {
        Ok(parts) => parts
            .into_iter()
            .map(|part| match part {
                QueryPart::Text(text) => text,
                QueryPart::Window => range,
            })
            .collect(),
        // Validated specs only hold well-formed queries.
        Err(_) => query.to_owned(),
    }
}

/// Checks that `(`, `[` and `{` close in order outside string literals.
fn balanced(query: &str) -> Result<(), String> {
    let mut open = Vec::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in query.chars() {
        if let Some(q) = quote {
            match c {
                _ if escaped => escaped = false,
                '\\' if q != '`' => escaped = true,
                _ if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '(' | '[' | '{' => open.push(c),
            ')' | ']' | '}' => {
                let expected = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if open.pop() != Some(expected) {
                    return Err(format!("has a \"{c}\" that closes nothing open"));
                }
            }
            _ => {}
        }
    }
    if quote.is_some() {
        return Err("has a string literal that is not closed".to_owned());
    }
    match open.last() {
        Some(c) => Err(format!("has a \"{c}\" that is not closed")),
        None => Ok(()),
    }
}

/// A JSON Pointer segment with `~` and `/` escaped (RFC 6901).
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Whether `name` is a Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `name` is a Prometheus alert (metric) name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
fn is_alert_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` may name a service or an SLO: letters, digits, `-`, `_`,
/// `.`, starting with a letter or digit.
fn is_slo_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// What a label map holds, for its key rules and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MapKind {
    /// Series or alert labels: the generator's own names are reserved.
    Labels,
    /// Alert annotations.
    Annotations,
}

/// Walks a spec value, collecting every problem.
#[derive(Debug, Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn report(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(error(path, message));
    }

    /// `value` as an object with only `fields`; unknown fields are reported.
    fn object<'v>(
        &mut self,
        value: &'v Value,
        path: &str,
        fields: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Some(object) = value.as_object() else {
            self.report(path, format!("must be an object, not {}", kind(value)));
            return None;
        };
        for key in object.keys() {
            if !fields.contains(&key.as_str()) {
                self.report(
                    &format!("{path}/{}", escape(key)),
                    format!(
                        "is not a field here; expected one of: {}",
                        fields.join(", ")
                    ),
                );
            }
        }
        Some(object)
    }

    /// A string field; `None` (reported) when missing but `required`, or not
    /// a string, or empty, or longer than `max`.
    fn string(
        &mut self,
        object: &Map<String, Value>,
        field: &str,
        path: &str,
        required: bool,
        max: usize,
    ) -> Option<String> {
        let path = format!("{path}/{field}");
        match object.get(field) {
            None | Some(Value::Null) => {
                if required {
                    self.report(&path, "is required");
                }
                None
            }
            Some(Value::String(text)) if text.trim().is_empty() => {
                self.report(&path, "must not be empty");
                None
            }
            Some(Value::String(text)) if text.len() > max => {
                self.report(
                    &path,
                    format!("is {} bytes; the limit is {max}", text.len()),
                );
                None
            }
            Some(Value::String(text)) => Some(text.clone()),
            Some(other) => {
                self.report(&path, format!("must be a string, not {}", kind(other)));
                None
            }
        }
    }

    fn spec(&mut self, value: &Value) -> Option<Spec> {
        let object = self.object(value, "", &["version", "service", "labels", "slos"])?;
        match object.get("version") {
            Some(Value::String(version)) if version == SPEC_VERSION => {}
            Some(Value::String(version)) => self.report(
                "/version",
                format!("\"{version}\" is not supported; use \"{SPEC_VERSION}\""),
            ),
            None => self.report("/version", format!("is required (\"{SPEC_VERSION}\")")),
            Some(other) => self.report(
                "/version",
                format!("must be the string \"{SPEC_VERSION}\", not {}", kind(other)),
            ),
        }
        let service = self.name(object, "service", "");
        let labels = self.labels(object.get("labels"), "/labels", MapKind::Labels);
        let slos = match object.get("slos") {
            Some(Value::Array(items)) if items.is_empty() => {
                self.report("/slos", "must list at least one SLO");
                Vec::new()
            }
            Some(Value::Array(items)) if items.len() > MAX_SLOS => {
                self.report(
                    "/slos",
                    format!("lists {} SLOs; the limit is {MAX_SLOS}", items.len()),
                );
                Vec::new()
            }
            Some(Value::Array(items)) => {
                let mut names: Vec<&str> = Vec::new();
                let mut slos = Vec::new();
                for (index, item) in items.iter().enumerate() {
                    let path = format!("/slos/{index}");
                    if let Some(name) = item.get("name").and_then(Value::as_str) {
                        if names.contains(&name) {
                            self.report(
                                &format!("{path}/name"),
                                format!("\"{name}\" names an SLO listed before"),
                            );
                        }
                        names.push(name);
                    }
                    slos.extend(self.slo(item, &path));
                }
                slos
            }
            None => {
                self.report("/slos", "is required");
                Vec::new()
            }
            Some(other) => {
                self.report(
                    "/slos",
                    format!("must be a list of SLOs, not {}", kind(other)),
                );
                Vec::new()
            }
        };
        if let (Some(service), Some(first)) = (&service, slos.first()) {
            let id = format!("{service}-{}", first.name);
            if id.len() > MAX_NAME_BYTES {
                self.report(
                    "/service",
                    format!("with the SLO names, ids like \"{id}\" exceed {MAX_NAME_BYTES} bytes"),
                );
            }
        }
        Some(Spec {
            version: SPEC_VERSION.to_owned(),
            service: service?,
            labels,
            slos,
        })
    }

    /// A service or SLO name.
    fn name(&mut self, object: &Map<String, Value>, field: &str, path: &str) -> Option<String> {
        let name = self.string(object, field, path, true, MAX_NAME_BYTES)?;
        if !is_slo_name(&name) {
            self.report(
                &format!("{path}/{field}"),
                format!(
                    "\"{name}\" may only hold letters, digits, '-', '_' and '.', and must start \
                     with a letter or digit"
                ),
            );
            return None;
        }
        Some(name)
    }

    fn slo(&mut self, value: &Value, path: &str) -> Option<Slo> {
        let object = self.object(
            value,
            path,
            &[
                "name",
                "objective",
                "description",
                "labels",
                "sli",
                "alerting",
            ],
        )?;
        let name = self.name(object, "name", path);
        let objective = self.objective(object.get("objective"), &format!("{path}/objective"));
        let description = self
            .string(object, "description", path, false, MAX_TEXT_BYTES)
            .unwrap_or_default();
        let labels = self.labels(
            object.get("labels"),
            &format!("{path}/labels"),
            MapKind::Labels,
        );
        let sli = match object.get("sli") {
            Some(sli) => self.sli(sli, &format!("{path}/sli")),
            None => {
                self.report(&format!("{path}/sli"), "is required");
                None
            }
        };
        let alerting = match object.get("alerting") {
            Some(alerting) => self.alerting(alerting, &format!("{path}/alerting")),
            None => {
                self.report(
                    &format!("{path}/alerting"),
                    "is required (at least its name, unless both alerts are disabled)",
                );
                None
            }
        };
        Some(Slo {
            name: name?,
            objective: objective?,
            description,
            labels,
            sli: sli?,
            alerting: alerting?,
        })
    }

    fn objective(&mut self, value: Option<&Value>, path: &str) -> Option<f64> {
        let Some(value) = value else {
            self.report(path, "is required (a percentage such as 99.9)");
            return None;
        };
        let Some(objective) = value.as_f64() else {
            self.report(
                path,
                format!(
                    "must be a number (a percentage such as 99.9), not {}",
                    kind(value)
                ),
            );
            return None;
        };
        if objective <= 0.0 || objective >= 100.0 {
            self.report(
                path,
                format!(
                    "{objective} is not a percentage above 0 and below 100 (100 leaves no error \
                     budget to burn)"
                ),
            );
            return None;
        }
        if round((100.0 - objective) / 100.0) <= 0.0 {
            self.report(
                path,
                format!("{objective} is so close to 100 that the error budget rounds to 0"),
            );
            return None;
        }
        Some(objective)
    }

    fn sli(&mut self, value: &Value, path: &str) -> Option<Sli> {
        let object = self.object(value, path, &["events", "raw"])?;
        match (object.get("events"), object.get("raw")) {
            (Some(_), Some(_)) => {
                self.report(path, "must have either events or raw, not both");
                None
            }
            (Some(events), None) => {
                let path = format!("{path}/events");
                let events = self.object(events, &path, &["error_query", "total_query"])?;
                let error_query = self.query(events, "error_query", &path);
                let total_query = self.query(events, "total_query", &path);
                Some(Sli::Events {
                    error_query: error_query?,
                    total_query: total_query?,
                })
            }
            (None, Some(raw)) => {
                let path = format!("{path}/raw");
                let raw = self.object(raw, &path, &["error_ratio_query"])?;
                let error_ratio_query = self.query(raw, "error_ratio_query", &path)?;
                Some(Sli::Raw { error_ratio_query })
            }
            (None, None) => {
                self.report(
                    path,
                    "needs events (error_query and total_query) or raw (error_ratio_query)",
                );
                None
            }
        }
    }

    fn query(&mut self, object: &Map<String, Value>, field: &str, path: &str) -> Option<String> {
        let query = self.string(object, field, path, true, MAX_QUERY_BYTES)?;
        let path = format!("{path}/{field}");
        let windows = match query_parts(&query) {
            Ok(parts) => parts.iter().filter(|p| **p == QueryPart::Window).count(),
            Err(reason) => {
                self.report(&path, reason);
                return None;
            }
        };
        if windows == 0 {
            self.report(
                &path,
                "must use {{.window}} where the window goes (e.g. rate(x[{{.window}}])); \
                 without it every window would measure the same thing",
            );
            return None;
        }
        if let Err(reason) = balanced(&render_query(&query, "5m")) {
            self.report(&path, reason);
            return None;
        }
        Some(query)
    }

    fn alerting(&mut self, value: &Value, path: &str) -> Option<Alerting> {
        let object = self.object(
            value,
            path,
            &[
                "name",
                "labels",
                "annotations",
                "page_alert",
                "ticket_alert",
            ],
        )?;
        let labels = self.labels(
            object.get("labels"),
            &format!("{path}/labels"),
            MapKind::Labels,
        );
        let annotations = self.labels(
            object.get("annotations"),
            &format!("{path}/annotations"),
            MapKind::Annotations,
        );
        let page_alert = self.alert(object.get("page_alert"), &format!("{path}/page_alert"))?;
        let ticket_alert =
            self.alert(object.get("ticket_alert"), &format!("{path}/ticket_alert"))?;
        let needed = !(page_alert.disable && ticket_alert.disable);
        let name = self
            .string(object, "name", path, needed, MAX_NAME_BYTES)
            .unwrap_or_default();
        if !name.is_empty() && !is_alert_name(&name) {
            self.report(
                &format!("{path}/name"),
                format!(
                    "\"{name}\" is not a Prometheus alert name (letters, digits, '_' and ':', \
                     not starting with a digit)"
                ),
            );
        }
        Some(Alerting {
            name,
            labels,
            annotations,
            page_alert,
            ticket_alert,
        })
    }

    fn alert(&mut self, value: Option<&Value>, path: &str) -> Option<AlertOptions> {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Some(AlertOptions::default());
        };
        let object = self.object(value, path, &["disable", "labels", "annotations"])?;
        let disable = match object.get("disable") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(disable)) => *disable,
            Some(other) => {
                self.report(
                    &format!("{path}/disable"),
                    format!("must be true or false, not {}", kind(other)),
                );
                false
            }
        };
        Some(AlertOptions {
            disable,
            labels: self.labels(
                object.get("labels"),
                &format!("{path}/labels"),
                MapKind::Labels,
            ),
            annotations: self.labels(
                object.get("annotations"),
                &format!("{path}/annotations"),
                MapKind::Annotations,
            ),
        })
    }

    /// A label or annotation map. Numbers and booleans are taken as their
    /// text (`tier: 1`), as YAML writers expect.
    fn labels(&mut self, value: Option<&Value>, path: &str, kind_of_map: MapKind) -> Labels {
        let mut labels = Labels::new();
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return labels;
        };
        let Some(object) = value.as_object() else {
            self.report(
                path,
                format!("must be a map of names to strings, not {}", kind(value)),
            );
            return labels;
        };
        if object.len() > MAX_LABELS {
            self.report(
                path,
                format!("has {} entries; the limit is {MAX_LABELS}", object.len()),
            );
            return labels;
        }
        for (key, value) in object {
            let entry = format!("{path}/{}", escape(key));
            if !is_label_name(key) || key.starts_with("__") {
                self.report(
                    &entry,
                    format!(
                        "\"{key}\" is not a Prometheus label name (letters, digits and '_', not \
                         starting with a digit or \"__\")"
                    ),
                );
                continue;
            }
            if kind_of_map == MapKind::Labels && RESERVED_LABELS.contains(&key.as_str()) {
                self.report(
                    &entry,
                    format!("\"{key}\" is set by the generated rules and cannot be given"),
                );
                continue;
            }
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                other => {
                    self.report(&entry, format!("must be a string, not {}", kind(other)));
                    continue;
                }
            };
            if text.is_empty() {
                self.report(&entry, "must not be empty");
            } else if text.len() > MAX_TEXT_BYTES {
                self.report(
                    &entry,
                    format!("is {} bytes; the limit is {MAX_TEXT_BYTES}", text.len()),
                );
            } else {
                labels.insert(key.clone(), text);
            }
        }
        labels
    }
}

/// What a JSON value is, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const EXAMPLE: &str = r#"
version: "prometheus/v1"
service: checkout
labels:
  team: payments
  tier: 1
slos:
  - name: availability
    objective: 99.9
    description: Checkout requests succeed.
    sli:
      events:
        error_query: sum(rate(http_requests_total{job="checkout",code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total{job="checkout"}[{{ .window }}]))
    alerting:
      name: CheckoutAvailability
      labels: {category: availability}
      annotations: {runbook: "https://runbooks.example/checkout"}
      page_alert:
        labels: {severity: page, ensign_flag: new-checkout}
      ticket_alert:
        labels: {severity: ticket}
  - name: latency
    objective: 99
    labels: {kind: latency}
    sli:
      raw:
        error_ratio_query: 1 - avg_over_time(checkout:fast_ratio[{{.window}}])
    alerting:
      page_alert: {disable: true}
      ticket_alert: {disable: true}
"#;

    fn paths(error: &SpecError) -> Vec<&str> {
        error.problems.iter().map(|p| p.path.as_str()).collect()
    }

    #[test]
    fn a_sloth_spec_parses_with_every_field() {
        let spec = parse(EXAMPLE).unwrap();
        assert_eq!(spec.service, "checkout");
        assert_eq!(spec.labels["tier"], "1");
        assert_eq!(spec.slos.len(), 2);
        let availability = &spec.slos[0];
        assert_eq!(spec.id(availability), "checkout-availability");
        assert_eq!(availability.error_budget(), 0.001);
        assert_eq!(availability.objective_ratio(), 0.999);
        assert_eq!(
            availability.alerting.page_alert.labels["ensign_flag"],
            "new-checkout"
        );
        assert!(matches!(availability.sli, Sli::Events { .. }));
        let latency = &spec.slos[1];
        assert_eq!(
            spec.labels_of(latency).keys().collect::<Vec<_>>(),
            ["kind", "team", "tier"]
        );
        assert!(latency.alerting.name.is_empty());
        assert!(spec.warnings().is_empty());
    }

    #[test]
    fn a_spec_round_trips_through_its_json_value() {
        let spec = parse(EXAMPLE).unwrap();
        let value = spec.to_value();
        assert_eq!(
            value["slos"][0]["sli"]["events"]["total_query"]
                .as_str()
                .map(|q| q.contains("{{ .window }}")),
            Some(true)
        );
        assert_eq!(from_value(&value).unwrap(), spec);
        let single = spec.single(1).unwrap();
        assert_eq!(single.slos.len(), 1);
        assert_eq!(single.id(&single.slos[0]), "checkout-latency");
        assert!(spec.single(2).is_none());
    }

    #[test]
    fn every_problem_is_reported_with_its_pointer() {
        let text = r#"
version: prometheus/v2
service: "check out"
extra: 1
labels: {sloth_id: x, "1bad": y, ok: [1]}
slos:
  - name: availability
    objective: 100
    sli:
      events:
        error_query: sum(rate(errors[5m]))
        total_query: sum(rate(total[{{.window}}])
    alerting:
      name: "bad name"
      page_alert: {labels: {sloth_severity: x}, disbale: true}
  - name: availability
    objective: "99"
    sli: {raw: {error_ratio_query: "x[{{.range}}]"}, events: {}}
    alerting: {name: A}
  - name: latency
    objective: 99.5
    sli: {}
"#;
        let error = parse(text).unwrap_err();
        assert_eq!(
            paths(&error),
            [
                "/extra",
                "/version",
                "/service",
                "/labels/1bad",
                "/labels/ok",
                "/labels/sloth_id",
                "/slos/0/objective",
                "/slos/0/sli/events/error_query",
                "/slos/0/sli/events/total_query",
                "/slos/0/alerting/page_alert/disbale",
                "/slos/0/alerting/page_alert/labels/sloth_severity",
                "/slos/0/alerting/name",
                "/slos/1/name",
                "/slos/1/objective",
                "/slos/1/sli",
                "/slos/2/sli",
                "/slos/2/alerting",
            ]
        );
        let message = |path: &str| {
            error
                .problems
                .iter()
                .find(|p| p.path == path)
                .map(|p| p.message.clone())
                .unwrap()
        };
        assert!(message("/slos/0/sli/events/error_query").contains("{{.window}}"));
        assert!(message("/slos/0/sli/events/total_query").contains("not closed"));
        assert!(message("/slos/0/objective").contains("no error"));
        assert!(message("/extra").contains("expected one of"));
        assert!(
            error
                .to_string()
                .starts_with("invalid SLO spec: error at /extra")
        );
    }

    #[test]
    fn alert_names_labels_and_duplicates_are_checked() {
        let text = r#"
version: prometheus/v1
service: web
slos:
  - name: a
    objective: 99
    sli: {raw: {error_ratio_query: "x[{{.window}}]"}}
    alerting:
      name: "9lives"
      labels: {sloth_severity: page}
      annotations: {summary: ""}
      page_alert: {disable: "yes", labels: [1]}
  - name: a
    objective: 99
    sli: {raw: {error_ratio_query: "x[{{.window}}]"}}
    alerting: {name: Fine, ticket_alert: {disable: true}}
"#;
        let error = parse(text).unwrap_err();
        assert_eq!(
            paths(&error),
            [
                "/slos/0/alerting/labels/sloth_severity",
                "/slos/0/alerting/annotations/summary",
                "/slos/0/alerting/page_alert/disable",
                "/slos/0/alerting/page_alert/labels",
                "/slos/0/alerting/name",
                "/slos/1/name",
            ]
        );
    }

    #[test]
    fn alert_names_are_optional_only_when_both_alerts_are_disabled() {
        let base = r#"
version: prometheus/v1
service: web
slos:
  - name: a
    objective: 99
    sli: {raw: {error_ratio_query: "x[{{.window}}]"}}
"#;
        let error = parse(&format!(
            "{base}    alerting: {{ticket_alert: {{disable: true}}}}\n"
        ))
        .unwrap_err();
        assert_eq!(paths(&error), ["/slos/0/alerting/name"]);
        assert!(parse(&format!(
            "{base}    alerting: {{page_alert: {{disable: true}}, ticket_alert: {{disable: true}}}}\n"
        ))
        .is_ok());
    }

    #[test]
    fn malformed_text_is_one_problem_for_the_whole_spec() {
        for text in ["", "version: [", "- 1\n- 2", &"[".repeat(100)] {
            let error = parse(text).unwrap_err();
            assert_eq!(paths(&error), [""], "{text}: {error}");
        }
        let huge = format!("service: {}", "x".repeat(MAX_SPEC_BYTES));
        assert!(parse(&huge).unwrap_err().to_string().contains("limit"));
    }

    #[test]
    fn low_objectives_warn_that_alerts_cannot_fire() {
        let text = r#"
version: prometheus/v1
service: web
slos:
  - name: a
    objective: 90
    sli: {raw: {error_ratio_query: "x[{{.window}}]"}}
    alerting: {name: A}
"#;
        let warnings = parse(text).unwrap().warnings();
        let messages: Vec<&str> = warnings.iter().map(|w| w.message.as_str()).collect();
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages[0].contains("page alert's 14.4x burn rate over 1h"),
            "{messages:?}"
        );
    }

    #[test]
    fn queries_render_every_placeholder() {
        assert_eq!(
            render_query("a[{{.window}}] / b[{{ .window }}]", "5s"),
            "a[5s] / b[5s]"
        );
        assert!(query_parts("a[{{.window}]").is_err());
        assert!(query_parts("a}}").is_err());
        assert!(balanced(r#"sum(x{a="(", b='['})"#).is_ok());
        assert!(balanced("sum(x[5m]))").is_err());
        assert!(balanced("sum(x[5m)]").is_err());
    }

    #[test]
    fn names_follow_prometheus_rules() {
        assert!(is_label_name("ensign_flag"));
        assert!(!is_label_name("1x"));
        assert!(!is_label_name("a-b"));
        assert!(is_alert_name("Slo:Burn_1"));
        assert!(!is_alert_name("9lives"));
        assert!(is_slo_name("requests-availability.v2"));
        assert!(!is_slo_name("-x"));
        assert!(!is_slo_name("a/b"));
    }
}
