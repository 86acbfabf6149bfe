//! The kill switch's JSON shapes: the Alertmanager webhook payload (version
//! 4; unknown fields are ignored, as Alertmanager adds fields over time) and
//! its answer, receivers, bindings, kill records and a flag's kill-switch
//! status.

use std::collections::BTreeMap;

use ensign_storage as storage;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FlagConfig;

// The webhook.

/// An Alertmanager webhook notification (payload version 4). Only the fields
/// the kill switch reads are listed; others are ignored.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerPayload {
    /// Must be `"4"`.
    pub version: String,
    /// The Alertmanager receiver that sent it.
    #[serde(default)]
    pub receiver: String,
    /// The alerts of the group (firing and recently resolved).
    pub alerts: Vec<AlertmanagerAlert>,
}

/// One alert of a notification.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerAlert {
    /// `firing` or `resolved`.
    pub status: AlertStatus,
    /// The alert's labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// When it started firing (RFC 3339).
    pub starts_at: String,
    /// Alertmanager's fingerprint of the label set.
    pub fingerprint: String,
}

/// `firing` or `resolved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// The alert fires.
    Firing,
    /// The alert stopped firing.
    Resolved,
}

impl From<AlertStatus> for storage::AlertStatus {
    fn from(status: AlertStatus) -> Self {
        match status {
            AlertStatus::Firing => storage::AlertStatus::Firing,
            AlertStatus::Resolved => storage::AlertStatus::Resolved,
        }
    }
}

impl From<storage::AlertStatus> for AlertStatus {
    fn from(status: storage::AlertStatus) -> Self {
        match status {
            storage::AlertStatus::Firing => AlertStatus::Firing,
            storage::AlertStatus::Resolved => AlertStatus::Resolved,
        }
    }
}

/// What the webhook did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookAnswer {
    /// One line per alert and flag acted on.
    pub actions: Vec<WebhookAction>,
}

/// What one alert did to one flag (or why it did nothing).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAction {
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// The alert's status.
    pub status: AlertStatus,
    /// The flag set, when known.
    pub flag_set: Option<String>,
    /// The flag, when known.
    pub flag: Option<String>,
    /// The environment, when known.
    pub environment: Option<String>,
    /// `disable`, `variant:<name>` or `zero-weight:<variant>`, when known.
    pub action: Option<String>,
    /// The binding that matched; none for the alert's own `ensign_*` labels.
    pub binding: Option<String>,
    /// `applied`, `unchanged`, `dry_run`, `duplicate`, `kept`,
    /// `restore_scheduled`, `closed`, `no_match`, `out_of_scope` (the
    /// receiver may not act in that environment; nothing was done) or `error`.
    pub outcome: String,
    /// Why, for errors.
    pub message: Option<String>,
    /// The kill record written, if any.
    pub record: Option<i64>,
}

impl From<storage::AlertAction> for WebhookAction {
    fn from(a: storage::AlertAction) -> Self {
        WebhookAction {
            fingerprint: a.fingerprint,
            status: a.status.into(),
            flag_set: a.flag_set,
            flag: a.flag,
            environment: a.environment,
            action: a.action,
            binding: a.binding,
            outcome: a.outcome.as_str().to_owned(),
            message: a.message,
            record: a.record,
        }
    }
}

// Receivers.

/// An Alertmanager receiver with a webhook secret of its own.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Receiver {
    /// The name (the Basic auth user name).
    pub name: String,
    /// The environments its alerts may act in; absent: all. Alerts for
    /// other environments are answered `out_of_scope` and change nothing.
    pub environments: Option<Vec<String>>,
    /// When it was created (unix milliseconds).
    pub created_at: i64,
}

impl From<storage::AlertmanagerReceiver> for Receiver {
    fn from(r: storage::AlertmanagerReceiver) -> Self {
        Receiver {
            name: r.name,
            environments: r.environments,
            created_at: r.created_at,
        }
    }
}

/// A receiver to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewReceiver {
    /// 1 to 128 printable characters, no `:`.
    #[schema(
        pattern = r"^[^:\x00-\x1f\x7f-\x9f]{1,128}$",
        example = "alertmanager-eu"
    )]
    pub name: String,
    /// The environments its alerts may act in (at least one; absent: all).
    /// A caller limited to environments must name some of its own.
    #[serde(default)]
    #[schema(min_items = 1)]
    pub environments: Option<Vec<String>>,
    /// Why, for the audit log.
    #[serde(default)]
    pub comment: Option<String>,
}

/// A created receiver with its secret, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedReceiver {
    /// The receiver.
    pub receiver: Receiver,
    /// The secret for `Authorization: Bearer` or Basic `<name>:<secret>`.
    pub secret: String,
}

// Bindings.

/// What happens when the alert resolves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnResolved {
    /// The flag stays as the kill switch left it; a human restores it.
    #[default]
    Keep,
    /// The configuration from before the kill is put back after the cool-down.
    Restore,
}

impl From<OnResolved> for storage::OnResolved {
    fn from(o: OnResolved) -> Self {
        match o {
            OnResolved::Keep => storage::OnResolved::Keep,
            OnResolved::Restore => storage::OnResolved::Restore,
        }
    }
}

impl From<storage::OnResolved> for OnResolved {
    fn from(o: storage::OnResolved) -> Self {
        match o {
            storage::OnResolved::Keep => OnResolved::Keep,
            storage::OnResolved::Restore => OnResolved::Restore,
        }
    }
}

/// A flag a binding acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    /// The flag set.
    pub flag_set: String,
    /// The flag key.
    pub flag: String,
    /// The environment.
    pub environment: String,
    /// `disable`, `variant:<name>` or `zero-weight:<variant>`.
    pub action: String,
}

/// A kill-switch binding: alerts whose labels equal every matcher act on
/// every target.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    /// A unique name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Label name → value; an alert matches when it has every one.
    pub matchers: BTreeMap<String, String>,
    /// What to do.
    pub targets: Vec<Target>,
    /// What happens when the alert resolves.
    pub on_resolved: OnResolved,
    /// How long after the resolution a restore waits.
    pub cooldown_seconds: i64,
    /// Record what would be done, change nothing.
    pub dry_run: bool,
    /// Increases with every change (the ETag).
    pub version: i64,
}

impl From<storage::KillSwitchBinding> for Binding {
    fn from(b: storage::KillSwitchBinding) -> Self {
        Binding {
            name: b.name,
            description: b.description,
            matchers: b.matchers,
            targets: b
                .targets
                .into_iter()
                .map(|t| Target {
                    flag_set: t.flag_set,
                    flag: t.flag,
                    environment: t.environment,
                    action: t.action,
                })
                .collect(),
            on_resolved: b.on_resolved.into(),
            cooldown_seconds: b.cooldown_seconds,
            dry_run: b.dry_run,
            version: b.version,
        }
    }
}

fn default_cooldown() -> i64 {
    300
}

/// A binding to create (`name` required) or replace (`name`, if given, must
/// be the one in the path). A `version` field is accepted and ignored (send
/// `If-Match`), so a binding read can be sent back as it is.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BindingInput {
    /// A unique name: 1 to 128 letters, digits, `-`, `_` or `.`.
    #[serde(default)]
    pub name: Option<String>,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Label name → value (1 to 32).
    pub matchers: BTreeMap<String, String>,
    /// What to do (1 to 64 targets).
    pub targets: Vec<Target>,
    /// What happens when the alert resolves (default `keep`).
    #[serde(default)]
    pub on_resolved: OnResolved,
    /// Seconds after the resolution before a restore (default 300).
    #[serde(
        default = "default_cooldown",
        deserialize_with = "super::integer::required"
    )]
    pub cooldown_seconds: i64,
    /// Record what would be done, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Ignored.
    #[serde(default, deserialize_with = "super::integer::optional")]
    pub version: Option<i64>,
    /// Why, for the audit log.
    #[serde(default)]
    pub comment: Option<String>,
}

impl BindingInput {
    /// The storage binding named `name`, and the comment.
    pub fn split(self, name: String) -> (storage::KillSwitchBinding, Option<String>) {
        let binding = storage::KillSwitchBinding {
            name,
            description: self.description,
            matchers: self.matchers,
            targets: self
                .targets
                .into_iter()
                .map(|t| storage::KillTarget {
                    flag_set: t.flag_set,
                    flag: t.flag,
                    environment: t.environment,
                    action: t.action,
                })
                .collect(),
            on_resolved: self.on_resolved.into(),
            cooldown_seconds: self.cooldown_seconds,
            dry_run: self.dry_run,
            version: 0,
        };
        (binding, self.comment)
    }
}

// Records.

/// The alert behind a kill.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertInfo {
    /// Alertmanager's fingerprint.
    pub fingerprint: String,
    /// The alert's labels.
    pub labels: BTreeMap<String, String>,
    /// The Alertmanager receiver.
    pub receiver: String,
    /// When the alert started (unix milliseconds).
    pub starts_at: i64,
}

/// What a kill switch did to a flag in one environment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KillRecord {
    /// The record's id.
    pub id: i64,
    /// The environment.
    pub environment: String,
    /// The action taken.
    pub action: String,
    /// The binding, or none for an alert's own `ensign_*` labels.
    pub binding: Option<String>,
    /// The alert.
    pub alert: AlertInfo,
    /// When (unix milliseconds).
    pub at: i64,
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// The configuration a restore puts back.
    pub before: FlagConfig,
    /// The configuration the kill made (or would have made).
    pub after: FlagConfig,
    /// When the alert resolved.
    pub resolved_at: Option<i64>,
    /// When an automatic restore is due.
    pub restore_due_at: Option<i64>,
    /// When the record was closed.
    pub restored_at: Option<i64>,
    /// Who closed it.
    pub restored_by: Option<String>,
    /// `restored`, `skipped` (a human changed the flag since), `superseded`
    /// (another kill of the flag was still open) or `dry_run`.
    pub restore_outcome: Option<String>,
}

impl From<storage::KillRecord> for KillRecord {
    fn from(r: storage::KillRecord) -> Self {
        KillRecord {
            id: r.id,
            environment: r.environment,
            action: r.action,
            binding: r.binding,
            alert: AlertInfo {
                fingerprint: r.fingerprint,
                labels: r.labels,
                receiver: r.receiver,
                starts_at: r.starts_at,
            },
            at: r.at,
            dry_run: r.dry_run,
            before: r.config_before.into(),
            after: r.config_after.into(),
            resolved_at: r.resolved_at,
            restore_due_at: r.restore_due_at,
            restored_at: r.restored_at,
            restored_by: r.restored_by,
            restore_outcome: r.restore_outcome,
        }
    }
}

/// A flag's kill switch: the bindings that target it, the kills still open,
/// and the latest closed ones.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlagKillSwitch {
    /// Bindings with a target on this flag.
    pub bindings: Vec<Binding>,
    /// Open kills, newest first.
    pub active: Vec<KillRecord>,
    /// Closed kills, newest first.
    pub history: Vec<KillRecord>,
}

/// A manual restore.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreRequest {
    /// Why, for the audit log.
    #[serde(default)]
    pub comment: Option<String>,
}
