//! The storage suite: every scenario runs against SQLite (`sqlite::<name>`)
//! and against the machine's PostgreSQL (`postgres::<name>`), each on a fresh
//! database. PostgreSQL being unreachable fails the PostgreSQL half; it is
//! never skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use ensign_engine::document::{Limits, load_value};
use ensign_engine::{
    Context, EvaluationOptions, Reason, RequestedType, Snapshot, Source, ValueType,
};
use ensign_storage::model::{
    Actor, Environment, Flag, FlagConfig, FlagKind, FlagSet, FlagStage, Role, Segment,
};
use ensign_storage::{
    AuditFilter, Backend, CHANGES_CHANNEL, Change, FlagFilter, FlagPatch, ImportScope, NewFlag,
    NewToken, Storage, StorageError,
};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use sqlx::Row as _;
use tokio::sync::broadcast::error::TryRecvError;

use common::TestDb;

/// Generates `sqlite::<scenario>` and `postgres::<scenario>` for every shared
/// scenario, and `postgres::<scenario>` for the PostgreSQL-only ones.
macro_rules! suite {
    (shared: [$($name:ident),* $(,)?], postgres_only: [$($pg:ident),* $(,)?] $(,)?) => {
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
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $pg() {
                    let db = crate::common::TestDb::postgres().await;
                    crate::$pg(&db).await;
                }
            )*
        }
    };
}

suite! {
    shared: [
        migrations_are_idempotent,
        default_environments,
        flag_set_crud_with_versions,
        segments,
        create_flag_with_overrides,
        invalid_flag_writes_nothing,
        list_filters_and_pagination,
        update_lifecycle_data,
        config_toggle_and_copy,
        concurrent_editors,
        archived_flags_are_not_served,
        export_import_round_trip,
        one_environment_imports_change_only_configurations,
        tokens,
        audit_log,
        local_changes,
    ],
    postgres_only: [
        postgres_notifications,
    ],
}

// ---------------------------------------------------------------------------
// Helpers

/// An import that may change everything.
const ALL: ImportScope = ImportScope::AllEnvironments;

fn who(name: &str) -> Actor {
    Actor::new(format!("user:{name}"))
}

fn saying(name: &str, comment: &str) -> Actor {
    Actor {
        name: format!("user:{name}"),
        comment: Some(comment.to_owned()),
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn on_off() -> Map<String, Value> {
    object(json!({"on": true, "off": false}))
}

fn config(
    state: &str,
    variants: Map<String, Value>,
    default_variant: Option<&str>,
    targeting: Option<Value>,
) -> FlagConfig {
    FlagConfig {
        state: state.to_owned(),
        variants,
        default_variant: default_variant.map(str::to_owned),
        targeting,
        version: 0,
    }
}

/// A boolean flag, disabled everywhere, serving `off` by default.
fn bool_flag(flag_set: &str, key: &str) -> NewFlag {
    NewFlag {
        flag_set: flag_set.to_owned(),
        key: key.to_owned(),
        description: String::new(),
        owner: String::new(),
        tags: Vec::new(),
        kind: FlagKind::Release,
        expires_at: None,
        metadata: Map::new(),
        state: "DISABLED".to_owned(),
        variants: on_off(),
        default_variant: Some("off".to_owned()),
        targeting: None,
        environments: BTreeMap::new(),
    }
}

/// The sorted problem paths of an `Invalid` error.
fn problem_paths<T: Debug>(result: Result<T, StorageError>) -> Vec<String> {
    match result {
        Err(StorageError::Invalid(problems)) => {
            let mut paths: Vec<String> = problems.into_iter().map(|p| p.path).collect();
            paths.sort();
            paths
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// `(current, expected)` of a `VersionMismatch`.
fn mismatch<T: Debug>(result: Result<T, StorageError>) -> (i64, i64) {
    match result {
        Err(StorageError::VersionMismatch {
            current, expected, ..
        }) => (current, expected),
        other => panic!("expected VersionMismatch, got {other:?}"),
    }
}

fn assert_not_found<T: Debug>(result: Result<T, StorageError>) {
    assert!(
        matches!(result, Err(StorageError::NotFound(_))),
        "expected NotFound, got {result:?}"
    );
}

fn assert_conflict<T: Debug>(result: Result<T, StorageError>) {
    assert!(
        matches!(result, Err(StorageError::Conflict(_))),
        "expected Conflict, got {result:?}"
    );
}

fn keys(flags: &[Flag]) -> Vec<String> {
    flags.iter().map(|f| f.key.clone()).collect()
}

async fn listed(storage: &Storage, filter: FlagFilter) -> Vec<String> {
    keys(&storage.flags(&filter, 500, 0).await.unwrap().items)
}

async fn all_audit(storage: &Storage) -> Vec<ensign_storage::model::AuditEntry> {
    storage
        .audit_log(&AuditFilter::default(), 500)
        .await
        .unwrap()
}

fn context(value: Value) -> Context {
    object(value)
}

/// Every flag of `document` resolved for every context, as comparable text:
/// key, value, variant, reason, error code and metadata (without `flagSetId`,
/// which names where the document is served from).
fn evaluations(document: &Value, contexts: &[Context]) -> Vec<String> {
    let loaded = load_value(document, &Limits::default())
        .unwrap_or_else(|e| panic!("the document does not load: {e}\n{document:#}"));
    assert!(
        loaded.warnings.is_empty(),
        "warnings: {:?}",
        loaded.warnings
    );
    let snapshot = Snapshot::build(
        vec![Source::new("storage", loaded.document)],
        EvaluationOptions::default(),
    );
    let mut out = Vec::new();
    let flags: Vec<(String, Option<ValueType>)> = snapshot
        .flags(None)
        .map(|f| (f.key().to_owned(), f.value_type()))
        .collect();
    for (key, value_type) in flags {
        let requested = match value_type {
            Some(ValueType::Boolean) | None => RequestedType::Boolean,
            Some(ValueType::String) => RequestedType::String,
            Some(ValueType::Number) => RequestedType::Float,
            Some(ValueType::Object) => RequestedType::Object,
        };
        for ctx in contexts {
            let resolution = snapshot.resolve(&key, requested, ctx, 1_700_000_000);
            let mut metadata = ensign_engine::metadata::metadata_to_json(resolution.metadata);
            metadata.remove("flagSetId");
            out.push(format!(
                "{key} {ctx:?} => value={} variant={:?} reason={} error={:?} metadata={}",
                resolution.value.map_or(Value::Null, |v| v.to_json()),
                resolution.variant,
                resolution.reason.as_str(),
                resolution.error_code().map(|c| c.as_str()),
                Value::Object(metadata),
            ));
        }
    }
    out
}

/// Fails on the first evaluation that differs, naming it.
fn assert_same_evaluations(actual: &[String], expected: &[String], what: &str) {
    for (a, e) in actual.iter().zip(expected) {
        assert_eq!(a, e, "{what}: the first differing evaluation");
    }
    assert_eq!(actual.len(), expected.len(), "{what}: evaluation count");
}

fn document_of(documents: &[(String, Value)], flag_set: &str) -> Value {
    documents
        .iter()
        .find(|(key, _)| key == flag_set)
        .map(|(_, document)| document.clone())
        .unwrap_or_else(|| panic!("no document for flag set {flag_set}"))
}

fn served_keys(document: &Value) -> Vec<String> {
    document["flags"]
        .as_object()
        .expect("flags object")
        .keys()
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------
// Scenarios

async fn migrations_are_idempotent(db: &TestDb) {
    let s = &db.storage;
    // `TestDb` migrated once already.
    s.migrate().await.unwrap();
    s.migrate().await.unwrap();
    let applied: i64 = sqlx::query("SELECT COUNT(*) AS n FROM _sqlx_migrations")
        .fetch_one(s.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    let folder = match s.backend() {
        Backend::Postgres => "postgres",
        Backend::Sqlite => "sqlite",
    };
    let migrations = std::fs::read_dir(format!(
        "{}/../../migrations/{folder}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .filter(|entry| {
        entry
            .as_ref()
            .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
    })
    .count();
    assert_eq!(applied, migrations as i64);
    assert!(applied >= 3);
    assert_eq!(s.environments().await.unwrap().len(), 3);

    // Another process starting on the same database migrates too.
    let other = Storage::connect(&db.url).await.unwrap();
    other.migrate().await.unwrap();
    assert_eq!(other.environments().await.unwrap().len(), 3);
    other.ping().await.unwrap();
    other.pool().close().await;
    s.ping().await.unwrap();
}

async fn default_environments(db: &TestDb) {
    let s = &db.storage;
    let environment = |key: &str, name: &str, version: i64| Environment {
        key: key.to_owned(),
        name: name.to_owned(),
        version,
    };
    assert_eq!(
        s.environments().await.unwrap(),
        vec![
            environment("development", "Development", 1),
            environment("staging", "Staging", 1),
            environment("production", "Production", 1),
        ]
    );
    assert_eq!(
        s.environment("staging").await.unwrap(),
        environment("staging", "Staging", 1)
    );
    assert_not_found(s.environment("qa").await);

    // A new environment gets every flag, disabled, configured as in production.
    let admin = who("admin");
    s.create_flag_set(&admin, "web", "Web", Map::new())
        .await
        .unwrap();
    let rule = json!({"if": [{"==": [{"var": "plan"}, "pro"]}, "on", "off"]});
    let mut new = bool_flag("web", "checkout");
    new.environments.insert(
        "production".to_owned(),
        config("ENABLED", on_off(), Some("on"), Some(rule.clone())),
    );
    s.create_flag(&admin, new).await.unwrap();

    assert_eq!(
        s.create_environment(&admin, "qa", "QA").await.unwrap(),
        environment("qa", "QA", 1)
    );
    let flag = s.flag("web", "checkout").await.unwrap();
    assert_eq!(
        flag.environments.keys().collect::<Vec<_>>(),
        ["development", "production", "qa", "staging"]
    );
    let qa = &flag.environments["qa"];
    assert_eq!(qa.state, "DISABLED");
    assert_eq!(qa.variants, on_off());
    assert_eq!(qa.default_variant.as_deref(), Some("on"));
    assert_eq!(qa.targeting, Some(rule));
    assert_eq!(qa.version, 1);

    assert_conflict(s.create_environment(&admin, "qa", "Again").await);
    assert_eq!(
        problem_paths(s.create_environment(&admin, "Q A", "Bad").await),
        ["/key"]
    );

    let renamed = s
        .rename_environment(&admin, "qa", "Quality", Some(1))
        .await
        .unwrap();
    assert_eq!(renamed, environment("qa", "Quality", 2));
    assert_eq!(
        mismatch(s.rename_environment(&admin, "qa", "Lost", Some(1)).await),
        (2, 1)
    );
    assert_not_found(s.rename_environment(&admin, "nope", "x", None).await);
    assert_eq!(
        s.environments()
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.name))
            .collect::<Vec<_>>(),
        [
            ("development".to_owned(), "Development".to_owned()),
            ("staging".to_owned(), "Staging".to_owned()),
            ("production".to_owned(), "Production".to_owned()),
            ("qa".to_owned(), "Quality".to_owned()),
        ]
    );
}

async fn flag_set_crud_with_versions(db: &TestDb) {
    let s = &db.storage;
    let alice = who("alice");
    let created = s
        .create_flag_set(&alice, "web", "Web", object(json!({"team": "frontend"})))
        .await
        .unwrap();
    assert_eq!(
        created,
        FlagSet {
            key: "web".to_owned(),
            name: "Web".to_owned(),
            metadata: object(json!({"team": "frontend"})),
            version: 1,
        }
    );
    assert_eq!(s.flag_set("web").await.unwrap(), created);

    assert_conflict(s.create_flag_set(&alice, "web", "Again", Map::new()).await);
    assert_eq!(
        problem_paths(
            s.create_flag_set(&alice, "web shop", "Bad", Map::new())
                .await
        ),
        ["/key"]
    );
    assert_eq!(
        problem_paths(
            s.create_flag_set(&alice, "api", "API", object(json!({"nested": {"a": 1}})))
                .await
        ),
        ["/metadata/nested"]
    );
    assert_not_found(s.flag_set("api").await);

    let updated = s
        .update_flag_set(
            &alice,
            "web",
            "Web shop",
            object(json!({"team": "shop"})),
            Some(1),
        )
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.name, "Web shop");
    assert_eq!(
        mismatch(
            s.update_flag_set(&alice, "web", "Lost", Map::new(), Some(1))
                .await
        ),
        (2, 1)
    );
    assert_eq!(s.flag_set("web").await.unwrap(), updated);

    let unconditional = s
        .update_flag_set(&alice, "web", "Web", Map::new(), None)
        .await
        .unwrap();
    assert_eq!(unconditional.version, 3);
    assert!(unconditional.metadata.is_empty());

    s.create_flag_set(&alice, "api", "API", Map::new())
        .await
        .unwrap();
    assert_eq!(
        s.flag_sets()
            .await
            .unwrap()
            .into_iter()
            .map(|f| (f.key, f.version))
            .collect::<Vec<_>>(),
        [("api".to_owned(), 1), ("web".to_owned(), 3)]
    );

    // Deleting checks the version and takes flags and segments along.
    s.create_flag(&alice, bool_flag("web", "checkout"))
        .await
        .unwrap();
    s.put_segment(&alice, "web", "staff", "", json!({"==": [1, 1]}), None)
        .await
        .unwrap();
    assert_eq!(
        mismatch(s.delete_flag_set(&alice, "web", Some(2)).await),
        (3, 2)
    );
    assert!(s.flag("web", "checkout").await.is_ok());
    s.delete_flag_set(&alice, "web", Some(3)).await.unwrap();
    assert_not_found(s.flag_set("web").await);
    assert_not_found(s.flag("web", "checkout").await);
    assert_not_found(s.segment("web", "staff").await);
    assert_not_found(
        s.update_flag_set(&alice, "web", "x", Map::new(), None)
            .await,
    );
    assert_not_found(s.delete_flag_set(&alice, "web", None).await);

    let actions: Vec<String> = s
        .audit_log(
            &AuditFilter {
                resource_type: Some("flag_set".to_owned()),
                ..AuditFilter::default()
            },
            100,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{} {}", e.action, e.resource_key))
        .collect();
    assert_eq!(
        actions,
        [
            "flag_set.delete web",
            "flag_set.create api",
            "flag_set.update web",
            "flag_set.update web",
            "flag_set.create web",
        ]
    );
}

async fn segments(db: &TestDb) {
    let s = &db.storage;
    let alice = who("alice");
    s.create_flag_set(&alice, "web", "Web", Map::new())
        .await
        .unwrap();
    let staff_rule = json!({"ends_with": [{"var": "email"}, "@example.com"]});
    let created = s
        .put_segment(
            &alice,
            "web",
            "staff",
            "Employees",
            staff_rule.clone(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        created,
        Segment {
            flag_set: "web".to_owned(),
            key: "staff".to_owned(),
            description: "Employees".to_owned(),
            rule: staff_rule.clone(),
            version: 1,
        }
    );
    assert_eq!(s.segment("web", "staff").await.unwrap(), created);
    assert_conflict(
        s.put_segment(&alice, "web", "staff", "", staff_rule.clone(), None)
            .await,
    );

    let wider = json!({"or": [
        {"ends_with": [{"var": "email"}, "@example.com"]},
        {"ends_with": [{"var": "email"}, "@contractor.example"]}
    ]});
    let updated = s
        .put_segment(
            &alice,
            "web",
            "staff",
            "Employees and contractors",
            wider.clone(),
            Some(1),
        )
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(
        mismatch(
            s.put_segment(&alice, "web", "staff", "", staff_rule.clone(), Some(1))
                .await
        ),
        (2, 1)
    );

    // Invalid rules: every problem with its pointer under /rule.
    let broken = json!({"or": [
        {"ends_with": [{"var": "email"}, "@example.com"]},
        {"nope": [1]},
        {"$ref": "elsewhere"}
    ]});
    assert_eq!(
        problem_paths(
            s.put_segment(&alice, "web", "staff", "", broken.clone(), Some(2))
                .await
        ),
        ["/rule/or/1/nope", "/rule/or/2/$ref"]
    );
    assert_eq!(
        problem_paths(s.put_segment(&alice, "web", "new", "", broken, None).await),
        ["/rule/or/1/nope", "/rule/or/2/$ref"]
    );
    assert_eq!(
        problem_paths(
            s.put_segment(&alice, "web", "list", "", json!([1, 2]), None)
                .await
        ),
        ["/rule"]
    );
    assert_eq!(
        problem_paths(
            s.put_segment(&alice, "web", "bad key", "", staff_rule.clone(), None)
                .await
        ),
        ["/key"]
    );
    assert_not_found(s.segment("web", "new").await);
    assert_eq!(s.segment("web", "staff").await.unwrap(), updated);
    assert_not_found(
        s.put_segment(&alice, "nowhere", "staff", "", staff_rule.clone(), None)
            .await,
    );

    let beta_rule = json!({"in": [{"var": "country"}, ["de", "at"]]});
    s.put_segment(&alice, "web", "beta", "Beta countries", beta_rule, None)
        .await
        .unwrap();
    assert_eq!(
        s.segments("web")
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.key, s.version))
            .collect::<Vec<_>>(),
        [("beta".to_owned(), 1), ("staff".to_owned(), 2)]
    );

    // Flags referencing segments.
    let mut checkout = bool_flag("web", "checkout");
    checkout.environments.insert(
        "production".to_owned(),
        config(
            "ENABLED",
            on_off(),
            Some("off"),
            Some(json!({"if": [{"$ref": "staff"}, "on", "off"]})),
        ),
    );
    s.create_flag(&alice, checkout).await.unwrap();
    let mut search = bool_flag("web", "search");
    search.environments.insert(
        "staging".to_owned(),
        config(
            "ENABLED",
            on_off(),
            Some("off"),
            Some(json!({"if": [{"and": [{"$ref": "beta"}, {"$ref": "staff"}]}, "on", null]})),
        ),
    );
    s.create_flag(&alice, search).await.unwrap();
    s.create_flag(&alice, bool_flag("web", "plain"))
        .await
        .unwrap();
    assert_eq!(
        s.segment_users("web", "staff").await.unwrap(),
        ["checkout", "search"]
    );
    assert_eq!(s.segment_users("web", "beta").await.unwrap(), ["search"]);

    // The segment is served as an evaluator.
    let documents = s.environment_documents("production").await.unwrap();
    assert_eq!(
        document_of(&documents, "web")["$evaluators"]["staff"],
        wider
    );

    // Deleting a used segment is refused.
    let audit_before = all_audit(s).await.len();
    match s.delete_segment(&alice, "web", "staff", Some(2)).await {
        Err(StorageError::Invalid(problems)) => {
            assert_eq!(problems.len(), 1);
            assert_eq!(problems[0].path, "/key");
            assert!(problems[0].message.contains("checkout"), "{problems:?}");
            assert!(problems[0].message.contains("search"), "{problems:?}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert!(s.segment("web", "staff").await.is_ok());
    assert_eq!(all_audit(s).await.len(), audit_before);

    assert_eq!(
        mismatch(s.delete_segment(&alice, "web", "beta", Some(5)).await),
        (1, 5)
    );
    // Once no flag uses it, it can go.
    s.set_flag_config(
        &alice,
        "web",
        "search",
        "staging",
        config("ENABLED", on_off(), Some("on"), None),
        None,
    )
    .await
    .unwrap();
    assert!(s.segment_users("web", "beta").await.unwrap().is_empty());
    s.delete_segment(&alice, "web", "beta", Some(1))
        .await
        .unwrap();
    assert_not_found(s.segment("web", "beta").await);
    assert_not_found(s.delete_segment(&alice, "web", "beta", None).await);
    assert_eq!(
        s.segments("web")
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.key)
            .collect::<Vec<_>>(),
        ["staff"]
    );

    let actions: Vec<String> = s
        .audit_log(
            &AuditFilter {
                resource_type: Some("segment".to_owned()),
                ..AuditFilter::default()
            },
            100,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{} {}", e.action, e.resource_key))
        .collect();
    assert_eq!(
        actions,
        [
            "segment.delete web/beta",
            "segment.create web/beta",
            "segment.update web/staff",
            "segment.create web/staff",
        ]
    );
}

async fn create_flag_with_overrides(db: &TestDb) {
    let s = &db.storage;
    let alice = who("alice");
    s.create_flag_set(&alice, "web", "Web", Map::new())
        .await
        .unwrap();
    let rule = json!({"if": [{"in": ["@example.com", {"var": "email"}]}, "on", "off"]});
    let mut new = bool_flag("web", "checkout");
    new.description = "New checkout".to_owned();
    new.owner = "team-pay".to_owned();
    new.tags = vec!["checkout".to_owned(), "q3".to_owned()];
    new.kind = FlagKind::Experiment;
    new.expires_at = Some(1_900_000_000_000);
    new.metadata = object(json!({"ticket": "PAY-1"}));
    new.environments.insert(
        "production".to_owned(),
        config("ENABLED", on_off(), Some("on"), Some(rule.clone())),
    );
    let flag = s.create_flag(&alice, new.clone()).await.unwrap();

    let base = FlagConfig {
        state: "DISABLED".to_owned(),
        variants: on_off(),
        default_variant: Some("off".to_owned()),
        targeting: None,
        version: 1,
    };
    let mut environments = BTreeMap::new();
    environments.insert("development".to_owned(), base.clone());
    environments.insert("staging".to_owned(), base);
    environments.insert(
        "production".to_owned(),
        FlagConfig {
            state: "ENABLED".to_owned(),
            variants: on_off(),
            default_variant: Some("on".to_owned()),
            targeting: Some(rule),
            version: 1,
        },
    );
    assert_eq!(
        flag,
        Flag {
            flag_set: "web".to_owned(),
            key: "checkout".to_owned(),
            description: "New checkout".to_owned(),
            owner: "team-pay".to_owned(),
            tags: vec!["checkout".to_owned(), "q3".to_owned()],
            kind: FlagKind::Experiment,
            stage: FlagStage::New,
            expires_at: Some(1_900_000_000_000),
            metadata: object(json!({"ticket": "PAY-1"})),
            environments,
            version: 1,
            last_evaluated_at: None,
        }
    );
    assert_eq!(s.flag("web", "checkout").await.unwrap(), flag);

    assert_conflict(s.create_flag(&alice, new.clone()).await);
    let mut unknown_environment = bool_flag("web", "other");
    unknown_environment
        .environments
        .insert("qa".to_owned(), config("ENABLED", on_off(), None, None));
    assert_eq!(
        problem_paths(s.create_flag(&alice, unknown_environment).await),
        ["/environments/qa"]
    );
    assert_eq!(
        problem_paths(s.create_flag(&alice, bool_flag("web", "")).await),
        ["/key"]
    );
    assert_not_found(s.create_flag(&alice, bool_flag("nowhere", "other")).await);
    assert_not_found(s.flag("web", "other").await);

    // The same key may live in another flag set.
    s.create_flag_set(&alice, "api", "API", Map::new())
        .await
        .unwrap();
    let mut same_key = new;
    same_key.flag_set = "api".to_owned();
    assert_eq!(
        s.create_flag(&alice, same_key).await.unwrap().flag_set,
        "api"
    );

    let created = s
        .audit_log(
            &AuditFilter {
                resource_key: Some("web/checkout".to_owned()),
                ..AuditFilter::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].action, "flag.create");
    assert_eq!(created[0].before, None);
    let after = created[0].after.as_ref().expect("after");
    assert_eq!(after["key"], "checkout");
    assert_eq!(after["environments"]["production"]["state"], "ENABLED");
}

async fn invalid_flag_writes_nothing(db: &TestDb) {
    let s = &db.storage;
    let alice = who("alice");
    s.create_flag_set(&alice, "web", "Web", Map::new())
        .await
        .unwrap();
    let audit_before = all_audit(s).await;
    let mut changes = s.local_changes();

    let mut new = bool_flag("web", "broken");
    // development keeps the base: its default variant names no variant.
    new.default_variant = Some("missing".to_owned());
    // staging: variants of two types.
    new.environments.insert(
        "staging".to_owned(),
        config(
            "ENABLED",
            object(json!({"a": true, "b": "yes"})),
            Some("a"),
            None,
        ),
    );
    // production: an unknown operator and an unknown $ref in targeting.
    new.environments.insert(
        "production".to_owned(),
        config(
            "ENABLED",
            on_off(),
            Some("off"),
            Some(json!({"if": [{"$ref": "nobody"}, "on", {"nope": [1]}]})),
        ),
    );
    assert_eq!(
        problem_paths(s.create_flag(&alice, new).await),
        [
            "/environments/development/defaultVariant",
            "/environments/production/targeting/if/0/$ref",
            "/environments/production/targeting/if/2/nope",
            "/environments/staging/variants/b",
        ]
    );

    assert_not_found(s.flag("web", "broken").await);
    let page = s
        .flags(
            &FlagFilter {
                flag_set: Some("web".to_owned()),
                ..FlagFilter::default()
            },
            10,
            0,
        )
        .await
        .unwrap();
    assert_eq!(page.total, 0);
    assert!(page.items.is_empty());
    assert_eq!(all_audit(s).await, audit_before);
    assert!(
        s.audit_log(
            &AuditFilter {
                resource_key: Some("web/broken".to_owned()),
                ..AuditFilter::default()
            },
            10
        )
        .await
        .unwrap()
        .is_empty()
    );
    assert!(matches!(changes.try_recv(), Err(TryRecvError::Empty)));
    let served = s.environment_documents("production").await.unwrap();
    assert!(served_keys(&document_of(&served, "web")).is_empty());
}

async fn list_filters_and_pagination(db: &TestDb) {
    let s = &db.storage;
    let alice = who("alice");
    for set in ["web", "api"] {
        s.create_flag_set(&alice, set, set, Map::new())
            .await
            .unwrap();
    }
    let flag = |set: &str,
                key: &str,
                kind: FlagKind,
                owner: &str,
                tags: &[&str],
                description: &str,
                enabled_in: &[&str]| {
        let mut new = bool_flag(set, key);
        new.kind = kind;
        new.owner = owner.to_owned();
        new.tags = tags.iter().map(|t| (*t).to_owned()).collect();
        new.description = description.to_owned();
        for env in enabled_in {
            new.environments.insert(
                (*env).to_owned(),
                config("ENABLED", on_off(), Some("on"), None),
            );
        }
        new
    };
    let flags = [
        flag(
            "web",
            "checkout-v2",
            FlagKind::Release,
            "pay",
            &["checkout", "beta_1"],
            "New Checkout flow",
            &["production"],
        ),
        flag(
            "web",
            "search-ranking",
            FlagKind::Experiment,
            "search",
            &["Beta"],
            "Ranking experiment",
            &[],
        ),
        flag(
            "web",
            "kill-payments",
            FlagKind::Operational,
            "pay",
            &["ops"],
            "Stops payments",
            &["staging"],
        ),
        flag(
            "web",
            "admin-tools",
            FlagKind::Permission,
            "platform",
            &["betax1"],
            "Admin 100% access",
            &[],
        ),
        flag(
            "web",
            "old-banner",
            FlagKind::Release,
            "web",
            &[],
            "Old banner",
            &["production"],
        ),
        flag(
            "api",
            "rate-limit",
            FlagKind::Operational,
            "platform",
            &["ops"],
            "Limits request rates",
            &["production"],
        ),
    ];
    for new in flags {
        s.create_flag(&alice, new).await.unwrap();
    }
    s.update_flag(
        &alice,
        "web",
        "old-banner",
        FlagPatch {
            stage: Some(FlagStage::Archived),
            ..FlagPatch::default()
        },
        Some(1),
    )
    .await
    .unwrap();
    s.update_flag(
        &alice,
        "web",
        "search-ranking",
        FlagPatch {
            stage: Some(FlagStage::Active),
            ..FlagPatch::default()
        },
        Some(1),
    )
    .await
    .unwrap();

    let all = FlagFilter::default();
    assert_eq!(
        listed(s, all.clone()).await,
        [
            "rate-limit",
            "admin-tools",
            "checkout-v2",
            "kill-payments",
            "search-ranking"
        ]
    );
    assert_eq!(
        listed(
            s,
            FlagFilter {
                flag_set: Some("web".to_owned()),
                ..all.clone()
            }
        )
        .await,
        [
            "admin-tools",
            "checkout-v2",
            "kill-payments",
            "search-ranking"
        ]
    );
    assert_eq!(
        listed(
            s,
            FlagFilter {
                stage: Some(FlagStage::Archived),
                ..all.clone()
            }
        )
        .await,
        ["old-banner"]
    );
    assert_eq!(
        listed(
            s,
            FlagFilter {
                stage: Some(FlagStage::Active),
                ..all.clone()
            }
        )
        .await,
        ["search-ranking"]
    );
    assert_eq!(
        listed(
            s,
            FlagFilter {
                kind: Some(FlagKind::Operational),
                ..all.clone()
            }
        )
        .await,
        ["rate-limit", "kill-payments"]
    );
    let tag = |t: &str| FlagFilter {
        tag: Some(t.to_owned()),
        ..FlagFilter::default()
    };
    assert_eq!(listed(s, tag("ops")).await, ["rate-limit", "kill-payments"]);
    assert_eq!(listed(s, tag("checkout")).await, ["checkout-v2"]);
    // A tag matches whole tags exactly, case included; `_` and `%` are not
    // wildcards (on both backends alike).
    assert_eq!(listed(s, tag("beta_1")).await, ["checkout-v2"]);
    assert_eq!(listed(s, tag("Beta")).await, ["search-ranking"]);
    assert!(listed(s, tag("beta")).await.is_empty());
    assert!(listed(s, tag("BETA")).await.is_empty());
    assert!(listed(s, tag("%")).await.is_empty());
    assert!(listed(s, tag("beta%")).await.is_empty());
    assert!(listed(s, tag("chec")).await.is_empty());
    assert_eq!(
        listed(
            s,
            FlagFilter {
                owner: Some("pay".to_owned()),
                ..all.clone()
            }
        )
        .await,
        ["checkout-v2", "kill-payments"]
    );
    let query = |q: &str| FlagFilter {
        query: Some(q.to_owned()),
        ..FlagFilter::default()
    };
    assert_eq!(listed(s, query("checkout")).await, ["checkout-v2"]);
    assert_eq!(listed(s, query("CHECKOUT flow")).await, ["checkout-v2"]);
    assert_eq!(listed(s, query("payments")).await, ["kill-payments"]);
    assert_eq!(listed(s, query("rank")).await, ["search-ranking"]);
    assert_eq!(listed(s, query("100%")).await, ["admin-tools"]);
    assert_eq!(listed(s, query("%")).await, ["admin-tools"]);
    assert!(listed(s, query("_")).await.is_empty());
    assert!(listed(s, query("banner")).await.is_empty());
    assert_eq!(listed(s, query("")).await.len(), 5);

    let state = |state: &str, environment: Option<&str>| FlagFilter {
        state: Some(state.to_owned()),
        environment: environment.map(str::to_owned),
        ..FlagFilter::default()
    };
    assert_eq!(
        listed(s, state("ENABLED", None)).await,
        ["rate-limit", "checkout-v2"]
    );
    assert_eq!(
        listed(s, state("ENABLED", Some("production"))).await,
        ["rate-limit", "checkout-v2"]
    );
    assert_eq!(
        listed(s, state("ENABLED", Some("staging"))).await,
        ["kill-payments"]
    );
    assert_eq!(
        listed(s, state("DISABLED", Some("staging"))).await,
        ["rate-limit", "admin-tools", "checkout-v2", "search-ranking"]
    );
    assert!(
        listed(s, state("ENABLED", Some("development")))
            .await
            .is_empty()
    );
    assert_eq!(
        listed(
            s,
            FlagFilter {
                flag_set: Some("web".to_owned()),
                owner: Some("pay".to_owned()),
                ..state("ENABLED", Some("production"))
            }
        )
        .await,
        ["checkout-v2"]
    );

    // Pagination.
    let page = |limit: i64, offset: i64| {
        let all = all.clone();
        async move { s.flags(&all, limit, offset).await.unwrap() }
    };
    let first = page(2, 0).await;
    assert_eq!(
        (keys(&first.items), first.total, first.limit, first.offset),
        (
            vec!["rate-limit".to_owned(), "admin-tools".to_owned()],
            5,
            2,
            0
        )
    );
    let second = page(2, 2).await;
    assert_eq!(
        (keys(&second.items), second.total, second.offset),
        (
            vec!["checkout-v2".to_owned(), "kill-payments".to_owned()],
            5,
            2
        )
    );
    let third = page(2, 4).await;
    assert_eq!(
        (keys(&third.items), third.total),
        (vec!["search-ranking".to_owned()], 5)
    );
    let beyond = page(2, 10).await;
    assert!(beyond.items.is_empty());
    assert_eq!(beyond.total, 5);
    let clamped = page(0, -3).await;
    assert_eq!(
        (keys(&clamped.items), clamped.limit, clamped.offset),
        (vec!["rate-limit".to_owned()], 1, 0)
    );
    let filtered = s
        .flags(
            &FlagFilter {
                flag_set: Some("web".to_owned()),
                ..FlagFilter::default()
            },
            1,
            1,
        )
        .await
        .unwrap();
    assert_eq!(
        (keys(&filtered.items), filtered.total),
        (vec!["checkout-v2".to_owned()], 4)
    );
    // Listed flags carry their configurations.
    let first_flag = &first.items[0];
    assert_eq!(first_flag.environments.len(), 3);
    assert_eq!(first_flag.environments["production"].state, "ENABLED");
    // Archived flags stay readable one by one.
    assert_eq!(
        s.flag("web", "old-banner").await.unwrap().stage,
        FlagStage::Archived
    );
}

async fn update_lifecycle_data(db: &TestDb) {
    let s = &db.storage;
    let alice = who("alice");
    s.create_flag_set(&alice, "web", "Web", Map::new())
        .await
        .unwrap();
    let mut new = bool_flag("web", "checkout");
    new.description = "Old".to_owned();
    new.owner = "team-a".to_owned();
    s.create_flag(&alice, new).await.unwrap();

    let updated = s
        .update_flag(
            &alice,
            "web",
            "checkout",
            FlagPatch {
                description: Some("New checkout".to_owned()),
                owner: Some("team-pay".to_owned()),
                tags: Some(vec!["checkout".to_owned()]),
                kind: Some(FlagKind::Operational),
                stage: Some(FlagStage::Active),
                expires_at: Some(Some(1_800_000_000_000)),
                metadata: None,
            },
            Some(1),
        )
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.description, "New checkout");
    assert_eq!(updated.owner, "team-pay");
    assert_eq!(updated.tags, ["checkout"]);
    assert_eq!(updated.kind, FlagKind::Operational);
    assert_eq!(updated.stage, FlagStage::Active);
    assert_eq!(updated.expires_at, Some(1_800_000_000_000));
    assert_eq!(s.flag("web", "checkout").await.unwrap(), updated);

    // Absent fields stay; `Some(None)` clears the expiry.
    let cleared = s
        .update_flag(
            &alice,
            "web",
            "checkout",
            FlagPatch {
                description: Some("Checkout".to_owned()),
                expires_at: Some(None),
                ..FlagPatch::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(cleared.version, 3);
    assert_eq!(cleared.description, "Checkout");
    assert_eq!(cleared.owner, "team-pay");
    assert_eq!(cleared.stage, FlagStage::Active);
    assert_eq!(cleared.expires_at, None);
    assert_eq!(s.flag("web", "checkout").await.unwrap(), cleared);

    assert_eq!(
        mismatch(
            s.update_flag(
                &alice,
                "web",
                "checkout",
                FlagPatch {
                    owner: Some("lost".to_owned()),
                    ..FlagPatch::default()
                },
                Some(2),
            )
            .await
        ),
        (3, 2)
    );

    // Metadata is validated as SDKs will receive it, in every environment.
    assert_eq!(
        problem_paths(
            s.update_flag(
                &alice,
                "web",
                "checkout",
                FlagPatch {
                    metadata: Some(object(json!({"nested": [1]}))),
                    ..FlagPatch::default()
                },
                Some(3),
            )
            .await
        ),
        [
            "/environments/development/metadata/nested",
            "/environments/production/metadata/nested",
            "/environments/staging/metadata/nested",
        ]
    );
    let with_metadata = s
        .update_flag(
            &alice,
            "web",
            "checkout",
            FlagPatch {
                metadata: Some(object(json!({"ticket": "PAY-7"}))),
                ..FlagPatch::default()
            },
            Some(3),
        )
        .await
        .unwrap();
    assert_eq!(with_metadata.version, 4);
    let served = s.environment_documents("staging").await.unwrap();
    assert_eq!(
        document_of(&served, "web")["flags"]["checkout"]["metadata"],
        json!({"ticket": "PAY-7"})
    );
    assert_not_found(
        s.update_flag(&alice, "web", "nope", FlagPatch::default(), None)
            .await,
    );

    let actions: Vec<String> = s
        .audit_log(
            &AuditFilter {
                resource_key: Some("web/checkout".to_owned()),
                ..AuditFilter::default()
            },
            10,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        ["flag.update", "flag.update", "flag.stage", "flag.create"]
    );

    // Last evaluation: only moves forward, does not change the version.
    s.record_evaluations(&[
        ("web".to_owned(), "checkout".to_owned(), 1_000),
        ("web".to_owned(), "unknown".to_owned(), 1_000),
    ])
    .await
    .unwrap();
    assert_eq!(
        s.flag("web", "checkout").await.unwrap().last_evaluated_at,
        Some(1_000)
    );
    s.record_evaluations(&[("web".to_owned(), "checkout".to_owned(), 500)])
        .await
        .unwrap();
    let flag = s.flag("web", "checkout").await.unwrap();
    assert_eq!(flag.last_evaluated_at, Some(1_000));
    assert_eq!(flag.version, 4);
    s.record_evaluations(&[("web".to_owned(), "checkout".to_owned(), 2_000)])
        .await
        .unwrap();
    assert_eq!(
        s.flag("web", "checkout").await.unwrap().last_evaluated_at,
        Some(2_000)
    );

    // The patch's JSON form: null clears the expiry, absence keeps it.
    let patch: FlagPatch = serde_json::from_value(json!({"expires_at": null})).unwrap();
    assert_eq!(patch.expires_at, Some(None));
    let patch: FlagPatch = serde_json::from_value(json!({})).unwrap();
    assert_eq!(patch.expires_at, None);
}

async fn config_toggle_and_copy(db: &TestDb) {
    let s = &db.storage;
    let alice = who("alice");
    s.create_flag_set(&alice, "web", "Web", Map::new())
        .await
        .unwrap();
    s.create_flag(&alice, bool_flag("web", "checkout"))
        .await
        .unwrap();

    let rule = json!({"if": [{"in": ["@example.com", {"var": "email"}]}, "on", "off"]});
    let staged = s
        .set_flag_config(
            &alice,
            "web",
            "checkout",
            "staging",
            config("ENABLED", on_off(), Some("on"), Some(rule.clone())),
            Some(1),
        )
        .await
        .unwrap();
    assert_eq!(staged.version, 2);
    assert_eq!(
        staged.environments["staging"],
        FlagConfig {
            state: "ENABLED".to_owned(),
            variants: on_off(),
            default_variant: Some("on".to_owned()),
            targeting: Some(rule.clone()),
            version: 2,
        }
    );
    assert_eq!(staged.environments["development"].version, 1);
    assert_eq!(staged.environments["production"].version, 1);
    assert_eq!(staged.environments["production"].state, "DISABLED");

    let on = s
        .toggle_flag(&alice, "web", "checkout", "production", true, Some(2))
        .await
        .unwrap();
    assert_eq!(on.version, 3);
    assert_eq!(on.environments["production"].state, "ENABLED");
    assert_eq!(on.environments["production"].version, 2);
    assert_eq!(
        on.environments["production"].default_variant.as_deref(),
        Some("off")
    );
    let off = s
        .toggle_flag(&alice, "web", "checkout", "production", false, None)
        .await
        .unwrap();
    assert_eq!(off.version, 4);
    assert_eq!(off.environments["production"].state, "DISABLED");

    let copied = s
        .copy_flag_config(&alice, "web", "checkout", "staging", "production", Some(4))
        .await
        .unwrap();
    assert_eq!(copied.version, 5);
    assert_eq!(
        copied.environments["production"],
        FlagConfig {
            version: 4,
            ..copied.environments["staging"].clone()
        }
    );
    assert_eq!(copied.environments["development"].state, "DISABLED");
    assert_eq!(s.flag("web", "checkout").await.unwrap(), copied);

    // Invalid configurations are refused whole, with paths in the environment.
    let audit_before = all_audit(s).await.len();
    assert_eq!(
        problem_paths(
            s.set_flag_config(
                &alice,
                "web",
                "checkout",
                "production",
                config(
                    "ENABLED",
                    object(json!({"a": true, "b": 0})),
                    Some("zzz"),
                    Some(json!({"nope": []})),
                ),
                Some(5),
            )
            .await
        ),
        [
            "/environments/production/defaultVariant",
            "/environments/production/targeting/nope",
            "/environments/production/variants/b",
        ]
    );
    assert_eq!(
        problem_paths(
            s.set_flag_config(
                &alice,
                "web",
                "checkout",
                "staging",
                config("ON", on_off(), Some("on"), None),
                None,
            )
            .await
        ),
        ["/environments/staging/state"]
    );
    assert_eq!(s.flag("web", "checkout").await.unwrap(), copied);
    assert_eq!(all_audit(s).await.len(), audit_before);

    assert_not_found(
        s.toggle_flag(&alice, "web", "checkout", "qa", true, None)
            .await,
    );
    assert_not_found(
        s.toggle_flag(&alice, "web", "nope", "production", true, None)
            .await,
    );
    assert_not_found(
        s.copy_flag_config(&alice, "web", "checkout", "qa", "production", None)
            .await,
    );
    assert_eq!(
        mismatch(
            s.toggle_flag(&alice, "web", "checkout", "staging", false, Some(4))
                .await
        ),
        (5, 4)
    );

    let trail: Vec<(String, Option<String>)> = s
        .audit_log(
            &AuditFilter {
                resource_key: Some("web/checkout".to_owned()),
                ..AuditFilter::default()
            },
            10,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.environment))
        .collect();
    let production = Some("production".to_owned());
    assert_eq!(
        trail,
        [
            ("flag.copy".to_owned(), production.clone()),
            ("flag.toggle".to_owned(), production.clone()),
            ("flag.toggle".to_owned(), production),
            ("flag.configure".to_owned(), Some("staging".to_owned())),
            ("flag.create".to_owned(), None),
        ]
    );

    // Deleting checks the version too.
    assert_eq!(
        mismatch(s.delete_flag(&alice, "web", "checkout", Some(4)).await),
        (5, 4)
    );
    s.delete_flag(&alice, "web", "checkout", Some(5))
        .await
        .unwrap();
    assert_not_found(s.flag("web", "checkout").await);
    assert_not_found(s.delete_flag(&alice, "web", "checkout", None).await);
}

/// A write of any kind, its result reduced to success or failure.
type BoxedWrite = std::pin::Pin<Box<dyn Future<Output = Result<(), StorageError>> + Send>>;

/// Runs `writes` at once; returns how many succeeded and how many were
/// refused as stale. Any other outcome fails the test.
async fn race<F, T>(writes: Vec<F>) -> (usize, usize)
where
    F: Future<Output = Result<T, StorageError>> + Send + 'static,
    T: Debug + Send + 'static,
{
    let handles: Vec<_> = writes.into_iter().map(tokio::spawn).collect();
    let (mut won, mut stale) = (0, 0);
    for handle in handles {
        match handle.await.unwrap() {
            Ok(_) => won += 1,
            Err(StorageError::VersionMismatch { .. }) => stale += 1,
            Err(other) => panic!("a racing write failed otherwise: {other:?}"),
        }
    }
    (won, stale)
}

async fn concurrent_editors(db: &TestDb) {
    let s = &db.storage;
    let alice = who("alice");
    let bob = who("bob");
    s.create_flag_set(&alice, "web", "Web", Map::new())
        .await
        .unwrap();
    s.create_flag(&alice, bool_flag("web", "checkout"))
        .await
        .unwrap();

    // Two editors read version N.
    let seen_by_alice = s.flag("web", "checkout").await.unwrap();
    let seen_by_bob = s.flag("web", "checkout").await.unwrap();
    assert_eq!(seen_by_alice.version, 1);
    assert_eq!(seen_by_bob.version, 1);

    // The first write succeeds.
    s.toggle_flag(
        &alice,
        "web",
        "checkout",
        "production",
        true,
        Some(seen_by_alice.version),
    )
    .await
    .unwrap();

    // Every write of the second editor at N is refused.
    let mut bobs = seen_by_bob.environments["production"].clone();
    bobs.default_variant = Some("on".to_owned());
    assert_eq!(
        mismatch(
            s.set_flag_config(
                &bob,
                "web",
                "checkout",
                "production",
                bobs,
                Some(seen_by_bob.version),
            )
            .await
        ),
        (2, 1)
    );
    assert_eq!(
        mismatch(
            s.toggle_flag(&bob, "web", "checkout", "staging", true, Some(1))
                .await
        ),
        (2, 1)
    );
    assert_eq!(
        mismatch(
            s.update_flag(
                &bob,
                "web",
                "checkout",
                FlagPatch {
                    owner: Some("bob".to_owned()),
                    ..FlagPatch::default()
                },
                Some(1),
            )
            .await
        ),
        (2, 1)
    );
    assert_eq!(
        mismatch(
            s.copy_flag_config(&bob, "web", "checkout", "production", "staging", Some(1))
                .await
        ),
        (2, 1)
    );
    assert_eq!(
        mismatch(s.delete_flag(&bob, "web", "checkout", Some(1)).await),
        (2, 1)
    );
    let now = s.flag("web", "checkout").await.unwrap();
    assert_eq!(now.version, 2);
    assert_eq!(now.environments["production"].state, "ENABLED");
    assert_eq!(
        now.environments["production"].default_variant.as_deref(),
        Some("off")
    );
    assert_eq!(now.environments["staging"].state, "DISABLED");
    assert_eq!(now.owner, "");
    assert!(
        s.audit_log(
            &AuditFilter {
                actor: Some("user:bob".to_owned()),
                ..AuditFilter::default()
            },
            10
        )
        .await
        .unwrap()
        .is_empty()
    );

    // Truly at once: exactly one writer of each resource wins.
    let writers = 6;
    let toggles = (0..writers)
        .map(|i| {
            let s = s.clone();
            async move {
                s.toggle_flag(
                    &who(&format!("w{i}")),
                    "web",
                    "checkout",
                    "production",
                    i % 2 == 0,
                    Some(2),
                )
                .await
            }
        })
        .collect();
    assert_eq!(race(toggles).await, (1, writers - 1));
    let patches = (0..writers)
        .map(|i| {
            let s = s.clone();
            async move {
                s.update_flag(
                    &who(&format!("w{i}")),
                    "web",
                    "checkout",
                    FlagPatch {
                        owner: Some(format!("w{i}")),
                        ..FlagPatch::default()
                    },
                    Some(3),
                )
                .await
            }
        })
        .collect();
    assert_eq!(race(patches).await, (1, writers - 1));
    let flag = s.flag("web", "checkout").await.unwrap();
    assert_eq!(flag.version, 4);
    // The winner's write is the one stored, and the only one audited.
    let patch_audit = s
        .audit_log(
            &AuditFilter {
                resource_key: Some("web/checkout".to_owned()),
                ..AuditFilter::default()
            },
            1,
        )
        .await
        .unwrap();
    assert_eq!(patch_audit[0].actor, format!("user:{}", flag.owner));

    // A delete racing edits of the version it read: one of them wins.
    let mut mixed: Vec<BoxedWrite> = Vec::new();
    {
        let s = s.clone();
        mixed.push(Box::pin(async move {
            s.delete_flag(&who("deleter"), "web", "checkout", Some(4))
                .await
        }));
    }
    for i in 0..writers - 1 {
        let s = s.clone();
        mixed.push(Box::pin(async move {
            s.toggle_flag(
                &who(&format!("w{i}")),
                "web",
                "checkout",
                "staging",
                true,
                Some(4),
            )
            .await
            .map(|_| ())
        }));
    }
    let handles: Vec<_> = mixed.into_iter().map(tokio::spawn).collect();
    let mut outcomes = Vec::new();
    for handle in handles {
        outcomes.push(handle.await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    if outcomes[0].is_ok() {
        // The delete won: the edits found a newer version or no flag at all.
        assert!(
            outcomes[1..].iter().all(|o| matches!(
                o,
                Err(StorageError::VersionMismatch { .. } | StorageError::NotFound(_))
            )),
            "{outcomes:?}"
        );
        assert_not_found(s.flag("web", "checkout").await);
    } else {
        // An edit won: the delete of the version it read was refused.
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Ok(()) | Err(StorageError::VersionMismatch { .. }))),
            "{outcomes:?}"
        );
        let flag = s.flag("web", "checkout").await.unwrap();
        assert_eq!(flag.version, 5);
        assert_eq!(flag.environments["staging"].state, "ENABLED");
    }

    let sets = (0..writers)
        .map(|i| {
            let s = s.clone();
            async move {
                s.update_flag_set(
                    &who(&format!("w{i}")),
                    "web",
                    &format!("Web {i}"),
                    Map::new(),
                    Some(1),
                )
                .await
            }
        })
        .collect();
    assert_eq!(race(sets).await, (1, writers - 1));
    assert_eq!(s.flag_set("web").await.unwrap().version, 2);

    s.put_segment(&alice, "web", "staff", "", json!({"==": [1, 1]}), None)
        .await
        .unwrap();
    let segments = (0..writers)
        .map(|i| {
            let s = s.clone();
            async move {
                s.put_segment(
                    &who(&format!("w{i}")),
                    "web",
                    "staff",
                    &format!("by w{i}"),
                    json!({"==": [i, i]}),
                    Some(1),
                )
                .await
            }
        })
        .collect();
    assert_eq!(race(segments).await, (1, writers - 1));
    let segment = s.segment("web", "staff").await.unwrap();
    assert_eq!(segment.version, 2);
    let winner: usize = segment.description["by w".len()..].parse().unwrap();
    assert_eq!(segment.rule, json!({"==": [winner, winner]}));

    let renames = (0..writers)
        .map(|i| {
            let s = s.clone();
            async move {
                s.rename_environment(&who(&format!("w{i}")), "staging", "Stage", Some(1))
                    .await
            }
        })
        .collect();
    assert_eq!(race(renames).await, (1, writers - 1));
}

async fn archived_flags_are_not_served(db: &TestDb) {
    let s = &db.storage;
    let alice = who("alice");
    s.create_flag_set(&alice, "web", "Web", object(json!({"team": "web"})))
        .await
        .unwrap();
    s.create_flag_set(&alice, "empty", "Empty", Map::new())
        .await
        .unwrap();
    let staff = json!({"ends_with": [{"var": "email"}, "@example.com"]});
    s.put_segment(&alice, "web", "staff", "", staff.clone(), None)
        .await
        .unwrap();
    for key in ["live", "retired"] {
        let mut new = bool_flag("web", key);
        new.state = "ENABLED".to_owned();
        new.targeting = Some(json!({"if": [{"$ref": "staff"}, "on", "off"]}));
        s.create_flag(&alice, new).await.unwrap();
    }

    let documents = s.environment_documents("production").await.unwrap();
    assert_eq!(
        documents
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>(),
        ["empty", "web"]
    );
    let web = document_of(&documents, "web");
    assert_eq!(web["metadata"], json!({"team": "web", "flagSetId": "web"}));
    assert_eq!(web["$evaluators"], json!({"staff": staff}));
    assert_eq!(served_keys(&web), ["live", "retired"]);
    assert_eq!(
        document_of(&documents, "empty"),
        json!({"metadata": {"flagSetId": "empty"}, "$evaluators": {}, "flags": {}})
    );

    s.update_flag(
        &alice,
        "web",
        "retired",
        FlagPatch {
            stage: Some(FlagStage::Archived),
            ..FlagPatch::default()
        },
        None,
    )
    .await
    .unwrap();
    for environment in ["development", "staging", "production"] {
        let documents = s.environment_documents(environment).await.unwrap();
        assert_eq!(
            served_keys(&document_of(&documents, "web")),
            ["live"],
            "{environment}"
        );
    }
    let web = document_of(&s.environment_documents("production").await.unwrap(), "web");
    assert_eq!(s.export("production", "web").await.unwrap(), web);

    // What an evaluating process makes of it.
    let loaded = load_value(&web, &Limits::default()).unwrap();
    let snapshot = Snapshot::build(
        vec![Source::new("database", loaded.document)],
        EvaluationOptions::default(),
    );
    let employee = context(json!({"targetingKey": "u1", "email": "ann@example.com"}));
    let live = snapshot.resolve("live", RequestedType::Boolean, &employee, 0);
    assert_eq!(live.variant, Some("on"));
    assert_eq!(live.reason, Reason::TargetingMatch);
    let retired = snapshot.resolve("retired", RequestedType::Boolean, &employee, 0);
    assert_eq!(
        retired.error_code().map(|c| c.as_str()),
        Some("FLAG_NOT_FOUND")
    );

    // Back from the archive, it is served again.
    s.update_flag(
        &alice,
        "web",
        "retired",
        FlagPatch {
            stage: Some(FlagStage::Stale),
            ..FlagPatch::default()
        },
        None,
    )
    .await
    .unwrap();
    let documents = s.environment_documents("production").await.unwrap();
    assert_eq!(
        served_keys(&document_of(&documents, "web")),
        ["live", "retired"]
    );

    assert_not_found(s.environment_documents("qa").await);
    assert_not_found(s.export("production", "nope").await);
}

async fn export_import_round_trip(db: &TestDb) {
    let s = &db.storage;
    let alice = who("alice");
    s.create_flag_set(
        &alice,
        "web",
        "Web",
        object(json!({"team": "web", "tier": 1})),
    )
    .await
    .unwrap();
    s.put_segment(
        &alice,
        "web",
        "staff",
        "Employees",
        json!({"ends_with": [{"var": "email"}, "@example.com"]}),
        None,
    )
    .await
    .unwrap();
    s.put_segment(
        &alice,
        "web",
        "beta",
        "Beta countries",
        json!({"in": [{"var": "country"}, ["de", "at"]]}),
        None,
    )
    .await
    .unwrap();

    let enabled =
        |key: &str, variants: Value, default_variant: Option<&str>, targeting: Option<Value>| {
            let mut new = bool_flag("web", key);
            new.state = "ENABLED".to_owned();
            new.variants = object(variants);
            new.default_variant = default_variant.map(str::to_owned);
            new.targeting = targeting;
            new
        };
    let mut checkout = enabled(
        "new-checkout",
        json!({"on": true, "off": false}),
        Some("off"),
        Some(json!({"if": [
            {"$ref": "staff"}, "on",
            {"fractional": [["on", 30], ["off", 70]]}
        ]})),
    );
    checkout.metadata = object(json!({"ticket": "PAY-1", "team": "payments"}));
    let flags = vec![
        checkout,
        enabled(
            "banner-text",
            json!({"summer": "Summer sale", "winter": "Winter sale", "none": ""}),
            Some("none"),
            Some(json!({"if": [
                {"$ref": "beta"}, "summer",
                {"sem_ver": [{"var": "appVersion"}, ">=", "2.0.0"]}, "winter",
                null
            ]})),
        ),
        enabled(
            "max-items",
            json!({"small": 10, "large": 100.5}),
            Some("small"),
            Some(json!({"if": [{">=": [{"var": "age"}, 18]}, "large", "small"]})),
        ),
        enabled(
            "theme",
            json!({"dark": {"bg": "#000"}, "light": {"bg": "#fff"}}),
            Some("light"),
            None,
        ),
        enabled(
            "no-default",
            json!({"on": true, "off": false}),
            None,
            Some(json!({"if": [{"==": [{"var": "plan"}, "pro"]}, "on", null]})),
        ),
        enabled(
            "odd-answer",
            json!({"on": true, "off": false}),
            Some("off"),
            Some(json!({"if": [{"var": "purple"}, "purple", null]})),
        ),
        bool_flag("web", "switched-off"),
        enabled(
            "retired",
            json!({"on": true, "off": false}),
            Some("on"),
            None,
        ),
    ];
    for mut new in flags {
        // Staging differs everywhere: only production is exported.
        new.environments.insert(
            "staging".to_owned(),
            config(
                "DISABLED",
                new.variants.clone(),
                new.default_variant.as_deref(),
                None,
            ),
        );
        s.create_flag(&alice, new).await.unwrap();
    }
    s.update_flag(
        &alice,
        "web",
        "retired",
        FlagPatch {
            stage: Some(FlagStage::Archived),
            ..FlagPatch::default()
        },
        None,
    )
    .await
    .unwrap();

    let mut contexts = vec![
        context(json!({})),
        context(json!({"targetingKey": "u1", "email": "ann@example.com"})),
        context(json!({"targetingKey": "u2", "country": "de", "appVersion": "2.1.0", "age": 30})),
        context(json!({"targetingKey": "u3", "appVersion": "1.0.0", "age": 12, "purple": true})),
        context(
            json!({"targetingKey": "u4", "email": "bob@other.org", "country": "fr",
                       "appVersion": "3.0.0", "plan": "pro"}),
        ),
    ];
    contexts.extend((0..20).map(|i| context(json!({"targetingKey": format!("user-{i}")}))));

    let original = s.export("production", "web").await.unwrap();
    let expected = evaluations(&original, &contexts);
    // The evaluations cover every kind of outcome.
    for reason in ["STATIC", "TARGETING_MATCH", "DEFAULT", "DISABLED", "ERROR"] {
        assert!(
            expected
                .iter()
                .any(|line| line.contains(&format!("reason={reason} "))),
            "no {reason} among {expected:#?}"
        );
    }
    assert!(!expected.iter().any(|line| line.starts_with("retired ")));

    // Into a new flag set, another environment.
    let mut imported = s
        .import(&alice, "staging", "mobile", &original, ALL)
        .await
        .unwrap();
    imported.sort();
    assert_eq!(
        imported,
        [
            "banner-text",
            "max-items",
            "new-checkout",
            "no-default",
            "odd-answer",
            "switched-off",
            "theme",
        ]
    );
    let copy = s.export("staging", "mobile").await.unwrap();
    assert_same_evaluations(&evaluations(&copy, &contexts), &expected, "imported");
    assert_eq!(copy["metadata"]["flagSetId"], "mobile");
    assert_eq!(copy["$evaluators"], original["$evaluators"]);
    assert_eq!(copy["flags"], original["flags"]);
    assert_eq!(
        s.segments("mobile")
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.key)
            .collect::<Vec<_>>(),
        ["beta", "staff"]
    );
    // New flags are disabled in the other environments.
    for environment in ["development", "production"] {
        let other = s.export(environment, "mobile").await.unwrap();
        for (key, definition) in other["flags"].as_object().unwrap() {
            assert_eq!(definition["state"], "DISABLED", "{environment} {key}");
        }
    }

    // Importing again replaces configurations and changes nothing served.
    s.import(&alice, "staging", "mobile", &original, ALL)
        .await
        .unwrap();
    assert_same_evaluations(
        &evaluations(&s.export("staging", "mobile").await.unwrap(), &contexts),
        &expected,
        "imported twice",
    );

    // Into the existing flag set, another environment of it.
    s.import(&alice, "development", "web", &original, ALL)
        .await
        .unwrap();
    let development = s.export("development", "web").await.unwrap();
    assert_same_evaluations(
        &evaluations(&development, &contexts),
        &expected,
        "imported into an existing flag set",
    );
    assert_eq!(
        s.flag("web", "retired").await.unwrap().stage,
        FlagStage::Archived
    );

    // An invalid document is refused whole: not even its flag set is created.
    let invalid = json!({"flags": {
        "good": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a"},
        "bad": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "b"}
    }});
    assert_eq!(
        problem_paths(s.import(&alice, "production", "ghost", &invalid, ALL).await),
        ["/flags/bad/defaultVariant"]
    );
    assert_not_found(s.flag_set("ghost").await);
    assert_not_found(s.import(&alice, "qa", "web", &original, ALL).await);
}

async fn one_environment_imports_change_only_configurations(db: &TestDb) {
    let s = &db.storage;
    let alice = who("alice");
    let one = ImportScope::OneEnvironment;
    s.create_flag_set(&alice, "web", "Web", Map::new())
        .await
        .unwrap();
    s.put_segment(
        &alice,
        "web",
        "staff",
        "",
        json!({"in": ["@example.com", {"var": "email"}]}),
        None,
    )
    .await
    .unwrap();
    let mut banner = bool_flag("web", "banner");
    banner.metadata = object(json!({"owner": "growth", "ticket": "WEB-1"}));
    s.create_flag(&alice, banner).await.unwrap();
    let stored = s.flag("web", "banner").await.unwrap();
    let exported = s.export("staging", "web").await.unwrap();

    // Changing only staging's configuration (metadata and segments as
    // stored) is allowed and changes nothing else.
    let mut staging_only = exported.clone();
    staging_only["flags"]["banner"]["state"] = json!("ENABLED");
    staging_only["flags"]["banner"]["defaultVariant"] = json!("on");
    let imported = s
        .import(&alice, "staging", "web", &staging_only, one)
        .await
        .unwrap();
    assert_eq!(imported, ["banner"]);
    let after = s.flag("web", "banner").await.unwrap();
    assert_eq!(after.environments["staging"].state, "ENABLED");
    assert_eq!(after.metadata, stored.metadata);
    assert_eq!(
        after.environments["production"],
        stored.environments["production"]
    );
    assert_eq!(s.segment("web", "staff").await.unwrap().version, 1);

    // Anything every environment shares is refused before anything is
    // written, each item named: a flag's metadata (a changed owner, a key
    // left out), a new flag, a new and a changed segment.
    let mut shared = staging_only.clone();
    shared["flags"]["banner"]["state"] = json!("DISABLED");
    shared["flags"]["banner"]["metadata"] = json!({"owner": "mallory"});
    shared["flags"]["extra"] =
        json!({"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a"});
    shared["$evaluators"]["staff"] = json!({"in": ["@evil.example", {"var": "email"}]});
    shared["$evaluators"]["everyone"] = json!({"==": [1, 1]});
    let before_audit = all_audit(s).await.len();
    match s.import(&alice, "staging", "web", &shared, one).await {
        Err(StorageError::Shared(mut changes)) => {
            changes.sort();
            assert_eq!(
                changes,
                [
                    "flag \"web/extra\" (new)",
                    "metadata of flag \"web/banner\"",
                    "segment \"web/everyone\" (new)",
                    "segment \"web/staff\" (changed)",
                ]
            );
        }
        other => panic!("expected a shared-change refusal, got {other:?}"),
    }
    let unchanged = s.flag("web", "banner").await.unwrap();
    assert_eq!(unchanged.metadata, stored.metadata);
    assert_eq!(unchanged.environments["staging"].state, "ENABLED");
    assert_not_found(s.flag("web", "extra").await);
    assert_not_found(s.segment("web", "everyone").await);
    assert_eq!(s.segment("web", "staff").await.unwrap().version, 1);
    assert_eq!(all_audit(s).await.len(), before_audit, "nothing written");
    // A new flag set is shared too.
    assert!(matches!(
        s.import(&alice, "staging", "mobile", &staging_only, one).await,
        Err(StorageError::Shared(changes)) if changes.contains(&"flag set \"mobile\" (new)".to_owned())
    ));
    assert_not_found(s.flag_set("mobile").await);

    // Without the limit the same document changes the metadata.
    s.import(&alice, "staging", "web", &shared, ALL)
        .await
        .unwrap();
    let changed = s.flag("web", "banner").await.unwrap();
    assert_eq!(changed.metadata, object(json!({"owner": "mallory"})));
    assert_eq!(s.segment("web", "staff").await.unwrap().version, 2);
}

async fn tokens(db: &TestDb) {
    let s = &db.storage;
    let admin = who("admin");
    let (token, secret) = s
        .create_token(
            &admin,
            NewToken {
                name: "ci-deployer".to_owned(),
                role: Role::Editor,
                environments: Some(vec!["staging".to_owned()]),
            },
        )
        .await
        .unwrap();
    assert_eq!(token.name, "ci-deployer");
    assert_eq!(token.role, Role::Editor);
    assert_eq!(token.environments, Some(vec!["staging".to_owned()]));
    assert_eq!(token.revoked_at, None);
    assert!(token.created_at > 0);
    assert!(secret.starts_with("ens_"), "{secret}");
    assert!(secret.len() >= 40);
    assert!(token.covers("staging"));
    assert!(!token.covers("production"));

    // Verified by its secret, and only by it.
    assert_eq!(s.verify_token(&secret).await.unwrap(), Some(token.clone()));
    assert_eq!(s.verify_token("ens_wrong").await.unwrap(), None);
    assert_eq!(s.verify_token("").await.unwrap(), None);

    // The database keeps a SHA-256 of it, never the secret itself.
    let rows = sqlx::query("SELECT name, secret_hash, role, environments FROM tokens")
        .fetch_all(s.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let stored: String = rows[0].try_get("secret_hash").unwrap();
    assert_ne!(stored, secret);
    assert!(!stored.contains(&secret));
    let digest: String = Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(stored, digest);
    for column in ["name", "role"] {
        let value: String = rows[0].try_get(column).unwrap();
        assert!(!value.contains(&secret));
    }
    let audit_text = serde_json::to_string(&all_audit(s).await).unwrap();
    assert!(!audit_text.contains(&secret));
    assert!(!audit_text.contains(&stored));

    // Each secret is new.
    let (viewer, other_secret) = s
        .create_token(
            &admin,
            NewToken {
                name: "dashboard".to_owned(),
                role: Role::Viewer,
                environments: None,
            },
        )
        .await
        .unwrap();
    assert_ne!(other_secret, secret);
    assert!(viewer.covers("production"));
    assert_eq!(
        s.verify_token(&other_secret).await.unwrap().map(|t| t.name),
        Some("dashboard".to_owned())
    );

    assert_conflict(
        s.create_token(
            &admin,
            NewToken {
                name: "dashboard".to_owned(),
                role: Role::Admin,
                environments: None,
            },
        )
        .await,
    );
    assert_eq!(
        problem_paths(
            s.create_token(
                &admin,
                NewToken {
                    name: "scoped".to_owned(),
                    role: Role::Editor,
                    environments: Some(vec!["staging".to_owned(), "qa".to_owned()]),
                },
            )
            .await
        ),
        ["/environments/1"]
    );
    assert_eq!(
        problem_paths(
            s.create_token(
                &admin,
                NewToken {
                    name: "  ".to_owned(),
                    role: Role::Viewer,
                    environments: None,
                },
            )
            .await
        ),
        ["/name"]
    );
    assert_eq!(
        s.tokens()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect::<Vec<_>>(),
        ["ci-deployer", "dashboard"]
    );

    // Revoked: the secret stops working.
    let revoked = s.revoke_token(&admin, "ci-deployer").await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(s.verify_token(&secret).await.unwrap(), None);
    assert!(s.verify_token(&other_secret).await.unwrap().is_some());
    assert_not_found(s.revoke_token(&admin, "ci-deployer").await);
    assert_not_found(s.revoke_token(&admin, "nobody").await);
    let listed = s.tokens().await.unwrap();
    assert_eq!(listed[0], revoked);
    assert_eq!(listed[1].revoked_at, None);

    let trail = s
        .audit_log(
            &AuditFilter {
                resource_type: Some("token".to_owned()),
                ..AuditFilter::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        trail
            .iter()
            .map(|e| format!("{} {} {}", e.actor, e.action, e.resource_key))
            .collect::<Vec<_>>(),
        [
            "user:admin token.revoke ci-deployer",
            "user:admin token.create dashboard",
            "user:admin token.create ci-deployer",
        ]
    );
    assert_eq!(trail[0].before, Some(serde_json::to_value(&token).unwrap()));
    assert_eq!(
        trail[0].after,
        Some(serde_json::to_value(&revoked).unwrap())
    );
    assert_eq!(trail[2].after, Some(serde_json::to_value(&token).unwrap()));
}

async fn audit_log(db: &TestDb) {
    let s = &db.storage;
    let alice = who("alice");
    let bob = saying("bob", "turning it on for the launch");
    s.create_flag_set(&alice, "web", "Web", Map::new())
        .await
        .unwrap();
    s.create_flag(&saying("bob", "for Q3"), bool_flag("web", "checkout"))
        .await
        .unwrap();
    s.toggle_flag(&bob, "web", "checkout", "production", true, Some(1))
        .await
        .unwrap();
    s.update_flag(
        &alice,
        "web",
        "checkout",
        FlagPatch {
            owner: Some("team-pay".to_owned()),
            ..FlagPatch::default()
        },
        Some(2),
    )
    .await
    .unwrap();
    s.put_segment(&alice, "web", "staff", "", json!({"==": [1, 1]}), None)
        .await
        .unwrap();
    s.toggle_flag(&alice, "web", "checkout", "staging", true, Some(3))
        .await
        .unwrap();
    // Refused writes leave no trace.
    s.toggle_flag(&bob, "web", "checkout", "staging", false, Some(1))
        .await
        .unwrap_err();
    s.create_flag(&bob, bool_flag("web", "checkout"))
        .await
        .unwrap_err();

    let entries = all_audit(s).await;
    assert_eq!(
        entries
            .iter()
            .map(|e| (
                e.actor.as_str(),
                e.action.as_str(),
                e.resource_type.as_str(),
                e.resource_key.as_str(),
                e.environment.as_deref()
            ))
            .collect::<Vec<_>>(),
        [
            (
                "user:alice",
                "flag.toggle",
                "flag",
                "web/checkout",
                Some("staging")
            ),
            ("user:alice", "segment.create", "segment", "web/staff", None),
            ("user:alice", "flag.update", "flag", "web/checkout", None),
            (
                "user:bob",
                "flag.toggle",
                "flag",
                "web/checkout",
                Some("production")
            ),
            ("user:bob", "flag.create", "flag", "web/checkout", None),
            ("user:alice", "flag_set.create", "flag_set", "web", None),
        ]
    );
    // Newest first, ids and times in order.
    for pair in entries.windows(2) {
        assert!(pair[0].id > pair[1].id);
        assert!(pair[0].at >= pair[1].at);
    }
    assert!(entries.iter().all(|e| e.at > 1_600_000_000_000));

    let toggle = &entries[3];
    assert_eq!(
        toggle.comment.as_deref(),
        Some("turning it on for the launch")
    );
    let before = toggle.before.as_ref().expect("before");
    let after = toggle.after.as_ref().expect("after");
    assert_eq!(before["state"], "DISABLED");
    assert_eq!(after["state"], "ENABLED");
    assert_eq!(after["default_variant"], "off");
    assert_eq!(entries[4].comment.as_deref(), Some("for Q3"));
    assert_eq!(entries[4].before, None);
    assert_eq!(entries[4].after.as_ref().unwrap()["key"], "checkout");
    assert_eq!(entries[2].comment, None);
    assert_eq!(entries[2].before.as_ref().unwrap()["owner"], "");
    assert_eq!(entries[2].after.as_ref().unwrap()["owner"], "team-pay");
    assert_eq!(entries[2].after.as_ref().unwrap()["version"], 3);
    assert_eq!(entries[1].before, None);
    assert_eq!(
        entries[1].after.as_ref().unwrap()["rule"],
        json!({"==": [1, 1]})
    );

    // Filters.
    let filtered = |filter: AuditFilter| async move {
        s.audit_log(&filter, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect::<Vec<_>>()
    };
    let ids = |indexes: &[usize]| indexes.iter().map(|&i| entries[i].id).collect::<Vec<_>>();
    assert_eq!(
        filtered(AuditFilter {
            resource_type: Some("flag".to_owned()),
            ..AuditFilter::default()
        })
        .await,
        ids(&[0, 2, 3, 4])
    );
    assert_eq!(
        filtered(AuditFilter {
            resource_key: Some("web/staff".to_owned()),
            ..AuditFilter::default()
        })
        .await,
        ids(&[1])
    );
    assert_eq!(
        filtered(AuditFilter {
            actor: Some("user:bob".to_owned()),
            ..AuditFilter::default()
        })
        .await,
        ids(&[3, 4])
    );
    assert_eq!(
        filtered(AuditFilter {
            environment: Some("production".to_owned()),
            ..AuditFilter::default()
        })
        .await,
        ids(&[3])
    );
    assert_eq!(
        filtered(AuditFilter {
            resource_type: Some("flag".to_owned()),
            actor: Some("user:alice".to_owned()),
            ..AuditFilter::default()
        })
        .await,
        ids(&[0, 2])
    );
    assert_eq!(
        filtered(AuditFilter {
            before: Some(entries[2].id),
            ..AuditFilter::default()
        })
        .await,
        ids(&[3, 4, 5])
    );

    // Paging backwards by `before`.
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = s
            .audit_log(
                &AuditFilter {
                    before,
                    ..AuditFilter::default()
                },
                4,
            )
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|e| e.id);
        pages.push(page.into_iter().map(|e| e.id).collect::<Vec<_>>());
    }
    assert_eq!(pages, [ids(&[0, 1, 2, 3]), ids(&[4, 5])]);
    // The page size is at least one.
    assert_eq!(
        s.audit_log(&AuditFilter::default(), 0).await.unwrap().len(),
        1
    );
}

/// The environment of the next announced change (`Some(None)`: every
/// environment), checking its commit time; `None` when nothing was announced.
fn next_change(
    changes: &mut tokio::sync::broadcast::Receiver<Change>,
    since: i64,
) -> Option<Option<String>> {
    match changes.try_recv() {
        Ok(change) => {
            assert!(change.committed_at >= since, "{change:?} before {since}");
            assert!(change.committed_at <= now_millis(), "{change:?}");
            Some(change.environment)
        }
        Err(TryRecvError::Empty) => None,
        Err(other) => panic!("receiving changes: {other:?}"),
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn local_changes(db: &TestDb) {
    let s = &db.storage;
    let alice = who("alice");
    let start = now_millis();
    let mut changes = s.local_changes();
    let everywhere = Some(None);
    let only = |env: &str| Some(Some(env.to_owned()));

    s.create_flag_set(&alice, "web", "Web", Map::new())
        .await
        .unwrap();
    assert_eq!(next_change(&mut changes, start), everywhere);
    s.create_flag(&alice, bool_flag("web", "checkout"))
        .await
        .unwrap();
    assert_eq!(next_change(&mut changes, start), everywhere);
    s.toggle_flag(&alice, "web", "checkout", "staging", true, None)
        .await
        .unwrap();
    assert_eq!(next_change(&mut changes, start), only("staging"));
    s.put_segment(&alice, "web", "staff", "", json!({"==": [1, 1]}), None)
        .await
        .unwrap();
    assert_eq!(next_change(&mut changes, start), everywhere);
    s.update_flag(
        &alice,
        "web",
        "checkout",
        FlagPatch {
            owner: Some("team".to_owned()),
            ..FlagPatch::default()
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(next_change(&mut changes, start), everywhere);

    // Failed writes announce nothing.
    s.toggle_flag(&alice, "web", "checkout", "staging", false, Some(1))
        .await
        .unwrap_err();
    s.create_flag(&alice, bool_flag("web", "checkout"))
        .await
        .unwrap_err();
    s.set_flag_config(
        &alice,
        "web",
        "checkout",
        "staging",
        config("ENABLED", on_off(), Some("missing"), None),
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(next_change(&mut changes, start), None);

    // Writes that change nothing served announce nothing either.
    s.create_token(
        &alice,
        NewToken {
            name: "t".to_owned(),
            role: Role::Viewer,
            environments: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(next_change(&mut changes, start), None);

    // A receiver subscribed later sees only later changes.
    let mut late = s.local_changes();
    s.toggle_flag(&alice, "web", "checkout", "production", true, None)
        .await
        .unwrap();
    assert_eq!(next_change(&mut late, start), only("production"));
    assert_eq!(next_change(&mut changes, start), only("production"));
    assert_eq!(next_change(&mut late, start), None);
    assert!(
        Change {
            environment: Some("production".to_owned()),
            ..Change::default()
        }
        .affects("production")
    );
}

/// The next notification on `ensign_changes`, decoded.
async fn notified(listener: &mut sqlx::postgres::PgListener) -> Change {
    let notification = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("a notification within 5 s")
        .unwrap();
    assert_eq!(notification.channel(), CHANGES_CHANNEL);
    serde_json::from_str(notification.payload())
        .unwrap_or_else(|e| panic!("payload {:?}: {e}", notification.payload()))
}

async fn postgres_notifications(db: &TestDb) {
    let s = &db.storage;
    assert_eq!(s.backend(), Backend::Postgres);
    let alice = who("alice");
    let start = now_millis();
    let mut listener = sqlx::postgres::PgListener::connect(&db.url).await.unwrap();
    listener.listen(CHANGES_CHANNEL).await.unwrap();

    s.create_flag_set(&alice, "web", "Web", Map::new())
        .await
        .unwrap();
    let change = notified(&mut listener).await;
    assert_eq!(change.environment, None);
    assert!(change.committed_at >= start);
    s.create_flag(&alice, bool_flag("web", "checkout"))
        .await
        .unwrap();
    assert_eq!(notified(&mut listener).await.environment, None);
    s.toggle_flag(&alice, "web", "checkout", "staging", true, Some(1))
        .await
        .unwrap();
    let change = notified(&mut listener).await;
    assert_eq!(change.environment.as_deref(), Some("staging"));
    assert!(change.committed_at <= now_millis());

    // Failed writes roll back and notify nobody: a stale version found by
    // the UPDATE inside the transaction, a duplicate key, an invalid config.
    mismatch(
        s.toggle_flag(&alice, "web", "checkout", "production", true, Some(1))
            .await,
    );
    assert_conflict(s.create_flag(&alice, bool_flag("web", "checkout")).await);
    problem_paths(
        s.set_flag_config(
            &alice,
            "web",
            "checkout",
            "production",
            config("ENABLED", on_off(), Some("missing"), None),
            None,
        )
        .await,
    );
    // A transaction that sent the notification and rolled back delivers nothing.
    let mut tx = s.pool().begin().await.unwrap();
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANGES_CHANNEL)
        .bind("rolled-back")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), listener.recv())
            .await
            .is_err(),
        "a failed write was announced"
    );

    // The next committed write is the next notification, and its data is
    // visible when the notification arrives.
    s.toggle_flag(&alice, "web", "checkout", "production", true, Some(2))
        .await
        .unwrap();
    assert_eq!(
        notified(&mut listener).await.environment.as_deref(),
        Some("production")
    );
    assert_eq!(
        s.flag("web", "checkout").await.unwrap().environments["production"].state,
        "ENABLED"
    );
}

// ---------------------------------------------------------------------------
// Connection failures (no database needed).

#[tokio::test]
async fn unreachable_postgres_is_unavailable() {
    let result = Storage::connect("postgres://postgres@127.0.0.1:1/postgres").await;
    assert!(
        matches!(result, Err(StorageError::Unavailable(_))),
        "expected Unavailable, got {result:?}"
    );
}

#[tokio::test]
async fn unsupported_url_is_invalid() {
    assert_eq!(
        problem_paths(Storage::connect("mysql://localhost/ensign").await),
        ["/databaseUrl"]
    );
}

#[test]
fn test_database_urls() {
    use common::with_database;
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
        "postgres://postgres@127.0.0.1:5432/t1"
    );
    assert_eq!(
        with_database("postgres://u:p@db:5432/postgres?sslmode=disable", "t1"),
        "postgres://u:p@db:5432/t1?sslmode=disable"
    );
    assert_eq!(
        with_database("postgresql://localhost", "t1"),
        "postgresql://localhost/t1"
    );
}
