//! Reading the audit log (writing happens in every write transaction).

use serde::{Deserialize, Serialize};

use super::{Bind, bind_all, get, optional_json_column};
use sqlx::AssertSqlSafe;

use crate::Storage;
use crate::error::{Result, from_sqlx};
use crate::model::AuditEntry;

/// Which audit entries to read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditFilter {
    /// Only this resource type (`flag`, `segment`, ...).
    pub resource_type: Option<String>,
    /// Only this resource (`set/flag` for flags).
    pub resource_key: Option<String>,
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this environment.
    pub environment: Option<String>,
    /// Only entries older than this id (paging backwards).
    pub before: Option<i64>,
    /// Never entries of these resource types (what the reader may not see;
    /// left out by the query, so pages stay full).
    #[serde(default)]
    pub hidden_resource_types: Vec<String>,
}

impl Storage {
    /// The newest entries matching `filter`, newest first.
    pub async fn audit_log(&self, filter: &AuditFilter, limit: i64) -> Result<Vec<AuditEntry>> {
        let mut conditions = vec!["1 = 1".to_owned()];
        let mut binds = Vec::new();
        for (column, value) in [
            ("resource_type", &filter.resource_type),
            ("resource_key", &filter.resource_key),
            ("actor", &filter.actor),
            ("environment", &filter.environment),
        ] {
            if let Some(value) = value {
                binds.push(Bind::Text(value.clone()));
                conditions.push(format!("{column} = ${}", binds.len()));
            }
        }
        for hidden in &filter.hidden_resource_types {
            binds.push(Bind::Text(hidden.clone()));
            conditions.push(format!("resource_type <> ${}", binds.len()));
        }
        if let Some(before) = filter.before {
            binds.push(Bind::Int(before));
            conditions.push(format!("id < ${}", binds.len()));
        }
        binds.push(Bind::Int(limit.clamp(1, 500)));
        let query = format!(
            "SELECT id, at, actor, action, resource_type, resource_key, environment, before_value, after_value, comment \
             FROM audit_log WHERE {} ORDER BY id DESC LIMIT ${}",
            conditions.join(" AND "),
            binds.len()
        );
        let rows = bind_all(sqlx::query(AssertSqlSafe(query)), binds)
            .fetch_all(self.pool())
            .await
            .map_err(|e| from_sqlx(e, "audit log"))?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: get(row, "id")?,
                    at: get(row, "at")?,
                    actor: get(row, "actor")?,
                    action: get(row, "action")?,
                    resource_type: get(row, "resource_type")?,
                    resource_key: get(row, "resource_key")?,
                    environment: get(row, "environment")?,
                    before: optional_json_column(row, "before_value")?,
                    after: optional_json_column(row, "after_value")?,
                    comment: get(row, "comment")?,
                })
            })
            .collect()
    }
}
