//! Shared by the integration tests: a realistic dump built by hand, an
//! archive assembler that follows `docs/backup-format.md`, and the test
//! services (S3, MongoDB).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use fine_store::StoreDump;
use sha2::{Digest, Sha256};
use sync_core::Money;
use sync_core::records::{
    AlmaTransaction, AlmaTxnId, AlmaTxnType, Billing, BursarAccountLine, BursarTransaction,
    BursarTxnType, Export, ExportState, FeeType, Fine, FineId, ItemDetails, Job, JobKind,
    JobStatus, LoanId, Patron, PatronId, PaymentOutcome, PaymentRecord,
};

pub fn at(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").unwrap()
}

pub fn utc(text: &str) -> DateTime<Utc> {
    at(text).and_utc()
}

pub fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

fn money(text: &str) -> Money {
    Money::parse(text).unwrap()
}

/// A store's worth of records: two patrons, a lost-item fine partly paid
/// at the desk and exported, an overdue fine waived, a credit fine spread
/// over the loan, payments in several outcomes, and jobs. Strings carry
/// line breaks, quotes and non-ASCII, which must survive as one line each.
pub fn sample_dump() -> StoreDump {
    let p1 = PatronId::new("0012345678");
    let p2 = PatronId::new("0098765432");
    let lost = FineId::new("1234567890001");
    let overdue = FineId::new("1234567890002");
    let credit = FineId::new("1234567890003");
    let loan = LoanId::new("88812345000121");
    let fine = |id: &FineId, patron: &PatronId, fee_type, original: &str, remaining: &str| Fine {
        id: id.clone(),
        patron_id: patron.clone(),
        loan_id: Some(loan.clone()),
        fee_type,
        closed: remaining == "0.00",
        created_at: at("2024-09-02T10:15:00"),
        status_at: at("2024-10-01T08:00:00"),
        original_amount: money(original),
        remaining_amount: money(remaining),
        comment: None,
        item: ItemDetails::default(),
    };
    let mut lost_fine = fine(
        &lost,
        &p1,
        FeeType::LostItemReplacementFee,
        "65.00",
        "40.00",
    );
    lost_fine.comment = Some("Patron says \"returned\";\nchecked shelves twice".into());
    lost_fine.item = ItemDetails {
        title: Some("Über die Grundlagen der Mathematik — Band 1".into()),
        author: Some("Hilbert, David".into()),
        call_number: Some("QA9 .H5 1928".into()),
        barcode: Some("39000012345678".into()),
        location_code: Some("MAIN".into()),
        loaned_at: Some(at("2024-06-01T12:30:00")),
        due_at: Some(at("2024-08-30T23:59:00")),
        returned_at: None,
    };
    let overdue_fine = fine(&overdue, &p1, FeeType::OverdueFine, "3.50", "0.00");
    let mut credit_fine = fine(&credit, &p2, FeeType::Credit, "-10.00", "0.00");
    credit_fine.loan_id = None;

    let alma = |id: Option<&str>, fine: &FineId, kind: AlmaTxnType, amount: &str, when: &str| {
        AlmaTransaction {
            id: id.map(AlmaTxnId::new),
            fine_id: fine.clone(),
            kind,
            amount: money(amount),
            created_at: at(when),
            note: None,
            pending: false,
            source_credit_fine: None,
        }
    };
    let mut desk_payment = alma(
        Some("9001"),
        &lost,
        AlmaTxnType::Payment,
        "-25.00",
        "2024-09-20T14:00:00",
    );
    desk_payment.note = Some("paid at circulation desk".into());
    desk_payment.pending = true;
    let mut credit_share = alma(
        None,
        &overdue,
        AlmaTxnType::Credit,
        "-3.50",
        "2024-10-01T08:00:00",
    );
    credit_share.source_credit_fine = Some(credit.clone());

    let line = |fine: &FineId, patron: &PatronId, billing| BursarAccountLine {
        reference: fine.clone(),
        patron_id: patron.clone(),
        account: "LIBFINE".into(),
        replacement_fee: fine == &lost,
        billing,
    };
    let bursar = |fine: &FineId, n, kind, amount: &str, export| BursarTransaction {
        reference: fine.clone(),
        n,
        kind,
        amount: money(amount),
        created_at: utc("2024-09-03T02:00:00"),
        export,
    };

    let mut dump = StoreDump {
        patrons: vec![
            Patron {
                id: p1.clone(),
                balance: money("40.00"),
            },
            Patron {
                id: p2.clone(),
                balance: money("-6.50"),
            },
        ],
        fines: vec![lost_fine, overdue_fine, credit_fine],
        alma_transactions: vec![
            desk_payment,
            alma(
                None,
                &lost,
                AlmaTxnType::Fine,
                "65.00",
                "2024-09-02T10:15:00",
            ),
            credit_share,
            alma(
                Some("9002"),
                &overdue,
                AlmaTxnType::Fine,
                "3.50",
                "2024-09-02T10:15:00",
            ),
        ],
        account_lines: vec![
            line(
                &lost,
                &p1,
                Some(Billing {
                    billing_date: day("2024-09-03"),
                    due_date: day("2024-10-03"),
                    term_code: "2248".into(),
                }),
            ),
            line(&overdue, &p1, None),
        ],
        bursar_transactions: vec![
            bursar(
                &lost,
                1,
                BursarTxnType::Fine,
                "65.00",
                ExportState::Exported(7),
            ),
            bursar(
                &lost,
                2,
                BursarTxnType::Payment,
                "-25.00",
                ExportState::NotExported,
            ),
            bursar(
                &overdue,
                1,
                BursarTxnType::Fine,
                "3.50",
                ExportState::Pending,
            ),
            bursar(
                &overdue,
                2,
                BursarTxnType::Credit,
                "-3.50",
                ExportState::Pending,
            ),
        ],
        exports: vec![Export {
            seq: 7,
            created_at: utc("2024-09-03T02:00:00"),
            billing_date: day("2024-09-03"),
            charges_file: Some("LIBRARY_CHARGES_20240903.txt".into()),
            reversals_file: None,
            line_count: 1,
            sent_at: Some(utc("2024-09-03T02:05:00")),
        }],
        payments: vec![
            PaymentRecord {
                key: "2024-09-25|0012345678|1234567890001|10.00".into(),
                fine_id: Some(lost.clone()),
                patron_id: p1.clone(),
                paid_amount: money("10.00"),
                outcome: PaymentOutcome::AlmaError {
                    message: "Alma said \"fee is locked\"\n(error 401873)".into(),
                },
                balance_read: Some(money("40.00")),
                amount_posted: None,
                external_transaction_id: "BUR-0001".into(),
                first_seen_at: utc("2024-09-25T06:00:00"),
                updated_at: utc("2024-09-26T06:00:00"),
            },
            PaymentRecord {
                key: "2024-09-25|0098765432|unknown|1.00".into(),
                fine_id: None,
                patron_id: p2.clone(),
                paid_amount: money("1.00"),
                outcome: PaymentOutcome::NotFound,
                balance_read: None,
                amount_posted: None,
                external_transaction_id: "BUR-0002".into(),
                first_seen_at: utc("2024-09-25T06:00:00"),
                updated_at: utc("2024-09-25T06:00:00"),
            },
        ],
        jobs: vec![
            Job {
                seq: 1,
                kind: JobKind::AlmaImport,
                status: JobStatus::Success,
                started_at: utc("2024-09-03T01:00:00"),
                finished_at: Some(utc("2024-09-03T01:04:00")),
                counts: vec![("fines_new".into(), 3), ("fines_updated".into(), 0)],
                problems: vec!["fine 1234567890003: credit without loan".into()],
                error: None,
            },
            Job {
                seq: 2,
                kind: JobKind::BursarPayments,
                status: JobStatus::Failed,
                started_at: utc("2024-09-26T06:00:00"),
                finished_at: Some(utc("2024-09-26T06:01:00")),
                counts: vec![],
                problems: vec![],
                error: Some("Alma unavailable".into()),
            },
        ],
    };
    sort(&mut dump);
    dump
}

/// The natural-key order a store's dump comes in.
pub fn sort(dump: &mut StoreDump) {
    dump.patrons.sort_by(|a, b| a.id.cmp(&b.id));
    dump.fines.sort_by(|a, b| a.id.cmp(&b.id));
    dump.alma_transactions.sort_by_key(AlmaTransaction::key);
    dump.account_lines
        .sort_by(|a, b| a.reference.cmp(&b.reference));
    dump.bursar_transactions
        .sort_by(|a, b| (&a.reference, a.n).cmp(&(&b.reference, b.n)));
    dump.exports.sort_by_key(|e| e.seq);
    dump.payments.sort_by(|a, b| a.key.cmp(&b.key));
    dump.jobs.sort_by_key(|j| j.seq);
}

/// A dump with one more patron, to tell two states apart.
pub fn other_dump() -> StoreDump {
    let mut dump = sample_dump();
    dump.patrons.push(Patron {
        id: PatronId::new("0099999999"),
        balance: money("0.00"),
    });
    sort(&mut dump);
    dump
}

// ---- Archives by hand, from docs/backup-format.md ----

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn frame(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = zstd::Encoder::new(Vec::new(), 3).unwrap();
    encoder.include_checksum(true).unwrap();
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Assembles an archive from a manifest and part contents exactly as the
/// format document says: manifest frame, one frame per part, end-frame
/// with the SHA-256 of all before it.
pub fn assemble(manifest: &serde_json::Value, parts: &[Vec<u8>]) -> Vec<u8> {
    let mut line = serde_json::to_vec(manifest).unwrap();
    line.push(b'\n');
    let mut file = frame(&line);
    for part in parts {
        file.extend(frame(part));
    }
    let digest = Sha256::digest(&file);
    file.extend([0x5B, 0x2A, 0x4D, 0x18]);
    file.extend(40u32.to_le_bytes());
    file.extend(b"ABS-END1");
    file.extend(digest.iter());
    file
}

/// Splits an archive into its manifest (as JSON) and part contents, by
/// decompressing it and cutting at the manifest's byte counts.
pub fn disassemble(archive: &[u8]) -> (serde_json::Value, Vec<Vec<u8>>) {
    let body = &archive[..archive.len() - backup::TRAILER_LEN];
    let text = zstd::decode_all(body).unwrap();
    let newline = text.iter().position(|&b| b == b'\n').unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&text[..newline]).unwrap();
    let mut rest = &text[newline + 1..];
    let mut parts = Vec::new();
    for part in manifest["parts"].as_array().unwrap() {
        let len = usize::try_from(part["bytes"].as_u64().unwrap()).unwrap();
        parts.push(rest[..len].to_vec());
        rest = &rest[len..];
    }
    assert!(rest.is_empty());
    (manifest, parts)
}

/// Writes `dump` as an archive file at `dir/name` and returns its path.
pub fn write_archive_file(dir: &Path, name: &str, dump: &StoreDump) -> std::path::PathBuf {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    let meta = backup::ArchiveMeta {
        kind: backup::BackupKind::Regular,
        created_at: utc("2024-12-10T15:30:00"),
        store: "sqlite:/var/lib/abs/state.db".into(),
    };
    backup::write_archive(dump, &meta, std::io::BufWriter::new(file)).unwrap();
    path
}

// ---- Services ----

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this test run and call, for buckets and databases.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = Utc::now().timestamp_subsec_nanos();
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}

/// Writes straight to the process's stderr, past the test harness's
/// capture, so a skip is seen even when the tests pass.
fn say_skipped(message: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {message}");
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The S3 test endpoint, or None after saying loudly why the test is
/// skipped. Under CI=true a missing endpoint fails the test.
pub fn s3_endpoint() -> Option<String> {
    match std::env::var("ABS_TEST_S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ => {
            assert!(
                !in_ci(),
                "ABS_TEST_S3_ENDPOINT is unset under CI=true: start the test services (scripts/test-services.sh start) and source .test-services/env"
            );
            say_skipped(
                "S3 tests: ABS_TEST_S3_ENDPOINT is unset; run scripts/test-services.sh start and source .test-services/env",
            );
            None
        }
    }
}

/// Creates a fresh bucket on the test S3 server and returns its config.
pub async fn fresh_bucket(endpoint: &str) -> backup::S3Config {
    let name = unique("abs-backup-test").to_lowercase();
    let region = s3::Region::Custom {
        region: "us-east-1".into(),
        endpoint: endpoint.to_string(),
    };
    let credentials = s3::creds::Credentials::from_env().unwrap();
    s3::Bucket::create_with_path_style(
        &name,
        region,
        credentials,
        s3::BucketConfiguration::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot create bucket {name} at {endpoint}: {e}"));
    backup::S3Config::new(name, "us-east-1")
        .with_endpoint(endpoint)
        .with_prefix("nightly")
}

/// The MongoDB test URI, or None after saying loudly why the test is
/// skipped (fails under CI=true).
pub fn mongodb_uri() -> Option<String> {
    match std::env::var("MONGODB_URI") {
        Ok(uri) if !uri.is_empty() => Some(uri),
        _ => {
            assert!(
                !in_ci(),
                "MONGODB_URI is unset under CI=true: start the test services"
            );
            say_skipped(
                "MongoDB tests: MONGODB_URI is unset; run scripts/test-services.sh start and source .test-services/env",
            );
            None
        }
    }
}
