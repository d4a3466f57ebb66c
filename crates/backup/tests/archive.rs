#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The archive format on its own: round trips, the documented layout, and
//! every kind of damage refused with the file and the problem named.

mod common;

use std::path::Path;

use backup::{ArchiveError, BackupKind, PART_NAMES, read_manifest, verify, verify_bytes};
use common::{assemble, disassemble, sample_dump, write_archive_file};
use fine_store::StoreDump;

const NAME: &str = "abs-backup-20241210T153000.000Z.jsonl.zst";

#[test]
fn a_dump_round_trips_record_by_record() {
    let dir = tempfile::tempdir().unwrap();
    let dump = sample_dump();
    let path = write_archive_file(dir.path(), NAME, &dump);

    let verified = verify(&path).unwrap();
    assert_eq!(verified.path, path);
    // Record by record, so a difference names the record.
    assert_eq!(verified.dump.patrons, dump.patrons);
    assert_eq!(verified.dump.fines, dump.fines);
    assert_eq!(verified.dump.alma_transactions, dump.alma_transactions);
    assert_eq!(verified.dump.account_lines, dump.account_lines);
    assert_eq!(verified.dump.bursar_transactions, dump.bursar_transactions);
    assert_eq!(verified.dump.exports, dump.exports);
    assert_eq!(verified.dump.payments, dump.payments);
    assert_eq!(verified.dump.jobs, dump.jobs);
    assert_eq!(verified.dump, dump);

    let manifest = verified.manifest;
    assert_eq!(manifest.format, "alma-bursar-sync backup");
    assert_eq!(manifest.format_version, 1);
    assert_eq!(manifest.kind, BackupKind::Regular);
    assert_eq!(manifest.store_kind, "sqlite");
    assert_eq!(manifest.tool_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        manifest.counts(),
        vec![
            ("patrons", 2),
            ("fines", 3),
            ("alma_transactions", 4),
            ("account_lines", 2),
            ("bursar_transactions", 4),
            ("exports", 1),
            ("payments", 2),
            ("jobs", 2),
        ]
    );
    assert_eq!(read_manifest(&path).unwrap(), manifest);
}

#[test]
fn an_empty_store_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_archive_file(dir.path(), NAME, &StoreDump::default());
    let verified = verify(&path).unwrap();
    assert_eq!(verified.dump, StoreDump::default());
    assert_eq!(verified.manifest.total_records(), 0);
}

#[test]
fn the_file_is_laid_out_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let dump = sample_dump();
    let path = write_archive_file(dir.path(), NAME, &dump);
    let bytes = std::fs::read(&path).unwrap();

    // `zstd -dc` shows the manifest line, then one line per record.
    let text = String::from_utf8(zstd::decode_all(&bytes[..]).unwrap()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 20);
    assert!(lines[0].starts_with(r#"{"format":"alma-bursar-sync backup","format_version":1,"#));
    assert!(
        lines[1].contains(r#""balance":"40.00""#),
        "money is a decimal string: {}",
        lines[1]
    );

    // Parts as documented, checksums and counts included.
    let (manifest, parts) = disassemble(&bytes);
    for ((part, content), name) in manifest["parts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&parts)
        .zip(PART_NAMES)
    {
        assert_eq!(part["name"], name);
        assert_eq!(part["sha256"], common::sha256_hex(content));
        let lines = content.iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(part["records"].as_u64().unwrap(), lines);
    }

    // The end-frame: skippable magic, length 40, tag, SHA-256 of the rest.
    let end = &bytes[bytes.len() - 48..];
    assert_eq!(&end[..4], &[0x5B, 0x2A, 0x4D, 0x18]);
    assert_eq!(&end[4..8], &40u32.to_le_bytes());
    assert_eq!(&end[8..16], b"ABS-END1");
    assert_eq!(
        common::sha256_hex(&bytes[..bytes.len() - 48]),
        end[16..]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );

    // An archive assembled by hand from the document is accepted.
    let by_hand = assemble(&manifest, &parts);
    let (_, read) = verify_bytes(Path::new("by-hand"), &by_hand).unwrap();
    assert_eq!(read, dump);
}

#[test]
fn the_manifest_is_read_from_the_first_frame_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_archive_file(dir.path(), NAME, &sample_dump());
    let bytes = std::fs::read(&path).unwrap();
    let first = zstd::zstd_safe::find_frame_compressed_size(&bytes).unwrap();
    let head = dir.path().join("head-only");
    std::fs::write(&head, &bytes[..first]).unwrap();

    let manifest = read_manifest(&head).unwrap();
    assert_eq!(manifest.total_records(), 20);
    // ... while the whole archive is refused.
    let error = verify(&head).unwrap_err();
    assert!(matches!(error, ArchiveError::Truncated { .. }), "{error}");
}

/// The error's message names the file; returns the message.
fn refused(path: &Path) -> (ArchiveError, String) {
    let error = verify(path).expect_err("a damaged archive must be refused");
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "the message must name the file: {message}"
    );
    (error, message)
}

#[test]
fn a_flipped_byte_anywhere_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_archive_file(dir.path(), NAME, &sample_dump());
    let good = std::fs::read(&path).unwrap();
    let damaged = dir.path().join("damaged.jsonl.zst");
    // Every position: the manifest frame, the parts, the end-frame.
    for position in 0..good.len() {
        let mut bytes = good.clone();
        bytes[position] ^= 0x04;
        std::fs::write(&damaged, &bytes).unwrap();
        let (error, message) = refused(&damaged);
        assert!(
            matches!(
                error,
                ArchiveError::FileChecksum { .. } | ArchiveError::Truncated { .. }
            ),
            "byte {position}: {message}"
        );
    }
    let mut bytes = good.clone();
    bytes[good.len() / 2] ^= 0x01;
    std::fs::write(&damaged, &bytes).unwrap();
    let (_, message) = refused(&damaged);
    assert!(message.contains("is damaged"), "{message}");
}

#[test]
fn a_truncated_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_archive_file(dir.path(), NAME, &sample_dump());
    let good = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.jsonl.zst");
    for len in [0, 10, good.len() / 2, good.len() - 48, good.len() - 1] {
        std::fs::write(&cut, &good[..len]).unwrap();
        let (error, message) = refused(&cut);
        assert!(
            matches!(error, ArchiveError::Truncated { .. }),
            "length {len}: {message}"
        );
        assert!(message.contains("truncated"), "{message}");
    }
}

/// Reassembles the archive with a valid end-frame after `edit` changed
/// the manifest or parts, so that only the manifest check can catch it.
fn tampered(
    dir: &Path,
    edit: impl FnOnce(&mut serde_json::Value, &mut Vec<Vec<u8>>),
) -> std::path::PathBuf {
    let path = write_archive_file(dir, NAME, &sample_dump());
    let (mut manifest, mut parts) = disassemble(&std::fs::read(&path).unwrap());
    edit(&mut manifest, &mut parts);
    let out = dir.join("tampered.jsonl.zst");
    std::fs::write(&out, assemble(&manifest, &parts)).unwrap();
    out
}

#[test]
fn a_manifest_with_wrong_counts_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = tampered(dir.path(), |manifest, _| {
        manifest["parts"][1]["records"] = 4.into();
    });
    let (error, message) = refused(&path);
    assert!(
        matches!(&error, ArchiveError::PartCount { part, expected: 4, found: 3, .. } if part == "fines"),
        "{message}"
    );
    assert!(message.contains("part fines holds 3 records, the manifest says 4"));
}

#[test]
fn a_part_that_lost_a_record_is_refused_by_its_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let path = tampered(dir.path(), |manifest, parts| {
        // A whole line removed, byte count adjusted: only the checksum
        // (and the count) can tell.
        let fines = &parts[1];
        let first_line = fines.iter().position(|&b| b == b'\n').unwrap() + 1;
        parts[1] = fines[first_line..].to_vec();
        manifest["parts"][1]["bytes"] = (parts[1].len() as u64).into();
    });
    let (error, message) = refused(&path);
    assert!(
        matches!(&error, ArchiveError::PartChecksum { part, .. } if part == "fines"),
        "{message}"
    );
}

#[test]
fn a_manifest_with_a_wrong_checksum_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = tampered(dir.path(), |manifest, _| {
        manifest["parts"][4]["sha256"] = "0".repeat(64).into();
    });
    let (error, message) = refused(&path);
    assert!(
        matches!(&error, ArchiveError::PartChecksum { part, .. } if part == "bursar_transactions"),
        "{message}"
    );
    assert!(message.contains(&"0".repeat(64)), "{message}");
}

#[test]
fn a_newer_format_version_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = tampered(dir.path(), |manifest, _| {
        manifest["format_version"] = 2.into();
        manifest["tool_version"] = "9.0.0".into();
    });
    let (error, message) = refused(&path);
    assert!(
        matches!(
            error,
            ArchiveError::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains("9.0.0"), "{message}");
    // Listings say so too.
    assert!(matches!(
        read_manifest(&path),
        Err(ArchiveError::UnsupportedVersion { .. })
    ));
}

#[test]
fn a_manifest_with_missing_or_extra_parts_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = tampered(dir.path(), |manifest, parts| {
        manifest["parts"].as_array_mut().unwrap().pop();
        parts.pop();
    });
    let (error, message) = refused(&path);
    assert!(matches!(error, ArchiveError::Manifest { .. }), "{message}");
    assert!(message.contains("jobs"), "{message}");
}

#[test]
fn a_record_that_does_not_parse_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = tampered(dir.path(), |manifest, parts| {
        let text = String::from_utf8(parts[0].clone()).unwrap();
        let text = text.replacen(r#""balance":"40.00""#, r#""balance":"forty""#, 1);
        parts[0] = text.into_bytes();
        manifest["parts"][0]["bytes"] = (parts[0].len() as u64).into();
        manifest["parts"][0]["sha256"] = common::sha256_hex(&parts[0]).into();
    });
    let (error, message) = refused(&path);
    assert!(
        matches!(&error, ArchiveError::Record { part, record: 1, .. } if part == "patrons"),
        "{message}"
    );
}

#[test]
fn data_after_the_last_part_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = tampered(dir.path(), |_, parts| {
        parts.push(b"{}\n".to_vec());
    });
    let (error, message) = refused(&path);
    assert!(
        matches!(error, ArchiveError::TrailingData { .. }),
        "{message}"
    );
}

#[test]
fn other_files_are_not_backups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "a".repeat(100)).unwrap();
    let (error, _) = refused(&path);
    assert!(matches!(error, ArchiveError::Truncated { .. }), "{error}");

    let missing = dir.path().join("missing.jsonl.zst");
    let (error, _) = refused(&missing);
    assert!(matches!(error, ArchiveError::Read { .. }), "{error}");

    // Valid zstd and a valid end-frame, but not our manifest.
    let path = dir.path().join("other.jsonl.zst");
    let json = serde_json::json!({"format": "something else", "format_version": 1});
    std::fs::write(&path, assemble(&json, &[])).unwrap();
    let (error, message) = refused(&path);
    assert!(
        matches!(error, ArchiveError::NotABackup { .. }),
        "{message}"
    );
}
