//! Behaviour shared by every `RemoteDir` implementation, written once and
//! run against each (`tests/local.rs`, `tests/sftp.rs`) through a
//! [`Harness`]. The harness arranges and inspects the folder directly,
//! bypassing the API under test, so a test never checks the API with
//! itself.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use sftp_transport::{RemoteDir, RemoteFile, TransportError, UploadOutcome};

/// A fresh, empty folder of one implementation, plus direct access to it.
pub trait Harness {
    /// The folder under test, through the API.
    fn dir(&self) -> Box<dyn RemoteDir>;
    /// The sub-folder `name` of the folder under test, created if missing,
    /// through the API.
    fn subdir(&self, name: &str) -> Box<dyn RemoteDir>;
    /// Writes a file directly.
    fn put(&self, name: &str, bytes: &[u8]);
    /// Sets a file's modification (and access) time directly.
    fn set_mtime(&self, name: &str, unix_secs: i64);
    /// Reads a file directly; `None` if there is none.
    fn get(&self, name: &str) -> Option<Vec<u8>>;
    /// Every entry of the folder, hidden ones included, sorted.
    fn names(&self) -> Vec<String>;
    /// Creates a sub-folder directly.
    fn mkdir(&self, name: &str);
    /// A local folder for source files and downloads.
    fn scratch(&self) -> &Path;
}

/// Writes `bytes` to a new file in the harness's scratch folder.
pub fn local_file(h: &dyn Harness, name: &str, bytes: &[u8]) -> PathBuf {
    let path = h.scratch().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

pub fn time(unix_secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix_secs, 0).unwrap()
}

/// Two lines of a Bursar charges file, and every byte value once, so
/// that no byte is mangled on the way.
pub fn charges_bytes() -> Vec<u8> {
    let mut bytes = b"20012345   531000000002      65.00 01252025  12102024  2251     \
                      1234567890123456789\n"
        .to_vec();
    bytes.extend((0..=255u8).collect::<Vec<_>>());
    bytes.push(b'\n');
    bytes
}

const CHARGES: &str = "LIB_charges.dat.20241210.42.1";

pub fn upload_verifies_and_reads_back_exact_bytes(h: &dyn Harness) {
    let bytes = charges_bytes();
    let local = local_file(h, CHARGES, &bytes);
    let dir = h.dir();

    let outcome = dir.upload_atomic(&local, CHARGES).unwrap();

    assert_eq!(
        outcome,
        UploadOutcome::Uploaded {
            size: bytes.len() as u64
        }
    );
    assert_eq!(h.get(CHARGES).as_deref(), Some(&bytes[..]));
    assert_eq!(h.names(), [CHARGES], "no temporary file may be left");
    assert_eq!(dir.read(CHARGES).unwrap(), bytes);
    assert_eq!(dir.stat(CHARGES).unwrap().unwrap().size, bytes.len() as u64);
    assert!(dir.exists(CHARGES).unwrap());
}

pub fn same_content_already_present_is_not_uploaded_again(h: &dyn Harness) {
    let bytes = charges_bytes();
    let local = local_file(h, CHARGES, &bytes);
    // A previous run uploaded it, then died before recording the send.
    h.put(CHARGES, &bytes);
    h.set_mtime(CHARGES, 1_000_000_000);
    let dir = h.dir();

    let outcome = dir.upload_atomic(&local, CHARGES).unwrap();

    assert_eq!(
        outcome,
        UploadOutcome::AlreadyPresent {
            size: bytes.len() as u64
        }
    );
    let remote = dir.stat(CHARGES).unwrap().unwrap();
    assert_eq!(
        remote.modified,
        time(1_000_000_000),
        "the file must not have been rewritten"
    );
    assert_eq!(h.names(), [CHARGES]);

    // And a normal upload run twice sends once.
    let other = "LIB_charges.dat.20241210.42.2";
    let local = local_file(h, other, b"reversal\n");
    assert_eq!(
        dir.upload_atomic(&local, other).unwrap(),
        UploadOutcome::Uploaded { size: 9 }
    );
    assert_eq!(
        dir.upload_atomic(&local, other).unwrap(),
        UploadOutcome::AlreadyPresent { size: 9 }
    );
}

pub fn different_content_under_the_final_name_is_an_error_and_is_kept(h: &dyn Harness) {
    let dir = h.dir();
    let theirs = b"20012345   531000000002      65.00\n".to_vec();
    h.put(CHARGES, &theirs);

    // Same size, one byte different.
    let mut ours = theirs.clone();
    ours[20] = b'9';
    let local = local_file(h, "same-size", &ours);
    let error = dir.upload_atomic(&local, CHARGES).unwrap_err();
    assert!(
        matches!(error, TransportError::Conflict { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(CHARGES), "{message}");
    assert!(message.contains("not overwritten"), "{message}");

    // Different size.
    let local = local_file(h, "longer", b"a longer file than the one there\n\n\n\n");
    let error = dir.upload_atomic(&local, CHARGES).unwrap_err();
    assert!(
        matches!(error, TransportError::Conflict { .. }),
        "{error:?}"
    );

    assert_eq!(
        h.get(CHARGES),
        Some(theirs),
        "the existing file must be untouched"
    );
    assert_eq!(h.names(), [CHARGES], "no temporary file may be left");
}

pub fn listing_shows_sizes_and_times_and_newest_goes_by_time(h: &dyn Harness) {
    const PREFIX: &str = "ASUSASF_LIBRARY_REPORT_DTRANGE";
    let files = [
        // name, content, mtime: the newest by time is not the last by name.
        (
            "ASUSASF_LIBRARY_REPORT_DTRANGE_20250101.csv",
            "a",
            1_700_000_300,
        ),
        (
            "ASUSASF_LIBRARY_REPORT_DTRANGE_20250201.csv",
            "bb",
            1_700_000_200,
        ),
        (
            "ASUSASF_LIBRARY_REPORT_DTRANGE_20250301.csv",
            "ccc",
            1_700_000_100,
        ),
        ("OTHER_REPORT.csv", "dddd", 1_700_000_900),
    ];
    for (name, content, mtime) in files {
        h.put(name, content.as_bytes());
        h.set_mtime(name, mtime);
    }
    h.mkdir("archive");
    h.put(".OTHER_REPORT.csv.0123456789abcdef.part", b"half");
    let dir = h.dir();

    let expected: Vec<RemoteFile> = files
        .iter()
        .map(|(name, content, mtime)| RemoteFile {
            name: name.to_string(),
            size: content.len() as u64,
            modified: time(*mtime),
        })
        .collect();
    assert_eq!(dir.list().unwrap(), expected);

    let newest = dir.newest_with_prefix(PREFIX).unwrap().unwrap();
    assert_eq!(newest.name, "ASUSASF_LIBRARY_REPORT_DTRANGE_20250101.csv");
    assert_eq!(newest.modified, time(1_700_000_300));
    assert_eq!(dir.newest_with_prefix("NOTHING_LIKE_IT").unwrap(), None);

    // Equal times: the greater name wins, every time.
    h.put("ASUSASF_LIBRARY_REPORT_DTRANGE_20241201.csv", b"e");
    h.set_mtime("ASUSASF_LIBRARY_REPORT_DTRANGE_20241201.csv", 1_700_000_300);
    for _ in 0..3 {
        let newest = dir.newest_with_prefix(PREFIX).unwrap().unwrap();
        assert_eq!(newest.name, "ASUSASF_LIBRARY_REPORT_DTRANGE_20250101.csv");
    }
}

pub fn missing_files_and_folders_are_told_apart(h: &dyn Harness) {
    let dir = h.dir();
    h.mkdir("archive");

    assert_eq!(dir.stat("absent.csv").unwrap(), None);
    assert!(!dir.exists("absent.csv").unwrap());
    let error = dir.read("absent.csv").unwrap_err();
    assert!(
        matches!(error, TransportError::NotFound { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("absent.csv"), "{error}");
    let error = dir
        .download("absent.csv", &h.scratch().join("x"))
        .unwrap_err();
    assert!(
        matches!(error, TransportError::NotFound { .. }),
        "{error:?}"
    );
    let error = dir.stat("archive").unwrap_err();
    assert!(
        matches!(error, TransportError::NotAFile { .. }),
        "{error:?}"
    );
}

pub fn download_replaces_the_local_copy_whole(h: &dyn Harness) {
    let bytes = charges_bytes();
    h.put("payments.csv", &bytes);
    let target = local_file(h, "payments-copy.csv", b"old copy");
    let dir = h.dir();

    assert_eq!(
        dir.download("payments.csv", &target).unwrap(),
        bytes.len() as u64
    );

    assert_eq!(std::fs::read(&target).unwrap(), bytes);
    let leftovers: Vec<_> = std::fs::read_dir(h.scratch())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A run killed while downloading left its temporary file beside the
/// target (the crash loop found one in the payments archive): the next
/// download of that name removes it, and leaves others' alone.
pub fn a_download_removes_leftovers_of_interrupted_downloads(h: &dyn Harness) {
    let bytes = charges_bytes();
    h.put("payments.csv", &bytes);
    let own_leftover = ".payments.csv.0123456789abcdef.part";
    let other_leftover = ".payments-2.csv.fedcba9876543210.part";
    local_file(h, own_leftover, b"the first half of");
    local_file(h, other_leftover, b"something else");

    h.dir()
        .download("payments.csv", &h.scratch().join("payments.csv"))
        .unwrap();

    let mut names: Vec<String> = std::fs::read_dir(h.scratch())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [other_leftover, "payments.csv"]);
}

pub fn names_that_are_paths_are_refused(h: &dyn Harness) {
    let local = local_file(h, "x", b"x");
    let dir = h.dir();
    for bad in ["", ".", "..", "../escape", "sub/file", "/etc/passwd"] {
        let error = dir.upload_atomic(&local, bad).unwrap_err();
        assert!(
            matches!(error, TransportError::InvalidName { .. }),
            "{bad:?}: {error:?}"
        );
        let error = dir.stat(bad).unwrap_err();
        assert!(
            matches!(error, TransportError::InvalidName { .. }),
            "{bad:?}: {error:?}"
        );
    }
    assert!(h.names().is_empty());
}

pub fn an_upload_removes_leftovers_of_interrupted_attempts(h: &dyn Harness) {
    let own_leftover = format!(".{CHARGES}.0123456789abcdef.part");
    let other_leftover = ".LIB_charges.dat.20241210.42.2.fedcba9876543210.part";
    h.put(&own_leftover, b"the first half of");
    h.put(other_leftover, b"something else");
    let local = local_file(h, CHARGES, &charges_bytes());
    let dir = h.dir();

    assert!(matches!(
        dir.upload_atomic(&local, CHARGES).unwrap(),
        UploadOutcome::Uploaded { .. }
    ));

    assert_eq!(h.names(), [other_leftover, CHARGES]);
}

/// A run killed mid-upload whose file a later run then put in place (the
/// crash loop found this): the next upload finds it present, and the
/// killed attempt's leftover goes too.
pub fn a_file_already_in_place_also_clears_leftovers(h: &dyn Harness) {
    let own_leftover = format!(".{CHARGES}.0123456789abcdef.part");
    let other_leftover = ".LIB_charges.dat.20241210.42.2.fedcba9876543210.part";
    h.put(&own_leftover, b"the first half of");
    h.put(other_leftover, b"something else");
    h.put(CHARGES, &charges_bytes());
    let local = local_file(h, CHARGES, &charges_bytes());

    assert!(matches!(
        h.dir().upload_atomic(&local, CHARGES).unwrap(),
        UploadOutcome::AlreadyPresent { .. }
    ));

    assert_eq!(h.names(), [other_leftover, CHARGES]);
}

pub fn archive_copy_goes_to_a_created_subfolder(h: &dyn Harness) {
    let bytes = charges_bytes();
    let local = local_file(h, CHARGES, &bytes);
    let drop_folder = h.dir();
    let archive = h.subdir("archive/2024");

    // The send stage: upload to the drop folder, then copy to the archive.
    for _ in 0..2 {
        drop_folder.upload_atomic(&local, CHARGES).unwrap();
        archive.upload_atomic(&local, CHARGES).unwrap();
    }

    assert_eq!(archive.read(CHARGES).unwrap(), bytes);
    assert_eq!(h.get(CHARGES), Some(bytes));
    assert_eq!(h.names(), [CHARGES, "archive"]);
    assert_eq!(
        drop_folder.list().unwrap().len(),
        1,
        "folders are not listed"
    );
}

/// One `#[test]` per shared behaviour. `$harness` is an expression giving
/// `Option<impl Harness>`, named after the test; `None` skips the test.
macro_rules! behaviour_tests {
    ($harness:path) => {
        behaviour_tests!(@each $harness;
            upload_verifies_and_reads_back_exact_bytes,
            same_content_already_present_is_not_uploaded_again,
            different_content_under_the_final_name_is_an_error_and_is_kept,
            listing_shows_sizes_and_times_and_newest_goes_by_time,
            missing_files_and_folders_are_told_apart,
            download_replaces_the_local_copy_whole,
            a_download_removes_leftovers_of_interrupted_downloads,
            names_that_are_paths_are_refused,
            an_upload_removes_leftovers_of_interrupted_attempts,
            a_file_already_in_place_also_clears_leftovers,
            archive_copy_goes_to_a_created_subfolder,
        );
    };
    (@each $harness:path; $($name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                if let Some(harness) = $harness(stringify!($name)) {
                    common::$name(&harness);
                }
            }
        )*
    };
}
pub(crate) use behaviour_tests;
