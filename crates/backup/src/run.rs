//! Taking a backup, and restoring one.

use std::path::{Path, PathBuf};

use chrono::Utc;
use fine_store::{FineStore, StoreDump};

use crate::archive::{self, ArchiveMeta, Manifest, VerifiedArchive};
use crate::config::BackupConfig;
use crate::error::{BackupError, S3Error};
use crate::local::{self, LocalBackup};
use crate::name::BackupKind;
use crate::s3::{self, S3Copy};

/// What became of the S3 copy of a backup.
#[derive(Debug)]
pub enum S3Outcome {
    /// No S3 section in the configuration.
    NotConfigured,
    Uploaded(S3Copy),
    /// The local backup is in place; the copy is not. The job should be
    /// reported as failed, naming this error.
    Failed(S3Error),
}

/// What a backup did.
#[derive(Debug)]
pub struct BackupReport {
    /// The new archive, in the local folder, verified after writing.
    pub local: LocalBackup,
    pub manifest: Manifest,
    /// Older backups deleted by rotation.
    pub removed: Vec<PathBuf>,
    /// Older backups rotation could not delete (the new one is in place).
    pub rotation_problems: Vec<BackupError>,
    pub s3: S3Outcome,
}

impl BackupReport {
    /// True when the local copy is in place, rotation went through, and
    /// the S3 copy (if configured) is uploaded.
    pub fn is_complete(&self) -> bool {
        self.rotation_problems.is_empty() && !matches!(self.s3, S3Outcome::Failed(_))
    }

    /// The S3 failure, if the upload failed.
    pub fn s3_error(&self) -> Option<&S3Error> {
        match &self.s3 {
            S3Outcome::Failed(error) => Some(error),
            _ => None,
        }
    }
}

/// Backs up every record of `store`: writes and verifies the archive in the
/// local folder, rotates the folder to the newest `config.keep`, then
/// uploads a copy to S3 if configured.
///
/// Fails (`Err`) only if no verified local copy could be made. An S3
/// failure leaves the local copy in place and is reported in
/// [`BackupReport::s3`].
pub async fn backup<S: FineStore + ?Sized>(
    store: &S,
    config: &BackupConfig,
) -> Result<BackupReport, BackupError> {
    config.validate()?;
    let dump = store.dump().await.map_err(BackupError::Dump)?;
    let (local, manifest) = write(dump, BackupKind::Regular, store.describe(), config).await?;
    let (removed, rotation_problems) =
        local::rotate(&config.local_dir, BackupKind::Regular, config.keep)?;
    let s3 = match &config.s3 {
        None => S3Outcome::NotConfigured,
        Some(s3_config) => match s3::upload(s3_config, &local.path).await {
            Ok(copy) => S3Outcome::Uploaded(copy),
            Err(error) => {
                tracing::warn!(%error, local = %local.path.display(), "S3 copy of the backup failed");
                S3Outcome::Failed(error)
            }
        },
    };
    Ok(BackupReport {
        local,
        manifest,
        removed,
        rotation_problems,
        s3,
    })
}

async fn write(
    dump: StoreDump,
    kind: BackupKind,
    store: String,
    config: &BackupConfig,
) -> Result<(LocalBackup, Manifest), BackupError> {
    let meta = ArchiveMeta {
        kind,
        created_at: Utc::now(),
        store,
    };
    let config = config.clone();
    tokio::task::spawn_blocking(move || local::write_local(&dump, &meta, &config))
        .await
        .map_err(|e| BackupError::Task(e.to_string()))?
}

/// [`archive::verify`] off the async threads.
pub async fn verify_async(path: &Path) -> Result<VerifiedArchive, BackupError> {
    let path = path.to_path_buf();
    let verified = tokio::task::spawn_blocking(move || archive::verify(&path))
        .await
        .map_err(|e| BackupError::Task(e.to_string()))??;
    Ok(verified)
}

/// What a restore did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreReport {
    /// The archive restored.
    pub archive: PathBuf,
    pub manifest: Manifest,
    /// The state just before the restore.
    pub safety: LocalBackup,
    /// The store restored into (`FineStore::describe`).
    pub store: String,
}

/// Restores the archive at `path` into `store`:
///
/// 1. reads and verifies the whole archive (checksums, counts, format
///    version, every record); a bad archive is refused and the store is
///    untouched;
/// 2. takes a safety backup of the current state into the local folder
///    (`abs-safety-...`, kept `config.keep` deep, never uploaded); if that
///    fails the store is untouched;
/// 3. replaces the store's records with the archive's in one
///    all-or-nothing load.
pub async fn restore_from_file<S: FineStore + ?Sized>(
    store: &S,
    path: &Path,
    config: &BackupConfig,
) -> Result<RestoreReport, BackupError> {
    config.validate()?;
    let verified = verify_async(path).await?;
    let safety =
        safety_backup(store, config)
            .await
            .map_err(|source| BackupError::SafetyBackup {
                source: Box::new(source),
            })?;
    store
        .load(&verified.dump)
        .await
        .map_err(|source| BackupError::Load {
            archive: verified.path.clone(),
            safety: safety.path.clone(),
            source,
        })?;
    Ok(RestoreReport {
        archive: verified.path,
        manifest: verified.manifest,
        safety,
        store: store.describe(),
    })
}

async fn safety_backup<S: FineStore + ?Sized>(
    store: &S,
    config: &BackupConfig,
) -> Result<LocalBackup, BackupError> {
    let dump = store.dump().await.map_err(BackupError::Dump)?;
    let (local, _) = write(dump, BackupKind::Safety, store.describe(), config).await?;
    let (_, problems) = local::rotate(&config.local_dir, BackupKind::Safety, config.keep)?;
    for problem in problems {
        tracing::warn!(%problem, "old safety backup not deleted");
    }
    Ok(local)
}

/// Restores the newest regular backup of the local folder, by the time in
/// its name (not the file system's times). Safety backups are not
/// considered; pick one explicitly to undo a restore.
pub async fn restore_last<S: FineStore + ?Sized>(
    store: &S,
    config: &BackupConfig,
) -> Result<RestoreReport, BackupError> {
    config.validate()?;
    let newest = local::newest_local(&config.local_dir, BackupKind::Regular)?.ok_or_else(|| {
        BackupError::NoBackups {
            dir: config.local_dir.clone(),
        }
    })?;
    restore_from_file(store, &newest.path, config).await
}

/// Downloads the S3 backup `key` into `work_dir/from-s3` and restores it
/// like [`restore_from_file`].
pub async fn restore_from_s3<S: FineStore + ?Sized>(
    store: &S,
    key: &str,
    config: &BackupConfig,
) -> Result<RestoreReport, BackupError> {
    config.validate()?;
    let Some(s3_config) = &config.s3 else {
        return Err(BackupError::InvalidConfig {
            setting: "backup.s3",
            problem: "there is no S3 section; add bucket, region (and endpoint) to restore from S3"
                .into(),
        });
    };
    let path = s3::fetch_from_s3(s3_config, key, &config.work_dir().join("from-s3")).await?;
    restore_from_file(store, &path, config).await
}
