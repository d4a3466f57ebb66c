//! `LocalDir` against the shared behaviour, plus what only a local folder
//! has. Needs no server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::{self, FileTimes, OpenOptions};
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{Harness, behaviour_tests};
use sftp_transport::{IfMissing, LocalDir, RemoteDir, TransportError};
use tempfile::TempDir;

struct LocalHarness {
    folder: TempDir,
    scratch: TempDir,
}

fn local_harness(_test: &str) -> Option<LocalHarness> {
    Some(LocalHarness {
        folder: TempDir::new().unwrap(),
        scratch: TempDir::new().unwrap(),
    })
}

impl Harness for LocalHarness {
    fn dir(&self) -> Box<dyn RemoteDir> {
        Box::new(LocalDir::open(self.folder.path(), IfMissing::Fail).unwrap())
    }

    fn subdir(&self, name: &str) -> Box<dyn RemoteDir> {
        let dir = LocalDir::open(self.folder.path(), IfMissing::Fail).unwrap();
        Box::new(dir.open_folder(name, IfMissing::Create).unwrap())
    }

    fn put(&self, name: &str, bytes: &[u8]) {
        fs::write(self.folder.path().join(name), bytes).unwrap();
    }

    fn set_mtime(&self, name: &str, unix_secs: i64) {
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(unix_secs).unwrap());
        let file = OpenOptions::new()
            .write(true)
            .open(self.folder.path().join(name))
            .unwrap();
        file.set_times(FileTimes::new().set_modified(time).set_accessed(time))
            .unwrap();
    }

    fn get(&self, name: &str) -> Option<Vec<u8>> {
        fs::read(self.folder.path().join(name)).ok()
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.folder.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn mkdir(&self, name: &str) {
        fs::create_dir(self.folder.path().join(name)).unwrap();
    }

    fn scratch(&self) -> &Path {
        self.scratch.path()
    }
}

behaviour_tests!(local_harness);

#[test]
fn a_missing_folder_is_an_error_unless_asked_to_create_it() {
    let parent = TempDir::new().unwrap();
    let missing = parent.path().join("bursar/outbox");

    let error = LocalDir::open(&missing, IfMissing::Fail).unwrap_err();
    assert!(
        matches!(error, TransportError::FolderMissing { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("bursar/outbox"), "{error}");

    let dir = LocalDir::open(&missing, IfMissing::Create).unwrap();
    assert!(missing.is_dir());
    assert_eq!(dir.list().unwrap(), []);
}

#[test]
fn a_file_is_not_a_folder() {
    let parent = TempDir::new().unwrap();
    let file = parent.path().join("plain");
    fs::write(&file, b"x").unwrap();
    let error = LocalDir::open(&file, IfMissing::Create).unwrap_err();
    assert!(
        matches!(error, TransportError::NotAFolder { .. }),
        "{error:?}"
    );
}

#[test]
fn a_missing_local_source_names_the_path() {
    let folder = TempDir::new().unwrap();
    let dir = LocalDir::open(folder.path(), IfMissing::Fail).unwrap();
    let error = dir
        .upload_atomic(Path::new("/nonexistent/LIB_charges.dat"), "LIB_charges.dat")
        .unwrap_err();
    assert!(matches!(error, TransportError::Local { .. }), "{error:?}");
    assert!(
        error.to_string().contains("/nonexistent/LIB_charges.dat"),
        "{error}"
    );
}
