//! The kill switch's storage on SQLite (`sqlite::<name>`) and PostgreSQL
//! (`postgres::<name>`), each scenario on a fresh database: bindings with
//! versions and validation, receiver secrets stored hashed, alerts acting
//! once per fingerprint/status/start, every action with its audit entry and
//! change notification, restores (automatic after the cool-down, skipped
//! after a human change, superseded while another kill is open, by hand),
//! dry runs, pinned variants and zero weights, and concurrent restore passes
//! acting once.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeMap;

use ensign_storage::model::{Actor, FlagConfig, FlagKind};
use ensign_storage::{
    ALERTMANAGER_ACTOR, ActionOutcome, Alert, AlertStatus, AuditFilter, KillSwitchBinding,
    KillTarget, NewFlag, OnResolved, Storage, StorageError,
};
use serde_json::{Map, Value, json};
use sqlx::Row as _;

use common::TestDb;

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = crate::common::TestDb::sqlite().await;
                    crate::$name(&db).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = crate::common::TestDb::postgres().await;
                    crate::$name(&db).await;
                }
            )*
        }
    };
}

suite! {
    bindings_are_versioned_and_validated,
    receiver_secrets_are_stored_hashed,
    receivers_limited_to_environments_act_only_there,
    a_labelled_alert_disables_once_with_audit_and_notification,
    resolved_with_restore_puts_the_flag_back_after_the_cooldown,
    a_human_change_after_the_kill_is_not_overwritten,
    keep_waits_for_a_human_restore,
    dry_run_changes_nothing,
    pinned_variant_and_zero_weight,
    overlapping_kills_restore_once_the_last_closes,
    unusable_labels_are_recorded_errors,
    concurrent_restore_passes_act_once,
}

// ---------------------------------------------------------------------------
// Helpers

fn alice() -> Actor {
    Actor::new("user:alice")
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A string flag `key` in `set`, enabled everywhere, variants `safe`, `new`,
/// `bad`, a 50/30/20 `fractional` rollout.
async fn rollout_flag(storage: &Storage, set: &str, key: &str) {
    if storage.flag_set(set).await.is_err() {
        storage
            .create_flag_set(&alice(), set, set, Map::new())
            .await
            .unwrap();
    }
    storage
        .create_flag(
            &alice(),
            NewFlag {
                flag_set: set.to_owned(),
                key: key.to_owned(),
                description: String::new(),
                owner: String::new(),
                tags: Vec::new(),
                kind: FlagKind::Release,
                expires_at: None,
                metadata: Map::new(),
                state: "ENABLED".to_owned(),
                variants: object(json!({"safe": "S", "new": "N", "bad": "B"})),
                default_variant: Some("safe".to_owned()),
                targeting: Some(json!({"fractional": [["safe", 50], ["new", 30], ["bad", 20]]})),
                environments: BTreeMap::new(),
            },
        )
        .await
        .unwrap();
}

async fn config_of(storage: &Storage, set: &str, key: &str, environment: &str) -> FlagConfig {
    storage.flag(set, key).await.unwrap().environments[environment].clone()
}

fn same(a: &FlagConfig, b: &FlagConfig) -> bool {
    (&a.state, &a.variants, &a.default_variant, &a.targeting)
        == (&b.state, &b.variants, &b.default_variant, &b.targeting)
}

fn alert(fingerprint: &str, status: AlertStatus, starts_at: i64, pairs: &[(&str, &str)]) -> Alert {
    Alert {
        fingerprint: fingerprint.to_owned(),
        status,
        starts_at,
        labels: labels(pairs),
        receiver: "ensign".to_owned(),
        received_at: 1_700_000_000_000,
    }
}

fn binding(name: &str, targets: Vec<KillTarget>, on_resolved: OnResolved) -> KillSwitchBinding {
    KillSwitchBinding {
        name: name.to_owned(),
        description: "checkout burns its budget".to_owned(),
        matchers: labels(&[("slo", "checkout-availability"), ("severity", "page")]),
        targets,
        on_resolved,
        cooldown_seconds: 60,
        dry_run: false,
        version: 0,
    }
}

fn target(flag: &str, environment: &str, action: &str) -> KillTarget {
    KillTarget {
        flag_set: "shop".to_owned(),
        flag: flag.to_owned(),
        environment: environment.to_owned(),
        action: action.to_owned(),
    }
}

const SLO_PAGE: &[(&str, &str)] = &[
    ("slo", "checkout-availability"),
    ("severity", "page"),
    ("alertname", "CheckoutBurn"),
];

fn problem_paths(error: StorageError) -> Vec<String> {
    match error {
        StorageError::Invalid(problems) => {
            let mut paths: Vec<String> = problems.into_iter().map(|p| p.path).collect();
            paths.sort();
            paths
        }
        other => panic!("expected invalid input, got {other:?}"),
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn count(storage: &Storage, sql: &'static str) -> i64 {
    sqlx::query(sql)
        .fetch_one(storage.pool())
        .await
        .unwrap()
        .try_get::<i64, _>("n")
        .unwrap()
}

// ---------------------------------------------------------------------------
// Scenarios

async fn bindings_are_versioned_and_validated(db: &TestDb) {
    let s = &db.storage;
    rollout_flag(s, "shop", "checkout").await;
    let created = s
        .create_kill_switch_binding(
            &alice(),
            binding(
                "checkout",
                vec![target("checkout", "production", "disable")],
                OnResolved::Keep,
            ),
        )
        .await
        .unwrap();
    assert_eq!(created.version, 1);
    assert_eq!(s.kill_switch_binding("checkout").await.unwrap(), created);

    // Every problem at once, nothing written.
    let mut bad = binding(
        "bad name!",
        vec![
            target("missing", "production", "disable"),
            target("checkout", "nowhere", "disable"),
            target("checkout", "production", "variant:absent"),
            target("checkout", "production", "explode"),
        ],
        OnResolved::Keep,
    );
    bad.matchers.clear();
    bad.cooldown_seconds = -1;
    let paths = problem_paths(
        s.create_kill_switch_binding(&alice(), bad)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        paths,
        [
            "/cooldownSeconds",
            "/matchers",
            "/name",
            "/targets/0/flag",
            "/targets/1/environment",
            "/targets/2/action",
            "/targets/3/action"
        ]
    );
    assert_eq!(s.kill_switch_bindings().await.unwrap().len(), 1);

    let mut changed = created.clone();
    changed.dry_run = true;
    let updated = s
        .update_kill_switch_binding(&alice(), "checkout", changed.clone(), Some(1))
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    assert!(updated.dry_run);
    match s
        .update_kill_switch_binding(&alice(), "checkout", changed, Some(1))
        .await
    {
        Err(StorageError::VersionMismatch {
            current, expected, ..
        }) => assert_eq!((current, expected), (2, 1)),
        other => panic!("expected a version mismatch, got {other:?}"),
    }
    assert!(matches!(
        s.create_kill_switch_binding(&alice(), created.clone())
            .await,
        Err(StorageError::Conflict(_))
    ));
    s.delete_kill_switch_binding(&alice(), "checkout", Some(2))
        .await
        .unwrap();
    assert!(matches!(
        s.kill_switch_binding("checkout").await,
        Err(StorageError::NotFound(_))
    ));
    let audit = s
        .audit_log(
            &AuditFilter {
                resource_type: Some("kill_switch".to_owned()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "kill_switch.delete",
            "kill_switch.update",
            "kill_switch.create"
        ]
    );
}

async fn receiver_secrets_are_stored_hashed(db: &TestDb) {
    let s = &db.storage;
    let (receiver, secret) = s
        .create_alertmanager_receiver(&alice(), "prod-am", None)
        .await
        .unwrap();
    assert_eq!(receiver.name, "prod-am");
    assert_eq!(receiver.environments, None);
    let stored: String = sqlx::query("SELECT secret_hash FROM alertmanager_receivers")
        .fetch_one(s.pool())
        .await
        .unwrap()
        .try_get("secret_hash")
        .unwrap();
    assert_ne!(stored, secret);
    assert!(!stored.contains(&secret));
    assert_eq!(
        s.verify_alertmanager_receiver(&secret).await.unwrap(),
        Some(receiver.clone())
    );
    assert_eq!(s.verify_alertmanager_receiver("wrong").await.unwrap(), None);
    // A receiver secret is not an API token, and the other way round.
    assert_eq!(s.verify_token(&secret).await.unwrap(), None);
    assert!(matches!(
        s.create_alertmanager_receiver(&alice(), "a:b", None).await,
        Err(StorageError::Invalid(_))
    ));
    assert_eq!(s.alertmanager_receivers().await.unwrap(), vec![receiver]);
    s.delete_alertmanager_receiver(&alice(), "prod-am")
        .await
        .unwrap();
    assert_eq!(s.verify_alertmanager_receiver(&secret).await.unwrap(), None);
    assert!(matches!(
        s.delete_alertmanager_receiver(&alice(), "prod-am").await,
        Err(StorageError::NotFound(_))
    ));
}

async fn receivers_limited_to_environments_act_only_there(db: &TestDb) {
    let s = &db.storage;
    rollout_flag(s, "shop", "checkout").await;
    let staging_only = vec!["staging".to_owned()];
    let (receiver, secret) = s
        .create_alertmanager_receiver(&alice(), "staging-am", Some(staging_only.clone()))
        .await
        .unwrap();
    assert_eq!(receiver.environments, Some(staging_only.clone()));
    assert_eq!(
        s.verify_alertmanager_receiver(&secret).await.unwrap(),
        Some(receiver.clone())
    );
    assert_eq!(s.alertmanager_receivers().await.unwrap(), vec![receiver]);
    for (environments, path) in [
        (vec![], "/environments"),
        (vec!["qa".to_owned()], "/environments/0"),
    ] {
        let refused = s
            .create_alertmanager_receiver(&alice(), "other", Some(environments))
            .await
            .unwrap_err();
        assert_eq!(problem_paths(refused), [path]);
    }

    // An alert naming production, and a binding acting in production and
    // staging: only staging is acted on; production is answered out of
    // scope, audited, and left alone.
    let production = config_of(s, "shop", "checkout", "production").await;
    s.create_kill_switch_binding(
        &alice(),
        binding(
            "checkout",
            vec![
                target("checkout", "production", "disable"),
                target("checkout", "staging", "disable"),
            ],
            OnResolved::Restore,
        ),
    )
    .await
    .unwrap();
    let mut pairs = SLO_PAGE.to_vec();
    pairs.extend([
        ("ensign_flag", "checkout"),
        ("ensign_environment", "production"),
    ]);
    let firing = alert("fp", AlertStatus::Firing, 1, &pairs);
    let actions = s
        .receive_alert_within(&firing, "production", Some(&staging_only))
        .await
        .unwrap();
    let outcomes: Vec<(Option<&str>, ActionOutcome)> = actions
        .iter()
        .map(|a| (a.environment.as_deref(), a.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            (Some("production"), ActionOutcome::OutOfScope),
            (Some("production"), ActionOutcome::OutOfScope),
            (Some("staging"), ActionOutcome::Applied),
        ]
    );
    assert!(
        actions[0]
            .message
            .as_deref()
            .unwrap()
            .contains("\"production\"")
    );
    assert!(same(
        &config_of(s, "shop", "checkout", "production").await,
        &production
    ));
    assert_eq!(
        config_of(s, "shop", "checkout", "staging").await.state,
        "DISABLED"
    );
    let refusals = s
        .audit_log(
            &AuditFilter {
                environment: Some("production".to_owned()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(refusals.len(), 2);
    assert!(
        refusals
            .iter()
            .all(|e| e.action == "kill_switch.out_of_scope"
                && e.actor == ALERTMANAGER_ACTOR
                && e.resource_key == "shop/checkout")
    );

    // A production kill by the shared token cannot be resolved (and so
    // restored) by the staging receiver.
    let shared = alert("prod-fp", AlertStatus::Firing, 2, SLO_PAGE);
    s.receive_alert(&shared, "production").await.unwrap();
    assert_eq!(
        config_of(s, "shop", "checkout", "production").await.state,
        "DISABLED"
    );
    let resolved = alert("prod-fp", AlertStatus::Resolved, 2, SLO_PAGE);
    let actions = s
        .receive_alert_within(&resolved, "production", Some(&staging_only))
        .await
        .unwrap();
    let outcomes: Vec<(Option<&str>, ActionOutcome)> = actions
        .iter()
        .map(|a| (a.environment.as_deref(), a.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            (Some("production"), ActionOutcome::OutOfScope),
            (Some("staging"), ActionOutcome::RestoreScheduled),
        ]
    );
    let production_records: Vec<_> = s
        .kill_records("shop", "checkout")
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.environment == "production")
        .collect();
    assert!(
        production_records
            .iter()
            .all(|r| r.resolved_at.is_none() && r.restore_due_at.is_none())
    );
}

async fn a_labelled_alert_disables_once_with_audit_and_notification(db: &TestDb) {
    let s = &db.storage;
    rollout_flag(s, "shop", "checkout").await;
    let before = config_of(s, "shop", "checkout", "production").await;
    let mut changes = s.local_changes();
    let firing = alert(
        "fp1",
        AlertStatus::Firing,
        1_000,
        &[("ensign_flag", "checkout"), ("alertname", "Burn")],
    );
    let actions = s.receive_alert(&firing, "production").await.unwrap();
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0].outcome, ActionOutcome::Applied);
    assert_eq!(actions[0].flag_set.as_deref(), Some("shop"));
    assert_eq!(actions[0].action.as_deref(), Some("disable"));
    let after = config_of(s, "shop", "checkout", "production").await;
    assert_eq!(after.state, "DISABLED");
    assert_eq!(after.version, before.version + 1);
    // Other environments are untouched.
    assert_eq!(
        config_of(s, "shop", "checkout", "staging").await.state,
        "ENABLED"
    );

    let change = changes.try_recv().unwrap();
    assert_eq!(change.environment.as_deref(), Some("production"));
    assert_eq!(change.alert_received_at, Some(firing.received_at));

    // Repeats (repeat_interval, HA peers) act once.
    for _ in 0..3 {
        let again = s.receive_alert(&firing, "production").await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].outcome, ActionOutcome::Duplicate);
    }
    assert_eq!(config_of(s, "shop", "checkout", "production").await, after);
    assert!(changes.try_recv().is_err());
    assert_eq!(count(s, "SELECT COUNT(*) AS n FROM kill_records").await, 1);
    assert_eq!(
        count(s, "SELECT COUNT(*) AS n FROM alert_receipts").await,
        1
    );

    let audit = s
        .audit_log(
            &AuditFilter {
                actor: Some(ALERTMANAGER_ACTOR.to_owned()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    let entry = &audit[0];
    assert_eq!(entry.action, "flag.kill");
    assert_eq!(entry.resource_key, "shop/checkout");
    assert_eq!(entry.environment.as_deref(), Some("production"));
    assert_eq!(entry.after.as_ref().unwrap()["state"], "DISABLED");
    let comment: Value = serde_json::from_str(entry.comment.as_deref().unwrap()).unwrap();
    assert_eq!(comment["alert"]["fingerprint"], "fp1");
    assert_eq!(comment["alert"]["receiver"], "ensign");
    assert_eq!(comment["alert"]["labels"]["alertname"], "Burn");

    // The flag's records show the open kill and what a restore puts back.
    let records = s.kill_records("shop", "checkout").await.unwrap();
    assert_eq!(records.len(), 1);
    assert!(same(&records[0].config_before, &before));
    assert_eq!(records[0].restored_at, None);
    assert_eq!(records[0].labels["alertname"], "Burn");
}

async fn resolved_with_restore_puts_the_flag_back_after_the_cooldown(db: &TestDb) {
    let s = &db.storage;
    rollout_flag(s, "shop", "checkout").await;
    let before = config_of(s, "shop", "checkout", "production").await;
    s.create_kill_switch_binding(
        &alice(),
        binding(
            "checkout",
            vec![target("checkout", "production", "disable")],
            OnResolved::Restore,
        ),
    )
    .await
    .unwrap();
    let fired = s
        .receive_alert(&alert("fp", AlertStatus::Firing, 5, SLO_PAGE), "production")
        .await
        .unwrap();
    assert_eq!(fired[0].outcome, ActionOutcome::Applied);
    assert_eq!(fired[0].binding.as_deref(), Some("checkout"));
    // Not resolved yet: nothing is due, however late.
    assert!(s.apply_due_restores(i64::MAX).await.unwrap().is_empty());

    let resolved_at = now_millis();
    let resolved = s
        .receive_alert(
            &alert("fp", AlertStatus::Resolved, 5, SLO_PAGE),
            "production",
        )
        .await
        .unwrap();
    assert_eq!(resolved[0].outcome, ActionOutcome::RestoreScheduled);
    let record = s.kill_records("shop", "checkout").await.unwrap().remove(0);
    let due = record.restore_due_at.unwrap();
    assert!(due >= resolved_at + 60_000, "{due} {resolved_at}");
    assert!(due <= now_millis() + 60_000);

    // Before the cool-down ends: nothing.
    assert!(s.apply_due_restores(due - 1).await.unwrap().is_empty());
    assert_eq!(
        config_of(s, "shop", "checkout", "production").await.state,
        "DISABLED"
    );
    let restored = s.apply_due_restores(due).await.unwrap();
    assert_eq!(restored.len(), 1);
    assert_eq!(restored[0].outcome, "restored");
    assert!(same(
        &config_of(s, "shop", "checkout", "production").await,
        &before
    ));
    // Applied once.
    assert!(s.apply_due_restores(due + 1).await.unwrap().is_empty());
    let record = s.kill_records("shop", "checkout").await.unwrap().remove(0);
    assert_eq!(record.restored_by.as_deref(), Some(ALERTMANAGER_ACTOR));
    assert_eq!(record.restore_outcome.as_deref(), Some("restored"));
    let audit = s.audit_log(&AuditFilter::default(), 1).await.unwrap();
    assert_eq!(audit[0].action, "flag.kill_restore");
    assert_eq!(audit[0].actor, ALERTMANAGER_ACTOR);

    // A repeated resolution changes nothing.
    let again = s
        .receive_alert(
            &alert("fp", AlertStatus::Resolved, 5, SLO_PAGE),
            "production",
        )
        .await
        .unwrap();
    assert_eq!(again[0].outcome, ActionOutcome::Duplicate);
}

async fn a_human_change_after_the_kill_is_not_overwritten(db: &TestDb) {
    let s = &db.storage;
    rollout_flag(s, "shop", "checkout").await;
    let mut direct = SLO_PAGE.to_vec();
    direct.extend([
        ("ensign_flag", "checkout"),
        ("ensign_on_resolved", "restore"),
        ("ensign_cooldown_seconds", "0"),
    ]);
    s.receive_alert(&alert("fp", AlertStatus::Firing, 1, &direct), "production")
        .await
        .unwrap();
    // A human turns it back on, differently.
    let mut human = config_of(s, "shop", "checkout", "production").await;
    human.state = "ENABLED".to_owned();
    human.default_variant = Some("new".to_owned());
    s.set_flag_config(
        &alice(),
        "shop",
        "checkout",
        "production",
        human.clone(),
        None,
    )
    .await
    .unwrap();
    let resolved = s
        .receive_alert(
            &alert("fp", AlertStatus::Resolved, 1, &direct),
            "production",
        )
        .await
        .unwrap();
    assert_eq!(resolved[0].outcome, ActionOutcome::RestoreScheduled);
    let results = s.apply_due_restores(now_millis()).await.unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].outcome, "skipped");
    assert!(same(
        &config_of(s, "shop", "checkout", "production").await,
        &human
    ));
    let record = s.kill_records("shop", "checkout").await.unwrap().remove(0);
    assert_eq!(record.restore_outcome.as_deref(), Some("skipped"));
}

async fn keep_waits_for_a_human_restore(db: &TestDb) {
    let s = &db.storage;
    rollout_flag(s, "shop", "checkout").await;
    let before = config_of(s, "shop", "checkout", "production").await;
    s.create_kill_switch_binding(
        &alice(),
        binding(
            "checkout",
            vec![target("checkout", "production", "disable")],
            OnResolved::Keep,
        ),
    )
    .await
    .unwrap();
    s.receive_alert(&alert("fp", AlertStatus::Firing, 1, SLO_PAGE), "production")
        .await
        .unwrap();
    let resolved = s
        .receive_alert(
            &alert("fp", AlertStatus::Resolved, 1, SLO_PAGE),
            "production",
        )
        .await
        .unwrap();
    assert_eq!(resolved[0].outcome, ActionOutcome::Kept);
    assert!(s.apply_due_restores(i64::MAX).await.unwrap().is_empty());
    assert_eq!(
        config_of(s, "shop", "checkout", "production").await.state,
        "DISABLED"
    );
    // A human restores.
    let closed = s
        .restore_killed_flag(&alice(), "shop", "checkout", "production")
        .await
        .unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].restored_by.as_deref(), Some("user:alice"));
    assert!(same(
        &config_of(s, "shop", "checkout", "production").await,
        &before
    ));
    // Nothing is open any more.
    assert!(matches!(
        s.restore_killed_flag(&alice(), "shop", "checkout", "production")
            .await,
        Err(StorageError::NotFound(_))
    ));
}

async fn dry_run_changes_nothing(db: &TestDb) {
    let s = &db.storage;
    rollout_flag(s, "shop", "checkout").await;
    let before = config_of(s, "shop", "checkout", "production").await;
    let mut dry = binding(
        "checkout",
        vec![target("checkout", "production", "variant:safe")],
        OnResolved::Restore,
    );
    dry.dry_run = true;
    s.create_kill_switch_binding(&alice(), dry).await.unwrap();
    let mut changes = s.local_changes();
    let actions = s
        .receive_alert(&alert("fp", AlertStatus::Firing, 1, SLO_PAGE), "production")
        .await
        .unwrap();
    assert_eq!(actions[0].outcome, ActionOutcome::DryRun);
    assert_eq!(config_of(s, "shop", "checkout", "production").await, before);
    assert!(changes.try_recv().is_err());
    let record = s.kill_records("shop", "checkout").await.unwrap().remove(0);
    assert!(record.dry_run);
    assert_eq!(record.config_after.default_variant.as_deref(), Some("safe"));
    assert_eq!(record.config_after.targeting, None);
    let audit = s.audit_log(&AuditFilter::default(), 1).await.unwrap();
    assert_eq!(audit[0].action, "kill_switch.dry_run");
    let resolved = s
        .receive_alert(
            &alert("fp", AlertStatus::Resolved, 1, SLO_PAGE),
            "production",
        )
        .await
        .unwrap();
    assert_eq!(resolved[0].outcome, ActionOutcome::Closed);
    assert!(s.apply_due_restores(i64::MAX).await.unwrap().is_empty());
    assert_eq!(config_of(s, "shop", "checkout", "production").await, before);
}

async fn pinned_variant_and_zero_weight(db: &TestDb) {
    let s = &db.storage;
    rollout_flag(s, "shop", "pinned").await;
    rollout_flag(s, "shop", "weighted").await;
    s.create_kill_switch_binding(
        &alice(),
        binding(
            "checkout",
            vec![
                target("pinned", "production", "variant:safe"),
                target("weighted", "production", "zero-weight:bad"),
            ],
            OnResolved::Keep,
        ),
    )
    .await
    .unwrap();
    let actions = s
        .receive_alert(&alert("fp", AlertStatus::Firing, 1, SLO_PAGE), "production")
        .await
        .unwrap();
    assert_eq!(actions.len(), 2);
    assert!(
        actions.iter().all(|a| a.outcome == ActionOutcome::Applied),
        "{actions:?}"
    );
    let pinned = config_of(s, "shop", "pinned", "production").await;
    assert_eq!(pinned.default_variant.as_deref(), Some("safe"));
    assert_eq!(pinned.targeting, None);
    assert_eq!(pinned.state, "ENABLED");
    let weighted = config_of(s, "shop", "weighted", "production").await;
    assert_eq!(
        weighted.targeting,
        Some(json!({"fractional": [["safe", 50], ["new", 30], ["bad", 0]]}))
    );
}

async fn overlapping_kills_restore_once_the_last_closes(db: &TestDb) {
    let s = &db.storage;
    rollout_flag(s, "shop", "checkout").await;
    let before = config_of(s, "shop", "checkout", "production").await;
    let first = [
        ("ensign_flag", "checkout"),
        ("ensign_action", "zero-weight:bad"),
        ("ensign_on_resolved", "restore"),
        ("ensign_cooldown_seconds", "0"),
        ("alertname", "Latency"),
    ];
    let second = [
        ("ensign_flag", "checkout"),
        ("ensign_on_resolved", "restore"),
        ("ensign_cooldown_seconds", "0"),
        ("alertname", "Errors"),
    ];
    s.receive_alert(&alert("a", AlertStatus::Firing, 1, &first), "production")
        .await
        .unwrap();
    s.receive_alert(&alert("b", AlertStatus::Firing, 1, &second), "production")
        .await
        .unwrap();
    let killed = config_of(s, "shop", "checkout", "production").await;
    assert_eq!(killed.state, "DISABLED");
    // The first resolves while the second still fires: the flag stays killed.
    s.receive_alert(&alert("a", AlertStatus::Resolved, 1, &first), "production")
        .await
        .unwrap();
    let results = s.apply_due_restores(now_millis()).await.unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].outcome, "superseded");
    assert_eq!(config_of(s, "shop", "checkout", "production").await, killed);
    // The last one puts back what was there before the first kill.
    s.receive_alert(&alert("b", AlertStatus::Resolved, 1, &second), "production")
        .await
        .unwrap();
    let results = s.apply_due_restores(now_millis()).await.unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].outcome, "restored");
    assert!(same(
        &config_of(s, "shop", "checkout", "production").await,
        &before
    ));
}

async fn unusable_labels_are_recorded_errors(db: &TestDb) {
    let s = &db.storage;
    rollout_flag(s, "shop", "checkout").await;
    rollout_flag(s, "web", "checkout").await;
    // (fingerprint, labels, what the error message says)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "ambiguous",
            vec![("ensign_flag", "checkout")],
            "ensign_flag_set",
        ),
        ("missing", vec![("ensign_flag", "nope")], "no flag set"),
        (
            "action",
            vec![
                ("ensign_flag", "checkout"),
                ("ensign_flag_set", "shop"),
                ("ensign_action", "variant:absent"),
            ],
            "no variant",
        ),
        (
            "environment",
            vec![
                ("ensign_flag", "checkout"),
                ("ensign_flag_set", "shop"),
                ("ensign_environment", "mars"),
            ],
            "no environment",
        ),
    ];
    for (fingerprint, pairs, message) in cases {
        let actions = s
            .receive_alert(
                &alert(fingerprint, AlertStatus::Firing, 1, &pairs),
                "production",
            )
            .await
            .unwrap();
        assert_eq!(actions.len(), 1);
        assert_eq!(actions[0].outcome, ActionOutcome::Error, "{fingerprint}");
        let text = actions[0].message.as_deref().unwrap();
        assert!(text.contains(message), "{fingerprint}: {text}");
    }
    // Recorded (so a repeat is a duplicate), nothing changed.
    let receipts = count(s, "SELECT COUNT(*) AS n FROM alert_receipts").await;
    assert_eq!(receipts, 4);
    assert_eq!(count(s, "SELECT COUNT(*) AS n FROM kill_records").await, 0);
    for set in ["shop", "web"] {
        assert_eq!(
            config_of(s, set, "checkout", "production").await.state,
            "ENABLED"
        );
    }
    // No binding and no ensign_flag: nothing to do.
    let actions = s
        .receive_alert(
            &alert("other", AlertStatus::Firing, 1, &[("alertname", "Disk")]),
            "production",
        )
        .await
        .unwrap();
    assert_eq!(actions[0].outcome, ActionOutcome::NoMatch);
    // The flag set can be named.
    let actions = s
        .receive_alert(
            &alert(
                "named",
                AlertStatus::Firing,
                1,
                &[("ensign_flag", "checkout"), ("ensign_flag_set", "web")],
            ),
            "staging",
        )
        .await
        .unwrap();
    assert_eq!(actions[0].outcome, ActionOutcome::Applied);
    assert_eq!(
        config_of(s, "web", "checkout", "staging").await.state,
        "DISABLED"
    );
    assert_eq!(
        config_of(s, "web", "checkout", "production").await.state,
        "ENABLED"
    );
}

async fn concurrent_restore_passes_act_once(db: &TestDb) {
    let s = &db.storage;
    // A second process on the same database.
    let other = Storage::connect(&db.url).await.unwrap();
    rollout_flag(s, "shop", "checkout").await;
    let before = config_of(s, "shop", "checkout", "production").await;
    let labels = [
        ("ensign_flag", "checkout"),
        ("ensign_on_resolved", "restore"),
        ("ensign_cooldown_seconds", "0"),
    ];
    // The same alert delivered to both replicas at once acts once too.
    let firing = alert("fp", AlertStatus::Firing, 1, &labels);
    let (a, b) = tokio::join!(
        s.receive_alert(&firing, "production"),
        other.receive_alert(&firing, "production")
    );
    let mut outcomes = vec![a.unwrap()[0].outcome, b.unwrap()[0].outcome];
    outcomes.sort_by_key(|o| o.as_str());
    assert_eq!(outcomes, [ActionOutcome::Applied, ActionOutcome::Duplicate]);
    s.receive_alert(
        &alert("fp", AlertStatus::Resolved, 1, &labels),
        "production",
    )
    .await
    .unwrap();
    let now = now_millis();
    let (a, b) = tokio::join!(s.apply_due_restores(now), other.apply_due_restores(now));
    let results: Vec<_> = a.unwrap().into_iter().chain(b.unwrap()).collect();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].outcome, "restored");
    let after = config_of(s, "shop", "checkout", "production").await;
    assert!(same(&after, &before));
    let restores = s
        .audit_log(&AuditFilter::default(), 50)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "flag.kill_restore")
        .count();
    assert_eq!(restores, 1);
}
