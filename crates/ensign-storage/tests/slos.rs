//! Stored SLOs on SQLite and on the machine's PostgreSQL (which must be
//! reachable: the PostgreSQL half fails, never skips, without it): create,
//! read, guarded replace and delete, conflicts, validation that writes
//! nothing, and the audit trail.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use ensign_storage::model::Actor;
use ensign_storage::{AuditFilter, StorageError};

use common::TestDb;

fn spec(objective: f64) -> ensign_slo::Spec {
    ensign_slo::spec::parse(&format!(
        r#"
version: prometheus/v1
service: checkout
labels: {{team: payments}}
slos:
  - name: availability
    objective: {objective}
    sli:
      events:
        error_query: sum(rate(http_requests_total{{code=~"5.."}}[{{{{.window}}}}]))
        total_query: sum(rate(http_requests_total[{{{{.window}}}}]))
    alerting:
      name: CheckoutAvailability
      page_alert: {{labels: {{ensign_flag: new-checkout}}}}
"#
    ))
    .unwrap()
}

async fn stored_slos_are_versioned_and_audited(db: &TestDb) {
    let s = &db.storage;
    let alice = Actor::new("token:alice");
    let name = "checkout-availability";
    assert!(s.slos().await.unwrap().is_empty());
    assert!(matches!(s.slo(name).await, Err(StorageError::NotFound(_))));

    let created = s.put_slo(&alice, name, &spec(99.9), None).await.unwrap();
    assert_eq!(created.version, 1);
    assert_eq!(created.spec, spec(99.9).to_value());
    assert_eq!(s.slo(name).await.unwrap(), created);

    // Creating again is a conflict; a stale version is a mismatch.
    assert!(matches!(
        s.put_slo(&alice, name, &spec(99.5), None).await,
        Err(StorageError::Conflict(_))
    ));
    assert!(matches!(
        s.put_slo(&alice, name, &spec(99.5), Some(7)).await,
        Err(StorageError::VersionMismatch {
            current: 1,
            expected: 7,
            ..
        })
    ));
    let replaced = s.put_slo(&alice, name, &spec(99.5), Some(1)).await.unwrap();
    assert_eq!(replaced.version, 2);
    assert_eq!(replaced.spec["slos"][0]["objective"], 99.5);

    // A spec naming another SLO, or several, is refused and writes nothing.
    let error = s
        .put_slo(&alice, "checkout-latency", &spec(99.0), None)
        .await;
    match error {
        Err(StorageError::Invalid(problems)) => assert_eq!(problems[0].path, "/slos/0/name"),
        other => panic!("expected invalid, got {other:?}"),
    }
    let mut two = spec(99.0);
    two.slos.push(two.slos[0].clone());
    assert!(matches!(
        s.put_slo(&alice, name, &two, Some(2)).await,
        Err(StorageError::Invalid(_))
    ));
    assert_eq!(s.slos().await.unwrap(), vec![replaced.clone()]);
    // Another process on the same database reads the same SLO.
    let other = ensign_storage::Storage::connect(&db.url).await.unwrap();
    assert_eq!(other.slo(name).await.unwrap(), replaced);
    other.pool().close().await;

    assert!(matches!(
        s.delete_slo(&alice, name, Some(1)).await,
        Err(StorageError::VersionMismatch { current: 2, .. })
    ));
    s.delete_slo(&alice, name, Some(2)).await.unwrap();
    assert!(matches!(
        s.delete_slo(&alice, name, None).await,
        Err(StorageError::NotFound(_))
    ));

    let audit = s
        .audit_log(
            &AuditFilter {
                resource_type: Some("slo".to_owned()),
                ..AuditFilter::default()
            },
            50,
        )
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["slo.delete", "slo.update", "slo.create"]);
    assert!(
        audit
            .iter()
            .all(|e| e.actor == "token:alice" && e.resource_key == name)
    );
    assert_eq!(
        audit[1].before.as_ref().unwrap()["slos"][0]["objective"],
        99.9
    );
    assert_eq!(
        audit[1].after.as_ref().unwrap()["slos"][0]["objective"],
        99.5
    );
    assert!(audit[0].after.is_none());
}

#[tokio::test]
async fn sqlite_stored_slos_are_versioned_and_audited() {
    stored_slos_are_versioned_and_audited(&TestDb::sqlite().await).await;
}

#[tokio::test]
async fn postgres_stored_slos_are_versioned_and_audited() {
    stored_slos_are_versioned_and_audited(&TestDb::postgres().await).await;
}
