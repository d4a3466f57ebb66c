//! The Bursar's payments report (SPEC 7.2) and the payment key (SPEC 7.3).

use std::io::Read;

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sync_core::Money;
use sync_core::records::{FineId, PatronId};

/// The header names of the columns we read, as configured. Matched
/// case-insensitively after trimming; every one is required, extra columns
/// are ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentColumns {
    pub emplid: String,
    pub date_paid: String,
    pub reference: String,
    pub charge_amount: String,
    pub paid_amount: String,
    pub item_type: String,
    pub description: String,
}

impl Default for PaymentColumns {
    fn default() -> PaymentColumns {
        PaymentColumns {
            emplid: "Emplid".to_string(),
            date_paid: "Date Paid".to_string(),
            reference: "Reference Number".to_string(),
            charge_amount: "Charge Amount".to_string(),
            paid_amount: "Paid Amount".to_string(),
            item_type: "Item Type".to_string(),
            description: "Charge Description".to_string(),
        }
    }
}

impl PaymentColumns {
    /// `(setting, header name)` in the order of the struct.
    fn named(&self) -> [(&'static str, &str); 7] {
        [
            ("emplid", &self.emplid),
            ("date_paid", &self.date_paid),
            ("reference", &self.reference),
            ("charge_amount", &self.charge_amount),
            ("paid_amount", &self.paid_amount),
            ("item_type", &self.item_type),
            ("description", &self.description),
        ]
    }
}

/// A well-formed row of the payments report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRow {
    /// Line number in the file where the row starts; the header is line 1.
    pub line: u64,
    pub emplid: PatronId,
    pub date_paid: NaiveDate,
    /// The Bursar reference id (the Alma root fine id).
    pub reference: FineId,
    pub charge_amount: Money,
    pub paid_amount: Money,
    pub item_type: String,
    pub description: String,
}

/// A row that could not be read. It is reported, with its line, on every
/// run that sees it; the other rows still go through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRow {
    pub line: u64,
    /// Every problem of the row, each naming the column and the value.
    pub message: String,
}

/// What a payments report holds: its good rows and its bad rows, each in
/// file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PaymentsFile {
    pub rows: Vec<PaymentRow>,
    pub bad_rows: Vec<BadRow>,
}

/// A payments report that cannot be read at all. Row-level problems are
/// [`BadRow`]s, not errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentsError {
    #[error(
        "payments file {file}: it is empty, not even a header line; expected the columns {expected}"
    )]
    NoHeader { file: String, expected: String },
    #[error(
        "payments file {file}: no column {column:?} in the header (found: {found}); if the report renamed it, \
         set payment column `{setting}` in the configuration"
    )]
    MissingColumn {
        file: String,
        column: String,
        setting: String,
        found: String,
    },
    #[error(
        "payments file {file}: column {column:?} appears twice in the header (columns {first} and {second}); \
         cannot tell which one to read"
    )]
    DuplicateColumn {
        file: String,
        column: String,
        first: usize,
        second: usize,
    },
    #[error("payments file {file}: cannot be read near line {line}: {message}")]
    Read {
        file: String,
        line: u64,
        message: String,
    },
}

fn normalize_header(name: &str) -> String {
    name.trim_start_matches('\u{feff}').trim().to_lowercase()
}

/// Reads a payments report. `file` names it in messages. The header is
/// found by name (case-insensitive, trimmed) in any order; a UTF-8 BOM and
/// CRLF line ends are accepted; rows whose cells are all empty are skipped.
pub fn read_payments(
    mut input: impl Read,
    file: &str,
    columns: &PaymentColumns,
) -> Result<PaymentsFile, PaymentsError> {
    // Read it whole: the csv crate's own line numbers drift on CRLF files
    // and after blank lines, so lines are counted from byte offsets here.
    let mut bytes = Vec::new();
    input
        .read_to_end(&mut bytes)
        .map_err(|error| PaymentsError::Read {
            file: file.to_string(),
            line: 1,
            message: error.to_string(),
        })?;
    let mut lines = LineCounter::new(&bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes.as_slice());
    let read_error = |error: csv::Error| PaymentsError::Read {
        file: file.to_string(),
        line: error
            .position()
            .map(|p| LineCounter::new(&bytes).line_at(p.byte()))
            .unwrap_or(1),
        message: error.to_string(),
    };
    let headers = reader.byte_headers().map_err(read_error)?.clone();
    let names: Vec<String> = headers
        .iter()
        .map(|h| normalize_header(&String::from_utf8_lossy(h)))
        .collect();
    let expected = || {
        columns
            .named()
            .iter()
            .map(|(_, c)| format!("{c:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if names.iter().all(|n| n.is_empty()) {
        return Err(PaymentsError::NoHeader {
            file: file.to_string(),
            expected: expected(),
        });
    }
    let mut index = [0usize; 7];
    for (slot, (setting, column)) in index.iter_mut().zip(columns.named()) {
        let wanted = normalize_header(column);
        let mut found = names
            .iter()
            .enumerate()
            .filter(|(_, n)| **n == wanted)
            .map(|(i, _)| i);
        match (found.next(), found.next()) {
            (Some(i), None) => *slot = i,
            (Some(first), Some(second)) => {
                return Err(PaymentsError::DuplicateColumn {
                    file: file.to_string(),
                    column: column.to_string(),
                    first: first + 1,
                    second: second + 1,
                });
            }
            (None, _) => {
                return Err(PaymentsError::MissingColumn {
                    file: file.to_string(),
                    column: column.to_string(),
                    setting: setting.to_string(),
                    found: headers
                        .iter()
                        .map(|h| {
                            format!(
                                "{:?}",
                                String::from_utf8_lossy(h)
                                    .trim_start_matches('\u{feff}')
                                    .trim()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
    }
    let [
        emplid,
        date_paid,
        reference,
        charge_amount,
        paid_amount,
        item_type,
        description,
    ] = index;
    let named = columns.named();

    let mut out = PaymentsFile::default();
    let mut record = csv::ByteRecord::new();
    // Where the last record starts (its line and byte offset).
    let mut last = None;
    while reader.read_byte_record(&mut record).map_err(read_error)? {
        let line = record
            .position()
            .map(|p| lines.line_at(p.byte()))
            .unwrap_or(0);
        last = record
            .position()
            .and_then(|p| usize::try_from(p.byte()).ok())
            .map(|offset| (line, offset));
        if record
            .iter()
            .all(|cell| cell.iter().all(u8::is_ascii_whitespace))
        {
            continue;
        }
        if record.len() != headers.len() {
            out.bad_rows.push(BadRow {
                line,
                message: format!(
                    "the row has {} fields but the header has {}; is there an unquoted comma in a value?",
                    record.len(),
                    headers.len()
                ),
            });
            continue;
        }
        let mut problems = Vec::new();
        let mut cell = |i: usize, slot: usize| -> String {
            let column = named[slot].1;
            match std::str::from_utf8(record.get(i).unwrap_or_default()) {
                Ok(text) => text.trim().to_string(),
                Err(_) => {
                    problems.push(format!(
                        "{column} {:?} is not valid UTF-8",
                        String::from_utf8_lossy(record.get(i).unwrap_or_default())
                    ));
                    String::new()
                }
            }
        };
        let values = [
            cell(emplid, 0),
            cell(date_paid, 1),
            cell(reference, 2),
            cell(charge_amount, 3),
            cell(paid_amount, 4),
            cell(item_type, 5),
            cell(description, 6),
        ];
        let [
            emplid_v,
            date_v,
            reference_v,
            charge_v,
            paid_v,
            item_type_v,
            description_v,
        ] = values;
        if emplid_v.is_empty() {
            problems.push(format!("{} is empty", named[0].1));
        }
        let date = parse_date(&date_v);
        if date.is_none() {
            problems.push(format!(
                "{} {date_v:?} is not a date like 2024-05-01, 05/01/2024 or 5/1/2024 (a time may follow)",
                named[1].1
            ));
        }
        if reference_v.is_empty() {
            problems.push(format!("{} is empty", named[2].1));
        }
        let mut amount = |slot: usize, text: &str| match Money::parse(text) {
            Ok(money) => Some(money),
            Err(error) => {
                problems.push(format!("{} {text:?}: {error}", named[slot].1));
                None
            }
        };
        let charge = amount(3, &charge_v);
        let paid = amount(4, &paid_v);
        match (date, charge, paid) {
            (Some(date_paid), Some(charge_amount), Some(paid_amount)) if problems.is_empty() => {
                out.rows.push(PaymentRow {
                    line,
                    emplid: PatronId::new(emplid_v),
                    date_paid,
                    reference: FineId::new(reference_v),
                    charge_amount,
                    paid_amount,
                    item_type: item_type_v,
                    description: description_v,
                });
            }
            _ => out.bad_rows.push(BadRow {
                line,
                message: problems.join("; "),
            }),
        }
    }
    // The CSV reader takes a quote that is never closed as a value running
    // to the end of the file: the rows after it would vanish into one
    // field, unreported. The last record is then refused whole.
    if let Some((line, offset)) = last
        && ends_in_open_quote(bytes.get(offset..).unwrap_or_default())
    {
        out.rows.retain(|row| row.line != line);
        out.bad_rows.retain(|bad| bad.line != line);
        let end = lines.line_at(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
        let through = bytes
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(end, |at| {
                end.saturating_sub(bytes[at..].iter().filter(|&&b| b == b'\n').count() as u64)
            });
        out.bad_rows.push(BadRow {
            line,
            message: if through > line {
                format!(
                    "a quote (\") opened in this row is never closed, so lines {line} to {through} \
                     (the end of the file) were read as one row: the rows after it are not read"
                )
            } else {
                "a quote (\") opened in this row is never closed".to_string()
            },
        });
    }
    Ok(out)
}

/// Whether `record` (the bytes of a CSV record through the end of the
/// file) ends inside a quoted field, as the CSV reader reads it: a quote
/// opens a field only at its start, `""` inside is a quote, and a quote
/// elsewhere is a plain character.
fn ends_in_open_quote(record: &[u8]) -> bool {
    let mut quoted = false;
    let mut at_field_start = true;
    let mut bytes = record.iter().peekable();
    while let Some(&byte) = bytes.next() {
        if quoted {
            if byte == b'"' {
                if bytes.peek() == Some(&&b'"') {
                    bytes.next();
                } else {
                    quoted = false;
                }
            }
            at_field_start = false;
        } else {
            quoted = byte == b'"' && at_field_start;
            at_field_start = matches!(byte, b',' | b'\n' | b'\r');
        }
    }
    quoted
}

/// Line numbers (1-based) of byte offsets, for offsets that only grow.
struct LineCounter<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> LineCounter<'a> {
        LineCounter {
            bytes,
            offset: 0,
            line: 1,
        }
    }

    /// The line of the record the csv reader says starts at `offset`. Its
    /// offsets may point at the line ending before the record, or at blank
    /// lines it skipped, so line endings are stepped over first.
    fn line_at(&mut self, offset: u64) -> u64 {
        let len = self.bytes.len();
        let mut start = usize::try_from(offset)
            .unwrap_or(len)
            .clamp(self.offset, len);
        while start < len && matches!(self.bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        let newlines = self.bytes[self.offset..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.line += newlines as u64;
        self.offset = start;
        self.line
    }
}

/// The date part of the shapes payment reports use: `2024-05-01`,
/// `05/01/2024`, `5/1/2024`, each optionally followed by a time
/// (`13:45:00`, `13:45`, `1:45:00 PM`, fractional seconds). The time is
/// dropped. Two-digit years are refused as ambiguous.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    const DATES: [&str; 2] = ["%Y-%m-%d", "%m/%d/%Y"];
    const DATE_TIMES: [&str; 8] = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%m/%d/%Y %H:%M:%S%.f",
        "%m/%d/%Y %H:%M",
        "%m/%d/%Y %I:%M:%S%.f %p",
        "%m/%d/%Y %I:%M %p",
    ];
    let text = text.trim();
    // chrono's %Y takes any number of digits; insist on four.
    let year_digits = text
        .split(['-', '/', ' ', 'T'])
        .find(|part| part.len() >= 3)
        .map(str::len);
    if year_digits != Some(4) {
        return None;
    }
    let date = DATES
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(text, f).ok())
        .or_else(|| {
            DATE_TIMES
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
                .map(|dt| dt.date())
        })?;
    (1900..=2999).contains(&date.year()).then_some(date)
}

/// The identity of a payment row (SPEC 7.3): the five values of the row,
/// normalized (dates as dates, amounts as cents), and `n`, which counts
/// rows with the same five values within the file, 1 for the first. Two
/// genuine equal payments are therefore two keys.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PaymentKey {
    pub emplid: PatronId,
    pub date_paid: NaiveDate,
    pub reference: FineId,
    pub charge_amount: Money,
    pub paid_amount: Money,
    pub n: u32,
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('|', "\\|")
}

impl PaymentKey {
    /// The stable string form, e.g.
    /// `1234567|2024-05-01|2245678900004321|25.00|25.00|1`: fields joined
    /// by `|`, with `\` and `|` inside the ids escaped by a `\`, so two
    /// different keys never share a string. Store it; it does not change
    /// between versions.
    pub fn key_string(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}",
            escape(self.emplid.as_str()),
            self.date_paid.format("%Y-%m-%d"),
            escape(self.reference.as_str()),
            self.charge_amount,
            self.paid_amount,
            self.n
        )
    }
}

impl std::fmt::Display for PaymentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key_string())
    }
}

/// Gives each row its key, in the order given (give file order): the
/// `n`-th row with the same five values gets `n`.
pub fn keyed_rows(rows: impl IntoIterator<Item = PaymentRow>) -> Vec<(PaymentKey, PaymentRow)> {
    let mut seen: std::collections::HashMap<PaymentKey, u32> = std::collections::HashMap::new();
    rows.into_iter()
        .map(|row| {
            let base = PaymentKey {
                emplid: row.emplid.clone(),
                date_paid: row.date_paid,
                reference: row.reference.clone(),
                charge_amount: row.charge_amount,
                paid_amount: row.paid_amount,
                n: 0,
            };
            let count = seen.entry(base.clone()).or_insert(0);
            *count += 1;
            (PaymentKey { n: *count, ..base }, row)
        })
        .collect()
}

/// The prefix of [`external_transaction_id`].
pub const EXTERNAL_ID_PREFIX: &str = "bursar-";

/// The `external_transaction_id` of the Alma payment posted for a key
/// (SPEC 7.4): `bursar-` and the first 128 bits of the SHA-256 of the key's
/// [string form](PaymentKey::key_string) in lowercase hex, 39 characters.
/// Stable across runs, versions and machines, so a payment found in Alma
/// can be traced back to its row (SPEC 7.5).
pub fn external_transaction_id(key: &PaymentKey) -> String {
    let digest = Sha256::digest(key.key_string().as_bytes());
    let mut id = String::from(EXTERNAL_ID_PREFIX);
    for byte in digest.iter().take(16) {
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    id
}

const HEX: &[u8; 16] = b"0123456789abcdef";
