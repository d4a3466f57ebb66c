//! Shared by the integration tests: record builders, and finding a MongoDB
//! server to test against.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use fine_store::{MongoConfig, MongoStore};
use sync_core::Money;
use sync_core::records::{
    AlmaTransaction, AlmaTxnId, AlmaTxnType, Billing, BursarAccountLine, BursarTransaction,
    BursarTxnType, Export, ExportState, FeeType, Fine, FineId, ItemDetails, Job, JobKind,
    JobStatus, LoanId, Patron, PatronId, PaymentOutcome, PaymentRecord,
};

// ---- Records ----

pub fn at(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").unwrap()
}

pub fn utc(text: &str) -> DateTime<Utc> {
    at(text).and_utc()
}

pub fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

pub fn money(cents: i64) -> Money {
    Money::from_cents(cents)
}

pub fn patron(id: &str, cents: i64) -> Patron {
    Patron {
        id: PatronId::new(id),
        balance: money(cents),
    }
}

pub fn fine(id: &str, patron: &str, loan: Option<&str>, cents: i64) -> Fine {
    Fine {
        id: FineId::new(id),
        patron_id: PatronId::new(patron),
        loan_id: loan.map(LoanId::new),
        fee_type: FeeType::LostItemReplacementFee,
        closed: false,
        created_at: at("2024-03-01T09:00:00"),
        status_at: at("2024-03-01T09:00:00"),
        original_amount: money(cents),
        remaining_amount: money(cents),
        comment: Some(format!("comment of {id}")),
        item: ItemDetails {
            title: Some("The Title".into()),
            author: None,
            call_number: Some("QA76 .X1".into()),
            barcode: Some("3900012345".into()),
            location_code: Some("MAIN".into()),
            loaned_at: Some(at("2024-01-10T12:30:00")),
            due_at: Some(at("2024-02-10T23:59:00")),
            returned_at: None,
        },
    }
}

/// A signed Alma transaction: `id` None is the fine's opening transaction.
pub fn alma(
    id: Option<&str>,
    fine: &str,
    kind: AlmaTxnType,
    cents: i64,
    created: &str,
) -> AlmaTransaction {
    AlmaTransaction {
        id: id.map(AlmaTxnId::new),
        fine_id: FineId::new(fine),
        kind,
        amount: kind.signed(money(cents)),
        created_at: at(created),
        note: None,
        pending: true,
        source_credit_fine: None,
    }
}

pub fn billing(date: &str) -> Billing {
    Billing {
        billing_date: day(date),
        due_date: day("2024-04-25"),
        term_code: "2241".into(),
    }
}

pub fn line(reference: &str, patron: &str, billing: Option<Billing>) -> BursarAccountLine {
    BursarAccountLine {
        reference: FineId::new(reference),
        patron_id: PatronId::new(patron),
        account: "1234567890".into(),
        replacement_fee: true,
        billing,
    }
}

pub fn bursar(
    reference: &str,
    n: u32,
    kind: BursarTxnType,
    cents: i64,
    export: ExportState,
) -> BursarTransaction {
    BursarTransaction {
        reference: FineId::new(reference),
        n,
        kind,
        amount: money(cents),
        created_at: utc("2024-03-02T08:00:00") + chrono::Duration::minutes(i64::from(n)),
        export,
    }
}

pub fn export(seq: u64, sent_at: Option<&str>) -> Export {
    Export {
        seq,
        created_at: utc("2024-03-03T06:00:00") + chrono::Duration::days(seq as i64),
        billing_date: day("2024-03-03"),
        charges_file: Some(format!("LIB_charges.dat.20240303.{seq}.1")),
        reversals_file: None,
        line_count: 1,
        sent_at: sent_at.map(utc),
    }
}

pub fn payment(
    key: &str,
    fine: Option<&str>,
    outcome: PaymentOutcome,
    first_seen: &str,
) -> PaymentRecord {
    PaymentRecord {
        key: key.into(),
        fine_id: fine.map(FineId::new),
        patron_id: PatronId::new("P1"),
        paid_amount: money(1250),
        outcome,
        balance_read: Some(money(2000)),
        amount_posted: Some(money(1250)),
        external_transaction_id: format!("abs-{key}"),
        first_seen_at: utc(first_seen),
        updated_at: utc(first_seen),
    }
}

pub fn job(seq: u64, kind: JobKind, status: JobStatus) -> Job {
    Job {
        seq,
        kind,
        status,
        started_at: utc("2024-03-04T01:00:00"),
        finished_at: Some(utc("2024-03-04T01:05:00")),
        counts: vec![("fines_new".into(), 3), ("fines_updated".into(), 1)],
        problems: vec!["fine F9 quarantined".into()],
        error: None,
    }
}

pub fn ids(ids: &[&str]) -> Vec<FineId> {
    ids.iter().map(|id| FineId::new(*id)).collect()
}

// ---- MongoDB ----

mod container;
pub mod docker;

/// The MongoDB server to test against, or `None` (after saying so loudly)
/// when there is none. Under `CI=true` a missing server fails the test.
///
/// `MONGODB_URI` when set; otherwise, once per test binary, a MongoDB
/// container (`container.rs`) when a Docker engine answers a quick ping
/// (`docker.rs`). A container that does not come up is a missing server
/// too, said with its reason.
pub fn mongo_uri() -> Option<String> {
    if let Ok(uri) = std::env::var("MONGODB_URI")
        && !uri.trim().is_empty()
    {
        return Some(uri);
    }
    static FOUND: OnceLock<Result<String, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let engine = docker::probe().map_err(|why| {
            format!("MONGODB_URI is unset and no Docker engine answered ({why})")
        })?;
        let uri = container::start().map_err(|why| {
            format!("MONGODB_URI is unset; the Docker engine at {engine} answered, but: {why}")
        })?;
        say(&format!(
            "note: MONGODB_URI is unset: testing against a MongoDB container at {uri} (Docker engine at {engine})"
        ));
        Ok(uri)
    });
    let why = match found {
        Ok(uri) => return Some(uri.clone()),
        Err(why) => why,
    };
    let message = format!(
        "MongoDB tests: {why}. Set MONGODB_URI (scripts/test-services.sh start && source .test-services/env) or start a Docker engine"
    );
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("CI=true and no MongoDB: {message}");
    }
    static SAID: Once = Once::new();
    SAID.call_once(|| say(&format!("SKIPPED: {message}")));
    None
}

/// Written past libtest's output capture, so that it is seen even when
/// the tests pass.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// A database name no other test (or test process) uses.
pub fn fresh_database(test: &str) -> String {
    let n = DATABASES.fetch_add(1, Ordering::SeqCst);
    let mut name = format!("fs_{}_{n}_{test}", std::process::id());
    name.truncate(60);
    name
}

pub async fn connect(uri: &str, database: &str) -> MongoStore {
    MongoStore::connect(&MongoConfig {
        uri: uri.to_string(),
        database: database.to_string(),
    })
    .await
    .expect("connect to MongoDB")
}

pub async fn drop_database(uri: &str, database: &str) {
    let client = mongodb::Client::with_uri_str(uri)
        .await
        .expect("MongoDB client");
    client
        .database(database)
        .drop()
        .await
        .expect("drop the test database");
}
