//! Prometheus rule groups for a spec, with Sloth's names so that Sloth can
//! replace Ensign's generator (or the reverse) without touching dashboards or
//! Alertmanager routes.
//!
//! Per SLO (`sloth_id` = `<service>-<slo>`), three groups:
//!
//! - `sloth-slo-sli-recordings-<id>`: `slo:sli_error:ratio_rate<W>` for every
//!   window W of [`SLI_WINDOWS`] from the spec's queries, and the period ratio
//!   `slo:sli_error:ratio_rate30d`, the average of the 5m ratio over the period;
//! - `sloth-slo-meta-recordings-<id>`: `slo:objective:ratio`,
//!   `slo:error_budget:ratio`, `slo:time_period:days`,
//!   `slo:current_burn_rate:ratio`, `slo:period_burn_rate:ratio`,
//!   `slo:period_error_budget_remaining:ratio` and `sloth_slo_info`;
//! - `sloth-slo-alerts-<id>` (unless both alerts are disabled): the page alert,
//!   (1h and 5m above 14.4× the budget) or (6h and 30m above 6×), and the
//!   ticket alert, (1d and 2h above 3×) or (3d and 6h above 1×), both named
//!   `alerting.name`, told apart by `sloth_severity`.
//!
//! Every series carries `sloth_id`, `sloth_service`, `sloth_slo`,
//! `sloth_window` (recordings) and the spec's labels; the alerts carry the
//! series' labels (but `sloth_window`), the alerting labels, their own page or
//! ticket labels (so `ensign_flag` can ride on the page alert) and
//! `sloth_severity`.

use serde::Serialize;

use crate::spec::{Labels, SPEC_VERSION, Sli, Slo, Spec, render_query, round};
use crate::window::{PERIOD, SLI_WINDOWS, Window, WindowScale};

/// Which of the two alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertSeverity {
    /// Fast burn: someone should look now.
    Page,
    /// Slow burn: someone should look soon.
    Ticket,
}

impl AlertSeverity {
    /// `page` or `ticket` (the `sloth_severity` label).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertSeverity::Page => "page",
            AlertSeverity::Ticket => "ticket",
        }
    }
}

/// One multiwindow condition: both windows burn faster than `factor` times
/// the budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnRateAlert {
    /// The alert the condition belongs to.
    pub severity: AlertSeverity,
    /// The burn rate both windows must exceed.
    pub factor: f64,
    /// The short window (is it still burning?).
    pub short: Window,
    /// The long window (has enough budget gone to matter?).
    pub long: Window,
}

/// The four conditions (Google SRE workbook, 30-day period): page at 14.4×
/// over 1h/5m (2 % of the budget) or 6× over 6h/30m (5 %); ticket at 3× over
/// 1d/2h or 1× over 3d/6h (10 % each). The alerts and the status use these.
pub const BURN_RATE_ALERTS: [BurnRateAlert; 4] = [
    BurnRateAlert {
        severity: AlertSeverity::Page,
        factor: 14.4,
        short: SLI_WINDOWS[0],
        long: SLI_WINDOWS[2],
    },
    BurnRateAlert {
        severity: AlertSeverity::Page,
        factor: 6.0,
        short: SLI_WINDOWS[1],
        long: SLI_WINDOWS[4],
    },
    BurnRateAlert {
        severity: AlertSeverity::Ticket,
        factor: 3.0,
        short: SLI_WINDOWS[3],
        long: SLI_WINDOWS[5],
    },
    BurnRateAlert {
        severity: AlertSeverity::Ticket,
        factor: 1.0,
        short: SLI_WINDOWS[4],
        long: SLI_WINDOWS[6],
    },
];

/// The name of the error ratio recorded over `window`.
pub fn sli_error_metric(window: Window) -> String {
    format!("slo:sli_error:ratio_rate{}", window.name)
}

/// A Prometheus rule file (`promtool check rules` reads it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleFile {
    /// The groups, three per SLO (two when both alerts are disabled).
    pub groups: Vec<RuleGroup>,
}

/// A rule group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleGroup {
    /// Unique within the file.
    pub name: String,
    /// The rules, evaluated in order.
    pub rules: Vec<Rule>,
}

/// A recording or alerting rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Rule {
    /// Records a series.
    Recording {
        /// The series name.
        record: String,
        /// PromQL.
        expr: String,
        /// Labels added to the series.
        labels: Labels,
    },
    /// Fires an alert.
    Alerting {
        /// The alert name.
        alert: String,
        /// PromQL; the alert fires while it returns series.
        expr: String,
        /// Labels added to the alert.
        labels: Labels,
        /// Annotations of the alert.
        annotations: Labels,
    },
}

impl RuleFile {
    /// The file as YAML.
    pub fn to_yaml(&self) -> String {
        // Only strings, lists and maps: serialization cannot fail.
        serde_norway::to_string(self).unwrap_or_default()
    }
}

/// The rules of every SLO of `spec`, windows compressed by `scale`.
pub fn generate(spec: &Spec, scale: WindowScale) -> RuleFile {
    let mut groups = Vec::new();
    for slo in &spec.slos {
        let generator = Generator::new(spec, slo, scale);
        groups.push(RuleGroup {
            name: format!("sloth-slo-sli-recordings-{}", generator.id),
            rules: generator.sli_recordings(),
        });
        groups.push(RuleGroup {
            name: format!("sloth-slo-meta-recordings-{}", generator.id),
            rules: generator.meta_recordings(),
        });
        let alerts = generator.alerts();
        if !alerts.is_empty() {
            groups.push(RuleGroup {
                name: format!("sloth-slo-alerts-{}", generator.id),
                rules: alerts,
            });
        }
    }
    RuleFile { groups }
}

/// A number as PromQL writes it (`0.001`, `14.4`, `6`).
fn number(value: f64) -> String {
    format!("{}", round(value))
}

/// A PromQL string literal.
fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// What the rules of one SLO share.
struct Generator<'s> {
    spec: &'s Spec,
    slo: &'s Slo,
    scale: WindowScale,
    id: String,
    /// `{sloth_id="…", sloth_service="…", sloth_slo="…"}`.
    selector: String,
}

impl<'s> Generator<'s> {
    fn new(spec: &'s Spec, slo: &'s Slo, scale: WindowScale) -> Self {
        let id = spec.id(slo);
        let selector = format!(
            "{{sloth_id={}, sloth_service={}, sloth_slo={}}}",
            quote(&id),
            quote(&spec.service),
            quote(&slo.name)
        );
        Generator {
            spec,
            slo,
            scale,
            id,
            selector,
        }
    }

    /// The spec's labels with the SLO's identity.
    fn series_labels(&self) -> Labels {
        let mut labels = self.spec.labels_of(self.slo);
        labels.insert("sloth_id".to_owned(), self.id.clone());
        labels.insert("sloth_service".to_owned(), self.spec.service.clone());
        labels.insert("sloth_slo".to_owned(), self.slo.name.clone());
        labels
    }

    fn window_labels(&self, window: Window) -> Labels {
        let mut labels = self.series_labels();
        labels.insert("sloth_window".to_owned(), window.name.to_owned());
        labels
    }

    fn series(&self, metric: &str) -> String {
        format!("{metric}{}", self.selector)
    }

    fn sli_recordings(&self) -> Vec<Rule> {
        let mut rules: Vec<Rule> = SLI_WINDOWS
            .iter()
            .map(|&window| {
                let range = self.scale.range(window);
                let expr = match &self.slo.sli {
                    Sli::Events {
                        error_query,
                        total_query,
                    } => format!(
                        "({})\n/\n({})\n",
                        render_query(error_query.trim(), &range),
                        render_query(total_query.trim(), &range)
                    ),
                    Sli::Raw { error_ratio_query } => {
                        format!("({})\n", render_query(error_ratio_query.trim(), &range))
                    }
                };
                Rule::Recording {
                    record: sli_error_metric(window),
                    expr,
                    labels: self.window_labels(window),
                }
            })
            .collect();
        let base = self.series(&sli_error_metric(SLI_WINDOWS[0]));
        let period = self.scale.range(PERIOD);
        rules.push(Rule::Recording {
            record: sli_error_metric(PERIOD),
            expr: format!(
                "sum_over_time({base}[{period}])\n/ ignoring (sloth_window)\ncount_over_time({base}[{period}])\n"
            ),
            labels: self.window_labels(PERIOD),
        });
        rules
    }

    fn meta_recordings(&self) -> Vec<Rule> {
        let labels = self.series_labels();
        let record = |name: &str, expr: String| Rule::Recording {
            record: name.to_owned(),
            expr,
            labels: labels.clone(),
        };
        let per_budget = |metric: String| {
            format!(
                "{metric}\n/ on(sloth_id, sloth_slo, sloth_service) group_left\n{}\n",
                self.series("slo:error_budget:ratio")
            )
        };
        let period_days = PERIOD.seconds as f64 / 86_400.0 / f64::from(self.scale.get());
        let mut info = labels.clone();
        info.insert("sloth_mode".to_owned(), "ensign".to_owned());
        info.insert("sloth_spec".to_owned(), SPEC_VERSION.to_owned());
        info.insert("sloth_objective".to_owned(), self.slo.objective.to_string());
        info.insert("ensign_window_scale".to_owned(), self.scale.to_string());
        vec![
            record(
                "slo:objective:ratio",
                format!("vector({})", number(self.slo.objective_ratio())),
            ),
            record(
                "slo:error_budget:ratio",
                format!("vector({})", number(self.slo.error_budget())),
            ),
            record(
                "slo:time_period:days",
                format!("vector({})", number(period_days)),
            ),
            record(
                "slo:current_burn_rate:ratio",
                per_budget(self.series(&sli_error_metric(SLI_WINDOWS[0]))),
            ),
            record(
                "slo:period_burn_rate:ratio",
                per_budget(self.series(&sli_error_metric(PERIOD))),
            ),
            record(
                "slo:period_error_budget_remaining:ratio",
                format!("1 - {}", self.series("slo:period_burn_rate:ratio")),
            ),
            Rule::Recording {
                record: "sloth_slo_info".to_owned(),
                expr: "vector(1)".to_owned(),
                labels: info,
            },
        ]
    }

    fn alerts(&self) -> Vec<Rule> {
        [AlertSeverity::Page, AlertSeverity::Ticket]
            .into_iter()
            .filter(|&severity| !self.slo.alert(severity).disable)
            .map(|severity| self.alert(severity))
            .collect()
    }

    fn alert(&self, severity: AlertSeverity) -> Rule {
        let options = self.slo.alert(severity);
        let budget = number(self.slo.error_budget());
        let above = |window: Window, factor: f64| {
            format!(
                "    max({} > ({} * {budget})) without (sloth_window)",
                self.series(&sli_error_metric(window)),
                number(factor)
            )
        };
        let expr = BURN_RATE_ALERTS
            .iter()
            .filter(|condition| condition.severity == severity)
            .map(|condition| {
                format!(
                    "(\n{}\n    and\n{}\n)",
                    above(condition.short, condition.factor),
                    above(condition.long, condition.factor)
                )
            })
            .collect::<Vec<_>>()
            .join("\nor\n");
        let mut labels = self.slo.alerting.labels.clone();
        labels.extend(options.labels.clone());
        labels.insert("sloth_severity".to_owned(), severity.as_str().to_owned());
        let mut annotations = Labels::new();
        annotations.insert(
            "title".to_owned(),
            format!(
                "({}) {{{{$labels.sloth_service}}}} {{{{$labels.sloth_slo}}}} SLO error budget burn rate is too fast.",
                severity.as_str()
            ),
        );
        annotations.insert(
            "summary".to_owned(),
            "The {{$labels.sloth_service}} {{$labels.sloth_slo}} SLO is burning its error budget faster than it can afford.".to_owned(),
        );
        annotations.extend(self.slo.alerting.annotations.clone());
        annotations.extend(options.annotations.clone());
        Rule::Alerting {
            alert: self.slo.alerting.name.clone(),
            expr: format!("{expr}\n"),
            labels,
            annotations,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::spec::parse;

    const SPEC: &str = r#"
version: "prometheus/v1"
service: checkout
labels: {team: payments}
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total[{{.window}}]))
    alerting:
      name: CheckoutAvailability
      labels: {category: availability}
      annotations: {runbook: "https://runbooks.example/checkout"}
      page_alert: {labels: {severity: page, ensign_flag: new-checkout}}
      ticket_alert: {labels: {severity: ticket}, annotations: {summary: "Slow burn."}}
  - name: latency
    objective: 99
    sli: {raw: {error_ratio_query: "1 - avg_over_time(fast:ratio[{{.window}}])"}}
    alerting: {page_alert: {disable: true}, ticket_alert: {disable: true}}
"#;

    fn rules_of<'f>(file: &'f RuleFile, group: &str) -> &'f [Rule] {
        &file
            .groups
            .iter()
            .find(|g| g.name == group)
            .unwrap_or_else(|| panic!("no group {group}"))
            .rules
    }

    fn recording<'r>(rules: &'r [Rule], name: &str) -> (&'r str, &'r Labels) {
        rules
            .iter()
            .find_map(|rule| match rule {
                Rule::Recording {
                    record,
                    expr,
                    labels,
                } if record == name => Some((expr.as_str(), labels)),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no recording {name}"))
    }

    #[test]
    fn groups_follow_sloth_names() {
        let file = generate(&parse(SPEC).unwrap(), WindowScale::ONE);
        let names: Vec<&str> = file.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "sloth-slo-sli-recordings-checkout-availability",
                "sloth-slo-meta-recordings-checkout-availability",
                "sloth-slo-alerts-checkout-availability",
                "sloth-slo-sli-recordings-checkout-latency",
                "sloth-slo-meta-recordings-checkout-latency",
            ]
        );
    }

    #[test]
    fn sli_recordings_cover_every_window_and_the_period() {
        let file = generate(&parse(SPEC).unwrap(), WindowScale::ONE);
        let rules = rules_of(&file, "sloth-slo-sli-recordings-checkout-availability");
        let records: Vec<String> = rules
            .iter()
            .map(|rule| match rule {
                Rule::Recording { record, .. } => record.clone(),
                Rule::Alerting { alert, .. } => alert.clone(),
            })
            .collect();
        assert_eq!(
            records,
            [
                "slo:sli_error:ratio_rate5m",
                "slo:sli_error:ratio_rate30m",
                "slo:sli_error:ratio_rate1h",
                "slo:sli_error:ratio_rate2h",
                "slo:sli_error:ratio_rate6h",
                "slo:sli_error:ratio_rate1d",
                "slo:sli_error:ratio_rate3d",
                "slo:sli_error:ratio_rate30d",
            ]
        );
        let (expr, labels) = recording(rules, "slo:sli_error:ratio_rate1h");
        assert_eq!(
            expr,
            "(sum(rate(http_requests_total{code=~\"5..\"}[1h])))\n/\n(sum(rate(http_requests_total[1h])))\n"
        );
        assert_eq!(
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
            [
                "sloth_id=checkout-availability",
                "sloth_service=checkout",
                "sloth_slo=availability",
                "sloth_window=1h",
                "team=payments",
            ]
        );
        let (expr, _) = recording(rules, "slo:sli_error:ratio_rate30d");
        assert!(expr.starts_with("sum_over_time(slo:sli_error:ratio_rate5m{sloth_id=\"checkout-availability\", sloth_service=\"checkout\", sloth_slo=\"availability\"}[30d])"), "{expr}");
        let raw = rules_of(&file, "sloth-slo-sli-recordings-checkout-latency");
        assert_eq!(
            recording(raw, "slo:sli_error:ratio_rate3d").0,
            "(1 - avg_over_time(fast:ratio[3d]))\n"
        );
    }

    #[test]
    fn a_window_scale_compresses_ranges_but_keeps_names() {
        let scale = WindowScale::new(60).unwrap();
        let file = generate(&parse(SPEC).unwrap(), scale);
        let rules = rules_of(&file, "sloth-slo-sli-recordings-checkout-availability");
        let (expr, labels) = recording(rules, "slo:sli_error:ratio_rate5m");
        assert!(expr.contains("[5s]"), "{expr}");
        assert_eq!(labels["sloth_window"], "5m");
        assert!(
            recording(rules, "slo:sli_error:ratio_rate3d")
                .0
                .contains("[1h12m]")
        );
        assert!(
            recording(rules, "slo:sli_error:ratio_rate30d")
                .0
                .contains("[12h]")
        );
        let meta = rules_of(&file, "sloth-slo-meta-recordings-checkout-availability");
        assert_eq!(recording(meta, "slo:time_period:days").0, "vector(0.5)");
        assert_eq!(
            recording(meta, "sloth_slo_info").1["ensign_window_scale"],
            "60"
        );
    }

    #[test]
    fn meta_recordings_state_objective_budget_and_burn() {
        let file = generate(&parse(SPEC).unwrap(), WindowScale::ONE);
        let meta = rules_of(&file, "sloth-slo-meta-recordings-checkout-availability");
        assert_eq!(recording(meta, "slo:objective:ratio").0, "vector(0.999)");
        assert_eq!(recording(meta, "slo:error_budget:ratio").0, "vector(0.001)");
        assert_eq!(recording(meta, "slo:time_period:days").0, "vector(30)");
        assert!(
            recording(meta, "slo:current_burn_rate:ratio")
                .0
                .starts_with("slo:sli_error:ratio_rate5m{")
        );
        assert!(
            recording(meta, "slo:period_error_budget_remaining:ratio")
                .0
                .starts_with("1 - slo:period_burn_rate:ratio{")
        );
        let (_, info) = recording(meta, "sloth_slo_info");
        assert_eq!(info["sloth_objective"], "99.9");
        assert_eq!(info["sloth_spec"], "prometheus/v1");
    }

    #[test]
    fn alerts_are_multiwindow_multi_burn_rate_with_the_spec_labels() {
        let file = generate(&parse(SPEC).unwrap(), WindowScale::ONE);
        let alerts = rules_of(&file, "sloth-slo-alerts-checkout-availability");
        assert_eq!(alerts.len(), 2);
        let Rule::Alerting {
            alert,
            expr,
            labels,
            annotations,
        } = &alerts[0]
        else {
            panic!("not an alert");
        };
        assert_eq!(alert, "CheckoutAvailability");
        let selector = "{sloth_id=\"checkout-availability\", sloth_service=\"checkout\", sloth_slo=\"availability\"}";
        assert_eq!(
            *expr,
            format!(
                "(\n    max(slo:sli_error:ratio_rate5m{selector} > (14.4 * 0.001)) without (sloth_window)\n    and\n    \
                 max(slo:sli_error:ratio_rate1h{selector} > (14.4 * 0.001)) without (sloth_window)\n)\nor\n(\n    \
                 max(slo:sli_error:ratio_rate30m{selector} > (6 * 0.001)) without (sloth_window)\n    and\n    \
                 max(slo:sli_error:ratio_rate6h{selector} > (6 * 0.001)) without (sloth_window)\n)\n"
            )
        );
        assert_eq!(labels["ensign_flag"], "new-checkout");
        assert_eq!(labels["sloth_severity"], "page");
        assert_eq!(labels["severity"], "page");
        assert_eq!(labels["category"], "availability");
        assert_eq!(annotations["runbook"], "https://runbooks.example/checkout");
        assert!(annotations["title"].starts_with("(page) "));
        let Rule::Alerting {
            expr,
            labels,
            annotations,
            ..
        } = &alerts[1]
        else {
            panic!("not an alert");
        };
        assert!(expr.contains("ratio_rate2h{") && expr.contains("(3 * 0.001)"));
        assert!(expr.contains("ratio_rate3d{") && expr.contains("(1 * 0.001)"));
        assert_eq!(labels["sloth_severity"], "ticket");
        assert!(!labels.contains_key("ensign_flag"));
        assert_eq!(annotations["summary"], "Slow burn.");
    }

    #[test]
    fn the_yaml_is_a_groups_document() {
        let file = generate(&parse(SPEC).unwrap(), WindowScale::ONE);
        let yaml = file.to_yaml();
        assert!(yaml.starts_with("groups:\n"), "{yaml}");
        let back: serde_json::Value = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(back, serde_json::to_value(&file).unwrap());
        assert_eq!(
            back["groups"][2]["rules"][0]["labels"]["ensign_flag"],
            "new-checkout"
        );
    }
}
