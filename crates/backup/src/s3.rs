//! Copies in S3 or an S3-compatible server: upload, list, read a manifest
//! with a range request, download.
//!
//! Keys are the configured prefix and the backup's file name. This crate
//! never deletes from S3: keep S3 copies as long as a bucket lifecycle rule
//! says.

use std::path::{Path, PathBuf};

use s3::creds::Credentials;
use s3::{Bucket, Region};
use tokio::io::AsyncWriteExt;

use crate::archive::{self, Manifest};
use crate::config::S3Config;
use crate::error::S3Error;
use crate::name::BackupName;

/// How many leading bytes of an object are fetched to read its manifest
/// (the manifest frame is about 1 KiB).
const MANIFEST_RANGE: u64 = 64 * 1024;

/// A backup in S3.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Backup {
    pub key: String,
    pub name: BackupName,
    pub size: u64,
}

/// An uploaded copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Copy {
    pub endpoint: String,
    pub bucket: String,
    pub key: String,
    pub size: u64,
}

fn request_error(
    config: &S3Config,
    operation: &'static str,
    key: &str,
    source: s3::error::S3Error,
) -> S3Error {
    let mut detail = source.to_string();
    let mut cause = std::error::Error::source(&source);
    while let Some(error) = cause {
        let text = error.to_string();
        if !detail.contains(&text) {
            detail = format!("{detail}: {text}");
        }
        cause = error.source();
    }
    S3Error::Request {
        endpoint: config.endpoint_label(),
        bucket: config.bucket.clone(),
        operation,
        key: key.to_string(),
        detail,
        source: Box::new(source),
    }
}

/// The bucket handle for `config`, with its credentials or else those of
/// the environment.
fn bucket(config: &S3Config) -> Result<Box<Bucket>, S3Error> {
    config.validate()?;
    let given = config.credentials.as_ref();
    let credentials = Credentials::new(
        given.map(|c| c.access_key.as_str()),
        given.map(|c| c.secret_key.as_str()),
        None,
        None,
        None,
    )
    .map_err(|_| S3Error::Credentials {
        endpoint: config.endpoint_label(),
        bucket: config.bucket.clone(),
    })?;
    let region = match &config.endpoint {
        Some(endpoint) => Region::Custom {
            region: config.region.clone(),
            endpoint: endpoint.trim_end_matches('/').to_string(),
        },
        None => config
            .region
            .parse()
            .map_err(|e: std::str::Utf8Error| S3Error::InvalidConfig {
                setting: "backup.s3.region",
                problem: e.to_string(),
            })?,
    };
    let bucket = Bucket::new(&config.bucket, region, credentials)
        .map_err(|e| request_error(config, "setup", "", e))?;
    let bucket = if config.path_style {
        bucket.with_path_style()
    } else {
        bucket
    };
    bucket
        .with_request_timeout(config.timeout)
        .map_err(|e| request_error(config, "setup", "", e))
}

/// Uploads the archive at `path` as `prefix + name` and checks the size
/// the server then reports.
pub async fn upload(config: &S3Config, path: &Path) -> Result<S3Copy, S3Error> {
    let Some(name) = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(BackupName::parse)
    else {
        return Err(S3Error::NotABackupName {
            endpoint: config.endpoint_label(),
            bucket: config.bucket.clone(),
            key: path.display().to_string(),
        });
    };
    let bucket = bucket(config)?;
    let key = format!("{}{}", config.key_prefix(), name);
    let local_error = |action, source| S3Error::Local {
        action,
        path: path.to_path_buf(),
        source,
    };
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| local_error("open", e))?;
    let expected = file
        .metadata()
        .await
        .map_err(|e| local_error("read the size of", e))?
        .len();
    bucket
        .put_object_stream(&mut file, &key)
        .await
        .map_err(|e| request_error(config, "upload", &key, e))?;
    let (head, _) = bucket
        .head_object(&key)
        .await
        .map_err(|e| request_error(config, "check of the upload", &key, e))?;
    let found = head
        .content_length
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0);
    if found != expected {
        return Err(S3Error::SizeMismatch {
            endpoint: config.endpoint_label(),
            bucket: config.bucket.clone(),
            key,
            expected,
            found,
        });
    }
    Ok(S3Copy {
        endpoint: config.endpoint_label(),
        bucket: config.bucket.clone(),
        key,
        size: found,
    })
}

/// The backups under the prefix (regular and safety, though only regular
/// ones are uploaded), newest first by the time in their names. Keys not
/// named like backups, and keys in deeper "folders", are left out.
pub async fn list_s3(config: &S3Config) -> Result<Vec<S3Backup>, S3Error> {
    let bucket = bucket(config)?;
    let prefix = config.key_prefix();
    let pages = bucket
        .list(prefix.clone(), None)
        .await
        .map_err(|e| request_error(config, "listing", &prefix, e))?;
    let mut backups: Vec<S3Backup> = pages
        .into_iter()
        .flat_map(|page| page.contents)
        .filter_map(|object| {
            let name = BackupName::parse(object.key.strip_prefix(&prefix)?)?;
            Some(S3Backup {
                key: object.key,
                name,
                size: object.size,
            })
        })
        .collect();
    backups.sort_by_key(|b| std::cmp::Reverse(b.name.created_at));
    Ok(backups)
}

/// Reads an S3 backup's manifest with one range request for its first
/// bytes, without downloading the archive.
pub async fn s3_manifest(config: &S3Config, key: &str) -> Result<Manifest, S3Error> {
    let bucket = bucket(config)?;
    let response = bucket
        .get_object_range(key, 0, Some(MANIFEST_RANGE - 1))
        .await
        .map_err(|e| request_error(config, "manifest read", key, e))?;
    let label = PathBuf::from(format!("s3://{}/{}", config.bucket, key));
    archive::manifest_from_reader(&label, response.bytes().as_ref()).map_err(|source| {
        S3Error::Archive {
            endpoint: config.endpoint_label(),
            bucket: config.bucket.clone(),
            key: key.to_string(),
            source: Box::new(source),
        }
    })
}

/// Downloads the backup `key` into `dest_dir` under its file name (via a
/// temporary file, flushed to disk, then renamed; a file of that name in
/// `dest_dir` is replaced). Returns the path. The archive is not verified
/// here: restoring it verifies it whole.
pub async fn fetch_from_s3(
    config: &S3Config,
    key: &str,
    dest_dir: &Path,
) -> Result<PathBuf, S3Error> {
    let name = key
        .rsplit('/')
        .next()
        .and_then(BackupName::parse)
        .ok_or_else(|| S3Error::NotABackupName {
            endpoint: config.endpoint_label(),
            bucket: config.bucket.clone(),
            key: key.to_string(),
        })?;
    let bucket = bucket(config)?;
    let local_error = |action, path: &Path, source| S3Error::Local {
        action,
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dest_dir).map_err(|e| local_error("create", dest_dir, e))?;
    let temp = tempfile::Builder::new()
        .prefix(".abs-download-")
        .tempfile_in(dest_dir)
        .map_err(|e| local_error("create a file in", dest_dir, e))?;
    let handle = temp
        .as_file()
        .try_clone()
        .map_err(|e| local_error("open", temp.path(), e))?;
    let mut out = tokio::fs::File::from_std(handle);
    let status = bucket
        .get_object_to_writer(key, &mut out)
        .await
        .map_err(|e| request_error(config, "download", key, e))?;
    if status != 200 {
        return Err(request_error(
            config,
            "download",
            key,
            s3::error::S3Error::HttpFail,
        ));
    }
    out.flush()
        .await
        .map_err(|e| local_error("write", temp.path(), e))?;
    out.sync_all()
        .await
        .map_err(|e| local_error("flush to disk", temp.path(), e))?;
    let path = dest_dir.join(name.to_string());
    temp.persist(&path)
        .map_err(|e| local_error("move the download to", &path, e.error))?;
    Ok(path)
}
