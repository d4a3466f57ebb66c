//! The rules every folder follows, written once: the atomic upload protocol
//! (see the crate documentation), name checks, choosing the newest file,
//! reading and downloading. [`SftpDir`](crate::SftpDir) and
//! [`LocalDir`](crate::LocalDir) supply only the primitives in [`Backend`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::{RemoteDir, RemoteFile, Result, TransportError, UploadOutcome};

/// Size of the buffers used to move and compare file content.
pub(crate) const CHUNK: usize = 256 * 1024;

/// The primitives an implementation gives the shared protocol.
pub(crate) trait Backend: RemoteDir {
    /// Creates `temp_name` for writing; fails if it already exists.
    fn create_temp(&self, temp_name: &str) -> Result<Box<dyn TempWriter + '_>>;

    /// Renames `temp_name` to `final_name` unless `final_name` exists.
    /// `Ok(false)` means it exists (and `temp_name` is left in place).
    fn rename_no_replace(&self, temp_name: &str, final_name: &str) -> Result<bool>;

    /// Removes the file `name`.
    fn remove(&self, name: &str) -> Result<()>;

    /// The names of all entries, hidden ones included.
    fn all_names(&self) -> Result<Vec<String>>;
}

/// A temporary file being written.
pub(crate) trait TempWriter {
    fn write_all(&mut self, bytes: &[u8]) -> Result<()>;
    /// Flushes to stable storage where possible, and closes.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// Checks that `name` is a single path component we can use.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let problem = if name.is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." {
        Some("it is not a file name")
    } else if name.contains('/') {
        Some("it contains '/'; give a name within the folder, not a path")
    } else if name.contains('\0') {
        Some("it contains a NUL character")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(TransportError::InvalidName {
            name: name.to_string(),
            problem,
        }),
        None => Ok(()),
    }
}

/// A fresh temporary name for an upload of `final_name`.
pub(crate) fn temp_name_for(final_name: &str) -> String {
    format!(".{final_name}.{:016x}.part", rand::random::<u64>())
}

/// Whether `name` is the temporary file of an unfinished upload (of any
/// final name).
pub(crate) fn is_partial(name: &str) -> bool {
    partial_target(name).is_some()
}

/// The final name a temporary name was made for, if it is one.
fn partial_target(name: &str) -> Option<&str> {
    let inner = name.strip_prefix('.')?.strip_suffix(".part")?;
    let (target, random) = inner.rsplit_once('.')?;
    let is_random = random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit());
    (is_random && !target.is_empty()).then_some(target)
}

pub(crate) fn newest_with_prefix(files: Vec<RemoteFile>, prefix: &str) -> Option<RemoteFile> {
    files
        .into_iter()
        .filter(|file| file.name.starts_with(prefix))
        .max_by(|a, b| {
            a.modified
                .cmp(&b.modified)
                .then_with(|| a.name.cmp(&b.name))
        })
}

fn local_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> TransportError {
    let path = path.to_path_buf();
    move |source| TransportError::Local { op, path, source }
}

fn remote_read_error<D: RemoteDir + ?Sized>(
    dir: &D,
    name: &str,
) -> impl FnOnce(io::Error) -> TransportError {
    let location = dir.location().to_string();
    let path = name.to_string();
    move |source| TransportError::RemoteIo {
        location,
        op: "read",
        path,
        source,
    }
}

/// Reads until `buf` is full or the reader is exhausted.
fn fill(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

pub(crate) fn upload_atomic<B: Backend + ?Sized>(
    dir: &B,
    local_path: &Path,
    final_name: &str,
) -> Result<UploadOutcome> {
    validate_name(final_name)?;
    let mut local = File::open(local_path).map_err(local_error("open", local_path))?;
    let metadata = local
        .metadata()
        .map_err(local_error("read metadata of", local_path))?;
    if !metadata.is_file() {
        return Err(TransportError::Local {
            op: "upload",
            path: local_path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        });
    }
    let local_size = metadata.len();

    if let Some(existing) = dir.stat(final_name)? {
        let outcome = compare_existing(dir, &existing, local_path, local_size);
        if let Ok(UploadOutcome::AlreadyPresent { .. }) = outcome {
            // In place and identical: an attempt killed before a later run
            // placed it left its temporary file, which nothing else would
            // remove.
            remove_stale_partials(dir, final_name);
        }
        return outcome;
    }

    let temp_name = temp_name_for(final_name);
    let outcome = place(
        dir, &mut local, local_path, local_size, &temp_name, final_name,
    );
    match outcome {
        Ok(UploadOutcome::Uploaded { .. }) => remove_stale_partials(dir, final_name),
        _ => discard(dir, &temp_name),
    }
    outcome
}

/// Steps 2-4 of the protocol: write the temporary file, verify, rename.
fn place<B: Backend + ?Sized>(
    dir: &B,
    local: &mut File,
    local_path: &Path,
    local_size: u64,
    temp_name: &str,
    final_name: &str,
) -> Result<UploadOutcome> {
    let mut writer = dir.create_temp(temp_name)?;
    let mut buf = vec![0u8; CHUNK];
    let mut sent: u64 = 0;
    loop {
        let n = fill(local, &mut buf).map_err(local_error("read", local_path))?;
        if n == 0 {
            break;
        }
        writer.write_all(&buf[..n])?;
        sent += n as u64;
    }
    writer.finish()?;
    if sent != local_size {
        return Err(TransportError::SourceChanged {
            path: local_path.to_path_buf(),
            expected: local_size,
            read: sent,
        });
    }

    let found = dir.stat(temp_name)?.map_or(0, |file| file.size);
    if found != sent {
        return Err(TransportError::SizeMismatch {
            location: dir.location().to_string(),
            final_name: final_name.to_string(),
            temp_name: temp_name.to_string(),
            expected: sent,
            found,
        });
    }

    if dir.rename_no_replace(temp_name, final_name)? {
        return Ok(UploadOutcome::Uploaded { size: sent });
    }
    // Someone else put a file there since we looked.
    match dir.stat(final_name)? {
        Some(existing) => compare_existing(dir, &existing, local_path, local_size),
        None => Err(TransportError::RemoteIo {
            location: dir.location().to_string(),
            op: "rename to",
            path: final_name.to_string(),
            source: io::Error::other(
                "the name was taken during the rename and then freed again; run again",
            ),
        }),
    }
}

/// Step 1: a file is already under the final name. Identical content means
/// a previous run sent it.
fn compare_existing<D: RemoteDir + ?Sized>(
    dir: &D,
    existing: &RemoteFile,
    local_path: &Path,
    local_size: u64,
) -> Result<UploadOutcome> {
    let conflict = || TransportError::Conflict {
        location: dir.location().to_string(),
        name: existing.name.clone(),
        local_path: local_path.to_path_buf(),
        remote_size: existing.size,
        local_size,
    };
    if existing.size != local_size {
        return Err(conflict());
    }
    let mut remote = dir.open(&existing.name)?;
    let mut local = File::open(local_path).map_err(local_error("open", local_path))?;
    let mut remote_buf = vec![0u8; CHUNK];
    let mut local_buf = vec![0u8; CHUNK];
    loop {
        let r =
            fill(&mut remote, &mut remote_buf).map_err(remote_read_error(dir, &existing.name))?;
        let l = fill(&mut local, &mut local_buf).map_err(local_error("read", local_path))?;
        if remote_buf[..r] != local_buf[..l] {
            return Err(conflict());
        }
        if r == 0 {
            return Ok(UploadOutcome::AlreadyPresent { size: local_size });
        }
    }
}

/// Best-effort removal of our temporary file after a failure. When the
/// connection is what failed this fails too; the next successful upload of
/// the same name removes it.
fn discard<B: Backend + ?Sized>(dir: &B, temp_name: &str) {
    if let Err(error) = dir.remove(temp_name) {
        tracing::debug!(location = dir.location(), temp_name, %error, "could not remove a temporary upload");
    }
}

/// Removes the temporary files that earlier, interrupted uploads of
/// `final_name` left behind. Best effort: a failure is logged, not returned,
/// because the upload itself succeeded.
fn remove_stale_partials<B: Backend + ?Sized>(dir: &B, final_name: &str) {
    let names = match dir.all_names() {
        Ok(names) => names,
        Err(error) => {
            tracing::warn!(location = dir.location(), %error, "could not list the folder to remove leftovers of interrupted uploads");
            return;
        }
    };
    for name in names
        .iter()
        .filter(|name| partial_target(name) == Some(final_name))
    {
        match dir.remove(name) {
            Ok(()) => tracing::info!(
                location = dir.location(),
                name,
                "removed the leftover of an interrupted upload"
            ),
            Err(error) => tracing::warn!(
                location = dir.location(),
                name,
                %error,
                "could not remove the leftover of an interrupted upload"
            ),
        }
    }
}

/// Removes the temporary files that earlier, killed downloads to
/// `final_name` left in `folder` (the crash loop found one in an import
/// archive). Best effort, as for uploads: the download itself succeeded.
fn remove_stale_local_partials(folder: &Path, final_name: &str) {
    let entries = match fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(error) => {
            tracing::warn!(folder = %folder.display(), %error, "could not list the folder to remove leftovers of interrupted downloads");
            return;
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_str().and_then(partial_target) != Some(final_name) {
            continue;
        }
        let path = entry.path();
        match fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed the leftover of an interrupted download")
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "could not remove the leftover of an interrupted download")
            }
        }
    }
}

pub(crate) fn read_all<D: RemoteDir + ?Sized>(dir: &D, name: &str) -> Result<Vec<u8>> {
    let mut reader = dir.open(name)?;
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(remote_read_error(dir, name))?;
    Ok(bytes)
}

pub(crate) fn download<D: RemoteDir + ?Sized>(
    dir: &D,
    name: &str,
    local_path: &Path,
) -> Result<u64> {
    validate_name(name)?;
    let listed = dir.stat(name)?.ok_or_else(|| TransportError::NotFound {
        location: dir.location().to_string(),
        name: name.to_string(),
    })?;
    let mut reader = dir.open(name)?;

    let Some(file_name) = local_path.file_name() else {
        return Err(TransportError::Local {
            op: "download into",
            path: local_path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
        });
    };
    let parent = match local_path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temp_path = parent.join(temp_name_for(&file_name.to_string_lossy()));

    let result = copy_to_new_file(dir, name, &mut reader, &temp_path).and_then(|read| {
        if read == listed.size {
            fs::rename(&temp_path, local_path)
                .map_err(local_error("rename into place", local_path))?;
            sync_dir(&parent);
            remove_stale_local_partials(&parent, &file_name.to_string_lossy());
            Ok(read)
        } else {
            Err(TransportError::ChangedDuringDownload {
                location: dir.location().to_string(),
                name: name.to_string(),
                expected: listed.size,
                read,
            })
        }
    });
    if result.is_err() {
        let _ = fs::remove_file(&temp_path);
    }
    result
}

fn copy_to_new_file<D: RemoteDir + ?Sized>(
    dir: &D,
    name: &str,
    reader: &mut dyn Read,
    path: &Path,
) -> Result<u64> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(local_error("create", path))?;
    let mut buf = vec![0u8; CHUNK];
    let mut copied: u64 = 0;
    loop {
        let n = fill(reader, &mut buf).map_err(remote_read_error(dir, name))?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])
            .map_err(local_error("write", path))?;
        copied += n as u64;
    }
    file.sync_all().map_err(local_error("flush", path))?;
    Ok(copied)
}

/// Makes a rename in `folder` durable. Best effort: some file systems
/// (network shares) cannot sync a folder, and the rename itself has
/// succeeded.
pub(crate) fn sync_dir(folder: &Path) {
    if let Err(error) = File::open(folder).and_then(|dir| dir.sync_all()) {
        tracing::debug!(folder = %folder.display(), %error, "could not sync the folder");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised_as_partials_of_their_final_name() {
        let temp = temp_name_for("LIB_charges.dat.20250101.7.1");
        assert!(is_partial(&temp));
        assert_eq!(partial_target(&temp), Some("LIB_charges.dat.20250101.7.1"));
        assert_ne!(temp, temp_name_for("LIB_charges.dat.20250101.7.1"));
    }

    #[test]
    fn other_hidden_files_are_not_partials() {
        for name in [
            ".profile",
            ".x.part",
            ".x.0123.part",
            "x.0123456789abcdef.part",
            "..0123456789abcdef.part",
        ] {
            assert!(!is_partial(name), "{name}");
        }
    }

    #[test]
    fn names_must_be_single_components() {
        for bad in ["", ".", "..", "a/b", "/abs", "../up", "nul\0"] {
            assert!(
                matches!(validate_name(bad), Err(TransportError::InvalidName { .. })),
                "{bad:?}"
            );
        }
        for good in ["LIB_charges.dat.20250101.7.1", ".hidden", "with space", "ü"] {
            assert!(validate_name(good).is_ok(), "{good:?}");
        }
    }
}
