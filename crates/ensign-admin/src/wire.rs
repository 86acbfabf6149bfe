//! The admin API's JSON shapes and their conversions to and from the storage
//! model.
//!
//! The storage model serializes snake_case; the API speaks camelCase field
//! names, so every request and response body is a type of this module (with
//! its OpenAPI schema). Enum values are lowercase words (`release`,
//! `archived`, `editor`), flag states flagd's `ENABLED` / `DISABLED`, times
//! unix milliseconds. Request bodies reject unknown fields, so a typo is a 422
//! rather than a silently ignored setting. Every write body takes an optional
//! `comment` for the audit log (the `X-Ensign-Comment` header wins).
//!
//! Audit entries keep the storage's before/after snapshots; they are shown in
//! these shapes too, with the list of changed JSON Pointers.

mod integer;
pub mod kill_switch;
mod schema;

use std::collections::BTreeMap;

use ensign_storage::model;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::extract::escape;

/// What a flag is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Guards a release; removed once released.
    Release,
    /// Splits traffic for an experiment.
    Experiment,
    /// An operational toggle or kill switch; long-lived.
    Operational,
    /// Grants a capability to some users; long-lived.
    Permission,
}

impl From<model::FlagKind> for Kind {
    fn from(kind: model::FlagKind) -> Self {
        match kind {
            model::FlagKind::Release => Kind::Release,
            model::FlagKind::Experiment => Kind::Experiment,
            model::FlagKind::Operational => Kind::Operational,
            model::FlagKind::Permission => Kind::Permission,
        }
    }
}

impl From<Kind> for model::FlagKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Release => model::FlagKind::Release,
            Kind::Experiment => model::FlagKind::Experiment,
            Kind::Operational => model::FlagKind::Operational,
            Kind::Permission => model::FlagKind::Permission,
        }
    }
}

/// Where a flag is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Created, not yet rolled out.
    New,
    /// Being rolled out or tested.
    Active,
    /// Fully rolled out; the code path can be cleaned up.
    Released,
    /// Meant to stay.
    Permanent,
    /// No longer needed; to be removed from code.
    Stale,
    /// Retired: not served any more.
    Archived,
}

impl From<model::FlagStage> for Stage {
    fn from(stage: model::FlagStage) -> Self {
        match stage {
            model::FlagStage::New => Stage::New,
            model::FlagStage::Active => Stage::Active,
            model::FlagStage::Released => Stage::Released,
            model::FlagStage::Permanent => Stage::Permanent,
            model::FlagStage::Stale => Stage::Stale,
            model::FlagStage::Archived => Stage::Archived,
        }
    }
}

impl From<Stage> for model::FlagStage {
    fn from(stage: Stage) -> Self {
        match stage {
            Stage::New => model::FlagStage::New,
            Stage::Active => model::FlagStage::Active,
            Stage::Released => model::FlagStage::Released,
            Stage::Permanent => model::FlagStage::Permanent,
            Stage::Stale => model::FlagStage::Stale,
            Stage::Archived => model::FlagStage::Archived,
        }
    }
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything but tokens.
    Viewer,
    /// Also changes flags, segments and flag sets, and imports.
    Editor,
    /// Also changes environments and tokens.
    Admin,
}

impl From<model::Role> for Role {
    fn from(role: model::Role) -> Self {
        match role {
            model::Role::Viewer => Role::Viewer,
            model::Role::Editor => Role::Editor,
            model::Role::Admin => Role::Admin,
        }
    }
}

impl From<Role> for model::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::Viewer => model::Role::Viewer,
            Role::Editor => model::Role::Editor,
            Role::Admin => model::Role::Admin,
        }
    }
}

// Environments.

/// A deployment environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    /// The key used in URLs and by `--environment`.
    pub key: String,
    /// A display name.
    pub name: String,
    /// Increases with every change (the ETag).
    pub version: i64,
}

impl From<model::Environment> for Environment {
    fn from(e: model::Environment) -> Self {
        Environment {
            key: e.key,
            name: e.name,
            version: e.version,
        }
    }
}

/// An environment to create (every flag starts disabled in it).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewEnvironment {
    /// 1 to 64 lowercase letters, digits, `-` or `_`.
    #[schema(pattern = "^[a-z0-9_-]{1,64}$", example = "qa")]
    pub key: String,
    /// A display name (default: the key).
    #[serde(default)]
    #[schema(example = "QA")]
    pub name: Option<String>,
    /// Why, for the audit log.
    #[serde(default)]
    pub comment: Option<String>,
}

/// A change to an environment.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentPatch {
    /// The new display name.
    #[schema(example = "Production (EU)")]
    pub name: String,
    /// Why, for the audit log.
    #[serde(default)]
    pub comment: Option<String>,
}

// Flag sets.

/// A flag set (flagd's `flagSetId`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlagSet {
    /// The `flagSetId`.
    pub key: String,
    /// A display name.
    pub name: String,
    /// Metadata served with every flag of the set (strings, numbers, booleans).
    pub metadata: Map<String, Value>,
    /// Increases with every change (the ETag).
    pub version: i64,
}

impl From<model::FlagSet> for FlagSet {
    fn from(s: model::FlagSet) -> Self {
        FlagSet {
            key: s.key,
            name: s.name,
            metadata: s.metadata,
            version: s.version,
        }
    }
}

/// A flag set to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewFlagSet {
    /// 1 to 128 letters, digits, `-`, `_` or `.`.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$", example = "mobile")]
    pub key: String,
    /// A display name (default: the key).
    #[serde(default)]
    #[schema(example = "Mobile apps")]
    pub name: Option<String>,
    /// Flag-set metadata: strings, numbers or booleans.
    #[serde(default)]
    #[schema(schema_with = schema::metadata)]
    pub metadata: Map<String, Value>,
    /// Why, for the audit log.
    #[serde(default)]
    pub comment: Option<String>,
}

/// A flag set's new name and metadata (both replaced).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlagSetUpdate {
    /// The display name.
    #[schema(example = "Web")]
    pub name: String,
    /// The metadata (absent: none): strings, numbers or booleans.
    #[serde(default)]
    #[schema(schema_with = schema::metadata)]
    pub metadata: Map<String, Value>,
    /// Why, for the audit log.
    #[serde(default)]
    pub comment: Option<String>,
}

// Segments.

/// A named audience rule, served as a flagd `$evaluators` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    /// The flag set it belongs to.
    pub flag_set: String,
    /// The name flags reference with `{"$ref": key}`.
    pub key: String,
    /// What the audience is.
    pub description: String,
    /// The JsonLogic rule.
    pub rule: Value,
    /// Increases with every change (the ETag).
    pub version: i64,
    /// The flags whose targeting references it (single-segment answers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_by: Option<Vec<String>>,
}

impl From<model::Segment> for Segment {
    fn from(s: model::Segment) -> Self {
        Segment {
            flag_set: s.flag_set,
            key: s.key,
            description: s.description,
            rule: s.rule,
            version: s.version,
            used_by: None,
        }
    }
}

/// A segment to create or replace.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SegmentPut {
    /// What the audience is.
    #[serde(default)]
    pub description: String,
    /// The JsonLogic rule (an object).
    #[schema(value_type = Object, example = json!({"ends_with": [{"var": "email"}, "@example.com"]}))]
    pub rule: Value,
    /// Why, for the audit log.
    #[serde(default)]
    pub comment: Option<String>,
}

// Flags.

/// A flag's configuration in one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlagConfig {
    /// `ENABLED` or `DISABLED`.
    #[schema(schema_with = schema::flag_state)]
    pub state: String,
    /// Variant name → value (one type per flag).
    #[schema(schema_with = schema::variants)]
    pub variants: Map<String, Value>,
    /// The default variant; none means the code default.
    pub default_variant: Option<String>,
    /// The JsonLogic targeting rule, if any.
    pub targeting: Option<Value>,
    /// Increases with every change of this configuration.
    pub version: i64,
}

impl From<model::FlagConfig> for FlagConfig {
    fn from(c: model::FlagConfig) -> Self {
        FlagConfig {
            state: c.state,
            variants: c.variants,
            default_variant: c.default_variant,
            targeting: c.targeting,
            version: c.version,
        }
    }
}

/// A configuration to set in one environment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlagConfigInput {
    /// `ENABLED` or `DISABLED`.
    #[schema(schema_with = schema::flag_state)]
    pub state: String,
    /// Variant name → value (one type per flag).
    #[schema(schema_with = schema::variants)]
    pub variants: Map<String, Value>,
    /// The default variant; none means the code default.
    #[serde(default)]
    pub default_variant: Option<String>,
    /// The JsonLogic targeting rule (may `$ref` the flag set's segments).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub targeting: Option<Value>,
}

impl From<FlagConfigInput> for model::FlagConfig {
    fn from(c: FlagConfigInput) -> Self {
        model::FlagConfig {
            state: c.state,
            variants: c.variants,
            default_variant: c.default_variant,
            targeting: c.targeting,
            version: 0,
        }
    }
}

impl From<model::FlagConfig> for FlagConfigInput {
    fn from(c: model::FlagConfig) -> Self {
        FlagConfigInput {
            state: c.state,
            variants: c.variants,
            default_variant: c.default_variant,
            targeting: c.targeting,
        }
    }
}

/// The body of `PUT /flags/{set}/{key}/environments/{env}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlagConfigPut {
    /// `ENABLED` or `DISABLED`.
    #[schema(schema_with = schema::flag_state)]
    pub state: String,
    /// Variant name → value (one type per flag).
    #[schema(schema_with = schema::variants)]
    pub variants: Map<String, Value>,
    /// The default variant; none means the code default.
    #[serde(default)]
    pub default_variant: Option<String>,
    /// The JsonLogic targeting rule.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub targeting: Option<Value>,
    /// Why, for the audit log.
    #[serde(default)]
    pub comment: Option<String>,
}

impl FlagConfigPut {
    /// The configuration and the comment.
    pub fn split(self) -> (model::FlagConfig, Option<String>) {
        let config = model::FlagConfig {
            state: self.state,
            variants: self.variants,
            default_variant: self.default_variant,
            targeting: self.targeting,
            version: 0,
        };
        (config, self.comment)
    }
}

/// A flag with its lifecycle data and its configuration per environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
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
    pub kind: Kind,
    /// Where the flag is in its life.
    pub stage: Stage,
    /// When the flag should be gone (unix milliseconds).
    pub expires_at: Option<i64>,
    /// Flag metadata served to SDKs.
    pub metadata: Map<String, Value>,
    /// Configuration per environment key.
    pub environments: BTreeMap<String, FlagConfig>,
    /// Increases with every change of the flag or a configuration (the ETag).
    pub version: i64,
    /// Last evaluation seen by any replica (unix milliseconds).
    pub last_evaluated_at: Option<i64>,
}

impl From<model::Flag> for Flag {
    fn from(f: model::Flag) -> Self {
        Flag {
            flag_set: f.flag_set,
            key: f.key,
            description: f.description,
            owner: f.owner,
            tags: f.tags,
            kind: f.kind.into(),
            stage: f.stage.into(),
            expires_at: f.expires_at,
            metadata: f.metadata,
            environments: f
                .environments
                .into_iter()
                .map(|(env, config)| (env, config.into()))
                .collect(),
            version: f.version,
            last_evaluated_at: f.last_evaluated_at,
        }
    }
}

fn disabled() -> String {
    "DISABLED".to_owned()
}

fn release() -> Kind {
    Kind::Release
}

/// A flag to create. Every environment gets `state`, `variants`,
/// `defaultVariant` and `targeting` unless `environments` says otherwise.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewFlag {
    /// The flag set (must exist).
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$", example = "web")]
    pub flag_set: String,
    /// The key: 1 to 256 printable characters.
    #[schema(pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,256}$", example = "new-checkout")]
    pub key: String,
    /// What the flag does.
    #[serde(default)]
    pub description: String,
    /// Who answers for it.
    #[serde(default)]
    pub owner: String,
    /// Free-form tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// What it is for (default `release`).
    #[serde(default = "release")]
    pub kind: Kind,
    /// When it should be gone (unix milliseconds).
    #[serde(default, deserialize_with = "integer::optional")]
    pub expires_at: Option<i64>,
    /// Flag metadata served to SDKs: strings, numbers or booleans.
    #[serde(default)]
    #[schema(schema_with = schema::metadata)]
    pub metadata: Map<String, Value>,
    /// `ENABLED` or `DISABLED` (default `DISABLED`).
    #[serde(default = "disabled")]
    #[schema(schema_with = schema::flag_state)]
    pub state: String,
    /// Variant name → value (one type per flag).
    #[schema(schema_with = schema::variants)]
    pub variants: Map<String, Value>,
    /// The default variant.
    #[serde(default)]
    pub default_variant: Option<String>,
    /// The targeting rule.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub targeting: Option<Value>,
    /// Per-environment configurations that differ from the above.
    #[serde(default)]
    pub environments: BTreeMap<String, FlagConfigInput>,
    /// Why, for the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl NewFlag {
    /// The storage's flag and the comment.
    pub fn split(self) -> (ensign_storage::NewFlag, Option<String>) {
        let new = ensign_storage::NewFlag {
            flag_set: self.flag_set,
            key: self.key,
            description: self.description,
            owner: self.owner,
            tags: self.tags,
            kind: self.kind.into(),
            expires_at: self.expires_at,
            metadata: self.metadata,
            state: self.state,
            variants: self.variants,
            default_variant: self.default_variant,
            targeting: self.targeting,
            environments: self
                .environments
                .into_iter()
                .map(|(env, config)| (env, config.into()))
                .collect(),
        };
        (new, self.comment)
    }
}

impl From<ensign_storage::NewFlag> for NewFlag {
    fn from(n: ensign_storage::NewFlag) -> Self {
        NewFlag {
            flag_set: n.flag_set,
            key: n.key,
            description: n.description,
            owner: n.owner,
            tags: n.tags,
            kind: n.kind.into(),
            expires_at: n.expires_at,
            metadata: n.metadata,
            state: n.state,
            variants: n.variants,
            default_variant: n.default_variant,
            targeting: n.targeting,
            environments: n
                .environments
                .into_iter()
                .map(|(env, config)| (env, config.into()))
                .collect(),
            comment: None,
        }
    }
}

/// Changes to a flag's lifecycle data; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlagPatch {
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New owner.
    #[serde(default)]
    pub owner: Option<String>,
    /// New tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// New kind.
    #[serde(default)]
    pub kind: Option<Kind>,
    /// New stage.
    #[serde(default)]
    pub stage: Option<Stage>,
    /// New expiry (unix milliseconds); `null` clears it.
    #[serde(default, deserialize_with = "integer::present_optional")]
    #[schema(value_type = Option<i64>)]
    pub expires_at: Option<Option<i64>>,
    /// New metadata (replaces the old): strings, numbers or booleans.
    #[serde(default)]
    #[schema(schema_with = schema::optional_metadata)]
    pub metadata: Option<Map<String, Value>>,
    /// Why, for the audit log.
    #[serde(default)]
    pub comment: Option<String>,
}

impl FlagPatch {
    /// The storage's patch and the comment.
    pub fn split(self) -> (ensign_storage::FlagPatch, Option<String>) {
        let patch = ensign_storage::FlagPatch {
            description: self.description,
            owner: self.owner,
            tags: self.tags,
            kind: self.kind.map(Into::into),
            stage: self.stage.map(Into::into),
            expires_at: self.expires_at,
            metadata: self.metadata,
        };
        (patch, self.comment)
    }
}

/// The body of a toggle.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToggleRequest {
    /// `true`: `ENABLED`; `false`: `DISABLED`.
    pub enabled: bool,
    /// Why, for the audit log.
    #[serde(default)]
    pub comment: Option<String>,
}

/// The body of a configuration copy.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CopyRequest {
    /// The environment to copy from.
    #[schema(example = "staging")]
    pub from: String,
    /// The environment to copy to (the token must cover it); not `from`.
    #[schema(example = "production")]
    pub to: String,
    /// Why, for the audit log.
    #[serde(default)]
    pub comment: Option<String>,
}

/// A page of flags.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlagPage {
    /// The flags, by flag set and key.
    pub items: Vec<Flag>,
    /// How many flags match in all.
    pub total: i64,
    /// The page size.
    pub limit: i64,
    /// Where the page starts.
    pub offset: i64,
}

/// Which flags to list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct FlagQuery {
    /// Only this flag set.
    pub flag_set: Option<String>,
    /// Show only this environment's configuration; with `state`, the
    /// environment whose state must match (default `production`).
    pub environment: Option<String>,
    /// `ENABLED` or `DISABLED` (case-insensitive).
    #[param(pattern = "^([Ee][Nn][Aa][Bb][Ll][Ee][Dd]|[Dd][Ii][Ss][Aa][Bb][Ll][Ee][Dd])$")]
    pub state: Option<String>,
    /// Only this stage (archived flags are listed only when asked for).
    pub stage: Option<Stage>,
    /// Only this kind.
    pub kind: Option<Kind>,
    /// Only flags with this tag.
    pub tag: Option<String>,
    /// Only this owner.
    pub owner: Option<String>,
    /// Key or description contains this text (case-insensitive).
    pub q: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<i64>,
    /// Where the page starts (default 0).
    pub offset: Option<i64>,
}

// Tokens.

/// An API token (its secret is never shown again after creation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    /// A unique name; its writes are recorded as `token:<name>`.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The environments it may change; absent: all.
    pub environments: Option<Vec<String>>,
    /// When it was created (unix milliseconds).
    pub created_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

impl From<model::Token> for Token {
    fn from(t: model::Token) -> Self {
        Token {
            name: t.name,
            role: t.role.into(),
            environments: t.environments,
            created_at: t.created_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// A token to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewToken {
    /// A unique name: 1 to 128 printable characters, not only spaces
    /// (`bootstrap` is reserved).
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 128,
        example = "ci-deploy"
    )]
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The environments it may change (absent: all).
    #[serde(default)]
    pub environments: Option<Vec<String>>,
    /// Why, for the audit log.
    #[serde(default)]
    pub comment: Option<String>,
}

/// A created token with its secret, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedToken {
    /// The token.
    pub token: Token,
    /// The secret to send as `Authorization: Bearer <secret>`; only its hash
    /// is stored, so it cannot be shown again.
    pub secret: String,
}

// Sessions and users.

/// How to sign in: an API token (or the bootstrap token), or a user's name
/// and password (its schema says "one or the other": [`schema::login_request`]).
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    /// An API token's secret, or the bootstrap token.
    #[serde(default)]
    pub token: Option<String>,
    /// A user's name (with `password`).
    #[serde(default)]
    pub username: Option<String>,
    /// The user's password.
    #[serde(default)]
    pub password: Option<String>,
}

impl utoipa::PartialSchema for LoginRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        schema::login_request()
    }
}

impl ToSchema for LoginRequest {}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Who the caller is, and what its session needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// The audit actor: `user:<name>` or `token:<name>`.
    pub actor: String,
    /// What the caller may do.
    pub role: Role,
    /// The environments it may change; `null`: all.
    pub environments: Option<Vec<String>>,
    /// What every unsafe request of this session must send as `X-CSRF-Token`
    /// (`null` for a caller authenticated by a bearer token, which needs none).
    pub csrf_token: Option<String>,
    /// When the session ends, unix milliseconds (`null` for a bearer caller).
    pub expires_at: Option<i64>,
}

/// A user of the web UI (the password is never shown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// A unique name; their writes are recorded as `user:<name>`.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// The environments they may change; absent: all.
    pub environments: Option<Vec<String>>,
    /// When the user was created (unix milliseconds).
    pub created_at: i64,
}

impl From<model::User> for User {
    fn from(u: model::User) -> Self {
        User {
            name: u.name,
            role: u.role.into(),
            environments: u.environments,
            created_at: u.created_at,
        }
    }
}

/// A user to create.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewUser {
    /// 1 to 64 letters, digits, `.`, `_`, `-` or `@`.
    #[schema(pattern = "^[A-Za-z0-9._@-]{1,64}$", example = "ada@example.com")]
    pub name: String,
    /// At least 12 characters; stored only as an Argon2id hash.
    #[schema(min_length = 12, example = "correct horse battery")]
    pub password: String,
    /// What they may do.
    pub role: Role,
    /// The environments they may change (absent: all).
    #[serde(default)]
    pub environments: Option<Vec<String>>,
    /// Why, for the audit log.
    #[serde(default)]
    pub comment: Option<String>,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("environments", &self.environments)
            .finish_non_exhaustive()
    }
}

// Evaluation and validation in the editor.

/// The body of an evaluation: the context to evaluate the flag for.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EvaluateRequest {
    /// The evaluation context (`targetingKey` included), as an SDK sends it.
    #[serde(default)]
    pub context: Map<String, Value>,
}

/// What the flag resolves to for the context, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
    /// The value served (`null`: the application's code default applies).
    pub value: Option<Value>,
    /// The variant served.
    pub variant: Option<String>,
    /// `STATIC`, `TARGETING_MATCH`, `DEFAULT`, `DISABLED` or `ERROR`.
    pub reason: String,
    /// `FLAG_NOT_FOUND`, `PARSE_ERROR`, `GENERAL`, ... when the reason is `ERROR`.
    pub error_code: Option<String>,
    /// What went wrong, when the reason is `ERROR`.
    pub error_message: Option<String>,
    /// How the answer came about: sentences, and an object for every
    /// `fractional` that placed the context.
    pub explanation: Vec<ExplanationStep>,
}

/// One step of an explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ExplanationStep {
    /// A sentence for people.
    Text(String),
    /// How a `fractional` placed the context.
    Fractional(FractionalStep),
}

/// How a `fractional` placed the context (`kind` is `fractional`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FractionalStep {
    /// Always `fractional`.
    pub kind: String,
    /// The hashed value as text.
    pub bucket_by: String,
    /// The bucket the value fell into (`0 <= bucket < totalWeight`).
    pub bucket: u32,
    /// The sum of the weights.
    pub total_weight: u32,
    /// Every entry in order, with its buckets `from <= bucket < to`.
    pub buckets: Vec<BucketStep>,
    /// The variant chosen.
    pub variant: Option<String>,
}

/// One entry of a `fractional` and its range of buckets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketStep {
    /// The entry's variant.
    pub variant: Option<String>,
    /// The entry's weight.
    pub weight: u32,
    /// The first bucket.
    pub from: u32,
    /// One past the last bucket.
    pub to: u32,
}

impl From<ensign_engine::FractionalTrace> for FractionalStep {
    fn from(trace: ensign_engine::FractionalTrace) -> Self {
        FractionalStep {
            kind: "fractional".to_owned(),
            bucket_by: trace.bucket_by,
            bucket: trace.bucket,
            total_weight: trace.total_weight,
            buckets: trace
                .buckets
                .into_iter()
                .map(|range| BucketStep {
                    variant: range.variant,
                    weight: range.weight,
                    from: range.from,
                    to: range.to,
                })
                .collect(),
            variant: trace.variant,
        }
    }
}

/// Whether a configuration would be accepted, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    /// True when `PUT` would accept the configuration as it is.
    pub valid: bool,
    /// Every problem, with its JSON Pointer into the body.
    pub problems: Vec<ValidationProblem>,
}

/// One problem with a configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationProblem {
    /// JSON Pointer into the body, as in the `PUT`'s 422.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
    /// `error` (refused) or `warning`.
    pub severity: ProblemSeverity,
}

/// How serious a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemSeverity {
    /// The configuration is refused.
    Error,
    /// The configuration is accepted, but probably not as meant.
    Warning,
}

// Audit log.

/// One line of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Increasing id (`before` pages by it).
    pub id: i64,
    /// When (unix milliseconds).
    pub at: i64,
    /// Who: `token:<name>`, `user:<name>` or `automation:<name>`.
    pub actor: String,
    /// What: `flag.create`, `flag.update`, `flag.stage`, `flag.configure`,
    /// `flag.toggle`, `flag.copy`, `flag.delete`, `segment.create`, ...
    pub action: String,
    /// `environment`, `flag_set`, `segment`, `flag`, `token`, `user` or
    /// `session`.
    pub resource_type: String,
    /// Its key (`set/key` for flags and segments).
    pub resource_key: String,
    /// The environment of per-environment changes.
    pub environment: Option<String>,
    /// The resource before the change (in this API's shapes where known).
    pub before: Option<Value>,
    /// The resource after the change.
    pub after: Option<Value>,
    /// What differs between `before` and `after` (when there are both).
    pub changes: Vec<AuditChange>,
    /// The actor's comment.
    pub comment: Option<String>,
}

/// One changed value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditChange {
    /// JSON Pointer into `before` / `after`.
    pub path: String,
    /// The old value (absent: added).
    pub before: Option<Value>,
    /// The new value (absent: removed).
    pub after: Option<Value>,
}

impl From<model::AuditEntry> for AuditEntry {
    fn from(e: model::AuditEntry) -> Self {
        let before = e.before.map(|v| api_shape(&e.resource_type, v));
        let after = e.after.map(|v| api_shape(&e.resource_type, v));
        let changes = match (&before, &after) {
            (Some(before), Some(after)) => {
                let mut changes = Vec::new();
                diff(String::new(), before, after, &mut changes);
                changes
            }
            _ => Vec::new(),
        };
        AuditEntry {
            id: e.id,
            at: e.at,
            actor: e.actor,
            action: e.action,
            resource_type: e.resource_type,
            resource_key: e.resource_key,
            environment: e.environment,
            before,
            after,
            changes,
            comment: e.comment,
        }
    }
}

/// A stored snapshot in this API's shape when it is one of the model's types;
/// otherwise as stored.
fn api_shape(resource_type: &str, value: Value) -> Value {
    fn convert<M, W>(value: &Value) -> Option<Value>
    where
        M: DeserializeOwned,
        W: Serialize + From<M>,
    {
        let model: M = serde_json::from_value(value.clone()).ok()?;
        serde_json::to_value(W::from(model)).ok()
    }
    let converted = match resource_type {
        "environment" => convert::<model::Environment, Environment>(&value),
        "flag_set" => convert::<model::FlagSet, FlagSet>(&value),
        "segment" => convert::<model::Segment, Segment>(&value),
        "token" => convert::<model::Token, Token>(&value),
        "user" => convert::<model::User, User>(&value),
        // A flag, a flag to create, or one environment's configuration: the
        // more specific shapes first (serde ignores unknown fields).
        "flag" => convert::<model::Flag, Flag>(&value)
            .or_else(|| convert::<ensign_storage::NewFlag, NewFlag>(&value))
            .or_else(|| convert::<model::FlagConfig, FlagConfig>(&value)),
        _ => None,
    };
    converted.unwrap_or(value)
}

/// Appends what differs between `before` and `after` under `path`; objects are
/// compared member by member, anything else as a whole.
fn diff(path: String, before: &Value, after: &Value, changes: &mut Vec<AuditChange>) {
    if before == after {
        return;
    }
    let (Value::Object(old), Value::Object(new)) = (before, after) else {
        changes.push(AuditChange {
            path,
            before: Some(before.clone()),
            after: Some(after.clone()),
        });
        return;
    };
    let removed_or_changed = old.iter().map(|(k, v)| (k, Some(v), new.get(k)));
    let added = new
        .iter()
        .filter(|(k, _)| !old.contains_key(*k))
        .map(|(k, v)| (k, None, Some(v)));
    for (key, old, new) in removed_or_changed.chain(added) {
        let path = format!("{path}/{}", escape(key));
        match (old, new) {
            (Some(old), Some(new)) => diff(path, old, new, changes),
            (old, new) => changes.push(AuditChange {
                path,
                before: old.cloned(),
                after: new.cloned(),
            }),
        }
    }
}

/// A page of audit entries, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    /// The entries.
    pub items: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

/// Which audit entries to read.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct AuditQuery {
    /// Only this resource type (`flag`, `segment`, `flag_set`, `environment`,
    /// `kill_switch`, `slo`; for admins also `token`, `user`, `session`,
    /// `alertmanager_receiver`, whose entries others never see).
    pub resource_type: Option<String>,
    /// Only this resource (`set/key` for flags and segments).
    pub resource_key: Option<String>,
    /// Only this actor (`token:<name>`, `user:<name>`).
    pub actor: Option<String>,
    /// Only this environment.
    pub environment: Option<String>,
    /// Only entries older than this id.
    pub before: Option<i64>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<i64>,
}

// Documents.

/// Which flagd document to export.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct ExportQuery {
    /// The environment whose configuration to export.
    pub environment: String,
    /// The flag set to export.
    pub flag_set: String,
}

/// Where to import a flagd document.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct ImportQuery {
    /// The environment whose configuration the document sets.
    pub environment: String,
    /// The flag set (created when missing); default: the document's
    /// `metadata.flagSetId`.
    pub flag_set: Option<String>,
}

/// What an import did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportResult {
    /// The environment configured.
    pub environment: String,
    /// The flag set imported into.
    pub flag_set: String,
    /// The keys of the flags created or configured, in document order.
    pub imported: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diffs_name_changed_pointers() {
        let mut changes = Vec::new();
        diff(
            String::new(),
            &json!({"state": "ENABLED", "variants": {"on": true, "a/b": 1}, "gone": 1}),
            &json!({"state": "DISABLED", "variants": {"on": true, "a/b": 2}, "new": [1]}),
            &mut changes,
        );
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["/gone", "/state", "/variants/a~1b", "/new"]);
        assert_eq!(changes[0].after, None);
        assert_eq!(changes[3].before, None);
    }

    #[test]
    fn audit_snapshots_take_the_api_shape() {
        let config = json!({"state": "ENABLED", "variants": {"on": true}, "default_variant": "on", "targeting": null, "version": 2});
        let shaped = api_shape("flag", config);
        assert_eq!(shaped["defaultVariant"], "on");
        assert!(shaped.get("default_variant").is_none());
        let unknown = json!({"odd": 1});
        assert_eq!(api_shape("flag", unknown.clone()), unknown);
    }
}
