//! API tokens: a secret shown once at creation, stored as its SHA-256.

use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Write, get, optional_json_column};
use crate::error::{Result, StorageError, from_sqlx};
use crate::model::{Actor, Role, Token};
use crate::{Storage, now_millis};

/// A token to create.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewToken {
    /// A unique name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The environments it may change (`None`: all).
    #[serde(default)]
    pub environments: Option<Vec<String>>,
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// `bytes` as lowercase hexadecimal digits.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random secret (`ens_` and 40 letters or digits).
pub(crate) fn new_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let body: String = (0..40)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("ens_{body}")
}

/// A token from a row whose token columns are named `<prefix>name`, ...
pub(crate) fn token_from_row(row: &sqlx::any::AnyRow, prefix: &str) -> Result<Token> {
    let column = |name: &str| format!("{prefix}{name}");
    let role: String = get(row, &column("role"))?;
    Ok(Token {
        name: get(row, &column("name"))?,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        environments: optional_json_column(row, &column("environments"))?
            .and_then(|v| serde_json::from_value(v).ok()),
        created_at: get(row, &column("created_at"))?,
        revoked_at: get(row, &column("revoked_at"))?,
    })
}

fn row_to_token(row: &sqlx::any::AnyRow) -> Result<Token> {
    token_from_row(row, "")
}

impl Storage {
    /// Checks that every environment a token or user is limited to exists
    /// (problems under `/environments/<i>`).
    pub(crate) async fn check_environments(&self, environments: Option<&[String]>) -> Result<()> {
        let Some(environments) = environments else {
            return Ok(());
        };
        let known = self.environments().await?;
        for (i, env) in environments.iter().enumerate() {
            if !known.iter().any(|e| &e.key == env) {
                return Err(StorageError::invalid(
                    &format!("/environments/{i}"),
                    format!("no environment \"{env}\""),
                ));
            }
        }
        Ok(())
    }

    /// Creates a token; returns it with its secret, which is not stored.
    pub async fn create_token(&self, actor: &Actor, new: NewToken) -> Result<(Token, String)> {
        let name_ok = new.name.chars().count() <= 128
            && new.name.chars().any(|c| !c.is_whitespace())
            && !new.name.chars().any(char::is_control);
        if !name_ok {
            return Err(StorageError::invalid(
                "/name",
                "use 1 to 128 printable characters, not only spaces",
            ));
        }
        self.check_environments(new.environments.as_deref()).await?;
        let secret = new_secret();
        let token = Token {
            name: new.name.clone(),
            role: new.role,
            environments: new.environments.clone(),
            created_at: now_millis(),
            revoked_at: None,
        };
        let mut write = Write::begin(self, actor).await?;
        sqlx::query("INSERT INTO tokens (name, secret_hash, role, environments, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(token.name.clone())
            .bind(hash_secret(&secret))
            .bind(token.role.as_str().to_owned())
            .bind(token.environments.as_ref().map(|e| json!(e).to_string()))
            .bind(token.created_at)
            .execute(&mut *write.tx)
            .await
            .map_err(|e| from_sqlx(e, &format!("token \"{}\"", new.name)))?;
        write
            .audit(
                "token.create",
                "token",
                &token.name,
                None,
                None,
                serde_json::to_value(&token).ok().as_ref(),
            )
            .await?;
        write.commit().await?;
        Ok((token, secret))
    }

    /// The live token whose secret is `secret`.
    pub async fn verify_token(&self, secret: &str) -> Result<Option<Token>> {
        let row = sqlx::query(
            "SELECT name, role, environments, created_at, revoked_at FROM tokens WHERE secret_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash_secret(secret))
        .fetch_optional(self.pool())
        .await
        .map_err(|e| from_sqlx(e, "token"))?;
        row.as_ref().map(row_to_token).transpose()
    }

    /// Every token (without secrets), by name.
    pub async fn tokens(&self) -> Result<Vec<Token>> {
        let rows = sqlx::query(
            "SELECT name, role, environments, created_at, revoked_at FROM tokens ORDER BY name",
        )
        .fetch_all(self.pool())
        .await
        .map_err(|e| from_sqlx(e, "tokens"))?;
        rows.iter().map(row_to_token).collect()
    }

    /// Revokes a token.
    pub async fn revoke_token(&self, actor: &Actor, name: &str) -> Result<Token> {
        let mut write = Write::begin(self, actor).await?;
        let before = sqlx::query(
            "SELECT name, role, environments, created_at, revoked_at FROM tokens WHERE name = $1 AND revoked_at IS NULL",
        )
        .bind(name.to_owned())
        .fetch_optional(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, "token"))?
        .ok_or_else(|| StorageError::NotFound(format!("live token \"{name}\"")))?;
        let before = row_to_token(&before)?;
        let after = Token {
            revoked_at: Some(now_millis()),
            ..before.clone()
        };
        let updated =
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL")
                .bind(after.revoked_at)
                .bind(name.to_owned())
                .execute(&mut *write.tx)
                .await
                .map_err(|e| from_sqlx(e, "token"))?;
        if updated.rows_affected() == 0 {
            return Err(StorageError::NotFound(format!("live token \"{name}\"")));
        }
        // Web UI sessions signed in with the token end with it.
        sqlx::query(
            "DELETE FROM sessions WHERE token_id = (SELECT id FROM tokens WHERE name = $1)",
        )
        .bind(name.to_owned())
        .execute(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, "sessions"))?;
        write
            .audit(
                "token.revoke",
                "token",
                name,
                None,
                serde_json::to_value(&before).ok().as_ref(),
                serde_json::to_value(&after).ok().as_ref(),
            )
            .await?;
        write.commit().await?;
        Ok(after)
    }
}
