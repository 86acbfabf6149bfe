//! SLO specs kept in the database (the admin API's; `ensign serve --slo` files
//! are never stored): one row per SLO, named `<service>-<slo>`, holding a
//! Sloth `prometheus/v1` spec with that one SLO. Only valid specs are stored:
//! writes take an [`ensign_slo::Spec`], which exists only once validated.
//! SLO changes do not change served flags, so they announce nothing.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Bind, Write, check_version, get, json_column, stale};

use crate::error::{Result, StorageError, from_sqlx};
use crate::model::Actor;
use crate::{Storage, now_millis};

/// A stored SLO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSlo {
    /// `<service>-<slo>` (Sloth's `sloth_id`).
    pub name: String,
    /// The spec holding this one SLO, in Sloth's field names.
    pub spec: Value,
    /// Increases with every change.
    pub version: i64,
    /// When it last changed (unix milliseconds).
    pub updated_at: i64,
}

fn row_to_slo(row: &sqlx::any::AnyRow) -> Result<StoredSlo> {
    Ok(StoredSlo {
        name: get(row, "name")?,
        spec: json_column(row, "spec")?,
        version: get(row, "version")?,
        updated_at: get(row, "updated_at")?,
    })
}

const SELECT: &str = "SELECT name, spec, version, updated_at FROM slos";

fn resource(name: &str) -> String {
    format!("SLO \"{name}\"")
}

/// The error for a guarded write of an SLO that matched no row.
async fn stale_slo(write: &mut Write<'_>, name: &str, expected: i64) -> StorageError {
    stale(
        write,
        resource(name),
        "SELECT version FROM slos WHERE name = $1",
        vec![Bind::Text(name.to_owned())],
        expected,
    )
    .await
}

/// Checks that `spec` holds exactly the SLO `name`.
fn single_slo_named(spec: &ensign_slo::Spec, name: &str) -> Result<()> {
    match spec.slos.as_slice() {
        [slo] if spec.id(slo) == name => Ok(()),
        [slo] => Err(StorageError::invalid(
            "/slos/0/name",
            format!(
                "the spec's SLO is \"{}\" (service-name), not \"{name}\"",
                spec.id(slo)
            ),
        )),
        slos => Err(StorageError::invalid(
            "/slos",
            format!(
                "must hold exactly one SLO, \"{name}\"; it holds {}",
                slos.len()
            ),
        )),
    }
}

impl Storage {
    /// Every stored SLO, by name.
    pub async fn slos(&self) -> Result<Vec<StoredSlo>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY name")))
            .fetch_all(self.pool())
            .await
            .map_err(|e| from_sqlx(e, "SLOs"))?;
        rows.iter().map(row_to_slo).collect()
    }

    /// The stored SLO `name`.
    pub async fn slo(&self, name: &str) -> Result<StoredSlo> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE name = $1")))
            .bind(name.to_owned())
            .fetch_optional(self.pool())
            .await
            .map_err(|e| from_sqlx(e, "SLO"))?
            .ok_or_else(|| StorageError::NotFound(resource(name)))?;
        row_to_slo(&row)
    }

    /// Creates the SLO `name` from `spec` (which must hold that one SLO), or
    /// replaces it when it exists and `expected_version` matches (`None`:
    /// create only, a conflict when it exists).
    pub async fn put_slo(
        &self,
        actor: &Actor,
        name: &str,
        spec: &ensign_slo::Spec,
        expected_version: Option<i64>,
    ) -> Result<StoredSlo> {
        single_slo_named(spec, name)?;
        let value = spec.to_value();
        let mut write = Write::begin(self, actor).await?;
        let existing = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE name = $1")))
            .bind(name.to_owned())
            .fetch_optional(&mut *write.tx)
            .await
            .map_err(|e| from_sqlx(e, "SLO"))?
            .map(|row| row_to_slo(&row))
            .transpose()?;
        let now = now_millis();
        let (action, version) = match (&existing, expected_version) {
            (None, _) => {
                sqlx::query(
                    "INSERT INTO slos (name, spec, created_at, updated_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(name.to_owned())
                .bind(value.to_string())
                .bind(now)
                .bind(now)
                .execute(&mut *write.tx)
                .await
                .map_err(|e| from_sqlx(e, &resource(name)))?;
                ("slo.create", 1)
            }
            (Some(_), None) => return Err(StorageError::Conflict(resource(name))),
            (Some(current), expected) => {
                check_version(&resource(name), current.version, expected)?;
                let updated = sqlx::query(
                    "UPDATE slos SET spec = $1, version = version + 1, updated_at = $2 \
                     WHERE name = $3 AND version = $4",
                )
                .bind(value.to_string())
                .bind(now)
                .bind(name.to_owned())
                .bind(current.version)
                .execute(&mut *write.tx)
                .await
                .map_err(|e| from_sqlx(e, "SLO"))?;
                if updated.rows_affected() == 0 {
                    return Err(stale_slo(&mut write, name, current.version).await);
                }
                ("slo.update", current.version + 1)
            }
        };
        let slo = StoredSlo {
            name: name.to_owned(),
            spec: value,
            version,
            updated_at: now,
        };
        write
            .audit(
                action,
                "slo",
                name,
                None,
                existing.as_ref().map(|s| &s.spec),
                Some(&slo.spec),
            )
            .await?;
        write.commit().await?;
        Ok(slo)
    }

    /// Deletes the stored SLO `name` (at `expected_version`, when given).
    pub async fn delete_slo(
        &self,
        actor: &Actor,
        name: &str,
        expected_version: Option<i64>,
    ) -> Result<()> {
        let slo = self.slo(name).await?;
        check_version(&resource(name), slo.version, expected_version)?;
        let mut write = Write::begin(self, actor).await?;
        let deleted = sqlx::query("DELETE FROM slos WHERE name = $1 AND version = $2")
            .bind(name.to_owned())
            .bind(slo.version)
            .execute(&mut *write.tx)
            .await
            .map_err(|e| from_sqlx(e, "SLO"))?;
        if deleted.rows_affected() == 0 {
            return Err(stale_slo(&mut write, name, slo.version).await);
        }
        write
            .audit("slo.delete", "slo", name, None, Some(&slo.spec), None)
            .await?;
        write.commit().await
    }
}
