//! [`LocalDir`]: a folder on this machine (a mounted share, an archive, or
//! the stand-in for the Bursar in a rehearsal).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::atomic::{self, Backend, TempWriter};
use crate::{IfMissing, RemoteDir, RemoteFile, Result, TransportError, UploadOutcome};

/// A local folder behind the [`RemoteDir`] seam, with the same atomic,
/// never-overwrite uploads as [`SftpDir`](crate::SftpDir): the temporary
/// file is written, flushed to disk and hard-linked to its final name (a
/// link, unlike a rename, fails when the name exists); on file systems
/// without hard links it falls back to check-then-rename.
#[derive(Debug)]
pub struct LocalDir {
    folder: PathBuf,
    location: String,
}

impl LocalDir {
    /// Opens the folder `folder`, creating it (and its parents) if asked.
    pub fn open(folder: impl Into<PathBuf>, if_missing: IfMissing) -> Result<LocalDir> {
        let folder = folder.into();
        let location = folder.display().to_string();
        match fs::metadata(&folder) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => {
                return Err(TransportError::NotAFolder {
                    path: location.clone(),
                    location,
                });
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => match if_missing {
                IfMissing::Fail => {
                    return Err(TransportError::FolderMissing {
                        server: "this machine".to_string(),
                        folder: location,
                        detail: error.to_string(),
                    });
                }
                IfMissing::Create => {
                    fs::create_dir_all(&folder).map_err(|source| TransportError::Local {
                        op: "create folder",
                        path: folder.clone(),
                        source,
                    })?;
                }
            },
            Err(source) => {
                return Err(TransportError::Local {
                    op: "read metadata of",
                    path: folder,
                    source,
                });
            }
        }
        Ok(LocalDir { folder, location })
    }

    /// Opens `path` (relative paths are taken inside this folder).
    pub fn open_folder(&self, path: impl AsRef<Path>, if_missing: IfMissing) -> Result<LocalDir> {
        LocalDir::open(self.folder.join(path), if_missing)
    }

    /// The folder's path.
    pub fn path(&self) -> &Path {
        &self.folder
    }

    fn path_of(&self, name: &str) -> Result<PathBuf> {
        atomic::validate_name(name)?;
        Ok(self.folder.join(name))
    }

    fn local_error(
        &self,
        op: &'static str,
        name: &str,
    ) -> impl FnOnce(io::Error) -> TransportError {
        let path = self.folder.join(name);
        move |source| TransportError::Local { op, path, source }
    }

    fn to_remote_file(&self, name: String, metadata: &fs::Metadata) -> Result<RemoteFile> {
        let modified = metadata
            .modified()
            .map_err(|_| TransportError::NoModificationTime {
                location: self.location.clone(),
                name: name.clone(),
            })?;
        Ok(RemoteFile {
            name,
            size: metadata.len(),
            modified: DateTime::<Utc>::from(modified),
        })
    }
}

impl RemoteDir for LocalDir {
    fn location(&self) -> &str {
        &self.location
    }

    fn list(&self) -> Result<Vec<RemoteFile>> {
        let entries = fs::read_dir(&self.folder).map_err(self.local_error("list", ""))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(self.local_error("list", ""))?;
            let Ok(name) = entry.file_name().into_string() else {
                tracing::warn!(folder = %self.folder.display(), name = ?entry.file_name(), "skipping a file whose name is not UTF-8");
                continue;
            };
            if atomic::is_partial(&name) {
                continue;
            }
            // fs::metadata follows symbolic links, as the listing promises.
            let metadata = match fs::metadata(entry.path()) {
                Ok(metadata) => metadata,
                // A dangling link, or a file removed since read_dir.
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(self.local_error("read metadata of", &name)(error)),
            };
            if metadata.is_file() {
                files.push(self.to_remote_file(name, &metadata)?);
            }
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    fn stat(&self, name: &str) -> Result<Option<RemoteFile>> {
        let path = self.path_of(name)?;
        match fs::metadata(&path) {
            Ok(metadata) if metadata.is_file() => {
                Ok(Some(self.to_remote_file(name.to_string(), &metadata)?))
            }
            Ok(_) => Err(TransportError::NotAFile {
                location: self.location.clone(),
                name: name.to_string(),
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(self.local_error("read metadata of", name)(error)),
        }
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + '_>> {
        let path = self.path_of(name)?;
        match File::open(&path) {
            Ok(file) => Ok(Box::new(file)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                Err(TransportError::NotFound {
                    location: self.location.clone(),
                    name: name.to_string(),
                })
            }
            Err(error) => Err(self.local_error("open", name)(error)),
        }
    }

    fn upload_atomic(&self, local_path: &Path, final_name: &str) -> Result<UploadOutcome> {
        atomic::upload_atomic(self, local_path, final_name)
    }
}

struct LocalTemp {
    file: File,
    path: PathBuf,
}

impl TempWriter for LocalTemp {
    fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .map_err(|source| TransportError::Local {
                op: "write",
                path: self.path.clone(),
                source,
            })
    }

    fn finish(self: Box<Self>) -> Result<()> {
        self.file
            .sync_all()
            .map_err(|source| TransportError::Local {
                op: "flush",
                path: self.path.clone(),
                source,
            })
    }
}

impl Backend for LocalDir {
    fn create_temp(&self, temp_name: &str) -> Result<Box<dyn TempWriter + '_>> {
        let path = self.path_of(temp_name)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(self.local_error("create", temp_name))?;
        Ok(Box::new(LocalTemp { file, path }))
    }

    fn rename_no_replace(&self, temp_name: &str, final_name: &str) -> Result<bool> {
        let temp = self.path_of(temp_name)?;
        let target = self.path_of(final_name)?;
        match fs::hard_link(&temp, &target) {
            Ok(()) => {
                fs::remove_file(&temp).map_err(self.local_error("remove", temp_name))?;
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(link_error) => {
                // No hard links here (some network shares): check, then
                // rename. Racy, but only against another writer of the
                // same name at the same moment.
                tracing::debug!(folder = %self.folder.display(), error = %link_error, "hard link failed; falling back to rename");
                if fs::symlink_metadata(&target).is_ok() {
                    return Ok(false);
                }
                fs::rename(&temp, &target).map_err(self.local_error("rename to", final_name))?;
            }
        }
        atomic::sync_dir(&self.folder);
        Ok(true)
    }

    fn remove(&self, name: &str) -> Result<()> {
        let path = self.path_of(name)?;
        fs::remove_file(path).map_err(self.local_error("remove", name))
    }

    fn all_names(&self) -> Result<Vec<String>> {
        let entries = fs::read_dir(&self.folder).map_err(self.local_error("list", ""))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(self.local_error("list", ""))?;
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }
}
