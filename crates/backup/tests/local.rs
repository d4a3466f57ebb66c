#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Backups and restores against a real store (the embedded SQLite store)
//! and the local folder: placement, rotation, restore order and refusals.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use backup::{
    BackupConfig, BackupError, BackupKind, BackupName, S3Outcome, backup, list_local,
    restore_from_file, restore_last, verify,
};
use common::{other_dump, sample_dump};
use fine_store::{FineStore, SqliteStore, StoreDump};

async fn store_with(dir: &Path, dump: &StoreDump) -> SqliteStore {
    let store = SqliteStore::open(dir.join("state.db")).unwrap();
    store.load(dump).await.unwrap();
    store
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_backup_lands_in_the_folder_named_by_its_time_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &sample_dump()).await;
    let config = BackupConfig::new(dir.path().join("backups"));

    let before = chrono::Utc::now();
    let report = backup(&store, &config).await.unwrap();
    let after = chrono::Utc::now();

    assert!(report.is_complete());
    assert!(matches!(report.s3, S3Outcome::NotConfigured));
    assert!(report.removed.is_empty());
    let name = BackupName::parse(report.local.path.file_name().unwrap().to_str().unwrap()).unwrap();
    assert_eq!(name, report.local.name);
    assert_eq!(name.kind, BackupKind::Regular);
    assert!(
        before - chrono::Duration::milliseconds(1) <= name.created_at && name.created_at <= after
    );
    assert_eq!(report.manifest.created_at, name.created_at);
    assert_eq!(report.manifest.store, store.describe());
    assert_eq!(report.local.path.parent().unwrap(), config.local_dir);
    assert_eq!(
        report.local.size,
        std::fs::metadata(&report.local.path).unwrap().len()
    );

    // The file holds the store, record by record.
    let verified = verify(&report.local.path).unwrap();
    assert_eq!(verified.dump, store.dump().await.unwrap());
    assert_eq!(verified.dump, sample_dump());

    // Nothing is left behind in the working folder.
    assert_eq!(names(&config.work_dir()), Vec::<String>::new());
    assert_eq!(
        names(&config.local_dir),
        vec![".work".to_string(), name.to_string()]
    );
}

#[tokio::test]
async fn rotation_keeps_the_newest_n_and_leaves_other_files_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &sample_dump()).await;
    let local = dir.path().join("backups");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::write(local.join("README.txt"), "not a backup").unwrap();
    // An old backup of another kind is not this rotation's business.
    let safety = "abs-safety-20200101T000000.000Z.jsonl.zst";
    std::fs::write(local.join(safety), "x").unwrap();
    let config = BackupConfig::new(&local).with_keep(3);

    let mut made = Vec::new();
    for _ in 0..5 {
        let report = backup(&store, &config).await.unwrap();
        made.push(report.local.path.clone());
        assert!(made.len() <= 3 || report.removed == vec![made[made.len() - 4].clone()]);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let listed: Vec<_> = list_local(&local)
        .unwrap()
        .into_iter()
        .filter(|b| b.name.kind == BackupKind::Regular)
        .map(|b| b.path)
        .collect();
    assert_eq!(
        listed,
        vec![made[4].clone(), made[3].clone(), made[2].clone()]
    );
    assert!(local.join("README.txt").exists());
    assert!(local.join(safety).exists());
}

#[tokio::test]
async fn keep_zero_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &sample_dump()).await;
    let config = BackupConfig::new(dir.path().join("backups")).with_keep(0);
    let error = backup(&store, &config).await.unwrap_err();
    assert!(error.to_string().contains("backup.keep"), "{error}");
    assert!(!config.local_dir.exists());
}

#[tokio::test]
async fn a_restore_loads_the_archive_after_a_safety_backup() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &sample_dump()).await;
    let config = BackupConfig::new(dir.path().join("backups"));
    let taken = backup(&store, &config).await.unwrap();

    // The state moves on; then the backup is restored.
    store.load(&other_dump()).await.unwrap();
    let report = restore_from_file(&store, &taken.local.path, &config)
        .await
        .unwrap();

    assert_eq!(store.dump().await.unwrap(), sample_dump());
    assert_eq!(report.archive, taken.local.path);
    assert_eq!(report.safety.name.kind, BackupKind::Safety);
    // The safety backup holds the state from just before the restore.
    assert_eq!(verify(&report.safety.path).unwrap().dump, other_dump());
    assert!(report.safety.path.starts_with(&config.local_dir));
}

#[tokio::test]
async fn a_damaged_archive_is_refused_and_the_store_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &sample_dump()).await;
    let config = BackupConfig::new(dir.path().join("backups"));
    let taken = backup(&store, &config).await.unwrap();
    store.load(&other_dump()).await.unwrap();

    let good = std::fs::read(&taken.local.path).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("flipped", {
            let mut bytes = good.clone();
            bytes[good.len() / 3] ^= 0x10;
            bytes
        }),
        ("truncated", good[..good.len() - 100].to_vec()),
        ("wrong-count", {
            let (mut manifest, parts) = common::disassemble(&good);
            manifest["parts"][2]["records"] = 99.into();
            common::assemble(&manifest, &parts)
        }),
        ("wrong-version", {
            let (mut manifest, parts) = common::disassemble(&good);
            manifest["format_version"] = 7.into();
            common::assemble(&manifest, &parts)
        }),
    ];
    for (label, bytes) in cases {
        let path = dir.path().join(format!("{label}.jsonl.zst"));
        std::fs::write(&path, bytes).unwrap();
        let error = restore_from_file(&store, &path, &config)
            .await
            .expect_err(label);
        assert!(matches!(error, BackupError::Archive(_)), "{label}: {error}");
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{label}: {error}"
        );
        assert_eq!(store.dump().await.unwrap(), other_dump(), "{label}");
    }
    // No safety backup was taken for a refused archive.
    assert!(
        list_local(&config.local_dir)
            .unwrap()
            .iter()
            .all(|b| b.name.kind == BackupKind::Regular)
    );
}

#[tokio::test]
async fn restore_last_picks_the_newest_name_not_the_newest_mtime() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("backups");
    std::fs::create_dir_all(&local).unwrap();
    let older = common::write_archive_file(
        &local,
        "abs-backup-20241208T020000.000Z.jsonl.zst",
        &other_dump(),
    );
    let newer = common::write_archive_file(
        &local,
        "abs-backup-20241210T020000.000Z.jsonl.zst",
        &sample_dump(),
    );
    // File system times say the opposite of the names (as after a copy).
    let now = SystemTime::now();
    std::fs::File::options()
        .write(true)
        .open(&older)
        .unwrap()
        .set_modified(now)
        .unwrap();
    std::fs::File::options()
        .write(true)
        .open(&newer)
        .unwrap()
        .set_modified(now - Duration::from_secs(86_400 * 30))
        .unwrap();
    // A safety backup newer than both is not a candidate.
    common::write_archive_file(
        &local,
        "abs-safety-20241211T000000.000Z.jsonl.zst",
        &StoreDump::default(),
    );

    let store = store_with(dir.path(), &StoreDump::default()).await;
    let config = BackupConfig::new(&local);
    let report = restore_last(&store, &config).await.unwrap();
    assert_eq!(report.archive, newer);
    assert_eq!(store.dump().await.unwrap(), sample_dump());
}

#[tokio::test]
async fn restore_last_with_no_backups_names_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &sample_dump()).await;
    let config = BackupConfig::new(dir.path().join("nothing-here"));
    let error = restore_last(&store, &config).await.unwrap_err();
    assert!(matches!(error, BackupError::NoBackups { .. }), "{error}");
    assert!(error.to_string().contains("nothing-here"), "{error}");
    assert_eq!(store.dump().await.unwrap(), sample_dump());
}

#[tokio::test]
async fn a_failed_load_leaves_the_store_and_names_the_safety_backup() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &sample_dump()).await;
    let config = BackupConfig::new(dir.path().join("backups"));
    // A well-formed archive the store refuses: a patron listed twice.
    let mut bad = sample_dump();
    bad.patrons.push(bad.patrons[0].clone());
    let path = common::write_archive_file(
        dir.path(),
        "abs-backup-20241210T020000.000Z.jsonl.zst",
        &bad,
    );
    assert!(verify(&path).is_ok());

    let error = restore_from_file(&store, &path, &config).await.unwrap_err();
    let BackupError::Load { safety, .. } = &error else {
        panic!("expected a load error, got {error}");
    };
    assert!(safety.exists());
    assert!(error.to_string().contains("left as it was"), "{error}");
    assert_eq!(store.dump().await.unwrap(), sample_dump());
}

#[tokio::test]
async fn a_backup_of_mongodb_restores_into_sqlite_and_back() {
    let Some(uri) = common::mongodb_uri() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = BackupConfig::new(dir.path().join("backups"));
    let mongo_config = fine_store::MongoConfig {
        uri,
        database: common::unique("abs_backup_test").replace('-', "_"),
    };
    let mongo = fine_store::MongoStore::connect(&mongo_config)
        .await
        .unwrap();
    mongo.load(&sample_dump()).await.unwrap();

    let from_mongo = backup(&mongo, &config).await.unwrap();
    assert_eq!(from_mongo.manifest.store_kind, "mongodb");
    let sqlite = SqliteStore::open(dir.path().join("state.db")).unwrap();
    restore_from_file(&sqlite, &from_mongo.local.path, &config)
        .await
        .unwrap();
    assert_eq!(sqlite.dump().await.unwrap(), sample_dump());

    sqlite.load(&other_dump()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let from_sqlite = backup(&sqlite, &config).await.unwrap();
    restore_from_file(&mongo, &from_sqlite.local.path, &config)
        .await
        .unwrap();
    assert_eq!(mongo.dump().await.unwrap(), other_dump());
}
