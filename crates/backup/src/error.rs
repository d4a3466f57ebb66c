//! The errors of the crate. Each names the file, bucket or setting at fault
//! and says what a person can do about it.

use std::io;
use std::path::PathBuf;

use fine_store::StoreError;

/// Why an archive file was refused. Every variant names the file; none of
/// them is raised after anything was written to a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    #[error("cannot read backup {path}: {source}")]
    Read { path: PathBuf, source: io::Error },

    #[error(
        "backup {path} is truncated or unfinished: {problem}. Choose another backup, or fetch this one again from S3"
    )]
    Truncated { path: PathBuf, problem: String },

    #[error(
        "backup {path} is damaged: the SHA-256 of the file ({found}) does not match the one recorded at its end ({expected}). The file changed after it was written; choose another backup, or fetch this one again from S3"
    )]
    FileChecksum {
        path: PathBuf,
        expected: String,
        found: String,
    },

    #[error(
        "backup {path} cannot be decompressed: {source}. The file is damaged or not a zstd archive; choose another backup"
    )]
    Decompress { path: PathBuf, source: io::Error },

    #[error(
        "{path} is not an alma-bursar-sync backup: {problem}. Check that the path points at a file named like abs-backup-20241210T153000.000Z.jsonl.zst"
    )]
    NotABackup { path: PathBuf, problem: String },

    #[error(
        "backup {path} has format version {found}; this tool reads format version {supported}. Restore it with the version of alma-bursar-sync that wrote it ({tool}) or a newer one"
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u64,
        supported: u32,
        tool: String,
    },

    #[error(
        "backup {path} has an inconsistent manifest: {problem}. The archive cannot be trusted; choose another backup"
    )]
    Manifest { path: PathBuf, problem: String },

    #[error(
        "backup {path}: part {part} has SHA-256 {found}, the manifest says {expected}. The archive is damaged; choose another backup"
    )]
    PartChecksum {
        path: PathBuf,
        part: String,
        expected: String,
        found: String,
    },

    #[error(
        "backup {path}: part {part} holds {found} records, the manifest says {expected}. The archive is damaged; choose another backup"
    )]
    PartCount {
        path: PathBuf,
        part: String,
        expected: u64,
        found: u64,
    },

    #[error(
        "backup {path}: part {part}, record {record} is unreadable: {source}. The archive is damaged or was written by another tool; choose another backup"
    )]
    Record {
        path: PathBuf,
        part: String,
        record: u64,
        source: serde_json::Error,
    },

    #[error(
        "backup {path} has data after its last part. The archive is damaged; choose another backup"
    )]
    TrailingData { path: PathBuf },
}

/// Why talking to S3 failed. Every variant names the endpoint and bucket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3Error {
    #[error(
        "S3 setting {setting} is invalid: {problem}. Fix it in the configuration's backup section"
    )]
    InvalidConfig {
        setting: &'static str,
        problem: String,
    },

    #[error(
        "no S3 credentials for bucket {bucket} at {endpoint}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment (or a profile in ~/.aws/credentials)"
    )]
    Credentials { endpoint: String, bucket: String },

    #[error(
        "S3 {operation} of {key} in bucket {bucket} at {endpoint} failed: {detail}. Check that the endpoint is reachable from this machine, the bucket exists, and the credentials may write to it"
    )]
    Request {
        endpoint: String,
        bucket: String,
        operation: &'static str,
        key: String,
        /// The error and its causes, e.g. "... connection refused".
        detail: String,
        source: Box<s3::error::S3Error>,
    },

    #[error(
        "S3 upload of {key} to bucket {bucket} at {endpoint} is incomplete: the server holds {found} bytes, the local file has {expected}. The next backup uploads again; the local copy is intact"
    )]
    SizeMismatch {
        endpoint: String,
        bucket: String,
        key: String,
        expected: u64,
        found: u64,
    },

    #[error(
        "{key} (bucket {bucket} at {endpoint}) is not named like a backup (abs-backup-YYYYMMDDTHHMMSS.mmmZ.jsonl.zst); pick one from the backup listing"
    )]
    NotABackupName {
        endpoint: String,
        bucket: String,
        key: String,
    },

    #[error("S3 object {key} in bucket {bucket} at {endpoint}: {source}")]
    Archive {
        endpoint: String,
        bucket: String,
        key: String,
        source: Box<ArchiveError>,
    },

    #[error("cannot {action} {path} while copying from S3: {source}")]
    Local {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// Why a backup, a listing or a restore failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    #[error("backup setting {setting} is invalid: {problem}")]
    InvalidConfig {
        setting: &'static str,
        problem: String,
    },

    #[error(
        "cannot {action} {path}: {source}. Check that the folder exists, is writable by this user, and the disk is not full"
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },

    #[error("cannot read the state to back up: {0}")]
    Dump(#[source] StoreError),

    #[error(transparent)]
    Archive(#[from] ArchiveError),

    #[error(transparent)]
    S3(#[from] S3Error),

    #[error(
        "no backup in {dir} (files named abs-backup-YYYYMMDDTHHMMSS.mmmZ.jsonl.zst). Nothing was restored; check the setting backup.local_dir, or restore from S3"
    )]
    NoBackups { dir: PathBuf },

    #[error(
        "restore refused, the store is untouched: the safety backup of the current state failed: {source}"
    )]
    SafetyBackup {
        #[source]
        source: Box<BackupError>,
    },

    #[error(
        "restore from {archive} failed while loading the store, which was left as it was (loads are all-or-nothing): {source}. The state before the restore is also saved in {safety}"
    )]
    Load {
        archive: PathBuf,
        safety: PathBuf,
        #[source]
        source: StoreError,
    },

    #[error(
        "there is no backup number {pick}: the listing has {available}; pick a number from 1 to {available}"
    )]
    NoSuchChoice { pick: usize, available: usize },

    #[error("internal error: a background task of the backup failed: {0}")]
    Task(String),
}

impl BackupError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        BackupError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
