#![allow(clippy::unwrap_used, clippy::expect_used)]
//! S3 copies against the test S3 server (moto), each test in its own
//! bucket; and an unreachable endpoint, which needs no server.

mod common;

use std::time::Duration;

use backup::{
    BackupConfig, BackupError, S3Config, S3Error, S3Outcome, backup, fetch_from_s3, list_s3,
    restore_from_s3, s3_manifest, verify,
};
use common::{other_dump, sample_dump};
use fine_store::{FineStore, SqliteStore};

async fn sqlite_with(dir: &std::path::Path, dump: &fine_store::StoreDump) -> SqliteStore {
    let store = SqliteStore::open(dir.join("state.db")).unwrap();
    store.load(dump).await.unwrap();
    store
}

#[tokio::test]
async fn backups_are_uploaded_listed_and_fetched_back() {
    let Some(endpoint) = common::s3_endpoint() else {
        return;
    };
    let s3 = common::fresh_bucket(&endpoint).await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_with(dir.path(), &sample_dump()).await;
    let config = BackupConfig::new(dir.path().join("backups")).with_s3(s3.clone());

    let first = backup(&store, &config).await.unwrap();
    let S3Outcome::Uploaded(copy) = &first.s3 else {
        panic!("upload failed: {:?}", first.s3);
    };
    assert!(first.is_complete());
    assert_eq!(copy.bucket, s3.bucket);
    assert_eq!(
        copy.key,
        format!("nightly/{}", first.local.name),
        "prefix, then the file name"
    );
    assert_eq!(copy.size, first.local.size);

    store.load(&other_dump()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = backup(&store, &config).await.unwrap();
    assert!(second.is_complete());

    // Listed newest first, by the time in the name.
    let listed = list_s3(&s3).await.unwrap();
    let keys: Vec<&str> = listed.iter().map(|b| b.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            format!("nightly/{}", second.local.name),
            format!("nightly/{}", first.local.name)
        ]
    );
    assert_eq!(listed[1].size, first.local.size);

    // The manifest alone, by a range request.
    let manifest = s3_manifest(&s3, &listed[1].key).await.unwrap();
    assert_eq!(manifest, first.manifest);

    // Downloaded byte for byte.
    let fetched_dir = dir.path().join("fetched");
    let fetched = fetch_from_s3(&s3, &listed[1].key, &fetched_dir)
        .await
        .unwrap();
    assert_eq!(fetched, fetched_dir.join(first.local.name.to_string()));
    assert_eq!(
        std::fs::read(&fetched).unwrap(),
        std::fs::read(&first.local.path).unwrap()
    );
    assert_eq!(verify(&fetched).unwrap().dump, sample_dump());

    // And restored from S3.
    let report = restore_from_s3(&store, &listed[1].key, &config)
        .await
        .unwrap();
    assert_eq!(store.dump().await.unwrap(), sample_dump());
    assert_eq!(verify(&report.safety.path).unwrap().dump, other_dump());
}

#[tokio::test]
async fn listing_skips_keys_that_are_not_backups() {
    let Some(endpoint) = common::s3_endpoint() else {
        return;
    };
    let s3 = common::fresh_bucket(&endpoint).await;
    let bucket = s3::Bucket::new(
        &s3.bucket,
        s3::Region::Custom {
            region: "us-east-1".into(),
            endpoint: endpoint.clone(),
        },
        s3::creds::Credentials::from_env().unwrap(),
    )
    .unwrap()
    .with_path_style();
    for key in [
        "nightly/notes.txt",
        "nightly/old/abs-backup-20200101T000000.000Z.jsonl.zst",
        "elsewhere/abs-backup-20200101T000000.000Z.jsonl.zst",
    ] {
        bucket.put_object(key, b"x").await.unwrap();
    }
    assert_eq!(list_s3(&s3).await.unwrap(), vec![]);

    let error = fetch_from_s3(&s3, "nightly/notes.txt", std::path::Path::new("."))
        .await
        .unwrap_err();
    assert!(matches!(error, S3Error::NotABackupName { .. }), "{error}");
}

#[tokio::test]
async fn a_missing_bucket_is_named() {
    let Some(endpoint) = common::s3_endpoint() else {
        return;
    };
    let s3 =
        S3Config::new(common::unique("abs-no-such-bucket"), "us-east-1").with_endpoint(&endpoint);
    let error = list_s3(&s3).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains(&s3.bucket), "{message}");
    assert!(message.contains(&endpoint), "{message}");
}

#[tokio::test]
async fn an_unreachable_s3_fails_the_copy_and_keeps_the_local_backup() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_with(dir.path(), &sample_dump()).await;
    let s3 = S3Config::new("abs-unreachable", "us-east-1")
        .with_endpoint(&endpoint)
        .with_timeout(Duration::from_secs(5));
    let config = BackupConfig::new(dir.path().join("backups")).with_s3(s3);

    // Without credentials in the environment the copy fails too; either
    // way the report names the endpoint and the bucket.
    let report = backup(&store, &config).await.unwrap();
    assert!(!report.is_complete());
    let error = report
        .s3_error()
        .expect("the S3 copy must be reported failed");
    let message = error.to_string();
    assert!(message.contains(&endpoint), "{message}");
    assert!(message.contains("abs-unreachable"), "{message}");

    // The local copy is in place and whole.
    assert!(report.local.path.exists());
    assert_eq!(verify(&report.local.path).unwrap().dump, sample_dump());

    // Restoring from an unreachable S3 touches nothing.
    let key = format!("{}", report.local.name);
    store.load(&other_dump()).await.unwrap();
    let error = restore_from_s3(&store, &key, &config).await.unwrap_err();
    assert!(matches!(error, BackupError::S3(_)), "{error}");
    assert_eq!(store.dump().await.unwrap(), other_dump());
}

#[tokio::test]
async fn s3_settings_are_checked() {
    let bad = [
        (S3Config::new("", "us-east-1"), "backup.s3.bucket"),
        (S3Config::new("b", ""), "backup.s3.region"),
        (
            S3Config::new("b", "us-east-1").with_endpoint("127.0.0.1:9000"),
            "backup.s3.endpoint",
        ),
    ];
    for (config, setting) in bad {
        let error = list_s3(&config).await.unwrap_err();
        assert!(error.to_string().contains(setting), "{error}");
    }
    assert_eq!(
        S3Config::new("b", "r").with_prefix("a/b").key_prefix(),
        "a/b/"
    );
    assert_eq!(
        S3Config::new("b", "r").with_prefix("/a/").key_prefix(),
        "a/"
    );
    assert_eq!(S3Config::new("b", "r").key_prefix(), "");
}
