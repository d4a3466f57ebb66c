//! Folders of files somewhere else: the Bursar's SFTP drop folder, the
//! payments server, the archive folders.
//!
//! The stages see one seam, [`RemoteDir`]: a single folder of flat files
//! that can be listed, stat-ed, read, downloaded and uploaded into. Two
//! implementations plug into it. [`SftpDir`] is a folder on an SFTP server
//! (ssh2/libssh2; the server's host key is always checked against a
//! known_hosts file, and password or private-key authentication is used).
//! [`LocalDir`] is a folder on this machine: a mounted share, or a rehearsal
//! in which the "Bursar" is a local folder. A stage cannot tell which one it
//! holds, and both follow the same rules, because the rules are written once
//! (in the private `atomic` module) and each implementation only supplies
//! the primitive operations.
//!
//! # Uploads are atomic and never overwrite
//!
//! The recipient (the Bursar's batch job) may pick a file up the moment it
//! appears, and a file it has processed bills students. So
//! [`RemoteDir::upload_atomic`] never lets a partial file appear under its
//! final name, and never replaces a file that is already there:
//!
//! 1. If the final name already exists, the existing file is compared with
//!    the local one, size first and then byte for byte. Identical means a
//!    previous run uploaded it and died before recording it (SPEC 6): the
//!    result is [`UploadOutcome::AlreadyPresent`] and nothing is sent.
//!    Different is [`TransportError::Conflict`], naming the file; a person
//!    must look at it.
//! 2. Otherwise the bytes go to a fresh hidden temporary name in the same
//!    folder (`.<final name>.<random>.part`, created exclusively), which is
//!    flushed (fsync where the server supports it) and closed.
//! 3. The temporary file's size, as the server reports it, must equal the
//!    number of bytes read from the local file and the local file's size.
//! 4. The temporary file is renamed to the final name. SFTP v3 renames (and
//!    OpenSSH's server in particular, which links then unlinks) refuse to
//!    replace an existing name, and [`LocalDir`] does the same with a hard
//!    link; if another writer won the race, step 1's comparison decides.
//!
//! A transfer cut off at any point (a crash, a dropped connection, a killed
//! server) leaves at most a hidden `.part` file, never a file under the
//! final name, and running the upload again completes it. Hidden `.part`
//! files are left out of [`RemoteDir::list`], and an upload that ends
//! with the file in place (uploaded, or found already present) removes
//! the ones earlier attempts left for the same final name.
//!
//! # Archive copies
//!
//! SFTP v3 has no server-side copy, so "copy to the remote archive folder"
//! (SPEC 6) is a second `upload_atomic` of the same local file into the
//! archive folder, with the same rules: after a crash, the re-run finds the
//! archive copy already present. [`SftpDir::open_folder`] opens the archive
//! folder on the connection the drop folder already holds.
//!
//! # Newest file
//!
//! [`RemoteDir::newest_with_prefix`] picks by modification time, not by
//! name (SPEC 7.1), and breaks ties by the greater name, so the choice is
//! deterministic. Over SFTP v3 modification times have a resolution of one
//! second.
//!
//! # Blocking
//!
//! Every call blocks (libssh2 is a blocking library); async callers wrap
//! them in `tokio::task::spawn_blocking`. [`SftpConfig`] carries a connect
//! timeout and an I/O timeout, so a dead server turns into an error rather
//! than a hang. Handles are `Send`, so they can move into such a task.
//!
//! # Errors
//!
//! Every failure is a [`TransportError`] whose message names the server or
//! folder, the file, and what to do about it; none of them carries a
//! password.

mod atomic;
mod error;
mod local;
mod sftp;

use std::io::Read;
use std::path::Path;

use chrono::{DateTime, Utc};

pub use error::TransportError;
pub use local::LocalDir;
pub use sftp::{SftpAuth, SftpConfig, SftpDir};

/// The crate's result type.
pub type Result<T, E = TransportError> = std::result::Result<T, E>;

/// A regular file in a [`RemoteDir`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteFile {
    /// The file's name within its folder (no folder part).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time (whole seconds over SFTP).
    pub modified: DateTime<Utc>,
}

/// What [`RemoteDir::upload_atomic`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadOutcome {
    /// The file was sent, verified and renamed to its final name.
    Uploaded { size: u64 },
    /// A file with the final name and exactly the same content was already
    /// there (a previous run sent it); nothing was sent.
    AlreadyPresent { size: u64 },
}

impl UploadOutcome {
    /// The size of the file now under the final name.
    pub fn size(self) -> u64 {
        match self {
            UploadOutcome::Uploaded { size } | UploadOutcome::AlreadyPresent { size } => size,
        }
    }
}

/// What to do when a folder to open does not exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfMissing {
    /// Fail with [`TransportError::FolderMissing`]: right for a folder that
    /// someone else owns, such as the Bursar's drop folder, where creating it
    /// would hide a wrong setting.
    Fail,
    /// Create it (and, for a local folder, its parents): right for our own
    /// archive folders.
    Create,
}

/// A folder of flat files, on an SFTP server or on this machine.
///
/// File names are single path components: no `/`, not empty, not `.` or
/// `..`, and no NUL. Anything else is [`TransportError::InvalidName`].
pub trait RemoteDir: Send {
    /// Where this folder is, for messages and logs, e.g.
    /// `sftp://bursar@sftp.example.edu:22/incoming` or `/srv/bursar/outbox`.
    fn location(&self) -> &str;

    /// The regular files in the folder (symbolic links to regular files
    /// included), sorted by name. Sub-folders and hidden `.part` files of
    /// unfinished uploads are left out.
    fn list(&self) -> Result<Vec<RemoteFile>>;

    /// The file called `name`, or `None` when there is none. A sub-folder
    /// or other non-regular entry of that name is
    /// [`TransportError::NotAFile`].
    fn stat(&self, name: &str) -> Result<Option<RemoteFile>>;

    /// Opens `name` for reading from the start.
    fn open(&self, name: &str) -> Result<Box<dyn Read + '_>>;

    /// Uploads `local_path` under `final_name`, atomically and without ever
    /// overwriting (see the crate documentation for the exact protocol).
    fn upload_atomic(&self, local_path: &Path, final_name: &str) -> Result<UploadOutcome>;

    /// Whether a regular file called `name` exists.
    fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.stat(name)?.is_some())
    }

    /// The newest file, by modification time, whose name starts with
    /// `prefix`; between files with the same time, the greater name.
    fn newest_with_prefix(&self, prefix: &str) -> Result<Option<RemoteFile>> {
        Ok(atomic::newest_with_prefix(self.list()?, prefix))
    }

    /// The whole content of `name`. Meant for small files (the Bursar's
    /// files, the payments CSV); use [`RemoteDir::download`] for others.
    fn read(&self, name: &str) -> Result<Vec<u8>> {
        atomic::read_all(self, name)
    }

    /// Copies `name` to `local_path` and returns the number of bytes. The
    /// bytes go to a temporary file beside `local_path` that is renamed over
    /// it only once complete and of the size the folder reported, so
    /// `local_path` is either its old self or the whole new file.
    fn download(&self, name: &str, local_path: &Path) -> Result<u64> {
        atomic::download(self, name, local_path)
    }
}
