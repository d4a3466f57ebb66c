//! `abs-bench payments`: Direction 2 against a mock Alma whose every fees
//! answer takes a fixed latency, with the client's rate limit set; the
//! figure is the achieved Alma request rate against that limit.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use fine_store::ChangeSet;
use sftp_transport::{IfMissing, LocalDir};
use sync_core::Money;
use sync_core::records::{BursarAccountLine, FeeType, Fine, FineId, ItemDetails, PatronId};
use sync_stages::payments::{PaymentsConfig, run_payments};

use crate::error::BenchError;
use crate::measure::{mib, stage, table};
use crate::rig::{OpenStore, StoreChoice, alma_client};
use crate::serve::{ServerChild, payment_fee};

pub struct PaymentsArgs {
    pub rows: u64,
    pub latency: Duration,
    pub requests_per_second: u32,
    pub store: StoreChoice,
    pub work_dir: Option<PathBuf>,
}

const PREFIX: &str = "ASUSASF_LIBRARY_REPORT_DTRANGE";

fn seed_fine(n: u64) -> (Fine, BursarAccountLine) {
    let (id, patron, cents) = payment_fee(n);
    let created = NaiveDateTime::parse_from_str("2024-10-01T10:00:00", "%Y-%m-%dT%H:%M:%S")
        .unwrap_or_default();
    let fine = Fine {
        id: FineId::new(&id),
        patron_id: PatronId::new(&patron),
        loan_id: None,
        fee_type: FeeType::OverdueFine,
        closed: false,
        created_at: created,
        status_at: created,
        original_amount: Money::from_cents(cents),
        remaining_amount: Money::from_cents(cents),
        comment: None,
        item: ItemDetails::default(),
    };
    let line = BursarAccountLine {
        reference: FineId::new(id),
        patron_id: PatronId::new(patron),
        account: "531000000002".to_string(),
        replacement_fee: false,
        billing: None,
    };
    (fine, line)
}

/// The payments file: one row per fee; every tenth row pays a dollar more
/// than the balance (capped).
fn payments_csv(rows: u64) -> String {
    let mut csv = String::from(
        "Emplid,Date Paid,Reference Number,Charge Amount,Paid Amount,Item Type,Charge Description\n",
    );
    for n in 1..=rows {
        let (id, patron, cents) = payment_fee(n);
        let paid = if n % 10 == 0 { cents + 100 } else { cents };
        csv.push_str(&format!(
            "{patron},2024-12-02,{id},{},{},LIBFINE,Overdue fine\n",
            crate::synth::amount(cents),
            crate::synth::amount(paid)
        ));
    }
    csv
}

async fn server_counts(uri: &str) -> Result<(u64, u64), BenchError> {
    let text = reqwest::get(format!("{uri}/bench/stats"))
        .await
        .map_err(|e| BenchError::Check(format!("reading the mock's counts: {e}")))?
        .text()
        .await
        .map_err(|e| BenchError::Check(format!("reading the mock's counts: {e}")))?;
    let mut parts = text.split_whitespace().map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(gets)), Some(Ok(posts))) => Ok((gets, posts)),
        _ => Err(BenchError::Check(format!("the mock's counts: {text:?}"))),
    }
}

// Rates are f64; no money is computed here.
#[allow(clippy::float_arithmetic)]
pub async fn run(args: PaymentsArgs) -> Result<String, BenchError> {
    let server = ServerChild::spawn(&[
        "serve-fees".into(),
        "--rows".into(),
        args.rows.to_string(),
        "--latency-ms".into(),
        args.latency.as_millis().to_string(),
    ])?;
    let tmp = match &args.work_dir {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .map_err(|e| BenchError::io("creating a work folder", ".", e))?;
    let opened = OpenStore::open(&args.store, tmp.path(), "payments").await?;
    let store = opened.store.as_ref();

    // Seed the store: the fines and their account lines, in batches.
    let mut n = 1;
    while n <= args.rows {
        let mut changes = ChangeSet::default();
        for m in n..(n + 5000).min(args.rows + 1) {
            let (fine, line) = seed_fine(m);
            changes.fines.push(fine);
            changes.account_lines.push(line);
        }
        store.apply(changes.clone()).await?;
        n += 5000;
    }
    let drop_dir = tmp.path().join("drop");
    std::fs::create_dir_all(&drop_dir)
        .map_err(|e| BenchError::io("creating", drop_dir.clone(), e))?;
    let file = drop_dir.join(format!("{PREFIX}_20241202.csv"));
    std::fs::write(&file, payments_csv(args.rows))
        .map_err(|e| BenchError::io("writing", file.clone(), e))?;
    let drop_folder = LocalDir::open(&drop_dir, IfMissing::Fail)
        .map_err(|e| BenchError::Check(format!("opening the drop folder: {e}")))?;

    let alma = alma_client(&server.uri, args.requests_per_second)?;
    let run_date = NaiveDate::from_ymd_opt(2024, 12, 3).unwrap_or_default();
    let config = PaymentsConfig::new(PREFIX, tmp.path().join("archive"), run_date);
    let now = run_date.and_hms_opt(6, 0, 0).unwrap_or_default().and_utc();
    let (outcome, result) = stage("payments", async {
        let (_, outcome) = run_payments(store, &alma, &drop_folder, &config, now).await?;
        let rows = outcome.rows;
        Ok((outcome, rows, String::new()))
    })
    .await?;
    let (gets, posts) = server_counts(&server.uri).await?;
    let description = opened.description.clone();
    opened.clean_up().await?;
    drop(server);

    let secs = result.wall.as_secs_f64();
    let requests = gets + posts;
    let rate = if secs > 0.0 {
        requests as f64 / secs
    } else {
        0.0
    };
    let limit = f64::from(args.requests_per_second);
    let share = if limit > 0.0 { rate / limit } else { 0.0 };
    let capped = outcome.paid.iter().filter(|p| p.capped).count();
    let mut result = result;
    result.note = format!(
        "{} paid ({capped} capped), {} failures; {gets} GET + {posts} POST",
        outcome.paid.len(),
        outcome.failures.len()
    );
    let mut report = format!(
        "payments: {} rows; mock Alma latency {} ms; client limit {} requests/s; store {}\n\n",
        args.rows,
        args.latency.as_millis(),
        args.requests_per_second,
        description
    );
    report.push_str(&table(std::slice::from_ref(&result)));
    report.push_str(&format!(
        "\nAlma requests: {requests} in {secs:.1} s = {rate:.1} requests/s = {:.1}% of the limit (target >= 90%): {}; payments posted {:.1}/s; peak {:.1} MiB\n",
        share * 100.0,
        if share >= 0.9 { "MET" } else { "MISSED" },
        posts as f64 / secs.max(f64::MIN_POSITIVE),
        mib(result.peak_kib)
    ));
    Ok(report)
}
