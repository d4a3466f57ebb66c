//! `restore-choose`: the newest backups as numbered rows, and the prompt
//! that asks for a number.

use std::io::{self, BufRead, Write};

use chrono::{DateTime, Utc};

use crate::archive::Manifest;
use crate::error::BackupError;
use crate::local::LocalBackup;
use crate::name::BackupKind;
use crate::s3::S3Backup;

/// How many backups `restore-choose` offers.
pub const CHOICES: usize = 5;

/// One row of a listing: what a person needs to choose a backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// The file name or S3 key.
    pub label: String,
    pub kind: BackupKind,
    pub created_at: DateTime<Utc>,
    pub size: u64,
    /// Records per part from the manifest, or why it could not be read.
    pub counts: Result<Vec<(String, u64)>, String>,
}

impl Choice {
    /// A local backup's row; reads its manifest (first frame only).
    pub fn local(backup: &LocalBackup) -> Self {
        let label = backup
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| backup.name.to_string());
        Choice {
            label,
            kind: backup.name.kind,
            created_at: backup.name.created_at,
            size: backup.size,
            counts: backup
                .manifest()
                .map(|m| owned_counts(&m))
                .map_err(|e| e.to_string()),
        }
    }

    /// An S3 backup's row, with its manifest if it was read
    /// ([`crate::s3_manifest`]).
    pub fn s3(backup: &S3Backup, manifest: Result<&Manifest, String>) -> Self {
        Choice {
            label: backup.key.clone(),
            kind: backup.name.kind,
            created_at: backup.name.created_at,
            size: backup.size,
            counts: manifest.map(owned_counts),
        }
    }
}

fn owned_counts(manifest: &Manifest) -> Vec<(String, u64)> {
    manifest
        .counts()
        .into_iter()
        .map(|(name, count)| (name.to_string(), count))
        .collect()
}

/// Writes the rows, numbered from 1.
pub fn write_listing(rows: &[Choice], out: &mut impl Write) -> io::Result<()> {
    for (index, row) in rows.iter().enumerate() {
        writeln!(
            out,
            "{:>2}) {}  {:<6}  {:>9}  {}",
            index + 1,
            row.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
            row.kind.to_string(),
            human_size(row.size),
            row.label
        )?;
        match &row.counts {
            Ok(counts) => {
                let counts: Vec<String> = counts
                    .iter()
                    .map(|(name, count)| format!("{name} {count}"))
                    .collect();
                writeln!(out, "    {}", counts.join(", "))?;
            }
            Err(problem) => writeln!(out, "    manifest unreadable: {problem}")?,
        }
    }
    Ok(())
}

/// Bytes as B, KiB, MiB or GiB with one decimal, in integer arithmetic.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut unit = 0;
    let mut scale: u64 = 1024;
    while unit + 1 < UNITS.len() && bytes >= scale * 1024 {
        unit += 1;
        scale *= 1024;
    }
    let tenths = (u128::from(bytes) * 10 + u128::from(scale) / 2) / u128::from(scale);
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
}

/// Lists `rows` and asks for a number until it gets one in range. Returns
/// the chosen index into `rows`, or `None` if the person typed `q` or the
/// input ended. Nothing is restored here; the caller does that.
pub fn choose(
    rows: &[Choice],
    mut input: impl BufRead,
    mut output: impl Write,
) -> io::Result<Option<usize>> {
    if rows.is_empty() {
        writeln!(output, "No backups to choose from.")?;
        return Ok(None);
    }
    write_listing(rows, &mut output)?;
    loop {
        write!(
            output,
            "Restore which backup? Enter 1-{}, or q to cancel: ",
            rows.len()
        )?;
        output.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            writeln!(output)?;
            return Ok(None);
        }
        let answer = line.trim();
        if answer.eq_ignore_ascii_case("q") || answer.eq_ignore_ascii_case("quit") {
            return Ok(None);
        }
        match answer.parse::<usize>() {
            Ok(n) if (1..=rows.len()).contains(&n) => return Ok(Some(n - 1)),
            _ => writeln!(
                output,
                "{answer:?} is not a number from 1 to {}.",
                rows.len()
            )?,
        }
    }
}

/// `--pick N`: the index of the N-th row (counted from 1), or an error
/// saying how many there are.
pub fn pick(n: usize, available: usize) -> Result<usize, BackupError> {
    if (1..=available).contains(&n) {
        Ok(n - 1)
    } else {
        Err(BackupError::NoSuchChoice { pick: n, available })
    }
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 * 1024 * 1024 + 1024 * 1024 / 10), "5.1 MiB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
