//! What a backup or restore needs to know: folders, how many to keep, and
//! where the S3 copy goes. Built once, then passed by reference.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{BackupError, S3Error};

/// How many backups of each kind are kept locally unless configured.
pub const DEFAULT_KEEP: usize = 14;

/// Local folders, rotation and the optional S3 copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupConfig {
    /// The local backup folder (setting `backup.local_dir`).
    pub local_dir: PathBuf,
    /// Where archives are written before they are moved into `local_dir`
    /// (setting `backup.work_dir`). Defaults to `local_dir/.work`, on the
    /// same file system so that the move is a rename.
    pub work_dir: Option<PathBuf>,
    /// How many backups to keep locally, per kind (setting `backup.keep`,
    /// at least 1).
    pub keep: usize,
    /// The S3 copy, if any.
    pub s3: Option<S3Config>,
}

impl BackupConfig {
    pub fn new(local_dir: impl Into<PathBuf>) -> Self {
        BackupConfig {
            local_dir: local_dir.into(),
            work_dir: None,
            keep: DEFAULT_KEEP,
            s3: None,
        }
    }

    pub fn with_work_dir(mut self, work_dir: impl Into<PathBuf>) -> Self {
        self.work_dir = Some(work_dir.into());
        self
    }

    pub fn with_keep(mut self, keep: usize) -> Self {
        self.keep = keep;
        self
    }

    pub fn with_s3(mut self, s3: S3Config) -> Self {
        self.s3 = Some(s3);
        self
    }

    /// The working folder actually used.
    pub fn work_dir(&self) -> PathBuf {
        self.work_dir
            .clone()
            .unwrap_or_else(|| self.local_dir.join(".work"))
    }

    /// Checks the settings before anything is written.
    pub fn validate(&self) -> Result<(), BackupError> {
        if self.local_dir.as_os_str().is_empty() {
            return Err(BackupError::InvalidConfig {
                setting: "backup.local_dir",
                problem: "it is empty; set it to the folder that keeps the backups".into(),
            });
        }
        if self.keep == 0 {
            return Err(BackupError::InvalidConfig {
                setting: "backup.keep",
                problem: "it is 0, which would delete the backup just taken; set it to 1 or more"
                    .into(),
            });
        }
        if let Some(s3) = &self.s3 {
            s3.validate()?;
        }
        Ok(())
    }

    pub(crate) fn local_dir(&self) -> &Path {
        &self.local_dir
    }
}

/// An S3 access key pair. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// Where the S3 copies go. Credentials are not configuration: they are
/// given by the caller (from its secrets), or else taken from
/// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (or an AWS profile).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Config {
    /// Setting `backup.s3.bucket`.
    pub bucket: String,
    /// Key prefix (setting `backup.s3.prefix`), e.g. `alma-bursar-sync/`;
    /// a missing trailing `/` is added.
    pub prefix: String,
    /// Setting `backup.s3.region`, e.g. `us-east-1`.
    pub region: String,
    /// Setting `backup.s3.endpoint`, for S3-compatible servers, e.g.
    /// `https://minio.example.edu:9000`. None for AWS itself.
    pub endpoint: Option<String>,
    /// Address the bucket in the path (`endpoint/bucket/key`) rather than
    /// the host name; most S3-compatible servers need it.
    pub path_style: bool,
    /// Limit for one request (setting `backup.s3.timeout_seconds`).
    pub timeout: Duration,
    /// None: from the environment or an AWS profile.
    pub credentials: Option<S3Credentials>,
}

impl S3Config {
    pub fn new(bucket: impl Into<String>, region: impl Into<String>) -> Self {
        S3Config {
            bucket: bucket.into(),
            prefix: String::new(),
            region: region.into(),
            endpoint: None,
            path_style: false,
            timeout: Duration::from_secs(300),
            credentials: None,
        }
    }

    pub fn with_credentials(mut self, credentials: S3Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// An S3-compatible server; turns path-style addressing on.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self.path_style = true;
        self
    }

    pub fn with_path_style(mut self, path_style: bool) -> Self {
        self.path_style = path_style;
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The endpoint for messages: the configured one, or AWS's for the
    /// region.
    pub fn endpoint_label(&self) -> String {
        match &self.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => format!("AWS S3 ({})", self.region),
        }
    }

    /// The prefix as used in keys: empty, or ending in `/`.
    pub fn key_prefix(&self) -> String {
        let prefix = self.prefix.trim_start_matches('/');
        if prefix.is_empty() || prefix.ends_with('/') {
            prefix.to_string()
        } else {
            format!("{prefix}/")
        }
    }

    pub fn validate(&self) -> Result<(), S3Error> {
        if self.bucket.trim().is_empty() {
            return Err(S3Error::InvalidConfig {
                setting: "backup.s3.bucket",
                problem: "it is empty".into(),
            });
        }
        if self.region.trim().is_empty() {
            return Err(S3Error::InvalidConfig {
                setting: "backup.s3.region",
                problem:
                    "it is empty; use e.g. us-east-1 (any name for most S3-compatible servers)"
                        .into(),
            });
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(S3Error::InvalidConfig {
                setting: "backup.s3.endpoint",
                problem: format!("{endpoint:?} does not start with http:// or https://"),
            });
        }
        if self.timeout.is_zero() {
            return Err(S3Error::InvalidConfig {
                setting: "backup.s3.timeout_seconds",
                problem: "it is 0".into(),
            });
        }
        Ok(())
    }
}
