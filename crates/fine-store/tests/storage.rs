//! What each store puts on disk: schema versions, money as decimal
//! strings, durability across reopening.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use fine_store::{ChangeSet, FineStore, SqliteStore, StoreError};
use mongodb::bson::{Bson, Document, doc};
use sync_core::records::{AlmaTxnType, BursarTxnType, ExportState, PaymentOutcome};

fn changes() -> ChangeSet {
    ChangeSet {
        patrons: vec![patron("P1", 1250)],
        fines: vec![fine("F1", "P1", Some("L1"), 6510)],
        alma_transactions: vec![alma(
            Some("T1"),
            "F1",
            AlmaTxnType::Fine,
            6510,
            "2024-03-01T09:00:00",
        )],
        account_lines: vec![line("F1", "P1", None)],
        bursar_transactions: vec![bursar(
            "F1",
            1,
            BursarTxnType::Fine,
            6510,
            ExportState::Pending,
        )],
        reconciled_alma: Vec::new(),
        new_ledgers: Vec::new(),
    }
}

#[tokio::test]
async fn sqlite_file_is_created_versioned_and_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a").join("b").join("state.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.describe(), format!("sqlite:{}", path.display()));
        store.apply(changes()).await.unwrap();
        store
            .put_payment_record(&payment(
                "k1",
                Some("F1"),
                PaymentOutcome::Posting,
                "2024-03-08T10:00:00",
            ))
            .await
            .unwrap();
    }
    let raw = rusqlite::Connection::open(&path).unwrap();
    let version: u32 = raw
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SqliteStore::SCHEMA_VERSION);
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let record: String = raw
        .query_row("SELECT record FROM fines WHERE id = 'F1'", [], |r| r.get(0))
        .unwrap();
    assert!(record.contains(r#""original_amount":"65.10""#), "{record}");
    drop(raw);

    let store = SqliteStore::open(&path).unwrap();
    let dump = store.dump().await.unwrap();
    assert_eq!(dump.fines, changes().fines);
    assert_eq!(dump.payments.len(), 1);
}

#[tokio::test]
async fn sqlite_file_of_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(SqliteStore::open(&path).unwrap());
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.pragma_update(None, "user_version", 99).unwrap();
    drop(raw);
    match SqliteStore::open(&path) {
        Err(StoreError::SchemaTooNew {
            found: 99,
            supported,
            store,
        }) => {
            assert_eq!(supported, SqliteStore::SCHEMA_VERSION);
            assert!(store.contains("state.db"));
        }
        Err(other) => panic!("expected SchemaTooNew, got {other:?}"),
        Ok(_) => panic!("expected SchemaTooNew, the store opened"),
    }
}

#[tokio::test]
async fn sqlite_unreadable_record_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path).unwrap();
    store.apply(changes()).await.unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute(
        "UPDATE fines SET record = '{\"id\":\"F1\"}' WHERE id = 'F1'",
        [],
    )
    .unwrap();
    match store.ledgers(&ids(&["F1"])).await {
        Err(StoreError::Corrupt { record, .. }) => assert_eq!(record, "fine F1"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn mongodb_documents_keep_money_as_strings_and_natural_ids() {
    let Some(uri) = mongo_uri() else { return };
    let database = fresh_database("storage_money");
    let store = connect(&uri, &database).await;
    assert_eq!(store.describe(), format!("mongodb:{database}"));
    store.apply(changes()).await.unwrap();
    let db = mongodb::Client::with_uri_str(&uri)
        .await
        .unwrap()
        .database(&database);
    let fine = db
        .collection::<Document>("fines")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fine.get("_id"), Some(&Bson::String("F1".into())));
    assert_eq!(
        fine.get("original_amount"),
        Some(&Bson::String("65.10".into()))
    );
    let txn = db
        .collection::<Document>("bursar_transactions")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(txn.get("_id"), Some(&Bson::String("F1#1".into())));
    assert_eq!(txn.get("amount"), Some(&Bson::String("65.10".into())));
    assert_eq!(txn.get("export_pending"), Some(&Bson::Boolean(true)));

    // Edited by hand into something unreadable: named, not a crash.
    db.collection::<Document>("fines")
        .update_one(
            doc! { "_id": "F1" },
            doc! { "$set": { "original_amount": 65.1 } },
        )
        .await
        .unwrap();
    let result = store.ledgers(&ids(&["F1"])).await;
    drop_database(&uri, &database).await;
    match result {
        Err(StoreError::Corrupt { record, .. }) => assert_eq!(record, "fine F1"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn mongodb_unreachable_is_unavailable_without_the_password() {
    let config = fine_store::MongoConfig {
        uri: "mongodb://abs:s3cret-pw@127.0.0.1:1/?serverSelectionTimeoutMS=300".into(),
        database: "nowhere".into(),
    };
    match fine_store::MongoStore::connect(&config).await {
        Err(error @ StoreError::Unavailable { .. }) => {
            let text = error.to_string();
            assert!(text.contains("mongodb:nowhere"), "{text}");
            assert!(!text.contains("s3cret-pw"), "{text}");
            assert!(
                text.ends_with(
                    "; check that the database server is running and reachable and that the \
                     settings `store.uri` and `store.database` point at it, then run again"
                ),
                "{text}"
            );
        }
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(_) => panic!("connected to nothing"),
    }
}

/// A file the store cannot write says what to check for a file, not for
/// a server.
#[tokio::test]
async fn sqlite_unavailable_says_what_to_check_for_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_folder = dir.path().join("state");
    std::fs::write(&not_a_folder, "").unwrap();
    let path = not_a_folder.join("state.db");
    match SqliteStore::open(&path) {
        Err(error @ StoreError::Unavailable { .. }) => {
            let text = error.to_string();
            assert!(
                text.starts_with(&format!(
                    "store sqlite:{} unavailable during open: cannot create the folder {}: ",
                    path.display(),
                    not_a_folder.display()
                )),
                "{text}"
            );
            assert!(
                text.ends_with(
                    "; check that the disk holding the file has free space, that this account can \
                     write the file and its folder, and that no other program holds it locked \
                     (setting `store.path`), then run again"
                ),
                "{text}"
            );
        }
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(_) => panic!("opened a store under a file"),
    }
}
