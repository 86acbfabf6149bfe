//! The SLO-linked kill switch: bindings (alert label matchers → flag
//! actions), Alertmanager receiver tokens, alert receipts (the idempotency
//! key: fingerprint, status, `startsAt`) and kill records (which alert changed
//! which flag configuration, what it was before, and how it was restored).
//!
//! Every alert is handled in one transaction: its receipt (a repeat or an HA
//! duplicate finds the receipt there and does nothing), every action it
//! causes, their audit entries (actor [`ALERTMANAGER_ACTOR`], the comment
//! carrying the alert's fingerprint, receiver and labels) and the change
//! notification, marked with the time the alert was received. Restores are
//! guarded transactions too: a record is closed only by the transaction that
//! finds it still open, so several replicas applying due restores act once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlx::Row as _;

use super::flags::{store_config, validate_config};
use super::tokens::{hash_secret, new_secret};
use super::{Write, check_version, get, json_column, stale};
use crate::error::{Result, StorageError, from_sqlx};
use crate::model::{Actor, FlagConfig, covers};
use crate::{Storage, now_millis};

/// The actor of every change the kill switch makes on its own.
pub const ALERTMANAGER_ACTOR: &str = "automation:alertmanager";

/// The most matchers a binding may have.
const MAX_MATCHERS: usize = 32;
/// The most targets a binding may have.
const MAX_TARGETS: usize = 64;
/// The longest cool-down before an automatic restore: one week.
const MAX_COOLDOWN_SECONDS: i64 = 7 * 24 * 3600;
/// How many records of a flag its history shows.
const HISTORY_LIMIT: i64 = 100;
/// How many due restores one pass applies.
const RESTORE_BATCH: i64 = 100;
/// How often an alert's transaction is retried when a concurrent write to
/// one of its flags got in between.
const ALERT_ATTEMPTS: usize = 10;

/// What a kill switch does to a flag in one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KillAction {
    /// `disable`: state `DISABLED` (SDKs fall back to their code defaults).
    Disable,
    /// `variant:<name>`: the default variant becomes `<name>`, targeting is removed.
    Variant(String),
    /// `zero-weight:<variant>`: the variant's weight becomes 0 in every `fractional`.
    ZeroWeight(String),
}

impl KillAction {
    /// Parses `disable`, `variant:<name>` or `zero-weight:<variant>`.
    pub fn parse(text: &str) -> Option<KillAction> {
        let named = |name: &str| (!name.is_empty()).then(|| name.to_owned());
        match text.split_once(':') {
            None if text == "disable" => Some(KillAction::Disable),
            Some(("variant", name)) => named(name).map(KillAction::Variant),
            Some(("zero-weight", name)) => named(name).map(KillAction::ZeroWeight),
            _ => None,
        }
    }

    /// The label of the action in metrics: `disable`, `variant` or `zero_weight`.
    pub fn kind(&self) -> &'static str {
        match self {
            KillAction::Disable => "disable",
            KillAction::Variant(_) => "variant",
            KillAction::ZeroWeight(_) => "zero_weight",
        }
    }

    /// The configuration this action makes of `config`, or why it cannot.
    pub fn apply(&self, config: &FlagConfig) -> std::result::Result<FlagConfig, String> {
        let mut next = config.clone();
        match self {
            KillAction::Disable => next.state = "DISABLED".to_owned(),
            KillAction::Variant(name) => {
                if !config.variants.contains_key(name) {
                    return Err(format!("the flag has no variant \"{name}\""));
                }
                next.default_variant = Some(name.clone());
                next.targeting = None;
            }
            KillAction::ZeroWeight(name) => {
                let mut found = false;
                if let Some(targeting) = &mut next.targeting {
                    zero_weight(targeting, name, &mut found);
                }
                if !found {
                    return Err(format!(
                        "the targeting has no fractional bucket for variant \"{name}\""
                    ));
                }
            }
        }
        Ok(next)
    }
}

impl std::fmt::Display for KillAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KillAction::Disable => f.write_str("disable"),
            KillAction::Variant(name) => write!(f, "variant:{name}"),
            KillAction::ZeroWeight(name) => write!(f, "zero-weight:{name}"),
        }
    }
}

/// Sets the weight of `variant` to 0 in every `fractional` under `node`
/// (iteratively: the depth of stored targeting is bounded by validation, but
/// no recursion is needed either).
fn zero_weight(node: &mut Value, variant: &str, found: &mut bool) {
    let mut stack = vec![node];
    while let Some(node) = stack.pop() {
        match node {
            Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    if key == "fractional"
                        && let Value::Array(arguments) = value
                    {
                        for bucket in arguments.iter_mut() {
                            if let Value::Array(pair) = bucket
                                && pair.first().and_then(Value::as_str) == Some(variant)
                            {
                                pair.truncate(1);
                                pair.push(Value::from(0));
                                *found = true;
                            }
                        }
                    }
                    stack.push(value);
                }
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
}

/// What happens when the alert that fired a binding resolves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnResolved {
    /// The flag stays as the kill switch left it; a human restores it.
    #[default]
    Keep,
    /// The configuration from before the kill is put back after the cool-down.
    Restore,
}

impl OnResolved {
    fn as_str(self) -> &'static str {
        match self {
            OnResolved::Keep => "keep",
            OnResolved::Restore => "restore",
        }
    }

    fn parse(text: &str) -> Option<OnResolved> {
        match text {
            "keep" => Some(OnResolved::Keep),
            "restore" => Some(OnResolved::Restore),
            _ => None,
        }
    }
}

/// A flag a binding acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillTarget {
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillSwitchBinding {
    /// A unique name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Label name → value; an alert matches when it has every one.
    pub matchers: BTreeMap<String, String>,
    /// What to do.
    pub targets: Vec<KillTarget>,
    /// What happens when the alert resolves.
    pub on_resolved: OnResolved,
    /// How long after the resolution a restore waits.
    pub cooldown_seconds: i64,
    /// Record what would be done, change nothing.
    pub dry_run: bool,
    /// Increases with every change.
    pub version: i64,
}

impl KillSwitchBinding {
    /// Whether an alert with `labels` fires this binding.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.matchers.is_empty()
            && self
                .matchers
                .iter()
                .all(|(name, value)| labels.get(name) == Some(value))
    }
}

/// An Alertmanager receiver allowed to call the webhook with its own secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertmanagerReceiver {
    /// The name (the Basic auth user name).
    pub name: String,
    /// The environments its alerts may act in (`None`: all).
    pub environments: Option<Vec<String>>,
    /// When it was created (unix milliseconds).
    pub created_at: i64,
}

fn row_to_receiver(row: &sqlx::any::AnyRow) -> Result<AlertmanagerReceiver> {
    Ok(AlertmanagerReceiver {
        name: get(row, "name")?,
        environments: super::optional_json_column(row, "environments")?
            .and_then(|v| serde_json::from_value(v).ok()),
        created_at: get(row, "created_at")?,
    })
}

/// `firing` or `resolved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// The alert fires.
    Firing,
    /// The alert stopped firing.
    Resolved,
}

impl AlertStatus {
    fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// One alert of an Alertmanager notification, as the kill switch needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Alertmanager's fingerprint (a hash of the label set).
    pub fingerprint: String,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// When the alert started firing (unix milliseconds).
    pub starts_at: i64,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The notification's receiver.
    pub receiver: String,
    /// When Ensign received the notification (unix milliseconds).
    pub received_at: i64,
}

/// What one alert did to one flag (or why it did nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionOutcome {
    /// The flag's configuration was changed.
    Applied,
    /// The flag was in that state already; the kill is recorded.
    Unchanged,
    /// A dry-run binding: recorded, nothing changed.
    DryRun,
    /// This alert (fingerprint, status, start) was handled before.
    Duplicate,
    /// Resolved; the flag is kept as it is until a human restores it.
    Kept,
    /// Resolved; the flag is restored after the cool-down.
    RestoreScheduled,
    /// Resolved; a dry-run record (or one a human closed already) is closed.
    Closed,
    /// No binding matches and the alert names no flag.
    NoMatch,
    /// The target is in an environment the sender may not act in; nothing
    /// was done.
    OutOfScope,
    /// The action could not be applied (unknown flag, variant, ...).
    Error,
}

impl ActionOutcome {
    /// The label of the outcome in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionOutcome::Applied => "applied",
            ActionOutcome::Unchanged => "unchanged",
            ActionOutcome::DryRun => "dry_run",
            ActionOutcome::Duplicate => "duplicate",
            ActionOutcome::Kept => "kept",
            ActionOutcome::RestoreScheduled => "restore_scheduled",
            ActionOutcome::Closed => "closed",
            ActionOutcome::NoMatch => "no_match",
            ActionOutcome::OutOfScope => "out_of_scope",
            ActionOutcome::Error => "error",
        }
    }
}

/// One line of the answer to a webhook call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertAction {
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// The alert's status.
    pub status: AlertStatus,
    /// The flag set acted on, when known.
    pub flag_set: Option<String>,
    /// The flag acted on, when known.
    pub flag: Option<String>,
    /// The environment, when known.
    pub environment: Option<String>,
    /// The action, when known.
    pub action: Option<String>,
    /// The binding that matched (`None`: the alert's own `ensign_*` labels).
    pub binding: Option<String>,
    /// What happened.
    pub outcome: ActionOutcome,
    /// Why, for errors.
    pub message: Option<String>,
    /// The kill record written, if any.
    pub record: Option<i64>,
}

/// What a kill switch did to a flag in one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KillRecord {
    /// Increasing id.
    pub id: i64,
    /// The flag set.
    pub flag_set: String,
    /// The flag.
    pub flag: String,
    /// The environment.
    pub environment: String,
    /// The action taken.
    pub action: String,
    /// The binding, or `None` for an alert's own `ensign_*` labels.
    pub binding: Option<String>,
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// The alert's labels.
    pub labels: BTreeMap<String, String>,
    /// The Alertmanager receiver.
    pub receiver: String,
    /// When the alert started (unix milliseconds).
    pub starts_at: i64,
    /// When the kill was recorded.
    pub at: i64,
    /// Whether nothing was changed (dry run).
    pub dry_run: bool,
    /// The configuration a restore puts back.
    pub config_before: FlagConfig,
    /// The configuration the kill made (or would have made).
    pub config_after: FlagConfig,
    /// When the alert resolved.
    pub resolved_at: Option<i64>,
    /// When an automatic restore is due.
    pub restore_due_at: Option<i64>,
    /// When the record was closed.
    pub restored_at: Option<i64>,
    /// Who closed it.
    pub restored_by: Option<String>,
    /// `restored`, `skipped` (a human changed the flag since), `superseded`
    /// (another kill of the flag is still open) or `dry_run`.
    pub restore_outcome: Option<String>,
}

/// What an automatic restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreResult {
    /// The kill record.
    pub record: i64,
    /// Its action.
    pub action: String,
    /// `restored`, `skipped` or `superseded`.
    pub outcome: String,
}

/// The configuration of one flag in one environment, read inside a write.
struct Current {
    flag_id: i64,
    flag_version: i64,
    metadata: Map<String, Value>,
    config: FlagConfig,
}

/// What a firing alert asks for on one flag: an action, or a refusal
/// already answered (labels that cannot be acted on).
enum Step {
    /// Act on a flag.
    Act(Planned),
    /// Answer with this error line.
    Refuse(AlertAction),
}

/// Everything an action on one flag needs.
struct Planned {
    target: KillTarget,
    binding: Option<String>,
    on_resolved: OnResolved,
    cooldown_seconds: i64,
    dry_run: bool,
}

fn invalid(path: &str, message: impl Into<String>) -> StorageError {
    StorageError::invalid(path, message)
}

fn without_version(config: &FlagConfig) -> FlagConfig {
    FlagConfig {
        version: 0,
        ..config.clone()
    }
}

fn config_json(config: &FlagConfig) -> String {
    serde_json::to_string(config).unwrap_or_default()
}

fn config_column(row: &sqlx::any::AnyRow, column: &str) -> Result<FlagConfig> {
    serde_json::from_value(json_column(row, column)?)
        .map_err(|e| StorageError::Internal(sqlx::Error::Decode(Box::new(e))))
}

fn labels_column(row: &sqlx::any::AnyRow, column: &str) -> Result<BTreeMap<String, String>> {
    Ok(serde_json::from_value(json_column(row, column)?).unwrap_or_default())
}

const BINDING_COLUMNS: &str =
    "name, description, matchers, targets, on_resolved, cooldown_seconds, dry_run, version";

fn row_to_binding(row: &sqlx::any::AnyRow) -> Result<KillSwitchBinding> {
    Ok(KillSwitchBinding {
        name: get(row, "name")?,
        description: get(row, "description")?,
        matchers: labels_column(row, "matchers")?,
        targets: serde_json::from_value(json_column(row, "targets")?).unwrap_or_default(),
        on_resolved: OnResolved::parse(&get::<String>(row, "on_resolved")?).unwrap_or_default(),
        cooldown_seconds: get(row, "cooldown_seconds")?,
        dry_run: get::<i64>(row, "dry_run")? != 0,
        version: get(row, "version")?,
    })
}

const RECORD_COLUMNS: &str = "id, flag_set, flag, environment, action, binding, fingerprint, labels, receiver, \
     starts_at, at, dry_run, config_before, config_after, resolved_at, restore_due_at, restored_at, restored_by, restore_outcome";

fn row_to_record(row: &sqlx::any::AnyRow) -> Result<KillRecord> {
    Ok(KillRecord {
        id: get(row, "id")?,
        flag_set: get(row, "flag_set")?,
        flag: get(row, "flag")?,
        environment: get(row, "environment")?,
        action: get(row, "action")?,
        binding: get(row, "binding")?,
        fingerprint: get(row, "fingerprint")?,
        labels: labels_column(row, "labels")?,
        receiver: get(row, "receiver")?,
        starts_at: get(row, "starts_at")?,
        at: get(row, "at")?,
        dry_run: get::<i64>(row, "dry_run")? != 0,
        config_before: config_column(row, "config_before")?,
        config_after: config_column(row, "config_after")?,
        resolved_at: get(row, "resolved_at")?,
        restore_due_at: get(row, "restore_due_at")?,
        restored_at: get(row, "restored_at")?,
        restored_by: get(row, "restored_by")?,
        restore_outcome: get(row, "restore_outcome")?,
    })
}

/// The audit comment of an alert's changes: its fingerprint, receiver, start
/// and labels, as JSON.
fn alert_comment(alert: &Alert) -> String {
    json!({
        "alert": {
            "fingerprint": alert.fingerprint,
            "receiver": alert.receiver,
            "startsAt": alert.starts_at,
            "status": alert.status.as_str(),
            "labels": alert.labels,
        }
    })
    .to_string()
}

/// Takes the flag's row lock for the rest of the transaction (PostgreSQL:
/// concurrent kills and restores of one flag run one after the other and each
/// sees what the previous one committed; SQLite writes are serialized anyway).
/// Returns whether the flag exists.
async fn lock_flag(write: &mut Write<'_>, flag_set: &str, flag: &str) -> Result<bool> {
    let locked = sqlx::query(
        "UPDATE flags SET updated_at = updated_at WHERE key = $1 AND flag_set_id = (SELECT id FROM flag_sets WHERE key = $2)",
    )
    .bind(flag.to_owned())
    .bind(flag_set.to_owned())
    .execute(&mut *write.tx)
    .await
    .map_err(|e| from_sqlx(e, "flag"))?;
    Ok(locked.rows_affected() > 0)
}

/// The flag's configuration in `environment`, read inside `write`.
async fn current_config(
    write: &mut Write<'_>,
    flag_set: &str,
    flag: &str,
    environment: &str,
) -> Result<Option<Current>> {
    let row = sqlx::query(
        "SELECT f.id, f.version AS flag_version, f.metadata, c.state, c.variants, c.default_variant, c.targeting, c.version \
         FROM flags f JOIN flag_sets fs ON fs.id = f.flag_set_id JOIN flag_configs c ON c.flag_id = f.id \
         JOIN environments e ON e.id = c.environment_id WHERE fs.key = $1 AND f.key = $2 AND e.key = $3",
    )
    .bind(flag_set.to_owned())
    .bind(flag.to_owned())
    .bind(environment.to_owned())
    .fetch_optional(&mut *write.tx)
    .await
    .map_err(|e| from_sqlx(e, "flag configuration"))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let object = |column: &str| -> Result<Map<String, Value>> {
        Ok(match json_column(&row, column)? {
            Value::Object(map) => map,
            _ => Map::new(),
        })
    };
    Ok(Some(Current {
        flag_id: get(&row, "id")?,
        flag_version: get(&row, "flag_version")?,
        metadata: object("metadata")?,
        config: FlagConfig {
            state: get(&row, "state")?,
            variants: object("variants")?,
            default_variant: get(&row, "default_variant")?,
            targeting: super::optional_json_column(&row, "targeting")?,
            version: get(&row, "version")?,
        },
    }))
}

impl Storage {
    // Bindings.

    /// Every binding, by name.
    pub async fn kill_switch_bindings(&self) -> Result<Vec<KillSwitchBinding>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BINDING_COLUMNS} FROM kill_switch_bindings ORDER BY name"
        )))
        .fetch_all(self.pool())
        .await
        .map_err(|e| from_sqlx(e, "kill-switch bindings"))?;
        rows.iter().map(row_to_binding).collect()
    }

    /// The binding `name`.
    pub async fn kill_switch_binding(&self, name: &str) -> Result<KillSwitchBinding> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BINDING_COLUMNS} FROM kill_switch_bindings WHERE name = $1"
        )))
        .bind(name.to_owned())
        .fetch_optional(self.pool())
        .await
        .map_err(|e| from_sqlx(e, "kill-switch binding"))?
        .ok_or_else(|| StorageError::NotFound(format!("kill-switch binding \"{name}\"")))?;
        row_to_binding(&row)
    }

    /// Checks a binding: its name, matchers, targets (each flag must exist in
    /// its environment, a pinned variant must be one of its variants, a
    /// zero-weight variant must be in a `fractional`) and cool-down. Every
    /// problem is reported with its JSON Pointer.
    pub async fn validate_kill_switch_binding(&self, binding: &KillSwitchBinding) -> Result<()> {
        let mut problems = Vec::new();
        let mut problem = |path: String, message: String| {
            if let StorageError::Invalid(found) = invalid(&path, message) {
                problems.extend(found);
            }
        };
        let name_ok = !binding.name.is_empty()
            && binding.name.len() <= 128
            && binding
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !name_ok {
            problem(
                "/name".into(),
                "use 1 to 128 letters, digits, '-', '_' or '.'".into(),
            );
        }
        if binding.description.len() > 4096 {
            problem("/description".into(), "use at most 4096 characters".into());
        }
        if binding.matchers.is_empty() || binding.matchers.len() > MAX_MATCHERS {
            problem(
                "/matchers".into(),
                format!("give 1 to {MAX_MATCHERS} label matchers"),
            );
        }
        for (label, value) in &binding.matchers {
            if label.is_empty() || label.len() > 256 || value.len() > 1024 {
                problem(
                    format!("/matchers/{}", label.replace('~', "~0").replace('/', "~1")),
                    "label names have 1 to 256 characters, values at most 1024".into(),
                );
            }
        }
        if binding.targets.is_empty() || binding.targets.len() > MAX_TARGETS {
            problem(
                "/targets".into(),
                format!("give 1 to {MAX_TARGETS} targets"),
            );
        }
        if !(0..=MAX_COOLDOWN_SECONDS).contains(&binding.cooldown_seconds) {
            problem(
                "/cooldownSeconds".into(),
                format!("use 0 to {MAX_COOLDOWN_SECONDS} seconds"),
            );
        }
        for (i, target) in binding.targets.iter().enumerate() {
            let Some(action) = KillAction::parse(&target.action) else {
                problem(
                    format!("/targets/{i}/action"),
                    "use disable, variant:<name> or zero-weight:<variant>".into(),
                );
                continue;
            };
            let flag = match self.flag(&target.flag_set, &target.flag).await {
                Ok(flag) => flag,
                Err(StorageError::NotFound(_)) => {
                    problem(
                        format!("/targets/{i}/flag"),
                        format!("no flag \"{}/{}\"", target.flag_set, target.flag),
                    );
                    continue;
                }
                Err(other) => return Err(other),
            };
            let Some(config) = flag.environments.get(&target.environment) else {
                problem(
                    format!("/targets/{i}/environment"),
                    format!("no environment \"{}\"", target.environment),
                );
                continue;
            };
            if let Err(message) = action.apply(config) {
                problem(format!("/targets/{i}/action"), message);
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StorageError::Invalid(problems))
        }
    }

    /// Creates a binding (version 1).
    pub async fn create_kill_switch_binding(
        &self,
        actor: &Actor,
        binding: KillSwitchBinding,
    ) -> Result<KillSwitchBinding> {
        self.validate_kill_switch_binding(&binding).await?;
        let binding = KillSwitchBinding {
            version: 1,
            ..binding
        };
        let now = now_millis();
        let mut write = Write::begin(self, actor).await?;
        sqlx::query(
            "INSERT INTO kill_switch_bindings (name, description, matchers, targets, on_resolved, cooldown_seconds, dry_run, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9)",
        )
        .bind(binding.name.clone())
        .bind(binding.description.clone())
        .bind(json!(binding.matchers).to_string())
        .bind(json!(binding.targets).to_string())
        .bind(binding.on_resolved.as_str())
        .bind(binding.cooldown_seconds)
        .bind(i64::from(binding.dry_run))
        .bind(now)
        .bind(now)
        .execute(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, &format!("kill-switch binding \"{}\"", binding.name)))?;
        write
            .audit(
                "kill_switch.create",
                "kill_switch",
                &binding.name,
                None,
                None,
                serde_json::to_value(&binding).ok().as_ref(),
            )
            .await?;
        write.commit().await?;
        Ok(binding)
    }

    /// Replaces the binding `name` (its name stays).
    pub async fn update_kill_switch_binding(
        &self,
        actor: &Actor,
        name: &str,
        binding: KillSwitchBinding,
        expected_version: Option<i64>,
    ) -> Result<KillSwitchBinding> {
        let before = self.kill_switch_binding(name).await?;
        let resource = format!("kill-switch binding \"{name}\"");
        check_version(&resource, before.version, expected_version)?;
        let after = KillSwitchBinding {
            name: name.to_owned(),
            version: before.version + 1,
            ..binding
        };
        self.validate_kill_switch_binding(&after).await?;
        let mut write = Write::begin(self, actor).await?;
        let updated = sqlx::query(
            "UPDATE kill_switch_bindings SET description = $1, matchers = $2, targets = $3, on_resolved = $4, cooldown_seconds = $5, \
             dry_run = $6, version = version + 1, updated_at = $7 WHERE name = $8 AND version = $9",
        )
        .bind(after.description.clone())
        .bind(json!(after.matchers).to_string())
        .bind(json!(after.targets).to_string())
        .bind(after.on_resolved.as_str())
        .bind(after.cooldown_seconds)
        .bind(i64::from(after.dry_run))
        .bind(now_millis())
        .bind(name.to_owned())
        .bind(before.version)
        .execute(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, &resource))?;
        if updated.rows_affected() == 0 {
            return Err(stale_binding(&mut write, name, before.version).await);
        }
        write
            .audit(
                "kill_switch.update",
                "kill_switch",
                name,
                None,
                serde_json::to_value(&before).ok().as_ref(),
                serde_json::to_value(&after).ok().as_ref(),
            )
            .await?;
        write.commit().await?;
        Ok(after)
    }

    /// Deletes the binding `name` (its records stay in the flags' history).
    pub async fn delete_kill_switch_binding(
        &self,
        actor: &Actor,
        name: &str,
        expected_version: Option<i64>,
    ) -> Result<()> {
        let before = self.kill_switch_binding(name).await?;
        check_version(
            &format!("kill-switch binding \"{name}\""),
            before.version,
            expected_version,
        )?;
        let mut write = Write::begin(self, actor).await?;
        let deleted =
            sqlx::query("DELETE FROM kill_switch_bindings WHERE name = $1 AND version = $2")
                .bind(name.to_owned())
                .bind(before.version)
                .execute(&mut *write.tx)
                .await
                .map_err(|e| from_sqlx(e, "kill-switch binding"))?;
        if deleted.rows_affected() == 0 {
            return Err(stale_binding(&mut write, name, before.version).await);
        }
        write
            .audit(
                "kill_switch.delete",
                "kill_switch",
                name,
                None,
                serde_json::to_value(&before).ok().as_ref(),
                None,
            )
            .await?;
        write.commit().await
    }

    // Receivers.

    /// Every receiver (without secrets), by name.
    pub async fn alertmanager_receivers(&self) -> Result<Vec<AlertmanagerReceiver>> {
        let rows = sqlx::query(
            "SELECT name, environments, created_at FROM alertmanager_receivers ORDER BY name",
        )
        .fetch_all(self.pool())
        .await
        .map_err(|e| from_sqlx(e, "receivers"))?;
        rows.iter().map(row_to_receiver).collect()
    }

    /// Creates a receiver whose alerts act in `environments` (`None`: all;
    /// a list names at least one existing environment); returns it with its
    /// secret, which is stored hashed.
    pub async fn create_alertmanager_receiver(
        &self,
        actor: &Actor,
        name: &str,
        environments: Option<Vec<String>>,
    ) -> Result<(AlertmanagerReceiver, String)> {
        let name_ok = !name.is_empty()
            && name.chars().count() <= 128
            && !name.contains(':')
            && !name.chars().any(char::is_control);
        if !name_ok {
            return Err(invalid(
                "/name",
                "use 1 to 128 printable characters without ':'",
            ));
        }
        if environments.as_ref().is_some_and(Vec::is_empty) {
            return Err(invalid(
                "/environments",
                "name at least one environment, or leave environments out for all",
            ));
        }
        self.check_environments(environments.as_deref()).await?;
        let secret = new_secret();
        let receiver = AlertmanagerReceiver {
            name: name.to_owned(),
            environments,
            created_at: now_millis(),
        };
        let mut write = Write::begin(self, actor).await?;
        sqlx::query(
            "INSERT INTO alertmanager_receivers (name, secret_hash, environments, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(receiver.name.clone())
        .bind(hash_secret(&secret))
        .bind(receiver.environments.as_ref().map(|e| json!(e).to_string()))
        .bind(receiver.created_at)
        .execute(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, &format!("receiver \"{name}\"")))?;
        write
            .audit(
                "receiver.create",
                "alertmanager_receiver",
                name,
                None,
                None,
                serde_json::to_value(&receiver).ok().as_ref(),
            )
            .await?;
        write.commit().await?;
        Ok((receiver, secret))
    }

    /// Deletes a receiver; its secret stops working at once.
    pub async fn delete_alertmanager_receiver(&self, actor: &Actor, name: &str) -> Result<()> {
        let mut write = Write::begin(self, actor).await?;
        let deleted = sqlx::query("DELETE FROM alertmanager_receivers WHERE name = $1")
            .bind(name.to_owned())
            .execute(&mut *write.tx)
            .await
            .map_err(|e| from_sqlx(e, "receiver"))?;
        if deleted.rows_affected() == 0 {
            return Err(StorageError::NotFound(format!("receiver \"{name}\"")));
        }
        write
            .audit(
                "receiver.delete",
                "alertmanager_receiver",
                name,
                None,
                None,
                None,
            )
            .await?;
        write.commit().await
    }

    /// The receiver whose secret is `secret`.
    pub async fn verify_alertmanager_receiver(
        &self,
        secret: &str,
    ) -> Result<Option<AlertmanagerReceiver>> {
        let row = sqlx::query(
            "SELECT name, environments, created_at FROM alertmanager_receivers WHERE secret_hash = $1",
        )
        .bind(hash_secret(secret))
        .fetch_optional(self.pool())
        .await
        .map_err(|e| from_sqlx(e, "receiver"))?;
        row.as_ref().map(row_to_receiver).transpose()
    }

    // Alerts.

    /// Handles one alert of a notification, once: a repeat (same
    /// fingerprint, status and start) does nothing and answers
    /// [`ActionOutcome::Duplicate`]. A firing alert acts on the flag its
    /// `ensign_flag` label names and on the targets of every binding it
    /// matches; a resolved one closes or schedules the restore of what it
    /// did. `default_environment` is used when `ensign_environment` is absent.
    /// The alert may act in every environment; see
    /// [`Storage::receive_alert_within`].
    pub async fn receive_alert(
        &self,
        alert: &Alert,
        default_environment: &str,
    ) -> Result<Vec<AlertAction>> {
        self.receive_alert_within(alert, default_environment, None)
            .await
    }

    /// [`Storage::receive_alert`] for a sender limited to `environments`
    /// (`None`: all), as a receiver may be: a target in another environment
    /// is left alone, answered [`ActionOutcome::OutOfScope`] and audited as
    /// `kill_switch.out_of_scope`; a resolved alert closes or schedules
    /// nothing in other environments either.
    pub async fn receive_alert_within(
        &self,
        alert: &Alert,
        default_environment: &str,
        environments: Option<&[String]>,
    ) -> Result<Vec<AlertAction>> {
        let mut attempt = 1;
        loop {
            match self
                .receive_alert_once(alert, default_environment, environments)
                .await
            {
                Err(StorageError::VersionMismatch { .. }) if attempt < ALERT_ATTEMPTS => {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn receive_alert_once(
        &self,
        alert: &Alert,
        default_environment: &str,
        environments: Option<&[String]>,
    ) -> Result<Vec<AlertAction>> {
        let actor = Actor {
            name: ALERTMANAGER_ACTOR.to_owned(),
            comment: Some(alert_comment(alert)),
        };
        let mut write = Write::begin(self, &actor).await?;
        write.caused_by_alert(alert.received_at);
        let receipt = sqlx::query(
            "INSERT INTO alert_receipts (fingerprint, status, starts_at, receiver, labels, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (fingerprint, status, starts_at) DO NOTHING RETURNING id",
        )
        .bind(alert.fingerprint.clone())
        .bind(alert.status.as_str())
        .bind(alert.starts_at)
        .bind(alert.receiver.clone())
        .bind(json!(alert.labels).to_string())
        .bind(alert.received_at)
        .fetch_optional(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, "alert receipt"))?;
        let Some(receipt) = receipt else {
            // Handled before: the transaction is rolled back when dropped.
            return Ok(vec![summary(alert, ActionOutcome::Duplicate, None)]);
        };
        let receipt: i64 = receipt.try_get("id").map_err(|e| from_sqlx(e, "id"))?;
        let actions = match alert.status {
            AlertStatus::Firing => {
                let planned = self.plan(&mut write, alert, default_environment).await?;
                let mut actions = Vec::with_capacity(planned.len());
                for plan in planned {
                    actions.push(match plan {
                        Step::Act(plan) if !covers(environments, &plan.target.environment) => {
                            out_of_scope(&mut write, alert, plan).await?
                        }
                        Step::Act(plan) => self.kill(&mut write, alert, plan).await?,
                        Step::Refuse(action) => action,
                    });
                }
                if actions.is_empty() {
                    actions.push(summary(alert, ActionOutcome::NoMatch, None));
                }
                actions
            }
            AlertStatus::Resolved => resolve(&mut write, alert, environments).await?,
        };
        sqlx::query("UPDATE alert_receipts SET outcome = $1 WHERE id = $2")
            .bind(json!(actions).to_string())
            .bind(receipt)
            .execute(&mut *write.tx)
            .await
            .map_err(|e| from_sqlx(e, "alert receipt"))?;
        write.commit().await?;
        Ok(actions)
    }

    /// What a firing alert should do: its own `ensign_*` labels, then every
    /// matching binding; labels that cannot be acted on are errors.
    async fn plan(
        &self,
        write: &mut Write<'_>,
        alert: &Alert,
        default_environment: &str,
    ) -> Result<Vec<Step>> {
        let mut planned = Vec::new();
        if let Some(flag) = alert.labels.get("ensign_flag") {
            planned.push(direct_target(write, alert, flag, default_environment).await?);
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BINDING_COLUMNS} FROM kill_switch_bindings ORDER BY name"
        )))
        .fetch_all(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, "kill-switch bindings"))?;
        for row in &rows {
            let binding = row_to_binding(row)?;
            if !binding.matches(&alert.labels) {
                continue;
            }
            for target in &binding.targets {
                planned.push(Step::Act(Planned {
                    target: target.clone(),
                    binding: Some(binding.name.clone()),
                    on_resolved: binding.on_resolved,
                    cooldown_seconds: binding.cooldown_seconds,
                    dry_run: binding.dry_run,
                }));
            }
        }
        Ok(planned)
    }

    /// Applies (or, dry, records) one planned action inside `write`.
    async fn kill(
        &self,
        write: &mut Write<'_>,
        alert: &Alert,
        plan: Planned,
    ) -> Result<AlertAction> {
        let target = &plan.target;
        let mut action = AlertAction {
            flag_set: Some(target.flag_set.clone()),
            flag: Some(target.flag.clone()),
            environment: Some(target.environment.clone()),
            action: Some(target.action.clone()),
            binding: plan.binding.clone(),
            ..summary(alert, ActionOutcome::Error, None)
        };
        let failed = |mut action: AlertAction, message: String| {
            action.message = Some(message);
            Ok(action)
        };
        let Some(kill) = KillAction::parse(&target.action) else {
            return failed(
                action,
                "the action must be disable, variant:<name> or zero-weight:<variant>".to_owned(),
            );
        };
        if !lock_flag(write, &target.flag_set, &target.flag).await? {
            let message = format!("no flag \"{}/{}\"", target.flag_set, target.flag);
            return failed(action, message);
        }
        let Some(current) =
            current_config(write, &target.flag_set, &target.flag, &target.environment).await?
        else {
            let message = format!("no environment \"{}\"", target.environment);
            return failed(action, message);
        };
        let mut next = match kill.apply(&current.config) {
            Ok(next) => next,
            Err(message) => return failed(action, message),
        };
        // The configuration before the first kill still open on this flag is
        // the one every restore of the flag puts back.
        let origin = sqlx::query(
            "SELECT config_before FROM kill_records WHERE flag_set = $1 AND flag = $2 AND environment = $3 \
             AND restored_at IS NULL AND dry_run = 0 ORDER BY id LIMIT 1",
        )
        .bind(target.flag_set.clone())
        .bind(target.flag.clone())
        .bind(target.environment.clone())
        .fetch_optional(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, "kill records"))?;
        let before = match &origin {
            Some(row) => config_column(row, "config_before")?,
            None => current.config.clone(),
        };
        let resource = format!("{}/{}", target.flag_set, target.flag);
        let outcome = if plan.dry_run {
            ActionOutcome::DryRun
        } else if without_version(&next) == without_version(&current.config) {
            ActionOutcome::Unchanged
        } else {
            let evaluators = segment_rules(write, &target.flag_set).await?;
            let problems = validate_config(
                &target.flag,
                &target.environment,
                &next,
                &current.metadata,
                &evaluators,
            );
            if let Some(problem) = problems.first() {
                let message = format!(
                    "the flag would not be valid after {}: {} {}",
                    target.action, problem.path, problem.message
                );
                return failed(action, message);
            }
            next.version = current.config.version + 1;
            let bumped = sqlx::query(
                "UPDATE flags SET version = version + 1, updated_at = $1 WHERE id = $2 AND version = $3",
            )
            .bind(now_millis())
            .bind(current.flag_id)
            .bind(current.flag_version)
            .execute(&mut *write.tx)
            .await
            .map_err(|e| from_sqlx(e, "flag"))?;
            if bumped.rows_affected() == 0 {
                return Err(StorageError::VersionMismatch {
                    resource: format!("flag \"{resource}\""),
                    current: current.flag_version + 1,
                    expected: current.flag_version,
                });
            }
            store_config(write, current.flag_id, &target.environment, &next).await?;
            write
                .audit(
                    "flag.kill",
                    "flag",
                    &resource,
                    Some(&target.environment),
                    serde_json::to_value(&current.config).ok().as_ref(),
                    serde_json::to_value(&next).ok().as_ref(),
                )
                .await?;
            write.touches(Some(&target.environment));
            // Every open kill of the flag now expects this configuration.
            sqlx::query(
                "UPDATE kill_records SET config_version_after = $1 WHERE flag_set = $2 AND flag = $3 AND environment = $4 \
                 AND restored_at IS NULL AND dry_run = 0",
            )
            .bind(next.version)
            .bind(target.flag_set.clone())
            .bind(target.flag.clone())
            .bind(target.environment.clone())
            .execute(&mut *write.tx)
            .await
            .map_err(|e| from_sqlx(e, "kill records"))?;
            ActionOutcome::Applied
        };
        let version_after = if outcome == ActionOutcome::Applied {
            next.version
        } else {
            current.config.version
        };
        let record: i64 = sqlx::query(
            "INSERT INTO kill_records (flag_set, flag, environment, action, binding, fingerprint, starts_at, labels, receiver, at, \
             dry_run, config_before, config_after, config_version_after, on_resolved, cooldown_seconds) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id",
        )
        .bind(target.flag_set.clone())
        .bind(target.flag.clone())
        .bind(target.environment.clone())
        .bind(target.action.clone())
        .bind(plan.binding.clone())
        .bind(alert.fingerprint.clone())
        .bind(alert.starts_at)
        .bind(json!(alert.labels).to_string())
        .bind(alert.receiver.clone())
        .bind(now_millis())
        .bind(i64::from(plan.dry_run))
        .bind(config_json(if plan.dry_run { &current.config } else { &before }))
        .bind(config_json(&next))
        .bind(version_after)
        .bind(plan.on_resolved.as_str())
        .bind(plan.cooldown_seconds)
        .fetch_one(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, "kill record"))?
        .try_get("id")
        .map_err(|e| from_sqlx(e, "id"))?;
        if outcome != ActionOutcome::Applied {
            // Nothing changed on the flag; the audit log still says what the
            // kill switch did (or would have done).
            let name = if plan.dry_run {
                "kill_switch.dry_run"
            } else {
                "kill_switch.unchanged"
            };
            write
                .audit(
                    name,
                    "flag",
                    &resource,
                    Some(&target.environment),
                    serde_json::to_value(&current.config).ok().as_ref(),
                    serde_json::to_value(&next).ok().as_ref(),
                )
                .await?;
        }
        action.outcome = outcome;
        action.record = Some(record);
        Ok(action)
    }

    // Restores.

    /// Applies every automatic restore due at `now` (unix milliseconds), each
    /// in a guarded transaction of its own: a record another replica closed
    /// meanwhile is left alone. A restore puts the configuration from before
    /// the kill back, unless the flag changed since the kill switch last
    /// changed it (a human acted: `skipped`) or another kill of the flag is
    /// still open (`superseded`; the last one restores).
    pub async fn apply_due_restores(&self, now: i64) -> Result<Vec<RestoreResult>> {
        let rows = sqlx::query(
            "SELECT id FROM kill_records WHERE restored_at IS NULL AND dry_run = 0 AND restore_due_at IS NOT NULL \
             AND restore_due_at <= $1 ORDER BY id LIMIT $2",
        )
        .bind(now)
        .bind(RESTORE_BATCH)
        .fetch_all(self.pool())
        .await
        .map_err(|e| from_sqlx(e, "kill records"))?;
        let mut results = Vec::new();
        for row in &rows {
            let id: i64 = get(row, "id")?;
            match self.restore_record(id).await {
                Ok(Some(result)) => results.push(result),
                Ok(None) => {}
                // A concurrent write to the flag: the restore is still due
                // and is tried again on the next pass.
                Err(StorageError::VersionMismatch { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(results)
    }

    async fn restore_record(&self, id: i64) -> Result<Option<RestoreResult>> {
        let actor = Actor {
            name: ALERTMANAGER_ACTOR.to_owned(),
            comment: None,
        };
        let mut write = Write::begin(self, &actor).await?;
        let Some(record) = open_record(&mut write, id).await? else {
            return Ok(None);
        };
        let comment = json!({
            "restore": {"record": id, "binding": record.binding},
            "alert": {"fingerprint": record.fingerprint, "receiver": record.receiver, "labels": record.labels},
        })
        .to_string();
        write.actor.comment = Some(comment);
        let exists = lock_flag(&mut write, &record.flag_set, &record.flag).await?;
        let others: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM kill_records WHERE flag_set = $1 AND flag = $2 AND environment = $3 \
             AND restored_at IS NULL AND dry_run = 0 AND id <> $4",
        )
        .bind(record.flag_set.clone())
        .bind(record.flag.clone())
        .bind(record.environment.clone())
        .bind(id)
        .fetch_one(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, "kill records"))?
        .try_get("n")
        .map_err(|e| from_sqlx(e, "count"))?;
        let current = if exists {
            current_config(
                &mut write,
                &record.flag_set,
                &record.flag,
                &record.environment,
            )
            .await?
        } else {
            None
        };
        let expected_version: i64 =
            sqlx::query("SELECT config_version_after FROM kill_records WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *write.tx)
                .await
                .map_err(|e| from_sqlx(e, "kill record"))?
                .try_get("config_version_after")
                .map_err(|e| from_sqlx(e, "version"))?;
        let outcome = match current {
            _ if others > 0 => "superseded",
            None => "skipped",
            Some(current) if current.config.version != expected_version => "skipped",
            Some(current) => {
                restore_config(&mut write, &record, &current).await?;
                "restored"
            }
        };
        if outcome == "skipped" {
            write
                .audit(
                    "kill_switch.restore_skipped",
                    "flag",
                    &format!("{}/{}", record.flag_set, record.flag),
                    Some(&record.environment),
                    None,
                    None,
                )
                .await?;
        }
        if !close_record(&mut write, id, ALERTMANAGER_ACTOR, outcome).await? {
            return Ok(None);
        }
        write.commit().await?;
        Ok(Some(RestoreResult {
            record: id,
            action: record.action,
            outcome: outcome.to_owned(),
        }))
    }

    /// Restores by hand: puts back the configuration from before the first
    /// open kill of the flag in `environment` (whatever changed since: the
    /// caller asked) and closes every open kill of it. Not found when none
    /// is open.
    pub async fn restore_killed_flag(
        &self,
        actor: &Actor,
        flag_set: &str,
        flag: &str,
        environment: &str,
    ) -> Result<Vec<KillRecord>> {
        let mut write = Write::begin(self, actor).await?;
        let resource =
            format!("open kill switch on flag \"{flag_set}/{flag}\" in \"{environment}\"");
        if !lock_flag(&mut write, flag_set, flag).await? {
            return Err(StorageError::NotFound(format!(
                "flag \"{flag_set}/{flag}\""
            )));
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM kill_records WHERE flag_set = $1 AND flag = $2 AND environment = $3 \
             AND restored_at IS NULL AND dry_run = 0 ORDER BY id"
        )))
        .bind(flag_set.to_owned())
        .bind(flag.to_owned())
        .bind(environment.to_owned())
        .fetch_all(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, "kill records"))?;
        let records = rows.iter().map(row_to_record).collect::<Result<Vec<_>>>()?;
        let Some(first) = records.first() else {
            return Err(StorageError::NotFound(resource));
        };
        let current = current_config(&mut write, flag_set, flag, environment)
            .await?
            .ok_or_else(|| StorageError::NotFound(format!("environment \"{environment}\"")))?;
        restore_config(&mut write, first, &current).await?;
        for record in &records {
            close_record(&mut write, record.id, &actor.name, "restored").await?;
        }
        write.commit().await?;
        let mut closed = Vec::with_capacity(records.len());
        for record in records {
            closed.push(self.kill_record(record.id).await?);
        }
        Ok(closed)
    }

    /// One kill record.
    pub async fn kill_record(&self, id: i64) -> Result<KillRecord> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM kill_records WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| from_sqlx(e, "kill record"))?
        .ok_or_else(|| StorageError::NotFound(format!("kill record {id}")))?;
        row_to_record(&row)
    }

    /// The kill records of a flag, every environment, newest first: every
    /// open one, and the latest closed ones.
    pub async fn kill_records(&self, flag_set: &str, flag: &str) -> Result<Vec<KillRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM kill_records WHERE flag_set = $1 AND flag = $2 AND restored_at IS NULL \
             UNION ALL SELECT * FROM (SELECT {RECORD_COLUMNS} FROM kill_records WHERE flag_set = $3 AND flag = $4 \
             AND restored_at IS NOT NULL ORDER BY id DESC LIMIT $5) closed ORDER BY id DESC"
        )))
        .bind(flag_set.to_owned())
        .bind(flag.to_owned())
        .bind(flag_set.to_owned())
        .bind(flag.to_owned())
        .bind(HISTORY_LIMIT)
        .fetch_all(self.pool())
        .await
        .map_err(|e| from_sqlx(e, "kill records"))?;
        rows.iter().map(row_to_record).collect()
    }
}

/// The target of an alert labelled `ensign_flag`.
async fn direct_target(
    write: &mut Write<'_>,
    alert: &Alert,
    flag: &str,
    default_environment: &str,
) -> Result<Step> {
    let label = |name: &str| alert.labels.get(name).cloned();
    let environment = label("ensign_environment").unwrap_or_else(|| default_environment.to_owned());
    let action = label("ensign_action").unwrap_or_else(|| "disable".to_owned());
    let error = |message: String| {
        Step::Refuse(AlertAction {
            flag: Some(flag.to_owned()),
            environment: Some(environment.clone()),
            action: Some(action.clone()),
            outcome: ActionOutcome::Error,
            message: Some(message),
            ..summary(alert, ActionOutcome::Error, None)
        })
    };
    let on_resolved = match label("ensign_on_resolved")
        .as_deref()
        .map(OnResolved::parse)
    {
        None => OnResolved::Keep,
        Some(Some(on_resolved)) => on_resolved,
        Some(None) => {
            return Ok(error(
                "ensign_on_resolved must be keep or restore".to_owned(),
            ));
        }
    };
    let cooldown_seconds = match label("ensign_cooldown_seconds").map(|s| s.parse::<i64>()) {
        None => 300,
        Some(Ok(seconds)) if (0..=MAX_COOLDOWN_SECONDS).contains(&seconds) => seconds,
        Some(_) => {
            return Ok(error(format!(
                "ensign_cooldown_seconds must be 0 to {MAX_COOLDOWN_SECONDS}"
            )));
        }
    };
    let flag_set = match label("ensign_flag_set") {
        Some(set) => set,
        None => {
            let sets = flag_sets_with(write, flag).await?;
            match sets.as_slice() {
                [only] => only.clone(),
                [] => return Ok(error(format!("no flag set has a flag \"{flag}\""))),
                _ => {
                    return Ok(error(format!(
                        "the flag sets {} all have a flag \"{flag}\": name one with ensign_flag_set",
                        sets.join(", ")
                    )));
                }
            }
        }
    };
    Ok(Step::Act(Planned {
        target: KillTarget {
            flag_set,
            flag: flag.to_owned(),
            environment,
            action,
        },
        binding: None,
        on_resolved,
        cooldown_seconds,
        dry_run: false,
    }))
}

/// The keys of the flag sets that have a flag `key`.
async fn flag_sets_with(write: &mut Write<'_>, key: &str) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT fs.key FROM flags f JOIN flag_sets fs ON fs.id = f.flag_set_id WHERE f.key = $1 ORDER BY fs.key",
    )
    .bind(key.to_owned())
    .fetch_all(&mut *write.tx)
    .await
    .map_err(|e| from_sqlx(e, "flags"))?;
    rows.iter().map(|row| get(row, "key")).collect()
}

/// The segment rules of `flag_set` as `$evaluators`, read inside `write`.
async fn segment_rules(write: &mut Write<'_>, flag_set: &str) -> Result<Map<String, Value>> {
    let rows = sqlx::query(
        "SELECT s.key, s.rule FROM segments s JOIN flag_sets fs ON fs.id = s.flag_set_id WHERE fs.key = $1",
    )
    .bind(flag_set.to_owned())
    .fetch_all(&mut *write.tx)
    .await
    .map_err(|e| from_sqlx(e, "segments"))?;
    rows.iter()
        .map(|row| Ok((get(row, "key")?, json_column(row, "rule")?)))
        .collect()
}

/// The error for a guarded write of a binding that matched no row.
async fn stale_binding(write: &mut Write<'_>, name: &str, expected: i64) -> StorageError {
    stale(
        write,
        format!("kill-switch binding \"{name}\""),
        "SELECT version FROM kill_switch_bindings WHERE name = $1",
        vec![super::Bind::Text(name.to_owned())],
        expected,
    )
    .await
}

/// A webhook answer line about the alert as a whole.
fn summary(alert: &Alert, outcome: ActionOutcome, message: Option<String>) -> AlertAction {
    AlertAction {
        fingerprint: alert.fingerprint.clone(),
        status: alert.status,
        flag_set: None,
        flag: None,
        environment: None,
        action: None,
        binding: None,
        outcome,
        message,
        record: None,
    }
}

fn out_of_scope_message(environment: &str) -> String {
    format!("the sender may not act in environment \"{environment}\"; nothing was done")
}

/// Answers (and audits, as `kill_switch.out_of_scope`) a planned action in an
/// environment the sender may not act in; the flag is left alone.
async fn out_of_scope(write: &mut Write<'_>, alert: &Alert, plan: Planned) -> Result<AlertAction> {
    let target = plan.target;
    write
        .audit(
            "kill_switch.out_of_scope",
            "flag",
            &format!("{}/{}", target.flag_set, target.flag),
            Some(&target.environment),
            None,
            None,
        )
        .await?;
    Ok(AlertAction {
        message: Some(out_of_scope_message(&target.environment)),
        flag_set: Some(target.flag_set),
        flag: Some(target.flag),
        environment: Some(target.environment),
        action: Some(target.action),
        binding: plan.binding,
        ..summary(alert, ActionOutcome::OutOfScope, None)
    })
}

/// Marks what a resolved alert did as resolved: dry-run records are closed,
/// `keep` records wait for a human, `restore` records become due after their
/// cool-down.
async fn resolve(
    write: &mut Write<'_>,
    alert: &Alert,
    environments: Option<&[String]>,
) -> Result<Vec<AlertAction>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_COLUMNS}, on_resolved, cooldown_seconds FROM kill_records \
         WHERE fingerprint = $1 AND starts_at = $2 AND resolved_at IS NULL ORDER BY id"
    )))
    .bind(alert.fingerprint.clone())
    .bind(alert.starts_at)
    .fetch_all(&mut *write.tx)
    .await
    .map_err(|e| from_sqlx(e, "kill records"))?;
    let now = now_millis();
    let mut actions = Vec::with_capacity(rows.len());
    for row in &rows {
        let record = row_to_record(row)?;
        if !covers(environments, &record.environment) {
            actions.push(AlertAction {
                flag_set: Some(record.flag_set),
                flag: Some(record.flag),
                message: Some(out_of_scope_message(&record.environment)),
                environment: Some(record.environment),
                action: Some(record.action),
                binding: record.binding,
                record: Some(record.id),
                ..summary(alert, ActionOutcome::OutOfScope, None)
            });
            continue;
        }
        let on_resolved =
            OnResolved::parse(&get::<String>(row, "on_resolved")?).unwrap_or_default();
        let cooldown: i64 = get(row, "cooldown_seconds")?;
        let open = record.restored_at.is_none();
        let (outcome, due, closed) = if record.dry_run || !open {
            (ActionOutcome::Closed, None, Some(now))
        } else if on_resolved == OnResolved::Restore {
            (
                ActionOutcome::RestoreScheduled,
                Some(now.saturating_add(cooldown.saturating_mul(1000))),
                None,
            )
        } else {
            (ActionOutcome::Kept, None, None)
        };
        sqlx::query(
            "UPDATE kill_records SET resolved_at = $1, restore_due_at = $2, \
             restored_at = COALESCE(restored_at, $3), restore_outcome = COALESCE(restore_outcome, $4) WHERE id = $5",
        )
        .bind(now)
        .bind(due)
        .bind(closed)
        .bind(closed.map(|_| "dry_run"))
        .bind(record.id)
        .execute(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, "kill record"))?;
        actions.push(AlertAction {
            flag_set: Some(record.flag_set),
            flag: Some(record.flag),
            environment: Some(record.environment),
            action: Some(record.action),
            binding: record.binding,
            record: Some(record.id),
            ..summary(alert, outcome, None)
        });
    }
    if actions.is_empty() {
        actions.push(summary(alert, ActionOutcome::NoMatch, None));
    }
    Ok(actions)
}

/// The record `id` if it is still open.
async fn open_record(write: &mut Write<'_>, id: i64) -> Result<Option<KillRecord>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_COLUMNS} FROM kill_records WHERE id = $1 AND restored_at IS NULL"
    )))
    .bind(id)
    .fetch_optional(&mut *write.tx)
    .await
    .map_err(|e| from_sqlx(e, "kill record"))?;
    row.as_ref().map(row_to_record).transpose()
}

/// Closes the record `id` if it is still open; whether it was.
async fn close_record(write: &mut Write<'_>, id: i64, by: &str, outcome: &str) -> Result<bool> {
    let closed = sqlx::query(
        "UPDATE kill_records SET restored_at = $1, restored_by = $2, restore_outcome = $3 WHERE id = $4 AND restored_at IS NULL",
    )
    .bind(now_millis())
    .bind(by.to_owned())
    .bind(outcome.to_owned())
    .bind(id)
    .execute(&mut *write.tx)
    .await
    .map_err(|e| from_sqlx(e, "kill record"))?;
    Ok(closed.rows_affected() > 0)
}

/// Puts `record`'s configuration from before the kill back (when it differs
/// from `current`), audited as `flag.kill_restore`.
async fn restore_config(
    write: &mut Write<'_>,
    record: &KillRecord,
    current: &Current,
) -> Result<()> {
    if without_version(&record.config_before) == without_version(&current.config) {
        return Ok(());
    }
    let restored = FlagConfig {
        version: current.config.version + 1,
        ..record.config_before.clone()
    };
    let bumped = sqlx::query(
        "UPDATE flags SET version = version + 1, updated_at = $1 WHERE id = $2 AND version = $3",
    )
    .bind(now_millis())
    .bind(current.flag_id)
    .bind(current.flag_version)
    .execute(&mut *write.tx)
    .await
    .map_err(|e| from_sqlx(e, "flag"))?;
    if bumped.rows_affected() == 0 {
        return Err(StorageError::VersionMismatch {
            resource: format!("flag \"{}/{}\"", record.flag_set, record.flag),
            current: current.flag_version + 1,
            expected: current.flag_version,
        });
    }
    store_config(write, current.flag_id, &record.environment, &restored).await?;
    write
        .audit(
            "flag.kill_restore",
            "flag",
            &format!("{}/{}", record.flag_set, record.flag),
            Some(&record.environment),
            serde_json::to_value(&current.config).ok().as_ref(),
            serde_json::to_value(&restored).ok().as_ref(),
        )
        .await?;
    write.touches(Some(&record.environment));
    Ok(())
}
