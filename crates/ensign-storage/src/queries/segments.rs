//! Segments: named audience rules of a flag set, served as flagd
//! `$evaluators`, so a change to a segment changes every flag using it.

use ensign_engine::Problem;
use serde_json::{Map, Value};

use super::{Bind, Write, check_version, get, json_column, stale};
use sqlx::AssertSqlSafe;

use crate::error::{Result, StorageError, from_sqlx};
use crate::model::{Actor, Segment};
use crate::{Storage, now_millis};

fn row_to_segment(row: &sqlx::any::AnyRow) -> Result<Segment> {
    Ok(Segment {
        flag_set: get(row, "flag_set")?,
        key: get(row, "key")?,
        description: get(row, "description")?,
        rule: json_column(row, "rule")?,
        version: get(row, "version")?,
    })
}

const SELECT: &str = "SELECT s.key, fs.key AS flag_set, s.description, s.rule, s.version \
     FROM segments s JOIN flag_sets fs ON fs.id = s.flag_set_id";

/// Checks that `rule` is JsonLogic the engine can evaluate.
pub(crate) fn validate_rule(rule: &Value, path: &str) -> Result<()> {
    if !rule.is_object() {
        return Err(StorageError::invalid(
            path,
            "a rule must be a JsonLogic object",
        ));
    }
    let (_, problems) = ensign_engine::logic::compile(rule, &Map::new());
    if problems.is_empty() {
        return Ok(());
    }
    Err(StorageError::Invalid(
        problems
            .into_iter()
            .map(|p| Problem {
                path: format!("{path}{}", p.path),
                message: p.message,
                severity: ensign_engine::document::Severity::Error,
            })
            .collect(),
    ))
}

/// The error for a guarded write of a segment that matched no row.
async fn stale_segment(
    write: &mut Write<'_>,
    set_id: i64,
    flag_set: &str,
    key: &str,
    expected: i64,
) -> StorageError {
    stale(
        write,
        format!("segment \"{flag_set}/{key}\""),
        "SELECT version FROM segments WHERE flag_set_id = $1 AND key = $2",
        vec![Bind::Int(set_id), Bind::Text(key.to_owned())],
        expected,
    )
    .await
}

impl Storage {
    /// The segments of flag set `flag_set`, by key.
    pub async fn segments(&self, flag_set: &str) -> Result<Vec<Segment>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "{SELECT} WHERE fs.key = $1 ORDER BY s.key"
        )))
        .bind(flag_set.to_owned())
        .fetch_all(self.pool())
        .await
        .map_err(|e| from_sqlx(e, "segments"))?;
        rows.iter().map(row_to_segment).collect()
    }

    /// The segment `key` of `flag_set`.
    pub async fn segment(&self, flag_set: &str, key: &str) -> Result<Segment> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "{SELECT} WHERE fs.key = $1 AND s.key = $2"
        )))
        .bind(flag_set.to_owned())
        .bind(key.to_owned())
        .fetch_optional(self.pool())
        .await
        .map_err(|e| from_sqlx(e, "segment"))?
        .ok_or_else(|| StorageError::NotFound(format!("segment \"{flag_set}/{key}\"")))?;
        row_to_segment(&row)
    }

    /// Creates the segment, or replaces it when it exists and `expected_version`
    /// matches (`None`: create only).
    pub async fn put_segment(
        &self,
        actor: &Actor,
        flag_set: &str,
        key: &str,
        description: &str,
        rule: Value,
        expected_version: Option<i64>,
    ) -> Result<Segment> {
        if !super::flag_sets::valid_key(key) {
            return Err(StorageError::invalid(
                "/key",
                "use letters, digits, '-', '_' or '.'",
            ));
        }
        validate_rule(&rule, "/rule")?;
        let mut write = Write::begin(self, actor).await?;
        let set_id = Storage::flag_set_id(&mut write, flag_set).await?;
        let existing = sqlx::query(AssertSqlSafe(format!(
            "{SELECT} WHERE fs.key = $1 AND s.key = $2"
        )))
        .bind(flag_set.to_owned())
        .bind(key.to_owned())
        .fetch_optional(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, "segment"))?
        .map(|row| row_to_segment(&row))
        .transpose()?;
        let resource = format!("{flag_set}/{key}");
        let (action, version) = match (&existing, expected_version) {
            (None, _) => {
                sqlx::query("INSERT INTO segments (flag_set_id, key, description, rule, updated_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(set_id)
                    .bind(key.to_owned())
                    .bind(description.to_owned())
                    .bind(rule.to_string())
                    .bind(now_millis())
                    .execute(&mut *write.tx)
                    .await
                    .map_err(|e| from_sqlx(e, &format!("segment \"{resource}\"")))?;
                ("segment.create", 1)
            }
            (Some(_), None) => {
                return Err(StorageError::Conflict(format!("segment \"{resource}\"")));
            }
            (Some(current), expected) => {
                check_version(
                    &format!("segment \"{resource}\""),
                    current.version,
                    expected,
                )?;
                // Guarded by the version read: a concurrent writer that read
                // the same version matches no row.
                let updated = sqlx::query("UPDATE segments SET description = $1, rule = $2, version = version + 1, updated_at = $3 WHERE flag_set_id = $4 AND key = $5 AND version = $6")
                    .bind(description.to_owned())
                    .bind(rule.to_string())
                    .bind(now_millis())
                    .bind(set_id)
                    .bind(key.to_owned())
                    .bind(current.version)
                    .execute(&mut *write.tx)
                    .await
                    .map_err(|e| from_sqlx(e, "segment"))?;
                if updated.rows_affected() == 0 {
                    return Err(
                        stale_segment(&mut write, set_id, flag_set, key, current.version).await,
                    );
                }
                ("segment.update", current.version + 1)
            }
        };
        let segment = Segment {
            flag_set: flag_set.to_owned(),
            key: key.to_owned(),
            description: description.to_owned(),
            rule,
            version,
        };
        write
            .audit(
                action,
                "segment",
                &resource,
                None,
                existing
                    .as_ref()
                    .and_then(|s| serde_json::to_value(s).ok())
                    .as_ref(),
                serde_json::to_value(&segment).ok().as_ref(),
            )
            .await?;
        write.touches(None);
        write.commit().await?;
        Ok(segment)
    }

    /// Deletes a segment; refused while flags reference it.
    pub async fn delete_segment(
        &self,
        actor: &Actor,
        flag_set: &str,
        key: &str,
        expected_version: Option<i64>,
    ) -> Result<()> {
        let segment = self.segment(flag_set, key).await?;
        check_version(
            &format!("segment \"{flag_set}/{key}\""),
            segment.version,
            expected_version,
        )?;
        let users = self.segment_users(flag_set, key).await?;
        if !users.is_empty() {
            return Err(StorageError::invalid(
                "/key",
                format!("segment is used by flags: {}", users.join(", ")),
            ));
        }
        let mut write = Write::begin(self, actor).await?;
        let set_id = Storage::flag_set_id(&mut write, flag_set).await?;
        let deleted = sqlx::query(
            "DELETE FROM segments WHERE flag_set_id = $1 AND key = $2 AND version = $3",
        )
        .bind(set_id)
        .bind(key.to_owned())
        .bind(segment.version)
        .execute(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, "segment"))?;
        if deleted.rows_affected() == 0 {
            return Err(stale_segment(&mut write, set_id, flag_set, key, segment.version).await);
        }
        write
            .audit(
                "segment.delete",
                "segment",
                &format!("{flag_set}/{key}"),
                None,
                serde_json::to_value(&segment).ok().as_ref(),
                None,
            )
            .await?;
        write.touches(None);
        write.commit().await
    }

    /// The keys of flags of `flag_set` whose targeting references segment `key`
    /// in any environment.
    pub async fn segment_users(&self, flag_set: &str, key: &str) -> Result<Vec<String>> {
        let reference = Value::from(key);
        let rows = sqlx::query(
            "SELECT DISTINCT f.key, c.targeting FROM flags f JOIN flag_sets fs ON fs.id = f.flag_set_id \
             JOIN flag_configs c ON c.flag_id = f.id WHERE fs.key = $1 AND c.targeting IS NOT NULL ORDER BY f.key",
        )
        .bind(flag_set.to_owned())
        .fetch_all(self.pool())
        .await
        .map_err(|e| from_sqlx(e, "flags"))?;
        let mut users = Vec::new();
        for row in &rows {
            let Some(targeting) = super::optional_json_column(row, "targeting")? else {
                continue;
            };
            let flag: String = get(row, "key")?;
            if references(&targeting, &reference) && !users.contains(&flag) {
                users.push(flag);
            }
        }
        Ok(users)
    }
}

/// Whether `rule` contains `{"$ref": name}`.
pub(crate) fn references(rule: &Value, name: &Value) -> bool {
    match rule {
        Value::Object(map) => {
            (map.len() == 1 && map.get("$ref") == Some(name))
                || map.values().any(|v| references(v, name))
        }
        Value::Array(items) => items.iter().any(|v| references(v, name)),
        _ => false,
    }
}
