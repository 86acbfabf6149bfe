//! What the storage keeps: environments, flag sets, segments, flags with
//! lifecycle data and a configuration per environment, tokens and audit
//! entries. These are also the admin API's JSON shapes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A deployment environment (development, staging, production, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// The key used in URLs and by `--environment`.
    pub key: String,
    /// A display name.
    pub name: String,
    /// Increases with every change.
    pub version: i64,
}

/// A flag set: flagd's `flagSetId`, the unit SDK selectors pick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlagSet {
    /// The `flagSetId`.
    pub key: String,
    /// A display name.
    pub name: String,
    /// Flag-set metadata served with every flag of the set.
    pub metadata: Map<String, Value>,
    /// Increases with every change.
    pub version: i64,
}

/// A reusable audience rule, served as a flagd `$evaluators` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// The flag set it belongs to.
    pub flag_set: String,
    /// The name flags reference with `{"$ref": key}`.
    pub key: String,
    /// What the audience is.
    pub description: String,
    /// The JsonLogic rule.
    pub rule: Value,
    /// Increases with every change.
    pub version: i64,
}

/// What a flag is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagKind {
    /// Guards a release; removed once released.
    Release,
    /// Splits traffic for an experiment.
    Experiment,
    /// An operational toggle or kill switch; long-lived.
    Operational,
    /// Grants a capability to some users; long-lived.
    Permission,
}

/// Where a flag is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagStage {
    /// Created, not yet rolled out.
    New,
    /// Being rolled out or tested.
    Active,
    /// Fully rolled out; the code path can be cleaned up.
    Released,
    /// Meant to stay (operational, permission).
    Permanent,
    /// No longer needed; to be removed from code.
    Stale,
    /// Retired: not served any more.
    Archived,
}

/// A flag's configuration in one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlagConfig {
    /// `ENABLED` or `DISABLED`.
    pub state: String,
    /// Variant name → value (one type per flag).
    pub variants: Map<String, Value>,
    /// The default variant, or none for a code default.
    #[serde(default)]
    pub default_variant: Option<String>,
    /// The JsonLogic targeting rule, if any.
    #[serde(default)]
    pub targeting: Option<Value>,
    /// Increases with every change of this configuration.
    #[serde(default)]
    pub version: i64,
}

/// A flag with its lifecycle data and its configuration per environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    /// The flag set it belongs to.
    pub flag_set: String,
    /// The flag key.
    pub key: String,
    /// What the flag does.
    pub description: String,
    /// Who answers for it.
    pub owner: String,
    /// Free-form tags.
    pub tags: Vec<String>,
    /// What the flag is for.
    pub kind: FlagKind,
    /// Where the flag is in its life.
    pub stage: FlagStage,
    /// When the flag should be gone (unix milliseconds).
    pub expires_at: Option<i64>,
    /// Flag metadata served to SDKs.
    pub metadata: Map<String, Value>,
    /// Configuration per environment key.
    pub environments: std::collections::BTreeMap<String, FlagConfig>,
    /// Increases with every change of the flag or one of its configurations.
    pub version: i64,
    /// Last evaluation seen by any replica (unix milliseconds).
    pub last_evaluated_at: Option<i64>,
}

/// An API token's permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Reads and changes flags, segments and flag sets.
    Editor,
    /// Everything, including environments and tokens.
    Admin,
}

impl Role {
    /// `viewer`, `editor` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    /// Parses `viewer`, `editor` or `admin`.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "editor" => Some(Role::Editor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// An API token (its secret is shown once, at creation, and stored hashed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    /// A unique name, recorded as the actor of its writes.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The environments it may change; `None`: all.
    pub environments: Option<Vec<String>>,
    /// When it was created (unix milliseconds).
    pub created_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

impl Token {
    /// Whether the token may write in `environment`.
    pub fn covers(&self, environment: &str) -> bool {
        covers(self.environments.as_deref(), environment)
    }
}

/// Whether a limit to `environments` (`None`: all) includes `environment`.
pub fn covers(environments: Option<&[String]>, environment: &str) -> bool {
    environments.is_none_or(|list| list.iter().any(|e| e == environment))
}

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `token:<name>`, `user:<name>`, or `automation:<name>`.
    pub name: String,
    /// Why, when the caller said.
    pub comment: Option<String>,
}

impl Actor {
    /// An actor named `name` without a comment.
    pub fn new(name: impl Into<String>) -> Self {
        Actor {
            name: name.into(),
            comment: None,
        }
    }
}

/// One line of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Increasing id (the cursor for paging).
    pub id: i64,
    /// When (unix milliseconds).
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What (`flag.create`, `flag.update`, `flag.toggle`, ...).
    pub action: String,
    /// The kind of resource.
    pub resource_type: String,
    /// Its key (`set/flag` for flags and segments).
    pub resource_key: String,
    /// The environment, for per-environment changes.
    pub environment: Option<String>,
    /// The resource before the change.
    pub before: Option<Value>,
    /// The resource after the change.
    pub after: Option<Value>,
    /// The actor's comment.
    pub comment: Option<String>,
}

/// A person who signs in to the web UI with a name and a password (stored as
/// an Argon2id hash, never shown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// A unique name, recorded as `user:<name>` for their writes.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// The environments they may change; `None`: all.
    pub environments: Option<Vec<String>>,
    /// When the user was created (unix milliseconds).
    pub created_at: i64,
}

/// Who a session acts for.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    /// A user who signed in with their password.
    User(User),
    /// Someone who signed in with an API token; the session ends when the
    /// token is revoked.
    Token(Token),
    /// Someone who signed in with the bootstrap token; the stored value is the
    /// hash of that token, so a session ends when the token is changed.
    Bootstrap(String),
}

/// A live web UI session (its secret, the cookie value, is stored hashed).
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Who it acts for.
    pub principal: Principal,
    /// What unsafe requests of this session must send as `X-CSRF-Token`.
    pub csrf_token: String,
    /// When it was created (unix milliseconds).
    pub created_at: i64,
    /// When it ends, whatever happens (unix milliseconds).
    pub expires_at: i64,
}
