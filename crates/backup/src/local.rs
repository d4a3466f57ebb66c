//! The local backup folder: writing an archive safely into it, listing it
//! and rotating it.
//!
//! An archive is written to a temporary file in the working folder,
//! flushed to disk, moved into the backup folder under its final name
//! (never over an existing file), and the folder itself is synced. Only
//! then, and only after the new file was read back and verified, are older
//! backups of the same kind deleted.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use fine_store::StoreDump;

use crate::archive::{self, ArchiveMeta, Manifest};
use crate::config::BackupConfig;
use crate::error::{ArchiveError, BackupError};
use crate::name::{BackupKind, BackupName};

/// A backup file in the local folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalBackup {
    pub path: PathBuf,
    pub name: BackupName,
    /// Size of the file in bytes.
    pub size: u64,
}

impl LocalBackup {
    /// Reads the manifest only (the first zstd frame).
    pub fn manifest(&self) -> Result<Manifest, ArchiveError> {
        archive::read_manifest(&self.path)
    }
}

/// Every backup in `dir` (regular and safety), newest first by the time in
/// the name. Files not named like backups are left out. A missing folder
/// has no backups.
pub fn list_local(dir: &Path) -> Result<Vec<LocalBackup>, BackupError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BackupError::io("list the backup folder", dir, e)),
    };
    let mut backups = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| BackupError::io("list the backup folder", dir, e))?;
        let Some(name) = entry.file_name().to_str().and_then(BackupName::parse) else {
            continue;
        };
        let path = entry.path();
        let metadata = entry
            .metadata()
            .map_err(|e| BackupError::io("read the size of", &path, e))?;
        if !metadata.is_file() {
            continue;
        }
        backups.push(LocalBackup {
            path,
            name,
            size: metadata.len(),
        });
    }
    backups.sort_by_key(|b| std::cmp::Reverse(b.name.created_at));
    Ok(backups)
}

/// The newest backup of `kind` in `dir`, by the time in its name.
pub fn newest_local(dir: &Path, kind: BackupKind) -> Result<Option<LocalBackup>, BackupError> {
    Ok(list_local(dir)?
        .into_iter()
        .find(|backup| backup.name.kind == kind))
}

/// Writes the archive into the backup folder as described in the module
/// documentation, verifies it, and returns it with its manifest.
pub(crate) fn write_local(
    dump: &StoreDump,
    meta: &ArchiveMeta,
    config: &BackupConfig,
) -> Result<(LocalBackup, Manifest), BackupError> {
    let local_dir = config.local_dir();
    let work_dir = config.work_dir();
    fs::create_dir_all(local_dir)
        .map_err(|e| BackupError::io("create the backup folder", local_dir, e))?;
    fs::create_dir_all(&work_dir)
        .map_err(|e| BackupError::io("create the working folder", &work_dir, e))?;

    let name = BackupName::new(meta.kind, meta.created_at);
    let meta = ArchiveMeta {
        created_at: name.created_at,
        ..meta.clone()
    };
    let temp = tempfile::Builder::new()
        .prefix(".abs-partial-")
        .tempfile_in(&work_dir)
        .map_err(|e| BackupError::io("create a file in the working folder", &work_dir, e))?;
    let temp_path = temp.path().to_path_buf();
    let manifest = {
        let mut out = BufWriter::new(temp.as_file());
        let manifest = archive::write_archive(dump, &meta, &mut out)
            .map_err(|e| BackupError::io("write", &temp_path, e))?;
        out.flush()
            .map_err(|e| BackupError::io("write", &temp_path, e))?;
        manifest
    };
    temp.as_file()
        .sync_all()
        .map_err(|e| BackupError::io("flush to disk", &temp_path, e))?;

    let final_path = local_dir.join(name.to_string());
    move_into_place(temp, &final_path, local_dir)?;
    sync_dir(local_dir)?;

    // Read back what is on disk before anything older may be deleted.
    archive::verify(&final_path)?;
    let size = fs::metadata(&final_path)
        .map_err(|e| BackupError::io("read the size of", &final_path, e))?
        .len();
    Ok((
        LocalBackup {
            path: final_path,
            name,
            size,
        },
        manifest,
    ))
}

/// Renames the finished temporary file to `final_path`, never replacing a
/// file. If the working folder is on another file system, copies into the
/// backup folder first (flushed), then renames there.
fn move_into_place(
    temp: tempfile::NamedTempFile,
    final_path: &Path,
    local_dir: &Path,
) -> Result<(), BackupError> {
    let temp = match temp.persist_noclobber(final_path) {
        Ok(_) => return Ok(()),
        Err(e) if e.error.kind() == io::ErrorKind::CrossesDevices => e.file,
        Err(e) => return Err(persist_error(final_path, e.error)),
    };
    let copy = tempfile::Builder::new()
        .prefix(".abs-partial-")
        .tempfile_in(local_dir)
        .map_err(|e| BackupError::io("create a file in the backup folder", local_dir, e))?;
    let copy_path = copy.path().to_path_buf();
    let mut source =
        File::open(temp.path()).map_err(|e| BackupError::io("read", temp.path(), e))?;
    io::copy(&mut source, &mut copy.as_file())
        .map_err(|e| BackupError::io("copy the backup into", &copy_path, e))?;
    copy.as_file()
        .sync_all()
        .map_err(|e| BackupError::io("flush to disk", &copy_path, e))?;
    copy.persist_noclobber(final_path)
        .map_err(|e| persist_error(final_path, e.error))?;
    Ok(())
}

fn persist_error(final_path: &Path, error: io::Error) -> BackupError {
    if error.kind() == io::ErrorKind::AlreadyExists {
        BackupError::io(
            "create (a backup of this name exists already; try again in a moment)",
            final_path,
            error,
        )
    } else {
        BackupError::io("move the finished backup to", final_path, error)
    }
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| BackupError::io("flush to disk the folder", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Deletes the backups of `kind` beyond the newest `keep`, by the time in
/// their names. Returns the files deleted, and the deletions that failed
/// (the new backup is in place either way).
pub(crate) fn rotate(
    dir: &Path,
    kind: BackupKind,
    keep: usize,
) -> Result<(Vec<PathBuf>, Vec<BackupError>), BackupError> {
    let mut removed = Vec::new();
    let mut problems = Vec::new();
    let old = list_local(dir)?
        .into_iter()
        .filter(|backup| backup.name.kind == kind)
        .skip(keep.max(1));
    for backup in old {
        match fs::remove_file(&backup.path) {
            Ok(()) => removed.push(backup.path),
            Err(e) => problems.push(BackupError::io("delete the old backup", &backup.path, e)),
        }
    }
    Ok((removed, problems))
}
