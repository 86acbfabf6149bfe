//! Flag sets (flagd's `flagSetId`).

use serde_json::{Map, Value};
use sqlx::Row as _;

use super::{Bind, Write, check_version, get, json_column, stale};
use crate::error::{Result, StorageError, from_sqlx};
use crate::model::{Actor, FlagSet};
use crate::{Storage, now_millis};

pub(crate) fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 128
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn metadata_problems(metadata: &Map<String, Value>) -> Result<()> {
    for (key, value) in metadata {
        if matches!(value, Value::Array(_) | Value::Object(_)) {
            return Err(StorageError::invalid(
                &format!("/metadata/{key}"),
                "metadata values must be strings, numbers or booleans",
            ));
        }
    }
    Ok(())
}

fn row_to_set(row: &sqlx::any::AnyRow) -> Result<FlagSet> {
    let metadata = match json_column(row, "metadata")? {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    Ok(FlagSet {
        key: get(row, "key")?,
        name: get(row, "name")?,
        metadata,
        version: get(row, "version")?,
    })
}

/// The error for a guarded write of flag set `key` that matched no row.
async fn stale_set(write: &mut Write<'_>, key: &str, expected: i64) -> StorageError {
    stale(
        write,
        format!("flag set \"{key}\""),
        "SELECT version FROM flag_sets WHERE key = $1",
        vec![Bind::Text(key.to_owned())],
        expected,
    )
    .await
}

impl Storage {
    /// Every flag set, by key.
    pub async fn flag_sets(&self) -> Result<Vec<FlagSet>> {
        let rows = sqlx::query("SELECT key, name, metadata, version FROM flag_sets ORDER BY key")
            .fetch_all(self.pool())
            .await
            .map_err(|e| from_sqlx(e, "flag sets"))?;
        rows.iter().map(row_to_set).collect()
    }

    /// The flag set `key`.
    pub async fn flag_set(&self, key: &str) -> Result<FlagSet> {
        let row = sqlx::query("SELECT key, name, metadata, version FROM flag_sets WHERE key = $1")
            .bind(key.to_owned())
            .fetch_optional(self.pool())
            .await
            .map_err(|e| from_sqlx(e, "flag set"))?
            .ok_or_else(|| StorageError::NotFound(format!("flag set \"{key}\"")))?;
        row_to_set(&row)
    }

    /// Creates a flag set.
    pub async fn create_flag_set(
        &self,
        actor: &Actor,
        key: &str,
        name: &str,
        metadata: Map<String, Value>,
    ) -> Result<FlagSet> {
        if !valid_key(key) {
            return Err(StorageError::invalid(
                "/key",
                "use 1 to 128 letters, digits, '-', '_' or '.'",
            ));
        }
        metadata_problems(&metadata)?;
        let mut write = Write::begin(self, actor).await?;
        sqlx::query(
            "INSERT INTO flag_sets (key, name, metadata, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(key.to_owned())
        .bind(name.to_owned())
        .bind(Value::Object(metadata.clone()).to_string())
        .bind(now_millis())
        .execute(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, &format!("flag set \"{key}\"")))?;
        let set = FlagSet {
            key: key.to_owned(),
            name: name.to_owned(),
            metadata,
            version: 1,
        };
        write
            .audit(
                "flag_set.create",
                "flag_set",
                key,
                None,
                None,
                serde_json::to_value(&set).ok().as_ref(),
            )
            .await?;
        // Every environment serves one document per flag set, this one too.
        write.touches(None);
        write.commit().await?;
        Ok(set)
    }

    /// Changes a flag set's name and metadata.
    pub async fn update_flag_set(
        &self,
        actor: &Actor,
        key: &str,
        name: &str,
        metadata: Map<String, Value>,
        expected_version: Option<i64>,
    ) -> Result<FlagSet> {
        metadata_problems(&metadata)?;
        let mut write = Write::begin(self, actor).await?;
        let before =
            sqlx::query("SELECT key, name, metadata, version FROM flag_sets WHERE key = $1")
                .bind(key.to_owned())
                .fetch_optional(&mut *write.tx)
                .await
                .map_err(|e| from_sqlx(e, "flag set"))?
                .ok_or_else(|| StorageError::NotFound(format!("flag set \"{key}\"")))?;
        let before = row_to_set(&before)?;
        check_version(
            &format!("flag set \"{key}\""),
            before.version,
            expected_version,
        )?;
        // Guarded by the version read: on PostgreSQL a concurrent writer that
        // read the same version waits here, then matches no row.
        let updated = sqlx::query(
            "UPDATE flag_sets SET name = $1, metadata = $2, version = version + 1 WHERE key = $3 AND version = $4",
        )
        .bind(name.to_owned())
        .bind(Value::Object(metadata.clone()).to_string())
        .bind(key.to_owned())
        .bind(before.version)
        .execute(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, "flag set"))?;
        if updated.rows_affected() == 0 {
            return Err(stale_set(&mut write, key, before.version).await);
        }
        let after = FlagSet {
            key: key.to_owned(),
            name: name.to_owned(),
            metadata,
            version: before.version + 1,
        };
        write
            .audit(
                "flag_set.update",
                "flag_set",
                key,
                None,
                serde_json::to_value(&before).ok().as_ref(),
                serde_json::to_value(&after).ok().as_ref(),
            )
            .await?;
        write.touches(None);
        write.commit().await?;
        Ok(after)
    }

    /// Deletes a flag set with its flags and segments.
    pub async fn delete_flag_set(
        &self,
        actor: &Actor,
        key: &str,
        expected_version: Option<i64>,
    ) -> Result<()> {
        let mut write = Write::begin(self, actor).await?;
        let before =
            sqlx::query("SELECT key, name, metadata, version FROM flag_sets WHERE key = $1")
                .bind(key.to_owned())
                .fetch_optional(&mut *write.tx)
                .await
                .map_err(|e| from_sqlx(e, "flag set"))?
                .ok_or_else(|| StorageError::NotFound(format!("flag set \"{key}\"")))?;
        let before = row_to_set(&before)?;
        check_version(
            &format!("flag set \"{key}\""),
            before.version,
            expected_version,
        )?;
        let deleted = sqlx::query("DELETE FROM flag_sets WHERE key = $1 AND version = $2")
            .bind(key.to_owned())
            .bind(before.version)
            .execute(&mut *write.tx)
            .await
            .map_err(|e| from_sqlx(e, "flag set"))?;
        if deleted.rows_affected() == 0 {
            return Err(stale_set(&mut write, key, before.version).await);
        }
        write
            .audit(
                "flag_set.delete",
                "flag_set",
                key,
                None,
                serde_json::to_value(&before).ok().as_ref(),
                None,
            )
            .await?;
        write.touches(None);
        write.commit().await
    }

    /// The id of flag set `key`, within a write.
    pub(crate) async fn flag_set_id(write: &mut Write<'_>, key: &str) -> Result<i64> {
        sqlx::query("SELECT id FROM flag_sets WHERE key = $1")
            .bind(key.to_owned())
            .fetch_optional(&mut *write.tx)
            .await
            .map_err(|e| from_sqlx(e, "flag set"))?
            .ok_or_else(|| StorageError::NotFound(format!("flag set \"{key}\"")))?
            .try_get("id")
            .map_err(|e| from_sqlx(e, "id"))
    }
}
