//! Users and web UI sessions, on SQLite and on the machine's PostgreSQL (each
//! test on a fresh database; PostgreSQL being unreachable fails, never skips).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[allow(dead_code)]
mod common;

use ensign_storage::model::{Actor, Principal, Role};
use ensign_storage::{AuditFilter, NewToken, NewUser, Storage, StorageError, hash_secret};
use sqlx::Row as _;

use common::TestDb;

const TWELVE_HOURS: i64 = 12 * 60 * 60 * 1000;

fn admin() -> Actor {
    Actor::new("token:bootstrap")
}

fn alice(password: &str) -> NewUser {
    NewUser {
        name: "alice".to_owned(),
        password: password.to_owned(),
        role: Role::Editor,
        environments: Some(vec!["staging".to_owned()]),
    }
}

fn problem_paths<T: std::fmt::Debug>(result: Result<T, StorageError>) -> Vec<String> {
    match result {
        Err(StorageError::Invalid(problems)) => problems.into_iter().map(|p| p.path).collect(),
        other => panic!("expected invalid input, got {other:?}"),
    }
}

async fn users(s: &Storage) {
    let password = "correct horse battery staple";
    let user = s.create_user(&admin(), alice(password)).await.unwrap();
    assert_eq!(user.name, "alice");
    assert_eq!(user.role, Role::Editor);
    assert_eq!(user.environments, Some(vec!["staging".to_owned()]));
    assert!(user.created_at > 0);

    // Stored as an Argon2id PHC string, never as the password.
    let stored: String = sqlx::query("SELECT password_hash FROM users WHERE name = 'alice'")
        .fetch_one(s.pool())
        .await
        .unwrap()
        .try_get("password_hash")
        .unwrap();
    assert!(stored.starts_with("$argon2id$v=19$"), "{stored}");
    assert!(!stored.contains(password));

    // The password verifies; a wrong one and an unknown name do not.
    assert_eq!(
        s.verify_password("alice", password).await.unwrap(),
        Some(user.clone())
    );
    assert_eq!(
        s.verify_password("alice", "correct horse battery stapl")
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.verify_password("bob", password).await.unwrap(), None);
    assert_eq!(
        s.verify_password("alice", &"x".repeat(2000)).await.unwrap(),
        None
    );

    // Invalid input is refused whole, with pointers; nothing is written.
    let short = s.create_user(&admin(), alice("too short")).await;
    assert_eq!(problem_paths(short), ["/password"]);
    let mut bad_name = alice(password);
    bad_name.name = "al ice".to_owned();
    assert_eq!(
        problem_paths(s.create_user(&admin(), bad_name).await),
        ["/name"]
    );
    let mut bad_env = alice(password);
    bad_env.name = "carol".to_owned();
    bad_env.environments = Some(vec!["staging".to_owned(), "nowhere".to_owned()]);
    assert_eq!(
        problem_paths(s.create_user(&admin(), bad_env).await),
        ["/environments/1"]
    );
    assert!(matches!(
        s.create_user(&admin(), alice(password)).await,
        Err(StorageError::Conflict(_))
    ));
    assert_eq!(s.users().await.unwrap(), std::slice::from_ref(&user));

    // Audited without the password.
    let filter = AuditFilter {
        resource_type: Some("user".to_owned()),
        ..Default::default()
    };
    let entries = s.audit_log(&filter, 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].action, "user.create");
    assert_eq!(entries[0].actor, "token:bootstrap");
    let text = serde_json::to_string(&entries[0].after).unwrap();
    assert!(text.contains("alice") && !text.contains("horse") && !text.contains("argon2"));

    // Deleting a user ends their sessions.
    let (_, secret) = s
        .create_session(&Principal::User(user.clone()), TWELVE_HOURS)
        .await
        .unwrap();
    assert!(s.session(&secret).await.unwrap().is_some());
    let deleted = s.delete_user(&admin(), "alice").await.unwrap();
    assert_eq!(deleted, user);
    assert_eq!(s.session(&secret).await.unwrap(), None);
    assert_eq!(s.verify_password("alice", password).await.unwrap(), None);
    assert!(s.users().await.unwrap().is_empty());
    assert!(matches!(
        s.delete_user(&admin(), "alice").await,
        Err(StorageError::NotFound(_))
    ));
    let entries = s.audit_log(&filter, 10).await.unwrap();
    assert_eq!(entries[0].action, "user.delete");
}

async fn sessions(s: &Storage) {
    let user = s
        .create_user(&admin(), alice("correct horse battery staple"))
        .await
        .unwrap();
    let principal = Principal::User(user.clone());
    let (session, secret) = s.create_session(&principal, TWELVE_HOURS).await.unwrap();
    assert_eq!(secret.len(), 64, "256 bits as hex");
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(session.csrf_token.len(), 64);
    assert_ne!(session.csrf_token, secret);
    assert_eq!(session.expires_at - session.created_at, TWELVE_HOURS);
    assert_eq!(s.session(&secret).await.unwrap(), Some(session.clone()));
    assert_eq!(s.session("wrong").await.unwrap(), None);

    // Only the hash of the secret is stored.
    let row = sqlx::query("SELECT secret_hash FROM sessions")
        .fetch_one(s.pool())
        .await
        .unwrap();
    let stored: String = row.try_get("secret_hash").unwrap();
    assert_eq!(stored, hash_secret(&secret));

    // Another sign-in is another session.
    let (other, other_secret) = s.create_session(&principal, TWELVE_HOURS).await.unwrap();
    assert_ne!(other_secret, secret);
    assert_ne!(other.csrf_token, session.csrf_token);

    // Signing out deletes it (once).
    let actor = Actor::new("user:alice");
    assert!(s.delete_session(&actor, &secret).await.unwrap());
    assert!(!s.delete_session(&actor, &secret).await.unwrap());
    assert_eq!(s.session(&secret).await.unwrap(), None);
    assert!(s.session(&other_secret).await.unwrap().is_some());

    // An expired session is gone, and removed by the next sign-in.
    let (_, expired) = s.create_session(&principal, -1).await.unwrap();
    assert_eq!(s.session(&expired).await.unwrap(), None);
    s.create_session(&principal, TWELVE_HOURS).await.unwrap();
    let left: i64 = sqlx::query("SELECT COUNT(*) AS n FROM sessions WHERE secret_hash = $1")
        .bind(hash_secret(&expired))
        .fetch_one(s.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(left, 0);

    // A token's sessions end when it is revoked.
    let (token, _) = s
        .create_token(
            &admin(),
            NewToken {
                name: "ci".to_owned(),
                role: Role::Viewer,
                environments: None,
            },
        )
        .await
        .unwrap();
    let (_, token_secret) = s
        .create_session(&Principal::Token(token.clone()), TWELVE_HOURS)
        .await
        .unwrap();
    let found = s.session(&token_secret).await.unwrap().unwrap();
    assert_eq!(found.principal, Principal::Token(token));
    s.revoke_token(&admin(), "ci").await.unwrap();
    assert_eq!(s.session(&token_secret).await.unwrap(), None);
    assert!(matches!(
        s.create_session(&found.principal, TWELVE_HOURS).await,
        Err(StorageError::NotFound(_))
    ));

    // The bootstrap token's sessions keep the hash of that token.
    let bootstrap = Principal::Bootstrap(hash_secret("the bootstrap token"));
    let (_, bootstrap_secret) = s.create_session(&bootstrap, TWELVE_HOURS).await.unwrap();
    assert_eq!(
        s.session(&bootstrap_secret)
            .await
            .unwrap()
            .unwrap()
            .principal,
        bootstrap
    );

    // Sign-ins and sign-outs are audited under who signed in.
    let filter = AuditFilter {
        resource_type: Some("session".to_owned()),
        ..Default::default()
    };
    let actions: Vec<(String, String)> = s
        .audit_log(&filter, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.actor))
        .collect();
    assert!(actions.contains(&("session.delete".to_owned(), "user:alice".to_owned())));
    assert!(actions.contains(&("session.create".to_owned(), "token:ci".to_owned())));
    assert!(actions.contains(&("session.create".to_owned(), "token:bootstrap".to_owned())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_users() {
    users(&TestDb::sqlite().await.storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_users() {
    users(&TestDb::postgres().await.storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sessions() {
    sessions(&TestDb::sqlite().await.storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sessions() {
    sessions(&TestDb::postgres().await.storage).await;
}
