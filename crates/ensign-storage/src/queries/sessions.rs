//! Web UI sessions. The secret (the cookie value) is 256 bits from the
//! operating system's random source, shown once and stored as its SHA-256;
//! each session has its own CSRF token. A session ends at its expiry, when it
//! is deleted (sign-out), when its user is deleted or when its API token is
//! revoked.

use rand::TryRngCore as _;
use rand::rngs::OsRng;
use serde_json::json;

use super::tokens::{hash_secret, hex, token_from_row};
use super::users::user_from_row;
use super::{Write, get};
use crate::error::{Result, StorageError, from_sqlx};
use crate::model::{Actor, Principal, Session};
use crate::{Storage, now_millis};

/// 32 bytes from the operating system's random source, as 64 hex digits.
fn os_random_hex() -> Result<String> {
    let mut bytes = [0u8; 32];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| StorageError::Internal(sqlx::Error::Io(std::io::Error::other(e))))?;
    Ok(hex(&bytes))
}

/// The audit actor of a principal: `user:<name>`, `token:<name>` or
/// `token:bootstrap`.
pub fn actor_name(principal: &Principal) -> String {
    match principal {
        Principal::User(user) => format!("user:{}", user.name),
        Principal::Token(token) => format!("token:{}", token.name),
        Principal::Bootstrap(_) => "token:bootstrap".to_owned(),
    }
}

impl Storage {
    /// Starts a session for `principal` lasting `lifetime_ms`; returns it with
    /// its secret, which is not stored. Expired sessions are removed on the
    /// way. The sign-in is audited (`session.create`).
    pub async fn create_session(
        &self,
        principal: &Principal,
        lifetime_ms: i64,
    ) -> Result<(Session, String)> {
        let secret = os_random_hex()?;
        let now = now_millis();
        let session = Session {
            principal: principal.clone(),
            csrf_token: os_random_hex()?,
            created_at: now,
            expires_at: now.saturating_add(lifetime_ms),
        };
        let actor = Actor::new(actor_name(principal));
        let mut write = Write::begin(self, &actor).await?;
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *write.tx)
            .await
            .map_err(|e| from_sqlx(e, "sessions"))?;
        let (user_id, token_id, bootstrap_hash) = match principal {
            Principal::User(user) => {
                let id = id_of(
                    &mut write,
                    "SELECT id FROM users WHERE name = $1",
                    &user.name,
                )
                .await?
                .ok_or_else(|| StorageError::NotFound(format!("user \"{}\"", user.name)))?;
                (Some(id), None, None)
            }
            Principal::Token(token) => {
                let id = id_of(
                    &mut write,
                    "SELECT id FROM tokens WHERE name = $1 AND revoked_at IS NULL",
                    &token.name,
                )
                .await?
                .ok_or_else(|| StorageError::NotFound(format!("live token \"{}\"", token.name)))?;
                (None, Some(id), None)
            }
            Principal::Bootstrap(hash) => (None, None, Some(hash.clone())),
        };
        sqlx::query(
            "INSERT INTO sessions (secret_hash, csrf_token, user_id, token_id, bootstrap_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(hash_secret(&secret))
        .bind(session.csrf_token.clone())
        .bind(user_id)
        .bind(token_id)
        .bind(bootstrap_hash)
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, "session"))?;
        let summary = json!({"actor": actor.name, "expiresAt": session.expires_at});
        write
            .audit(
                "session.create",
                "session",
                &actor.name,
                None,
                None,
                Some(&summary),
            )
            .await?;
        write.commit().await?;
        Ok((session, secret))
    }

    /// The live session whose secret is `secret`, with its user or token as
    /// they are now.
    pub async fn session(&self, secret: &str) -> Result<Option<Session>> {
        let row = sqlx::query(
            "SELECT s.csrf_token, s.created_at, s.expires_at, s.bootstrap_hash, s.user_id, s.token_id, \
             u.name AS user_name, u.role AS user_role, u.environments AS user_environments, u.created_at AS user_created_at, \
             t.name AS token_name, t.role AS token_role, t.environments AS token_environments, \
             t.created_at AS token_created_at, t.revoked_at AS token_revoked_at \
             FROM sessions s LEFT JOIN users u ON u.id = s.user_id LEFT JOIN tokens t ON t.id = s.token_id \
             WHERE s.secret_hash = $1 AND s.expires_at > $2",
        )
        .bind(hash_secret(secret))
        .bind(now_millis())
        .fetch_optional(self.pool())
        .await
        .map_err(|e| from_sqlx(e, "session"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let user_id: Option<i64> = get(&row, "user_id")?;
        let token_id: Option<i64> = get(&row, "token_id")?;
        let bootstrap_hash: Option<String> = get(&row, "bootstrap_hash")?;
        let principal = match (user_id, token_id, bootstrap_hash) {
            (Some(_), _, _) => {
                let user_name: Option<String> = get(&row, "user_name")?;
                if user_name.is_none() {
                    return Ok(None);
                }
                Principal::User(user_from_row(&row, "user_")?)
            }
            (None, Some(_), _) => {
                let token = token_from_row(&row, "token_")?;
                if token.revoked_at.is_some() {
                    return Ok(None);
                }
                Principal::Token(token)
            }
            (None, None, Some(hash)) => Principal::Bootstrap(hash),
            (None, None, None) => return Ok(None),
        };
        Ok(Some(Session {
            principal,
            csrf_token: get(&row, "csrf_token")?,
            created_at: get(&row, "created_at")?,
            expires_at: get(&row, "expires_at")?,
        }))
    }

    /// Ends the session whose secret is `secret` (sign-out); whether there was
    /// one. Audited as `session.delete`.
    pub async fn delete_session(&self, actor: &Actor, secret: &str) -> Result<bool> {
        let mut write = Write::begin(self, actor).await?;
        let deleted = sqlx::query("DELETE FROM sessions WHERE secret_hash = $1")
            .bind(hash_secret(secret))
            .execute(&mut *write.tx)
            .await
            .map_err(|e| from_sqlx(e, "session"))?;
        if deleted.rows_affected() == 0 {
            return Ok(false);
        }
        let summary = json!({"actor": actor.name});
        write
            .audit(
                "session.delete",
                "session",
                &actor.name,
                None,
                Some(&summary),
                None,
            )
            .await?;
        write.commit().await?;
        Ok(true)
    }
}

async fn id_of(write: &mut Write<'_>, query: &'static str, name: &str) -> Result<Option<i64>> {
    let row = sqlx::query(query)
        .bind(name.to_owned())
        .fetch_optional(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, "session"))?;
    row.map(|row| get(&row, "id")).transpose()
}
