//! Flags: lifecycle data, and a configuration (state, variants, default
//! variant, targeting) per environment, validated by the engine before it is
//! written.

use std::collections::BTreeMap;

use ensign_engine::Problem;
use ensign_engine::document::{Limits, Severity, load_value};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlx::Row as _;

use super::{Bind, Write, bind_all, check_version, get, json_column, optional_json_column, stale};
use sqlx::AssertSqlSafe;

use crate::error::{Result, StorageError, from_sqlx};
use crate::model::{Actor, Flag, FlagConfig, FlagKind, FlagStage};
use crate::{Storage, now_millis};

/// A flag to create. Every environment gets `state`, `variants`,
/// `default_variant` and `targeting` unless `environments` says otherwise.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewFlag {
    /// The flag set.
    pub flag_set: String,
    /// The key.
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
    /// What it is for.
    #[serde(default = "default_kind")]
    pub kind: FlagKind,
    /// When it should be gone (unix milliseconds).
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Flag metadata served to SDKs.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// `ENABLED` or `DISABLED` (default: disabled everywhere).
    #[serde(default = "disabled")]
    pub state: String,
    /// Variant name → value.
    pub variants: Map<String, Value>,
    /// The default variant.
    #[serde(default)]
    pub default_variant: Option<String>,
    /// The targeting rule.
    #[serde(default)]
    pub targeting: Option<Value>,
    /// Per-environment configurations that differ.
    #[serde(default)]
    pub environments: BTreeMap<String, FlagConfig>,
}

fn default_kind() -> FlagKind {
    FlagKind::Release
}

fn disabled() -> String {
    "DISABLED".to_owned()
}

/// Changes to a flag's lifecycle data; absent fields stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FlagPatch {
    /// New description.
    pub description: Option<String>,
    /// New owner.
    pub owner: Option<String>,
    /// New tags.
    pub tags: Option<Vec<String>>,
    /// New kind.
    pub kind: Option<FlagKind>,
    /// New stage.
    pub stage: Option<FlagStage>,
    /// New expiry (`Some(None)` clears it).
    #[serde(default, with = "double_option")]
    pub expires_at: Option<Option<i64>>,
    /// New metadata.
    pub metadata: Option<Map<String, Value>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Option<i64>>, s: S) -> Result<S::Ok, S::Error> {
        value.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
        Option::<i64>::deserialize(d).map(Some)
    }
}

/// Which flags to list.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FlagFilter {
    /// Only this flag set.
    pub flag_set: Option<String>,
    /// With `state`: the environment whose state to match.
    pub environment: Option<String>,
    /// `ENABLED` or `DISABLED` in `environment` (production when absent).
    pub state: Option<String>,
    /// Only this stage (archived flags only show when asked for).
    pub stage: Option<FlagStage>,
    /// Only this kind.
    pub kind: Option<FlagKind>,
    /// Only flags with this tag (exactly, case included).
    pub tag: Option<String>,
    /// Only this owner.
    pub owner: Option<String>,
    /// Key or description contains this text, ignoring ASCII case (`%` and
    /// `_` are not wildcards).
    pub query: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// How many match in all.
    pub total: i64,
    /// The page size asked for.
    pub limit: i64,
    /// Where the page starts.
    pub offset: i64,
}

fn enum_text<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn enum_from<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T> {
    serde_json::from_value(Value::from(text))
        .map_err(|e| StorageError::Internal(sqlx::Error::Decode(Box::new(e))))
}

/// The flagd definition of `config` with `metadata`.
pub(crate) fn definition(config: &FlagConfig, metadata: &Map<String, Value>) -> Value {
    let mut definition = Map::new();
    definition.insert("state".to_owned(), Value::from(config.state.clone()));
    definition.insert(
        "variants".to_owned(),
        Value::Object(config.variants.clone()),
    );
    definition.insert(
        "defaultVariant".to_owned(),
        config
            .default_variant
            .clone()
            .map_or(Value::Null, Value::from),
    );
    if let Some(targeting) = &config.targeting {
        definition.insert("targeting".to_owned(), targeting.clone());
    }
    if !metadata.is_empty() {
        definition.insert("metadata".to_owned(), Value::Object(metadata.clone()));
    }
    Value::Object(definition)
}

/// Validates a configuration with the engine, as SDKs will receive it; every
/// problem is reported under `/environments/<env>`, warnings included.
pub(crate) fn validate_config(
    key: &str,
    environment: &str,
    config: &FlagConfig,
    metadata: &Map<String, Value>,
    evaluators: &Map<String, Value>,
) -> Vec<Problem> {
    let mut flags = Map::new();
    flags.insert(key.to_owned(), definition(config, metadata));
    let document = json!({"flags": flags, "$evaluators": evaluators});
    let prefix = format!("/flags/{}", key.replace('~', "~0").replace('/', "~1"));
    let problems = match load_value(&document, &Limits::default()) {
        Ok(loaded) => loaded.warnings,
        Err(error) => error.problems,
    };
    problems
        .into_iter()
        .map(|problem| Problem {
            path: problem
                .path
                .replacen(&prefix, &format!("/environments/{environment}"), 1),
            message: problem.message,
            severity: Severity::Error,
        })
        .collect()
}

/// The error for a guarded write of flag `flag_set/key` that matched no row.
async fn stale_flag(
    write: &mut Write<'_>,
    flag_set: &str,
    key: &str,
    expected: i64,
) -> StorageError {
    stale(
        write,
        format!("flag \"{flag_set}/{key}\""),
        "SELECT f.version FROM flags f JOIN flag_sets fs ON fs.id = f.flag_set_id WHERE fs.key = $1 AND f.key = $2",
        vec![Bind::Text(flag_set.to_owned()), Bind::Text(key.to_owned())],
        expected,
    )
    .await
}

fn check_flag_key(key: &str) -> Result<()> {
    // Characters, not bytes: the OpenAPI document's `maxLength` counts them.
    if key.is_empty() || key.chars().count() > 256 || key.chars().any(char::is_control) {
        return Err(StorageError::invalid(
            "/key",
            "use 1 to 256 printable characters",
        ));
    }
    Ok(())
}

const FLAG_COLUMNS: &str = "f.id, f.key, fs.key AS flag_set, f.description, f.owner, f.tags, f.kind, f.stage, \
     f.expires_at, f.metadata, f.version, f.last_evaluated_at";

impl Storage {
    async fn segment_rules(&self, flag_set: &str) -> Result<Map<String, Value>> {
        Ok(self
            .segments(flag_set)
            .await?
            .into_iter()
            .map(|s| (s.key, s.rule))
            .collect())
    }

    /// Loads flags by the rows of a `FLAG_COLUMNS` query.
    async fn assemble(&self, rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<Flag>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = rows.iter().map(|r| get(r, "id")).collect::<Result<_>>()?;
        let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let query = format!(
            "SELECT c.flag_id, e.key AS environment, c.state, c.variants, c.default_variant, c.targeting, c.version \
             FROM flag_configs c JOIN environments e ON e.id = c.environment_id WHERE c.flag_id IN ({}) ORDER BY e.id",
            placeholders.join(", ")
        );
        let configs = bind_all(
            sqlx::query(AssertSqlSafe(query)),
            ids.iter().map(|id| Bind::Int(*id)).collect(),
        )
        .fetch_all(self.pool())
        .await
        .map_err(|e| from_sqlx(e, "flag configurations"))?;
        let mut by_flag: BTreeMap<i64, BTreeMap<String, FlagConfig>> = BTreeMap::new();
        for row in &configs {
            let variants = match json_column(row, "variants")? {
                Value::Object(map) => map,
                _ => Map::new(),
            };
            by_flag.entry(get(row, "flag_id")?).or_default().insert(
                get(row, "environment")?,
                FlagConfig {
                    state: get(row, "state")?,
                    variants,
                    default_variant: get(row, "default_variant")?,
                    targeting: optional_json_column(row, "targeting")?,
                    version: get(row, "version")?,
                },
            );
        }
        rows.iter()
            .map(|row| {
                let id: i64 = get(row, "id")?;
                let tags = serde_json::from_value(json_column(row, "tags")?).unwrap_or_default();
                let metadata = match json_column(row, "metadata")? {
                    Value::Object(map) => map,
                    _ => Map::new(),
                };
                Ok(Flag {
                    flag_set: get(row, "flag_set")?,
                    key: get(row, "key")?,
                    description: get(row, "description")?,
                    owner: get(row, "owner")?,
                    tags,
                    kind: enum_from(&get::<String>(row, "kind")?)?,
                    stage: enum_from(&get::<String>(row, "stage")?)?,
                    expires_at: get(row, "expires_at")?,
                    metadata,
                    environments: by_flag.remove(&id).unwrap_or_default(),
                    version: get(row, "version")?,
                    last_evaluated_at: get(row, "last_evaluated_at")?,
                })
            })
            .collect()
    }

    /// A page of flags matching `filter`, by flag set and key.
    pub async fn flags(&self, filter: &FlagFilter, limit: i64, offset: i64) -> Result<Page<Flag>> {
        let mut conditions = Vec::new();
        let mut binds = Vec::new();
        let next = |bind: Bind, binds: &mut Vec<Bind>| {
            binds.push(bind);
            format!("${}", binds.len())
        };
        if let Some(set) = &filter.flag_set {
            conditions.push(format!(
                "fs.key = {}",
                next(Bind::Text(set.clone()), &mut binds)
            ));
        }
        match filter.stage {
            Some(stage) => conditions.push(format!(
                "f.stage = {}",
                next(Bind::Text(enum_text(&stage)), &mut binds)
            )),
            None => conditions.push("f.stage <> 'archived'".to_owned()),
        }
        if let Some(kind) = filter.kind {
            conditions.push(format!(
                "f.kind = {}",
                next(Bind::Text(enum_text(&kind)), &mut binds)
            ));
        }
        if let Some(owner) = &filter.owner {
            conditions.push(format!(
                "f.owner = {}",
                next(Bind::Text(owner.clone()), &mut binds)
            ));
        }
        // Substring tests use `REPLACE(haystack, needle, '') <> haystack`, not
        // LIKE: LIKE makes `%` and `_` wildcards, and ignores ASCII case on
        // SQLite but not on PostgreSQL; REPLACE matches exactly on both.
        if let Some(tag) = &filter.tag {
            // Tags are stored as a JSON array: match one whole element.
            let element = Value::from(tag.as_str()).to_string();
            conditions.push(format!(
                "REPLACE(f.tags, {}, '') <> f.tags",
                next(Bind::Text(element), &mut binds)
            ));
        }
        if let Some(query) = filter.query.as_deref().filter(|q| !q.is_empty()) {
            // Ignoring ASCII case on both backends (SQLite's LOWER knows
            // no other letters).
            let needle = query.to_lowercase();
            let a = next(Bind::Text(needle.clone()), &mut binds);
            let b = next(Bind::Text(needle), &mut binds);
            conditions.push(format!(
                "(REPLACE(LOWER(f.key), {a}, '') <> LOWER(f.key) OR REPLACE(LOWER(f.description), {b}, '') <> LOWER(f.description))"
            ));
        }
        if let Some(state) = &filter.state {
            let environment = filter
                .environment
                .clone()
                .unwrap_or_else(|| "production".to_owned());
            let e = next(Bind::Text(environment), &mut binds);
            let s = next(Bind::Text(state.clone()), &mut binds);
            conditions.push(format!(
                "EXISTS (SELECT 1 FROM flag_configs c JOIN environments e ON e.id = c.environment_id \
                 WHERE c.flag_id = f.id AND e.key = {e} AND c.state = {s})"
            ));
        }
        let from = format!(
            "FROM flags f JOIN flag_sets fs ON fs.id = f.flag_set_id WHERE {}",
            conditions.join(" AND ")
        );
        let total: i64 = bind_all(
            sqlx::query(AssertSqlSafe(format!("SELECT COUNT(*) AS n {from}"))),
            binds.clone(),
        )
        .fetch_one(self.pool())
        .await
        .map_err(|e| from_sqlx(e, "flags"))?
        .try_get("n")
        .map_err(|e| from_sqlx(e, "count"))?;
        let limit = limit.clamp(1, 500);
        let offset = offset.max(0);
        let l = next(Bind::Int(limit), &mut binds);
        let o = next(Bind::Int(offset), &mut binds);
        let rows = bind_all(
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {FLAG_COLUMNS} {from} ORDER BY fs.key, f.key LIMIT {l} OFFSET {o}"
            ))),
            binds,
        )
        .fetch_all(self.pool())
        .await
        .map_err(|e| from_sqlx(e, "flags"))?;
        Ok(Page {
            items: self.assemble(rows).await?,
            total,
            limit,
            offset,
        })
    }

    /// The flag `key` of `flag_set`.
    pub async fn flag(&self, flag_set: &str, key: &str) -> Result<Flag> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {FLAG_COLUMNS} FROM flags f JOIN flag_sets fs ON fs.id = f.flag_set_id WHERE fs.key = $1 AND f.key = $2"
        )))
        .bind(flag_set.to_owned())
        .bind(key.to_owned())
        .fetch_all(self.pool())
        .await
        .map_err(|e| from_sqlx(e, "flag"))?;
        self.assemble(rows)
            .await?
            .pop()
            .ok_or_else(|| StorageError::NotFound(format!("flag \"{flag_set}/{key}\"")))
    }

    /// Creates a flag with a configuration in every environment.
    pub async fn create_flag(&self, actor: &Actor, new: NewFlag) -> Result<Flag> {
        check_flag_key(&new.key)?;
        let environments = self.environments().await?;
        for key in new.environments.keys() {
            if !environments.iter().any(|e| &e.key == key) {
                return Err(StorageError::invalid(
                    &format!("/environments/{key}"),
                    "no such environment",
                ));
            }
        }
        let evaluators = self.segment_rules(&new.flag_set).await?;
        let base = FlagConfig {
            state: new.state.clone(),
            variants: new.variants.clone(),
            default_variant: new.default_variant.clone(),
            targeting: new.targeting.clone(),
            version: 1,
        };
        let mut problems = Vec::new();
        let configs: Vec<(String, FlagConfig)> = environments
            .iter()
            .map(|e| {
                let config = new
                    .environments
                    .get(&e.key)
                    .cloned()
                    .unwrap_or_else(|| base.clone());
                problems.extend(validate_config(
                    &new.key,
                    &e.key,
                    &config,
                    &new.metadata,
                    &evaluators,
                ));
                (e.key.clone(), config)
            })
            .collect();
        if !problems.is_empty() {
            return Err(StorageError::Invalid(problems));
        }
        let mut write = Write::begin(self, actor).await?;
        let set_id = Storage::flag_set_id(&mut write, &new.flag_set).await?;
        let now = now_millis();
        let flag_id: i64 = sqlx::query(
            "INSERT INTO flags (flag_set_id, key, description, owner, tags, kind, stage, expires_at, metadata, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'new', $7, $8, $9, $10) RETURNING id",
        )
        .bind(set_id)
        .bind(new.key.clone())
        .bind(new.description.clone())
        .bind(new.owner.clone())
        .bind(json!(new.tags).to_string())
        .bind(enum_text(&new.kind))
        .bind(new.expires_at)
        .bind(Value::Object(new.metadata.clone()).to_string())
        .bind(now)
        .bind(now)
        .fetch_one(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, &format!("flag \"{}/{}\"", new.flag_set, new.key)))?
        .try_get("id")
        .map_err(|e| from_sqlx(e, "id"))?;
        for (environment, config) in &configs {
            insert_config(&mut write, flag_id, environment, config).await?;
        }
        let resource = format!("{}/{}", new.flag_set, new.key);
        write
            .audit(
                "flag.create",
                "flag",
                &resource,
                None,
                None,
                serde_json::to_value(&new).ok().as_ref(),
            )
            .await?;
        write.touches(None);
        write.commit().await?;
        self.flag(&new.flag_set, &new.key).await
    }

    /// Changes a flag's lifecycle data.
    pub async fn update_flag(
        &self,
        actor: &Actor,
        flag_set: &str,
        key: &str,
        patch: FlagPatch,
        expected_version: Option<i64>,
    ) -> Result<Flag> {
        let before = self.flag(flag_set, key).await?;
        check_version(
            &format!("flag \"{flag_set}/{key}\""),
            before.version,
            expected_version,
        )?;
        let mut after = before.clone();
        if let Some(v) = patch.description {
            after.description = v;
        }
        if let Some(v) = patch.owner {
            after.owner = v;
        }
        if let Some(v) = patch.tags {
            after.tags = v;
        }
        if let Some(v) = patch.kind {
            after.kind = v;
        }
        if let Some(v) = patch.stage {
            after.stage = v;
        }
        if let Some(v) = patch.expires_at {
            after.expires_at = v;
        }
        if let Some(v) = patch.metadata {
            let evaluators = self.segment_rules(flag_set).await?;
            let problems: Vec<Problem> = before
                .environments
                .iter()
                .flat_map(|(env, config)| validate_config(key, env, config, &v, &evaluators))
                .collect();
            if !problems.is_empty() {
                return Err(StorageError::Invalid(problems));
            }
            after.metadata = v;
        }
        let mut write = Write::begin(self, actor).await?;
        let updated = sqlx::query(
            "UPDATE flags SET description = $1, owner = $2, tags = $3, kind = $4, stage = $5, expires_at = $6, metadata = $7, \
             version = version + 1, updated_at = $8 \
             WHERE key = $9 AND version = $10 AND flag_set_id = (SELECT id FROM flag_sets WHERE key = $11)",
        )
        .bind(after.description.clone())
        .bind(after.owner.clone())
        .bind(json!(after.tags).to_string())
        .bind(enum_text(&after.kind))
        .bind(enum_text(&after.stage))
        .bind(after.expires_at)
        .bind(Value::Object(after.metadata.clone()).to_string())
        .bind(now_millis())
        .bind(key.to_owned())
        .bind(before.version)
        .bind(flag_set.to_owned())
        .execute(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, "flag"))?;
        if updated.rows_affected() == 0 {
            return Err(stale_flag(&mut write, flag_set, key, before.version).await);
        }
        after.version = before.version + 1;
        let action = if after.stage != before.stage {
            "flag.stage"
        } else {
            "flag.update"
        };
        write
            .audit(
                action,
                "flag",
                &format!("{flag_set}/{key}"),
                None,
                serde_json::to_value(&before).ok().as_ref(),
                serde_json::to_value(&after).ok().as_ref(),
            )
            .await?;
        write.touches(None);
        write.commit().await?;
        Ok(after)
    }

    /// Replaces the flag's configuration in `environment`.
    pub async fn set_flag_config(
        &self,
        actor: &Actor,
        flag_set: &str,
        key: &str,
        environment: &str,
        config: FlagConfig,
        expected_version: Option<i64>,
    ) -> Result<Flag> {
        self.change_config(
            actor,
            (flag_set, key, environment),
            expected_version,
            "flag.configure",
            |_| Ok(config),
        )
        .await
    }

    /// Turns the flag on or off in `environment`.
    pub async fn toggle_flag(
        &self,
        actor: &Actor,
        flag_set: &str,
        key: &str,
        environment: &str,
        enabled: bool,
        expected_version: Option<i64>,
    ) -> Result<Flag> {
        self.change_config(
            actor,
            (flag_set, key, environment),
            expected_version,
            "flag.toggle",
            |current| {
                let mut config = current.clone();
                config.state = if enabled { "ENABLED" } else { "DISABLED" }.to_owned();
                Ok(config)
            },
        )
        .await
    }

    /// Copies the flag's configuration from one environment to another.
    pub async fn copy_flag_config(
        &self,
        actor: &Actor,
        flag_set: &str,
        key: &str,
        from: &str,
        to: &str,
        expected_version: Option<i64>,
    ) -> Result<Flag> {
        let flag = self.flag(flag_set, key).await?;
        let source = flag
            .environments
            .get(from)
            .cloned()
            .ok_or_else(|| StorageError::NotFound(format!("environment \"{from}\"")))?;
        self.change_config(
            actor,
            (flag_set, key, to),
            expected_version,
            "flag.copy",
            move |_| Ok(source),
        )
        .await
    }

    /// What is wrong with `config` as `flag`'s configuration in
    /// `environment` (with the flag set's segments), under
    /// `/environments/<environment>`; what [`Storage::set_flag_config`]
    /// refuses.
    async fn config_problems(
        &self,
        flag: &Flag,
        environment: &str,
        config: &FlagConfig,
    ) -> Result<Vec<Problem>> {
        let evaluators = self.segment_rules(&flag.flag_set).await?;
        Ok(validate_config(
            &flag.key,
            environment,
            config,
            &flag.metadata,
            &evaluators,
        ))
    }

    /// Validates `config` as the configuration of `flag_set/key` in
    /// `environment` exactly as [`Storage::set_flag_config`] would, writing
    /// nothing: every problem under `/environments/<environment>` (none: it
    /// would be accepted). Not found when the flag or environment is missing.
    pub async fn validate_flag_config(
        &self,
        flag_set: &str,
        key: &str,
        environment: &str,
        config: &FlagConfig,
    ) -> Result<Vec<Problem>> {
        let flag = self.flag(flag_set, key).await?;
        if !flag.environments.contains_key(environment) {
            return Err(StorageError::NotFound(format!(
                "environment \"{environment}\""
            )));
        }
        self.config_problems(&flag, environment, config).await
    }

    async fn change_config(
        &self,
        actor: &Actor,
        (flag_set, key, environment): (&str, &str, &str),
        expected_version: Option<i64>,
        action: &str,
        change: impl FnOnce(&FlagConfig) -> Result<FlagConfig>,
    ) -> Result<Flag> {
        let before = self.flag(flag_set, key).await?;
        check_version(
            &format!("flag \"{flag_set}/{key}\""),
            before.version,
            expected_version,
        )?;
        let current = before
            .environments
            .get(environment)
            .ok_or_else(|| StorageError::NotFound(format!("environment \"{environment}\"")))?;
        let mut config = change(current)?;
        let problems = self.config_problems(&before, environment, &config).await?;
        if !problems.is_empty() {
            return Err(StorageError::Invalid(problems));
        }
        config.version = current.version + 1;
        let mut write = Write::begin(self, actor).await?;
        let bumped = sqlx::query(
            "UPDATE flags SET version = version + 1, updated_at = $1 \
             WHERE key = $2 AND version = $3 AND flag_set_id = (SELECT id FROM flag_sets WHERE key = $4) RETURNING id",
        )
        .bind(now_millis())
        .bind(key.to_owned())
        .bind(before.version)
        .bind(flag_set.to_owned())
        .fetch_optional(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, "flag"))?;
        let Some(row) = bumped else {
            return Err(stale_flag(&mut write, flag_set, key, before.version).await);
        };
        let flag_id: i64 = row.try_get("id").map_err(|e| from_sqlx(e, "id"))?;
        store_config(&mut write, flag_id, environment, &config).await?;
        write
            .audit(
                action,
                "flag",
                &format!("{flag_set}/{key}"),
                Some(environment),
                serde_json::to_value(current).ok().as_ref(),
                serde_json::to_value(&config).ok().as_ref(),
            )
            .await?;
        write.touches(Some(environment));
        write.commit().await?;
        self.flag(flag_set, key).await
    }

    /// Deletes a flag and its configurations.
    pub async fn delete_flag(
        &self,
        actor: &Actor,
        flag_set: &str,
        key: &str,
        expected_version: Option<i64>,
    ) -> Result<()> {
        let before = self.flag(flag_set, key).await?;
        check_version(
            &format!("flag \"{flag_set}/{key}\""),
            before.version,
            expected_version,
        )?;
        let mut write = Write::begin(self, actor).await?;
        // Guarded like every other write: a change made since the read wins
        // over a delete based on what was read.
        let deleted = sqlx::query("DELETE FROM flags WHERE key = $1 AND version = $2 AND flag_set_id = (SELECT id FROM flag_sets WHERE key = $3)")
            .bind(key.to_owned())
            .bind(before.version)
            .bind(flag_set.to_owned())
            .execute(&mut *write.tx)
            .await
            .map_err(|e| from_sqlx(e, "flag"))?;
        if deleted.rows_affected() == 0 {
            return Err(stale_flag(&mut write, flag_set, key, before.version).await);
        }
        write
            .audit(
                "flag.delete",
                "flag",
                &format!("{flag_set}/{key}"),
                None,
                serde_json::to_value(&before).ok().as_ref(),
                None,
            )
            .await?;
        write.touches(None);
        write.commit().await
    }

    /// Records when flags were last evaluated (a periodic flush, not a request path).
    pub async fn record_evaluations(&self, seen: &[(String, String, i64)]) -> Result<()> {
        for (flag_set, key, at) in seen {
            sqlx::query(
                "UPDATE flags SET last_evaluated_at = $1 WHERE key = $2 AND flag_set_id = (SELECT id FROM flag_sets WHERE key = $3) \
                 AND (last_evaluated_at IS NULL OR last_evaluated_at < $4)",
            )
            .bind(*at)
            .bind(key.clone())
            .bind(flag_set.clone())
            .bind(*at)
            .execute(self.pool())
            .await
            .map_err(|e| from_sqlx(e, "flag"))?;
        }
        Ok(())
    }
}

async fn insert_config(
    write: &mut Write<'_>,
    flag_id: i64,
    environment: &str,
    config: &FlagConfig,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO flag_configs (flag_id, environment_id, state, variants, default_variant, targeting, version, updated_at) \
         SELECT $1, id, $2, $3, $4, $5, 1, $6 FROM environments WHERE key = $7",
    )
    .bind(flag_id)
    .bind(config.state.clone())
    .bind(Value::Object(config.variants.clone()).to_string())
    .bind(config.default_variant.clone())
    .bind(config.targeting.as_ref().map(Value::to_string))
    .bind(now_millis())
    .bind(environment.to_owned())
    .execute(&mut *write.tx)
    .await
    .map_err(|e| from_sqlx(e, "flag configuration"))?;
    Ok(())
}

/// Writes `config` (with its version) as the flag's configuration in
/// `environment`, inside `write`; the caller has bumped the flag's version.
pub(crate) async fn store_config(
    write: &mut Write<'_>,
    flag_id: i64,
    environment: &str,
    config: &FlagConfig,
) -> Result<()> {
    sqlx::query(
        "UPDATE flag_configs SET state = $1, variants = $2, default_variant = $3, targeting = $4, version = $5, updated_at = $6 \
         WHERE flag_id = $7 AND environment_id = (SELECT id FROM environments WHERE key = $8)",
    )
    .bind(config.state.clone())
    .bind(Value::Object(config.variants.clone()).to_string())
    .bind(config.default_variant.clone())
    .bind(config.targeting.as_ref().map(Value::to_string))
    .bind(config.version)
    .bind(now_millis())
    .bind(flag_id)
    .bind(environment.to_owned())
    .execute(&mut *write.tx)
    .await
    .map_err(|e| from_sqlx(e, "flag configuration"))?;
    Ok(())
}
