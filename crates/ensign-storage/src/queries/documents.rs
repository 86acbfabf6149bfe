//! Flag documents: what an evaluating process serves for one environment (one
//! flagd document per flag set, segments as `$evaluators`), and import of
//! flagd documents into an environment.

use serde_json::{Map, Value, json};

use super::flags::{FlagPatch, NewFlag, definition};
use crate::Storage;
use crate::error::{Result, StorageError};
use crate::model::{Actor, FlagConfig, FlagStage};

impl Storage {
    /// One flagd document per flag set, as `environment` serves it: archived
    /// flags are left out.
    pub async fn environment_documents(&self, environment: &str) -> Result<Vec<(String, Value)>> {
        self.environment(environment).await?;
        let mut documents = Vec::new();
        for set in self.flag_sets().await? {
            documents.push((set.key.clone(), self.export(environment, &set.key).await?));
        }
        Ok(documents)
    }

    /// The flag-set metadata (with `flagSetId`) and the segments as
    /// `$evaluators` of `flag_set`'s flagd documents.
    async fn document_frame(
        &self,
        flag_set: &str,
    ) -> Result<(Map<String, Value>, Map<String, Value>)> {
        let set = self.flag_set(flag_set).await?;
        let mut metadata = set.metadata.clone();
        metadata.insert("flagSetId".to_owned(), Value::from(set.key.clone()));
        let evaluators: Map<String, Value> = self
            .segments(flag_set)
            .await?
            .into_iter()
            .map(|s| (s.key, s.rule))
            .collect();
        Ok((metadata, evaluators))
    }

    /// The flagd document `environment` serves for flag `flag_set/key` alone
    /// (with the flag set's metadata and segments), as stored now: `flags` is
    /// empty when the flag is archived. Not found when the flag or the
    /// environment does not exist.
    pub async fn flag_document(
        &self,
        environment: &str,
        flag_set: &str,
        key: &str,
    ) -> Result<Value> {
        let flag = self.flag(flag_set, key).await?;
        let config = flag
            .environments
            .get(environment)
            .ok_or_else(|| StorageError::NotFound(format!("environment \"{environment}\"")))?;
        let (metadata, evaluators) = self.document_frame(flag_set).await?;
        let mut flags = Map::new();
        if flag.stage != FlagStage::Archived {
            flags.insert(flag.key.clone(), definition(config, &flag.metadata));
        }
        Ok(json!({"metadata": metadata, "$evaluators": evaluators, "flags": flags}))
    }

    /// The flagd document of `flag_set` in `environment`.
    pub async fn export(&self, environment: &str, flag_set: &str) -> Result<Value> {
        let (metadata, evaluators) = self.document_frame(flag_set).await?;
        let mut flags = Map::new();
        let mut offset = 0;
        loop {
            let filter = super::flags::FlagFilter {
                flag_set: Some(flag_set.to_owned()),
                ..Default::default()
            };
            let page = self.flags(&filter, 500, offset).await?;
            for flag in &page.items {
                if flag.stage == FlagStage::Archived {
                    continue;
                }
                if let Some(config) = flag.environments.get(environment) {
                    flags.insert(flag.key.clone(), definition(config, &flag.metadata));
                }
            }
            offset += page.items.len() as i64;
            if page.items.is_empty() || offset >= page.total {
                break;
            }
        }
        Ok(json!({"metadata": metadata, "$evaluators": evaluators, "flags": flags}))
    }

    /// What importing `document` into `flag_set` would change that every
    /// environment shares, one item each (`flag set "web" (new)`, `segment
    /// "web/beta" (new)` or `(changed)`, `flag "web/banner" (new)`, `metadata
    /// of flag "web/banner"`); empty when only configurations would change.
    /// An existing flag set's metadata is never changed by an import.
    pub async fn import_shared_changes(
        &self,
        flag_set: &str,
        document: &Value,
    ) -> Result<Vec<String>> {
        let mut changes = Vec::new();
        let set_exists = match self.flag_set(flag_set).await {
            Ok(_) => true,
            Err(StorageError::NotFound(_)) => false,
            Err(other) => return Err(other),
        };
        if !set_exists {
            changes.push(format!("flag set \"{flag_set}\" (new)"));
        }
        if let Some(Value::Object(evaluators)) = document.get("$evaluators") {
            for (key, rule) in evaluators {
                let stored = match self.segment(flag_set, key).await {
                    Ok(segment) => Some(segment.rule),
                    Err(StorageError::NotFound(_)) => None,
                    Err(other) => return Err(other),
                };
                if let Some(change) = segment_change(flag_set, key, stored.as_ref(), rule) {
                    changes.push(change);
                }
            }
        }
        for key in flag_keys(document) {
            let stored = match self.flag(flag_set, key).await {
                Ok(flag) => Some(flag.metadata),
                Err(StorageError::NotFound(_)) => None,
                Err(other) => return Err(other),
            };
            let metadata = original_metadata(document, key);
            if let Some(change) = flag_change(flag_set, key, stored.as_ref(), &metadata) {
                changes.push(change);
            }
        }
        Ok(changes)
    }

    /// Imports a flagd document into `environment` of `flag_set` (created when
    /// missing, with the document's metadata): new flags are created (disabled
    /// in other environments), existing ones get this environment's
    /// configuration replaced (and their metadata the document's), and
    /// `$evaluators` become segments (unchanged ones are left alone). The
    /// document is validated whole first.
    ///
    /// With [`ImportScope::OneEnvironment`] only the environment's
    /// configurations may change: when anything every environment shares
    /// would ([`Storage::import_shared_changes`]), nothing is written and the
    /// error is [`StorageError::Shared`] with every such item. (A flag
    /// changed by someone else during the import is checked again before it
    /// is written.)
    pub async fn import(
        &self,
        actor: &Actor,
        environment: &str,
        flag_set: &str,
        document: &Value,
        scope: ImportScope,
    ) -> Result<Vec<String>> {
        let loaded =
            ensign_engine::document::load_value(document, &ensign_engine::Limits::default())
                .map_err(|e| StorageError::Invalid(e.problems))?;
        if !loaded.warnings.is_empty() {
            return Err(StorageError::Invalid(loaded.warnings));
        }
        self.environment(environment).await?;
        let one_environment = scope == ImportScope::OneEnvironment;
        if one_environment {
            let shared = self.import_shared_changes(flag_set, document).await?;
            if !shared.is_empty() {
                return Err(StorageError::Shared(shared));
            }
        }
        if let Err(StorageError::NotFound(_)) = self.flag_set(flag_set).await {
            // A new flag set takes the document's flag-set metadata, which
            // every flag serves (not its `flagSetId`: the set is named here).
            let metadata: Map<String, Value> = document
                .get("metadata")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter(|(k, v)| k.as_str() != "flagSetId" && !v.is_null())
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            if one_environment {
                return Err(StorageError::Shared(vec![format!(
                    "flag set \"{flag_set}\" (new)"
                )]));
            }
            self.create_flag_set(actor, flag_set, flag_set, metadata)
                .await?;
        }
        if let Some(Value::Object(evaluators)) = document.get("$evaluators") {
            for (key, rule) in evaluators {
                let stored = self.segment(flag_set, key).await.ok();
                let Some(change) =
                    segment_change(flag_set, key, stored.as_ref().map(|s| &s.rule), rule)
                else {
                    continue;
                };
                if one_environment {
                    return Err(StorageError::Shared(vec![change]));
                }
                self.put_segment(
                    actor,
                    flag_set,
                    key,
                    "",
                    rule.clone(),
                    stored.map(|s| s.version),
                )
                .await?;
            }
        }
        let mut imported = Vec::new();
        for flag in &loaded.document.flags {
            let raw = flag.definition();
            let config = FlagConfig {
                state: flag.state().as_str().to_owned(),
                variants: raw
                    .get("variants")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
                default_variant: flag.default_variant().map(str::to_owned),
                targeting: original_targeting(document, flag.key()),
                version: 0,
            };
            let metadata: Map<String, Value> = original_metadata(document, flag.key());
            let existing = match self.flag(flag_set, flag.key()).await {
                Ok(existing) => Some(existing),
                Err(StorageError::NotFound(_)) => None,
                Err(other) => return Err(other),
            };
            let shared = flag_change(
                flag_set,
                flag.key(),
                existing.as_ref().map(|f| &f.metadata),
                &metadata,
            );
            if let (true, Some(change)) = (one_environment, &shared) {
                return Err(StorageError::Shared(vec![change.clone()]));
            }
            match existing {
                Some(existing) => {
                    let mut version = existing.version;
                    if shared.is_some() {
                        let patch = FlagPatch {
                            metadata: Some(metadata.clone()),
                            ..FlagPatch::default()
                        };
                        let updated = self
                            .update_flag(actor, flag_set, flag.key(), patch, Some(version))
                            .await?;
                        version = updated.version;
                    }
                    self.set_flag_config(
                        actor,
                        flag_set,
                        flag.key(),
                        environment,
                        config,
                        Some(version),
                    )
                    .await?;
                }
                None => {
                    let mut environments = std::collections::BTreeMap::new();
                    environments.insert(environment.to_owned(), config.clone());
                    let new = NewFlag {
                        flag_set: flag_set.to_owned(),
                        key: flag.key().to_owned(),
                        description: String::new(),
                        owner: String::new(),
                        tags: Vec::new(),
                        kind: crate::model::FlagKind::Release,
                        expires_at: None,
                        metadata,
                        state: "DISABLED".to_owned(),
                        variants: config.variants.clone(),
                        default_variant: config.default_variant.clone(),
                        targeting: config.targeting.clone(),
                        environments,
                    };
                    self.create_flag(actor, new).await?;
                }
            }
            imported.push(flag.key().to_owned());
        }
        Ok(imported)
    }
}

/// What an import may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportScope {
    /// Everything the document holds: the flag set, segments, flags and
    /// their metadata, and the environment's configurations.
    AllEnvironments,
    /// Only the environment's configurations; what every environment shares
    /// must be as stored already.
    OneEnvironment,
}

/// The shared change of importing `rule` as segment `flag_set/key` over the
/// `stored` rule, if any.
fn segment_change(
    flag_set: &str,
    key: &str,
    stored: Option<&Value>,
    rule: &Value,
) -> Option<String> {
    match stored {
        None => Some(format!("segment \"{flag_set}/{key}\" (new)")),
        Some(stored) if stored != rule => Some(format!("segment \"{flag_set}/{key}\" (changed)")),
        Some(_) => None,
    }
}

/// The shared change of importing flag `flag_set/key` with `metadata` over
/// the `stored` flag's metadata (`None`: no such flag), if any.
fn flag_change(
    flag_set: &str,
    key: &str,
    stored: Option<&Map<String, Value>>,
    metadata: &Map<String, Value>,
) -> Option<String> {
    match stored {
        None => Some(format!("flag \"{flag_set}/{key}\" (new)")),
        Some(stored) if stored != metadata => {
            Some(format!("metadata of flag \"{flag_set}/{key}\""))
        }
        Some(_) => None,
    }
}

/// The keys of the document's flags (object or array form).
fn flag_keys(document: &Value) -> Vec<&str> {
    match document.get("flags") {
        Some(Value::Object(flags)) => flags.keys().map(String::as_str).collect(),
        Some(Value::Array(flags)) => flags
            .iter()
            .filter_map(|flag| flag.get("key").and_then(Value::as_str))
            .collect(),
        _ => Vec::new(),
    }
}

/// The flag's definition as written in the document (object or array form).
fn original_flag<'d>(document: &'d Value, key: &str) -> Option<&'d Value> {
    match document.get("flags")? {
        Value::Object(flags) => flags.get(key),
        Value::Array(flags) => flags
            .iter()
            .find(|f| f.get("key").and_then(Value::as_str) == Some(key)),
        _ => None,
    }
}

/// Targeting as written (keeping `$ref`s, so segments stay shared).
fn original_targeting(document: &Value, key: &str) -> Option<Value> {
    original_flag(document, key)
        .and_then(|f| f.get("targeting"))
        .filter(|t| t.as_object().is_some_and(|o| !o.is_empty()))
        .cloned()
}

fn original_metadata(document: &Value, key: &str) -> Map<String, Value> {
    original_flag(document, key)
        .and_then(|f| f.get("metadata"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}
