//! Environments.

use sqlx::Row as _;

use super::{Bind, Write, check_version, get, stale};
use crate::error::{Result, StorageError, from_sqlx};
use crate::model::{Actor, Environment};
use crate::{Storage, now_millis};

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Storage {
    /// Every environment, in creation order.
    pub async fn environments(&self) -> Result<Vec<Environment>> {
        let rows = sqlx::query("SELECT key, name, version FROM environments ORDER BY id")
            .fetch_all(self.pool())
            .await
            .map_err(|e| from_sqlx(e, "environments"))?;
        rows.iter()
            .map(|row| {
                Ok(Environment {
                    key: get(row, "key")?,
                    name: get(row, "name")?,
                    version: get(row, "version")?,
                })
            })
            .collect()
    }

    /// The environment `key`.
    pub async fn environment(&self, key: &str) -> Result<Environment> {
        self.environments()
            .await?
            .into_iter()
            .find(|e| e.key == key)
            .ok_or_else(|| StorageError::NotFound(format!("environment \"{key}\"")))
    }

    /// Creates an environment; new environments start with every flag disabled.
    pub async fn create_environment(
        &self,
        actor: &Actor,
        key: &str,
        name: &str,
    ) -> Result<Environment> {
        if !valid_key(key) {
            return Err(StorageError::invalid(
                "/key",
                "use 1 to 64 lowercase letters, digits, '-' or '_'",
            ));
        }
        let mut write = Write::begin(self, actor).await?;
        let id: i64 = sqlx::query(
            "INSERT INTO environments (key, name, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(key.to_owned())
        .bind(name.to_owned())
        .bind(now_millis())
        .fetch_one(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, &format!("environment \"{key}\"")))?
        .try_get("id")
        .map_err(|e| from_sqlx(e, "id"))?;
        // Every flag gets a disabled configuration here, copied from production
        // when it has one, so the new environment is safe until someone acts.
        sqlx::query(
            "INSERT INTO flag_configs (flag_id, environment_id, state, variants, default_variant, targeting, version, updated_at) \
             SELECT c.flag_id, $1, 'DISABLED', c.variants, c.default_variant, c.targeting, 1, $2 \
             FROM flag_configs c JOIN environments e ON e.id = c.environment_id \
             WHERE e.id = COALESCE((SELECT id FROM environments WHERE key = 'production' AND id <> $3), (SELECT MIN(id) FROM environments WHERE id <> $4))",
        )
        .bind(id)
        .bind(now_millis())
        .bind(id)
        .bind(id)
        .execute(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, "flag configurations"))?;
        let environment = Environment {
            key: key.to_owned(),
            name: name.to_owned(),
            version: 1,
        };
        let after = serde_json::to_value(&environment).ok();
        write
            .audit(
                "environment.create",
                "environment",
                key,
                Some(key),
                None,
                after.as_ref(),
            )
            .await?;
        write.touches(Some(key));
        write.commit().await?;
        Ok(environment)
    }

    /// Renames an environment.
    pub async fn rename_environment(
        &self,
        actor: &Actor,
        key: &str,
        name: &str,
        expected_version: Option<i64>,
    ) -> Result<Environment> {
        let before = self.environment(key).await?;
        check_version(
            &format!("environment \"{key}\""),
            before.version,
            expected_version,
        )?;
        let mut write = Write::begin(self, actor).await?;
        let updated = sqlx::query("UPDATE environments SET name = $1, version = version + 1 WHERE key = $2 AND version = $3")
            .bind(name.to_owned())
            .bind(key.to_owned())
            .bind(before.version)
            .execute(&mut *write.tx)
            .await
            .map_err(|e| from_sqlx(e, "environment"))?;
        if updated.rows_affected() == 0 {
            return Err(stale(
                &mut write,
                format!("environment \"{key}\""),
                "SELECT version FROM environments WHERE key = $1",
                vec![Bind::Text(key.to_owned())],
                before.version,
            )
            .await);
        }
        let after = Environment {
            name: name.to_owned(),
            version: before.version + 1,
            ..before.clone()
        };
        write
            .audit(
                "environment.update",
                "environment",
                key,
                Some(key),
                serde_json::to_value(&before).ok().as_ref(),
                serde_json::to_value(&after).ok().as_ref(),
            )
            .await?;
        write.commit().await?;
        Ok(after)
    }
}
