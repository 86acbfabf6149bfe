//! Users of the web UI: a name, a role, optional environments, and a password
//! kept only as an Argon2id hash (a PHC string with its own salt and
//! parameters). Hashing and verifying run off the async workers.

use std::fmt;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde_json::json;

use super::{Write, get, optional_json_column};
use crate::error::{Result, StorageError, from_sqlx};
use crate::model::{Actor, Role, User};
use crate::{Storage, now_millis};

/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest password accepted, in bytes (hashing time grows with it).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// The longest user name, in bytes.
pub const MAX_USER_NAME_BYTES: usize = 64;

/// Argon2id memory cost in KiB (19 MiB), iterations and lanes: the OWASP
/// baseline for Argon2id.
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;

/// A user to create. Its `Debug` never shows the password.
#[derive(Clone)]
pub struct NewUser {
    /// A unique name: 1 to 64 letters, digits, `.`, `_`, `-` or `@`.
    pub name: String,
    /// The password, at least [`MIN_PASSWORD_CHARS`] characters.
    pub password: String,
    /// What the user may do.
    pub role: Role,
    /// The environments the user may change (`None`: all).
    pub environments: Option<Vec<String>>,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .field("role", &self.role)
            .field("environments", &self.environments)
            .finish()
    }
}

fn argon2id() -> Result<Argon2<'static>> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None).map_err(internal)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn internal(error: impl fmt::Display) -> StorageError {
    StorageError::Internal(sqlx::Error::Protocol(format!("password hashing: {error}")))
}

/// The PHC string of `password` with a fresh random salt.
fn hash_password(password: &str) -> Result<String> {
    let salt: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt).map_err(internal)?;
    Ok(argon2id()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(internal)?
        .to_string())
}

/// Whether `password` matches the PHC string `stored` (with the parameters
/// the string names).
fn password_matches(password: &str, stored: &str) -> bool {
    match (PasswordHash::new(stored), argon2id()) {
        (Ok(hash), Ok(argon2)) => argon2.verify_password(password.as_bytes(), &hash).is_ok(),
        _ => false,
    }
}

/// A hash no password matches in practice, verified for unknown names so an
/// unknown user takes as long as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let secret: [u8; 32] = rand::random();
        hash_password(&format!("{secret:?}")).unwrap_or_default()
    })
}

/// Runs CPU-heavy hashing off the async workers.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(internal)
}

fn check_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= MAX_USER_NAME_BYTES
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if valid {
        Ok(())
    } else {
        Err(StorageError::invalid(
            "/name",
            "use 1 to 64 letters, digits, \".\", \"_\", \"-\" or \"@\"",
        ))
    }
}

fn check_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(StorageError::invalid(
            "/password",
            format!("use at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(StorageError::invalid(
            "/password",
            format!("use at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// A user from a row whose user columns are named `<prefix>name`, ...
pub(crate) fn user_from_row(row: &sqlx::any::AnyRow, prefix: &str) -> Result<User> {
    let column = |name: &str| format!("{prefix}{name}");
    let role: String = get(row, &column("role"))?;
    Ok(User {
        name: get(row, &column("name"))?,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        environments: optional_json_column(row, &column("environments"))?
            .and_then(|v| serde_json::from_value(v).ok()),
        created_at: get(row, &column("created_at"))?,
    })
}

fn row_to_user(row: &sqlx::any::AnyRow) -> Result<User> {
    user_from_row(row, "")
}

impl Storage {
    /// Creates a user; the password is stored as an Argon2id hash only.
    pub async fn create_user(&self, actor: &Actor, new: NewUser) -> Result<User> {
        check_name(&new.name)?;
        check_password(&new.password)?;
        self.check_environments(new.environments.as_deref()).await?;
        let password = new.password;
        let password_hash = blocking(move || hash_password(&password)).await??;
        let user = User {
            name: new.name,
            role: new.role,
            environments: new.environments,
            created_at: now_millis(),
        };
        let mut write = Write::begin(self, actor).await?;
        sqlx::query(
            "INSERT INTO users (name, password_hash, role, environments, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user.name.clone())
        .bind(password_hash)
        .bind(user.role.as_str().to_owned())
        .bind(user.environments.as_ref().map(|e| json!(e).to_string()))
        .bind(user.created_at)
        .execute(&mut *write.tx)
        .await
        .map_err(|e| from_sqlx(e, &format!("user \"{}\"", user.name)))?;
        write
            .audit(
                "user.create",
                "user",
                &user.name,
                None,
                None,
                serde_json::to_value(&user).ok().as_ref(),
            )
            .await?;
        write.commit().await?;
        Ok(user)
    }

    /// Every user (without password hashes), by name.
    pub async fn users(&self) -> Result<Vec<User>> {
        let rows =
            sqlx::query("SELECT name, role, environments, created_at FROM users ORDER BY name")
                .fetch_all(self.pool())
                .await
                .map_err(|e| from_sqlx(e, "users"))?;
        rows.iter().map(row_to_user).collect()
    }

    /// Deletes a user; their sessions end with them.
    pub async fn delete_user(&self, actor: &Actor, name: &str) -> Result<User> {
        let mut write = Write::begin(self, actor).await?;
        let before =
            sqlx::query("SELECT name, role, environments, created_at FROM users WHERE name = $1")
                .bind(name.to_owned())
                .fetch_optional(&mut *write.tx)
                .await
                .map_err(|e| from_sqlx(e, "user"))?
                .ok_or_else(|| StorageError::NotFound(format!("user \"{name}\"")))?;
        let before = row_to_user(&before)?;
        // Explicit, so it does not depend on the backend enforcing the
        // foreign key's cascade.
        sqlx::query("DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE name = $1)")
            .bind(name.to_owned())
            .execute(&mut *write.tx)
            .await
            .map_err(|e| from_sqlx(e, "sessions"))?;
        sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name.to_owned())
            .execute(&mut *write.tx)
            .await
            .map_err(|e| from_sqlx(e, "user"))?;
        write
            .audit(
                "user.delete",
                "user",
                name,
                None,
                serde_json::to_value(&before).ok().as_ref(),
                None,
            )
            .await?;
        write.commit().await?;
        Ok(before)
    }

    /// The user named `name` if `password` is theirs. An unknown name costs
    /// the same hashing work as a wrong password and gives the same answer.
    pub async fn verify_password(&self, name: &str, password: &str) -> Result<Option<User>> {
        self.verify_password_holding(name, password, ()).await
    }

    /// [`Storage::verify_password`], keeping `held` (a permit that bounds the
    /// checks running at once) until the hashing is done: the hash runs on a
    /// blocking thread to its end even when this future is dropped first
    /// (the caller went away), and its memory must stay counted until then.
    pub async fn verify_password_holding<H: Send + 'static>(
        &self,
        name: &str,
        password: &str,
        held: H,
    ) -> Result<Option<User>> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT name, role, environments, created_at, password_hash FROM users WHERE name = $1",
        )
        .bind(name.to_owned())
        .fetch_optional(self.pool())
        .await
        .map_err(|e| from_sqlx(e, "user"))?;
        let (user, stored) = match &row {
            Some(row) => (
                Some(row_to_user(row)?),
                get::<String>(row, "password_hash")?,
            ),
            None => (None, decoy_hash().to_owned()),
        };
        let password = password.to_owned();
        let matches = blocking(move || {
            let matches = password_matches(&password, &stored);
            drop(held);
            matches
        })
        .await?;
        Ok(user.filter(|_| matches))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_phc_strings_that_verify() {
        let hash = hash_password("correct horse battery").unwrap_or_default();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(!hash.contains("correct horse"));
        assert!(password_matches("correct horse battery", &hash));
        assert!(!password_matches("correct horse batterY", &hash));
        assert!(!password_matches("correct horse battery", "not a hash"));
        let again = hash_password("correct horse battery").unwrap_or_default();
        assert_ne!(hash, again, "every hash has its own salt");
    }

    #[test]
    fn new_users_never_show_their_password() {
        let new = NewUser {
            name: "alice".into(),
            password: "correct horse battery".into(),
            role: Role::Editor,
            environments: None,
        };
        assert!(!format!("{new:?}").contains("horse"));
    }

    #[test]
    fn names_and_passwords_are_bounded() {
        assert!(check_name("alice@example.com").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"a".repeat(65)).is_err());
        assert!(check_password("elevenchars").is_err());
        assert!(check_password("twelve chars").is_ok());
        assert!(check_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }
}
