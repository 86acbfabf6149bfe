//! Last-evaluated times travel from the store to the database in a flush,
//! off the request path.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;

use ensign_engine::EvaluationOptions;
use ensign_engine::document::{Limits, load_value};
use ensign_sources::{DATABASE_SOURCE, flush_evaluations};
use ensign_storage::model::Actor;
use ensign_storage::{NewFlag, Storage};
use ensign_store::Store;
use serde_json::json;

#[tokio::test]
async fn evaluated_flags_get_their_last_evaluated_time() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ensign.db").display());
    let storage = Storage::connect(&url).await.unwrap();
    storage.migrate().await.unwrap();
    let actor = Actor::new("test");
    storage
        .create_flag_set(&actor, "web", "Web", serde_json::Map::new())
        .await
        .unwrap();
    let new: NewFlag = serde_json::from_value(json!({
        "flag_set": "web", "key": "banner", "state": "ENABLED",
        "variants": {"on": true, "off": false}, "default_variant": "on"
    }))
    .unwrap();
    storage.create_flag(&actor, new).await.unwrap();

    let store = Store::new(
        [DATABASE_SOURCE],
        EvaluationOptions::default(),
        Arc::default(),
    );
    let documents = storage.environment_documents("production").await.unwrap();
    let sources = documents
        .into_iter()
        .map(|(set, document)| {
            ensign_engine::Source::new(
                format!("database:{set}"),
                load_value(&document, &Limits::default()).unwrap().document,
            )
        })
        .collect();
    store.replace_group(DATABASE_SOURCE, sources);

    let mut flushed = HashMap::new();
    assert_eq!(
        flush_evaluations(&storage, &store, &mut flushed)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        storage
            .flag("web", "banner")
            .await
            .unwrap()
            .last_evaluated_at,
        None
    );

    store.record_evaluation(
        Some((Some("web"), "banner")),
        Some("on"),
        "STATIC",
        1_800_000_000,
    );
    assert_eq!(
        flush_evaluations(&storage, &store, &mut flushed)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        storage
            .flag("web", "banner")
            .await
            .unwrap()
            .last_evaluated_at,
        Some(1_800_000_000_000)
    );
    // Nothing new: nothing written.
    assert_eq!(
        flush_evaluations(&storage, &store, &mut flushed)
            .await
            .unwrap(),
        0
    );
}
