//! Backups of the sync's state, and restores from them (SPEC section 8).
//!
//! A backup is one file of our own, store-neutral format (described byte by
//! byte in `docs/backup-format.md`): zstd frames whose decompressed bytes
//! are JSON lines. The first line is the [`Manifest`] (format version,
//! kind, creation time, tool version, the store it came from, and for each
//! part its record count, length and SHA-256); then come the records of
//! every collection of the store's [`fine_store::StoreDump`], one per line;
//! a last, skippable frame holds the SHA-256 of the whole file before it.
//! The records are the plain serde form of `sync-core`'s record types, so a
//! backup of a MongoDB store restores into SQLite and back. `zstd -dc` on
//! an archive shows it as text.
//!
//! The crate works on dumps, not on records: it never interprets what it
//! archives, and it reaches the store only through
//! [`FineStore::dump`](fine_store::FineStore::dump) and
//! [`FineStore::load`](fine_store::FineStore::load).
//!
//! **Backing up** ([`backup`]) writes the archive to a temporary file in
//! the working folder, flushes it to disk, renames it into the local
//! backup folder under a name carrying its UTC time
//! (`abs-backup-20241210T153000.000Z.jsonl.zst`: names sort by time and
//! parse back to it, see [`BackupName`]), never over an existing file, and
//! reads it back to verify it. Only then does rotation delete the backups
//! beyond the newest [`BackupConfig::keep`]. Last, a copy goes to S3 (or an
//! S3-compatible server); if that fails the local copy stays and the
//! [`BackupReport`] says so with an [`S3Error`] naming the endpoint and
//! bucket.
//!
//! **Restoring** ([`restore_from_file`], [`restore_last`],
//! [`restore_from_s3`]) is done in an order that cannot lose data: the
//! archive is read and verified whole (file checksum, manifest, format
//! version, each part's checksum and count, every record) before the store
//! is touched; then a safety backup of the current state is taken
//! (`abs-safety-...`, in the local folder); then the store's
//! all-or-nothing `load` replaces every record. A refused archive, or a
//! failed safety backup, leaves the store as it was. [`restore_last`]
//! picks the newest backup by the time in its name, never by file system
//! times, which copies and restores of the folder change.
//!
//! **Choosing** (`restore-choose`): [`list_local`] and [`list_s3`] list
//! backups newest first; [`Choice`] rows show time, size and per-part
//! counts read from the manifest alone (the first zstd frame, one range
//! request on S3); [`choose`] asks for a number on any reader and writer.

mod archive;
mod choose;
mod config;
mod error;
mod local;
mod name;
mod run;
mod s3;

pub use archive::{
    ArchiveMeta, FORMAT, FORMAT_VERSION, Manifest, PART_NAMES, PartInfo, TRAILER_LEN,
    VerifiedArchive, read_manifest, verify, verify_bytes, write_archive,
};
pub use choose::{CHOICES, Choice, choose, human_size, pick, write_listing};
pub use config::{BackupConfig, DEFAULT_KEEP, S3Config, S3Credentials};
pub use error::{ArchiveError, BackupError, S3Error};
pub use local::{LocalBackup, list_local, newest_local};
pub use name::{BackupKind, BackupName, EXTENSION};
pub use run::{
    BackupReport, RestoreReport, S3Outcome, backup, restore_from_file, restore_from_s3,
    restore_last, verify_async,
};
pub use s3::{S3Backup, S3Copy, fetch_from_s3, list_s3, s3_manifest, upload};
