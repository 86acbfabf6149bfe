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

    /// Imports a flagd document into `environment` of `flag_set` (created when
    /// missing, with the document's metadata): new flags are created (disabled
    /// in other environments), existing ones get this environment's
    /// configuration replaced, and `$evaluators` become segments. The document
    /// is validated whole first.
    pub async fn import(
        &self,
        actor: &Actor,
        environment: &str,
        flag_set: &str,
        document: &Value,
    ) -> Result<Vec<String>> {
        let loaded =
            ensign_engine::document::load_value(document, &ensign_engine::Limits::default())
                .map_err(|e| StorageError::Invalid(e.problems))?;
        if !loaded.warnings.is_empty() {
            return Err(StorageError::Invalid(loaded.warnings));
        }
        self.environment(environment).await?;
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
            self.create_flag_set(actor, flag_set, flag_set, metadata)
                .await?;
        }
        if let Some(Value::Object(evaluators)) = document.get("$evaluators") {
            for (key, rule) in evaluators {
                let version = self.segment(flag_set, key).await.ok().map(|s| s.version);
                self.put_segment(actor, flag_set, key, "", rule.clone(), version)
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
            match self.flag(flag_set, flag.key()).await {
                Ok(existing) => {
                    let mut version = existing.version;
                    if existing.metadata != metadata {
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
                Err(StorageError::NotFound(_)) => {
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
                Err(other) => return Err(other),
            }
            imported.push(flag.key().to_owned());
        }
        Ok(imported)
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
