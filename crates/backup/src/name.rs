//! Backup file names: the kind and the UTC time, so that names sort by time
//! and parse back to it.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

/// The extension of every archive: the decompressed bytes are JSON lines.
pub const EXTENSION: &str = ".jsonl.zst";

const TIME_FORMAT: &str = "%Y%m%dT%H%M%S%.3fZ";

/// Why a backup was taken. The kinds have their own name prefix, so that
/// [`crate::restore_last`] never picks a safety backup by accident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupKind {
    /// A backup asked for (`backup-db`): rotated locally, copied to S3.
    Regular,
    /// The state just before a restore: local only, rotated separately.
    Safety,
}

impl BackupKind {
    /// The file name prefix of this kind.
    pub fn prefix(self) -> &'static str {
        match self {
            BackupKind::Regular => "abs-backup-",
            BackupKind::Safety => "abs-safety-",
        }
    }
}

impl fmt::Display for BackupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            BackupKind::Regular => "backup",
            BackupKind::Safety => "safety",
        })
    }
}

/// A parsed backup file name, e.g. `abs-backup-20241210T153000.000Z.jsonl.zst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BackupName {
    pub kind: BackupKind,
    /// UTC, to the millisecond.
    pub created_at: DateTime<Utc>,
}

impl BackupName {
    /// The name for a backup of this kind taken at `at` (truncated to the
    /// millisecond, like the manifest's time).
    pub fn new(kind: BackupKind, at: DateTime<Utc>) -> Self {
        BackupName {
            kind,
            created_at: at.trunc_subsecs(3),
        }
    }

    /// Parses a file name (no folder). Anything not named exactly as this
    /// crate names backups is `None`: listings skip it and rotation never
    /// deletes it.
    pub fn parse(file_name: &str) -> Option<Self> {
        let (kind, rest) = [BackupKind::Regular, BackupKind::Safety]
            .into_iter()
            .find_map(|kind| {
                file_name
                    .strip_prefix(kind.prefix())
                    .map(|rest| (kind, rest))
            })?;
        let time = rest.strip_suffix(EXTENSION)?;
        let naive = NaiveDateTime::parse_from_str(time, TIME_FORMAT).ok()?;
        let name = BackupName {
            kind,
            created_at: naive.and_utc(),
        };
        // Only the canonical spelling, so that names sort by time.
        (name.to_string() == file_name).then_some(name)
    }
}

impl fmt::Display for BackupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.kind.prefix(),
            self.created_at.format(TIME_FORMAT),
            EXTENSION
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn names_round_trip_and_sort_by_time() {
        let early = Utc.with_ymd_and_hms(2024, 12, 10, 15, 30, 0).single();
        let late = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).single();
        let (Some(early), Some(late)) = (early, late) else {
            panic!("valid dates")
        };
        let a = BackupName::new(BackupKind::Regular, early);
        let b = BackupName::new(BackupKind::Regular, late);
        assert_eq!(a.to_string(), "abs-backup-20241210T153000.000Z.jsonl.zst");
        assert_eq!(BackupName::parse(&a.to_string()), Some(a));
        assert_eq!(BackupName::parse(&b.to_string()), Some(b));
        assert!(a.to_string() < b.to_string());
        let s = BackupName::new(BackupKind::Safety, late);
        assert_eq!(s.to_string(), "abs-safety-20250102T030405.000Z.jsonl.zst");
        assert_eq!(BackupName::parse(&s.to_string()), Some(s));
    }

    #[test]
    fn other_names_are_not_backups() {
        for name in [
            "abs-backup-20241210T153000Z.jsonl.zst",
            "abs-backup-20241210T153000.000Z.jsonl",
            "abs-backup-20241310T153000.000Z.jsonl.zst",
            "abs-backup-20241210T153000.000Z.jsonl.zst.tmp",
            ".abs-backup-20241210T153000.000Z.jsonl.zst",
            "notes.txt",
        ] {
            assert_eq!(BackupName::parse(name), None, "{name}");
        }
    }
}
