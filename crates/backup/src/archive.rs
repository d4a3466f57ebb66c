//! The archive format (see `docs/backup-format.md`): zstd frames whose
//! decompressed bytes are JSON lines, the manifest line first, then every
//! record of every part, then a skippable frame holding the SHA-256 of the
//! whole file before it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, SubsecRound, Utc};
use fine_store::StoreDump;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ArchiveError;
use crate::name::BackupKind;

/// The value of the manifest's `format` field.
pub const FORMAT: &str = "alma-bursar-sync backup";

/// The format version this tool writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The parts of a format version 1 archive, in the order they are written.
/// They are the collections of [`StoreDump`].
pub const PART_NAMES: [&str; 8] = [
    "patrons",
    "fines",
    "alma_transactions",
    "account_lines",
    "bursar_transactions",
    "exports",
    "payments",
    "jobs",
];

/// zstd level: quick, and still about ten times smaller than the JSON.
const LEVEL: i32 = 6;

/// The longest manifest line a reader accepts (it is about 1 KiB).
const MANIFEST_LIMIT: u64 = 1 << 20;

/// The skippable frame at the end: magic, payload size, tag, SHA-256.
const TRAILER_MAGIC: [u8; 4] = 0x184D_2A5B_u32.to_le_bytes();
const TRAILER_TAG: &[u8; 8] = b"ABS-END1";
const TRAILER_PAYLOAD: u32 = 40;
/// The length of the end-of-archive frame in bytes.
pub const TRAILER_LEN: usize = 48;

/// The first line of an archive: what it holds and how to check it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    pub format_version: u32,
    pub kind: BackupKind,
    /// UTC, to the millisecond; the same time as in the file name.
    pub created_at: DateTime<Utc>,
    /// The version of alma-bursar-sync that wrote the archive.
    pub tool_version: String,
    /// `sqlite` or `mongodb`: where the records came from. Any archive
    /// restores into any kind of store.
    pub store_kind: String,
    /// The store's description (`FineStore::describe`), never a password.
    pub store: String,
    /// One entry per part, in the order of [`PART_NAMES`].
    pub parts: Vec<PartInfo>,
}

/// One part of an archive: a collection of the store, as JSON lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartInfo {
    pub name: String,
    /// Number of records (lines).
    pub records: u64,
    /// Length of the part's decompressed bytes.
    pub bytes: u64,
    /// SHA-256 of the part's decompressed bytes, lowercase hex.
    pub sha256: String,
}

impl Manifest {
    /// Records per part, in archive order.
    pub fn counts(&self) -> Vec<(&str, u64)> {
        self.parts
            .iter()
            .map(|part| (part.name.as_str(), part.records))
            .collect()
    }

    /// Records in all parts.
    pub fn total_records(&self) -> u64 {
        self.parts.iter().map(|part| part.records).sum()
    }
}

/// An archive read whole and checked: every checksum, count and record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedArchive {
    pub path: PathBuf,
    pub manifest: Manifest,
    pub dump: StoreDump,
}

/// What the manifest says about where an archive came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveMeta {
    pub kind: BackupKind,
    pub created_at: DateTime<Utc>,
    pub store: String,
}

/// Writes `dump` as an archive to `out` and returns its manifest. This is
/// the format alone; [`crate::backup`] also names, places, verifies and
/// rotates the file.
///
/// The parts are serialized and compressed in memory first (the manifest,
/// which comes first, holds their checksums), then written in one go.
pub fn write_archive(
    dump: &StoreDump,
    meta: &ArchiveMeta,
    out: impl Write,
) -> io::Result<Manifest> {
    let mut parts = Vec::with_capacity(PART_NAMES.len());
    let mut frames = Vec::with_capacity(PART_NAMES.len());
    for name in PART_NAMES {
        let (records, bytes) = part_lines(dump, name)?;
        parts.push(PartInfo {
            name: name.to_string(),
            records,
            bytes: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
        });
        frames.push(compress_frame(&bytes)?);
    }
    let store_kind = meta
        .store
        .split_once(':')
        .map_or(meta.store.as_str(), |(kind, _)| kind)
        .to_string();
    let manifest = Manifest {
        format: FORMAT.to_string(),
        format_version: FORMAT_VERSION,
        kind: meta.kind,
        created_at: meta.created_at.trunc_subsecs(3),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        store_kind,
        store: meta.store.clone(),
        parts,
    };
    let mut line = serde_json::to_vec(&manifest).map_err(io::Error::other)?;
    line.push(b'\n');

    let mut out = HashingWriter {
        inner: out,
        hasher: Sha256::new(),
    };
    out.write_all(&compress_frame(&line)?)?;
    for frame in &frames {
        out.write_all(frame)?;
    }
    let digest = out.hasher.finalize();
    let mut inner = out.inner;
    inner.write_all(&TRAILER_MAGIC)?;
    inner.write_all(&TRAILER_PAYLOAD.to_le_bytes())?;
    inner.write_all(TRAILER_TAG)?;
    inner.write_all(&digest)?;
    inner.flush()?;
    Ok(manifest)
}

/// The JSON lines of one collection of the dump, and how many there are.
fn part_lines(dump: &StoreDump, name: &str) -> io::Result<(u64, Vec<u8>)> {
    match name {
        "patrons" => json_lines(&dump.patrons),
        "fines" => json_lines(&dump.fines),
        "alma_transactions" => json_lines(&dump.alma_transactions),
        "account_lines" => json_lines(&dump.account_lines),
        "bursar_transactions" => json_lines(&dump.bursar_transactions),
        "exports" => json_lines(&dump.exports),
        "payments" => json_lines(&dump.payments),
        "jobs" => json_lines(&dump.jobs),
        other => Err(io::Error::other(format!("unknown part {other}"))),
    }
}

fn json_lines<T: Serialize>(records: &[T]) -> io::Result<(u64, Vec<u8>)> {
    let mut bytes = Vec::new();
    for record in records {
        // serde_json escapes line breaks inside strings: one record, one line.
        serde_json::to_writer(&mut bytes, record).map_err(io::Error::other)?;
        bytes.push(b'\n');
    }
    Ok((records.len() as u64, bytes))
}

fn compress_frame(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = zstd::Encoder::new(Vec::new(), LEVEL)?;
    encoder.include_checksum(true)?;
    encoder.include_contentsize(true)?;
    encoder.set_pledged_src_size(Some(bytes.len() as u64))?;
    encoder.write_all(bytes)?;
    encoder.finish()
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads the archive at `path` whole and checks everything: the
/// end-of-archive checksum of the file, the manifest (format, version,
/// parts), and each part's length, SHA-256, record count and records.
/// Nothing is trusted until all of it passed.
pub fn verify(path: &Path) -> Result<VerifiedArchive, ArchiveError> {
    let bytes = std::fs::read(path).map_err(|source| ArchiveError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let (manifest, dump) = verify_bytes(path, &bytes)?;
    Ok(VerifiedArchive {
        path: path.to_path_buf(),
        manifest,
        dump,
    })
}

/// [`verify`] on bytes already in memory; `path` is for messages.
pub fn verify_bytes(path: &Path, bytes: &[u8]) -> Result<(Manifest, StoreDump), ArchiveError> {
    let body = check_trailer(path, bytes)?;
    let decoder = zstd::Decoder::with_buffer(body).map_err(|source| decompress(path, source))?;
    let mut reader = BufReader::new(decoder);
    let manifest = read_manifest_line(path, &mut reader)?;

    let mut dump = StoreDump::default();
    for part in &manifest.parts {
        let mut data = Vec::new();
        (&mut reader)
            .take(part.bytes)
            .read_to_end(&mut data)
            .map_err(|source| decompress(path, source))?;
        if (data.len() as u64) < part.bytes {
            return Err(ArchiveError::Truncated {
                path: path.to_path_buf(),
                problem: format!(
                    "part {} has {} bytes, the manifest says {}",
                    part.name,
                    data.len(),
                    part.bytes
                ),
            });
        }
        let found = sha256_hex(&data);
        if found != part.sha256 {
            return Err(ArchiveError::PartChecksum {
                path: path.to_path_buf(),
                part: part.name.clone(),
                expected: part.sha256.clone(),
                found,
            });
        }
        fill_part(path, part, &data, &mut dump)?;
    }
    let mut rest = [0u8; 1];
    match reader.read(&mut rest) {
        Ok(0) => Ok((manifest, dump)),
        Ok(_) => Err(ArchiveError::TrailingData {
            path: path.to_path_buf(),
        }),
        Err(source) => Err(decompress(path, source)),
    }
}

/// Checks the end-of-archive frame and the SHA-256 of everything before
/// it; returns the bytes before it.
fn check_trailer<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a [u8], ArchiveError> {
    let truncated = |problem: &str| ArchiveError::Truncated {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    };
    let Some(split) = bytes.len().checked_sub(TRAILER_LEN) else {
        return Err(truncated(
            "the file is shorter than the end-of-archive record",
        ));
    };
    let (body, trailer) = bytes.split_at(split);
    let expected_header: Vec<u8> = TRAILER_MAGIC
        .iter()
        .chain(TRAILER_PAYLOAD.to_le_bytes().iter())
        .chain(TRAILER_TAG.iter())
        .copied()
        .collect();
    if trailer[..16] != expected_header[..] {
        return Err(truncated("the end-of-archive record is missing"));
    }
    let expected = hex(&trailer[16..]);
    let found = sha256_hex(body);
    if expected != found {
        return Err(ArchiveError::FileChecksum {
            path: path.to_path_buf(),
            expected,
            found,
        });
    }
    Ok(body)
}

/// Reads only the manifest: the first zstd frame of the archive. Listings
/// use it; it checks the manifest's form, not the parts (that is
/// [`verify`]'s job).
pub fn read_manifest(path: &Path) -> Result<Manifest, ArchiveError> {
    let file = std::fs::File::open(path).map_err(|source| ArchiveError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    manifest_from_reader(path, file)
}

/// [`read_manifest`] on the first bytes of an archive (for instance a
/// range read from S3).
pub(crate) fn manifest_from_reader(
    path: &Path,
    reader: impl Read,
) -> Result<Manifest, ArchiveError> {
    let decoder = zstd::Decoder::new(reader)
        .map_err(|source| decompress(path, source))?
        .single_frame();
    read_manifest_line(path, &mut BufReader::new(decoder))
}

fn read_manifest_line(path: &Path, reader: &mut impl BufRead) -> Result<Manifest, ArchiveError> {
    let not_a_backup = |problem: String| ArchiveError::NotABackup {
        path: path.to_path_buf(),
        problem,
    };
    let mut line = Vec::new();
    reader
        .take(MANIFEST_LIMIT)
        .read_until(b'\n', &mut line)
        .map_err(|source| decompress(path, source))?;
    if line.pop() != Some(b'\n') {
        return Err(not_a_backup(
            "the manifest line is missing or unfinished".to_string(),
        ));
    }
    // The format and version first, so that a newer archive is named as
    // such rather than as an unreadable manifest.
    let value: serde_json::Value = serde_json::from_slice(&line)
        .map_err(|e| not_a_backup(format!("the first line is not a JSON manifest ({e})")))?;
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(not_a_backup(format!(
            "the manifest's format is not {FORMAT:?}"
        )));
    }
    let version = value.get("format_version").and_then(|v| v.as_u64());
    let Some(version) = version else {
        return Err(not_a_backup(
            "the manifest has no format_version".to_string(),
        ));
    };
    if version != u64::from(FORMAT_VERSION) {
        return Err(ArchiveError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
            tool: value
                .get("tool_version")
                .and_then(|v| v.as_str())
                .unwrap_or("unknown")
                .to_string(),
        });
    }
    let manifest: Manifest = serde_json::from_value(value).map_err(|e| ArchiveError::Manifest {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })?;
    let names: Vec<&str> = manifest.parts.iter().map(|p| p.name.as_str()).collect();
    if names != PART_NAMES {
        return Err(ArchiveError::Manifest {
            path: path.to_path_buf(),
            problem: format!(
                "it lists the parts {names:?}, format version {FORMAT_VERSION} has {PART_NAMES:?}"
            ),
        });
    }
    Ok(manifest)
}

fn fill_part(
    path: &Path,
    part: &PartInfo,
    data: &[u8],
    dump: &mut StoreDump,
) -> Result<(), ArchiveError> {
    match part.name.as_str() {
        "patrons" => dump.patrons = parse_lines(path, part, data)?,
        "fines" => dump.fines = parse_lines(path, part, data)?,
        "alma_transactions" => dump.alma_transactions = parse_lines(path, part, data)?,
        "account_lines" => dump.account_lines = parse_lines(path, part, data)?,
        "bursar_transactions" => dump.bursar_transactions = parse_lines(path, part, data)?,
        "exports" => dump.exports = parse_lines(path, part, data)?,
        "payments" => dump.payments = parse_lines(path, part, data)?,
        "jobs" => dump.jobs = parse_lines(path, part, data)?,
        other => {
            return Err(ArchiveError::Manifest {
                path: path.to_path_buf(),
                problem: format!("unknown part {other}"),
            });
        }
    }
    Ok(())
}

fn parse_lines<T: DeserializeOwned>(
    path: &Path,
    part: &PartInfo,
    data: &[u8],
) -> Result<Vec<T>, ArchiveError> {
    let count_error = |found: u64| ArchiveError::PartCount {
        path: path.to_path_buf(),
        part: part.name.clone(),
        expected: part.records,
        found,
    };
    if data.is_empty() {
        return if part.records == 0 {
            Ok(Vec::new())
        } else {
            Err(count_error(0))
        };
    }
    let Some(body) = data.strip_suffix(b"\n") else {
        return Err(ArchiveError::Manifest {
            path: path.to_path_buf(),
            problem: format!("part {} does not end with a line break", part.name),
        });
    };
    let lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    let found = lines.len() as u64;
    if found != part.records {
        return Err(count_error(found));
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(index, line)| {
            serde_json::from_slice(line).map_err(|source| ArchiveError::Record {
                path: path.to_path_buf(),
                part: part.name.clone(),
                record: index as u64 + 1,
                source,
            })
        })
        .collect()
}

fn decompress(path: &Path, source: io::Error) -> ArchiveError {
    ArchiveError::Decompress {
        path: path.to_path_buf(),
        source,
    }
}
