//! Direction 2: Bursar payments into Alma (SPEC 7).
//!
//! # Steps
//!
//! 1. Record the job (kind `BursarPayments`).
//! 2. Take the newest file of the payments folder whose name starts with
//!    the configured prefix (by modification time), and copy it, under the
//!    same name, into the import archive folder. Everything after reads
//!    that archived copy, so what was worked is what was kept.
//! 3. Read it ([`bursar_format::read_payments`]). A malformed row is
//!    reported with its line number (the header is line 1) and what to do
//!    ([`UNREADABLE_ROW`]), and the other rows go through. A row whose Paid Amount is negative (a refund or a
//!    reversal at the Bursar) is reported the same way: nothing in SPEC 7
//!    says how to post one, so a person handles it.
//! 4. Key every row ([`bursar_format::keyed_rows`], SPEC 7.3) and read the
//!    payment records of those keys. A key with a final outcome is skipped,
//!    so the same file, an older one, or a file after the yearly range
//!    restart posts nothing twice. Only the other keys are worked.
//! 5. Work the keys concurrently (see *Concurrency*), each to one outcome,
//!    in the order of SPEC 7.4: the Reference Number must name a Bursar
//!    account line and its fine (else *not found*); the Emplid must be the
//!    fine's patron (else *patron mismatch*, never posted); Charge 0.00 is a
//!    *zero-dollar charge*, Paid 0.00 a *zero-dollar payment*. Otherwise the
//!    fee is read from Alma (user = Emplid), even if the store believes it
//!    closed: Alma's "API does not support closed fees" (or a fee with no
//!    balance left) is *already closed*; else `min(paid, balance)` is paid,
//!    method ONLINE, with the comment of [`payment_comment`] and the
//!    external transaction id of the key. Alma's other errors are recorded
//!    as `AlmaError` and the row is tried again on the next run.
//! 6. Finish the job with the run summary (SPEC 7.6, [`PaymentsOutcome`]).
//!
//! # No double payment (SPEC 7.5)
//!
//! Before the POST, the key's record is written as `Posting` with the
//! balance just read and the amount about to be posted, and the store has
//! it on disk when the write returns; after Alma's 200 it is written as
//! `Paid` (or `PaidCapped`). A record found in `Posting` (a run that died
//! or lost Alma's answer between the two writes) is settled against Alma
//! before anything else: if the fee is closed, or its balance is at or below
//! `balance_read - amount_posted`, or one of its transactions carries our
//! external transaction id, the payment was made and the record becomes
//! `Paid`/`PaidCapped` with no POST. Otherwise the row is worked again from
//! the fee just read (a new `Posting` record, a new POST).
//!
//! The crash-safety fail points `payments-before-post` (after the
//! `Posting` write) and `payments-after-post` (after Alma's 200, before
//! the `Paid` write) stop a row there, as a crash would.
//!
//! A POST whose answer leaves open whether Alma made the payment (no
//! answer, a cut-off answer, a 5xx, an unreadable 2xx) is **not** recorded
//! as `AlmaError`: the record stays `Posting`, so the next run settles it
//! first. A POST that Alma refused outright (a 4xx business error) is
//! recorded as `AlmaError`. A settling read that fails also leaves the
//! record in `Posting`.
//!
//! # Concurrency
//!
//! Fines are worked up to [`PaymentsConfig::concurrency`] at a time (by
//! default twice the Alma client's requests per second), so a large file
//! is bound by the client's rate limit rather than by Alma's latency. The
//! rows of one fine are worked by one task, one after the other in file
//! order, so a second payment on a fine reads the balance the first one
//! left (and is capped by it), and settling compares against balances that
//! no concurrent payment of ours moved. Each key is therefore worked by
//! exactly one task, and only that task writes its record; the ledgers are
//! read once, before the tasks start. A store error stops
//! new rows from starting, lets the ones under way finish (a payment in
//! flight is never abandoned between its two writes by choice) and fails
//! the job.
//!
//! # When the job fails
//!
//! - The file cannot be found, fetched or read: [`run_payments`] returns
//!   the [`StageError`] (and the job is recorded Failed with it).
//! - Rows were worked, at least one Alma call failed, and no row reached a
//!   final outcome in this run: [`run_payments`] returns `Ok` with the
//!   summary, and the job is recorded **Failed** with an error naming the
//!   first failure. [`PaymentsOutcome::is_failure`] says so, for the CLI's
//!   exit code.
//! - Not-found references, patron mismatches and malformed lines alone do
//!   not fail the job; nor do failures when other rows succeeded.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::fs::File;
use std::future::Future;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::Poll;

use alma_api::{AlmaClient, AlmaError, Fee, PayRequest, PaymentMethod};
use bursar_format::{
    BadRow, PaymentColumns, PaymentRow, external_transaction_id, keyed_rows, read_payments,
};
use chrono::{DateTime, NaiveDate, Utc};
use fail::fail_point;
use fine_store::FineStore;
use sftp_transport::RemoteDir;
use sync_core::Money;
use sync_core::records::{Fine, FineId, Job, JobKind, PatronId, PaymentOutcome, PaymentRecord};

use crate::error::StageError;
use crate::jobs::{JobOutcome, run_as_job};

/// What to do about a row that cannot be read, after its problems. The
/// file is cumulative, so the corrected row arrives in a later file; a
/// payment also made by hand in Alma would then be posted a second time.
pub const UNREADABLE_ROW: &str = "not posted: ask the Bursar to correct the row; it is read again on every run \
     and posted once it reads (do not also post it in Alma by hand, or it is paid twice)";

/// How many keys are read from, or ledgers asked of, the store at once.
const STORE_BATCH: usize = 500;

/// What the payments stage needs besides the store, Alma and the folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentsConfig {
    /// The start of the payments file's name, e.g.
    /// `ASUSASF_LIBRARY_REPORT_DTRANGE`.
    pub prefix: String,
    /// Local folder that keeps a copy of every payments file worked, under
    /// its own name. Created when missing.
    pub import_archive_dir: PathBuf,
    /// The header names of the CSV's columns.
    pub columns: PaymentColumns,
    /// Fines worked at once (the rows of one fine go one after the
    /// other). `None`: twice the Alma client's requests per
    /// second, enough to keep the rate limit busy at Alma's latency.
    pub concurrency: Option<NonZeroUsize>,
    /// The date the comment of each payment names as the import date.
    pub run_date: NaiveDate,
}

impl PaymentsConfig {
    /// A configuration with the default columns and concurrency.
    pub fn new(
        prefix: impl Into<String>,
        import_archive_dir: impl Into<PathBuf>,
        run_date: NaiveDate,
    ) -> PaymentsConfig {
        PaymentsConfig {
            prefix: prefix.into(),
            import_archive_dir: import_archive_dir.into(),
            columns: PaymentColumns::default(),
            concurrency: None,
            run_date,
        }
    }
}

/// A row of the payments file, as the summary names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowRef {
    /// Line in the file (the header is line 1).
    pub line: u64,
    /// The payment key's string (SPEC 7.3), the record's key in the store.
    pub key: String,
    pub reference: FineId,
    pub emplid: PatronId,
    pub paid_amount: Money,
}

/// A payment that is in Alma after this run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaidFine {
    pub row: RowRef,
    /// The amount posted to Alma: the paid amount, or the balance when
    /// capped.
    pub posted: Money,
    /// Alma's balance read before posting.
    pub balance_read: Money,
    /// The paid amount exceeded Alma's balance; the balance was paid.
    pub capped: bool,
    /// Posted by an earlier run that did not get to record it: found made
    /// when its `Posting` record was settled against Alma, not posted again.
    pub settled: bool,
}

/// A row whose Emplid is not the patron of the fine it references.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatronMismatch {
    pub row: RowRef,
    pub fine_patron: PatronId,
}

/// A row that an Alma call failed for. Tried again on the next run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentFailure {
    pub row: RowRef,
    /// Alma's error, as the client reports it.
    pub message: String,
    /// The payment may have been made: the record stays `Posting` and is
    /// settled against Alma on the next run before anything is posted.
    pub unsettled: bool,
}

/// What a payments run did (SPEC 7.6). Every list is in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PaymentsOutcome {
    /// The file's name in the payments folder.
    pub file: String,
    /// Where its copy was kept.
    pub archived: PathBuf,
    /// Rows of the file that were keyed (SPEC 7.3); the others are in
    /// `malformed`.
    pub rows: u64,
    /// Rows whose key already had a final outcome; not worked.
    pub already_processed: u64,
    /// Payments in Alma after this run, capped and settled ones included.
    pub paid: Vec<PaidFine>,
    pub zero_dollar_charges: Vec<RowRef>,
    pub zero_dollar_payments: Vec<RowRef>,
    pub already_closed: Vec<RowRef>,
    pub failures: Vec<PaymentFailure>,
    pub not_found: Vec<RowRef>,
    pub patron_mismatches: Vec<PatronMismatch>,
    /// Rows that could not be read, and rows refused before any lookup
    /// (a negative Paid Amount), with their line numbers.
    pub malformed: Vec<BadRow>,
}

impl PaymentsOutcome {
    /// Rows that reached a final outcome in this run.
    pub fn succeeded(&self) -> usize {
        self.paid.len()
            + self.zero_dollar_charges.len()
            + self.zero_dollar_payments.len()
            + self.already_closed.len()
    }

    /// The job failed (SPEC 7.6): an Alma call failed and no row reached a
    /// final outcome in this run. The CLI exits non-zero.
    pub fn is_failure(&self) -> bool {
        !self.failures.is_empty() && self.succeeded() == 0
    }

    /// Why the job failed, when [`Self::is_failure`].
    pub fn failure_message(&self) -> Option<String> {
        let first = self.failures.first().filter(|_| self.is_failure())?;
        Some(format!(
            "no payment succeeded and {} row(s) failed in Alma (they are tried again on the next run); \
             the first, line {} reference {}: {}",
            self.failures.len(),
            first.row.line,
            first.row.reference,
            first.message
        ))
    }

    /// The run summary of SPEC 7.6, one line per kind, every kind always
    /// present:
    ///
    /// ```text
    /// Payments file P_2.csv (kept as /archive/P_2.csv): 9 rows, 2 already processed.
    /// Fines paid (2): 1001, 1002
    /// Capped at the Alma balance (1): 1002 (paid 30.00 at the Bursar, Alma balance 25.00, posted 25.00)
    /// Zero-dollar charges (1): 1003 (line 5)
    /// Zero-dollar payments (0):
    /// Already closed in Alma (0):
    /// Failures (1): 1004 (line 7): <Alma's error>
    /// Not-found references (1): 999 (line 8, Emplid 100)
    /// Patron mismatches (1): 1005 (line 9): Emplid 100 in the file, the fine is patron 200's
    /// Malformed lines (1): line 4: Paid Amount "x": ...
    /// ```
    ///
    /// A paid fine found made while settling an interrupted payment is
    /// marked `(settled)`; a failure whose payment may have been made ends
    /// with `(may have been paid; checked against Alma on the next run)`.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "Payments file {} (kept as {}): {} rows, {} already processed.\n",
            self.file,
            self.archived.display(),
            self.rows,
            self.already_processed
        );
        let mut line = |title: &str, items: Vec<String>| {
            let _ = writeln!(text, "{title} ({}): {}", items.len(), items.join(", "));
        };
        line(
            "Fines paid",
            self.paid
                .iter()
                .map(|paid| {
                    if paid.settled {
                        format!("{} (settled)", paid.row.reference)
                    } else {
                        paid.row.reference.to_string()
                    }
                })
                .collect(),
        );
        line(
            "Capped at the Alma balance",
            self.paid
                .iter()
                .filter(|paid| paid.capped)
                .map(|paid| {
                    format!(
                        "{} (paid {} at the Bursar, Alma balance {}, posted {})",
                        paid.row.reference, paid.row.paid_amount, paid.balance_read, paid.posted
                    )
                })
                .collect(),
        );
        let at_line = |row: &RowRef| format!("{} (line {})", row.reference, row.line);
        line(
            "Zero-dollar charges",
            self.zero_dollar_charges.iter().map(at_line).collect(),
        );
        line(
            "Zero-dollar payments",
            self.zero_dollar_payments.iter().map(at_line).collect(),
        );
        line(
            "Already closed in Alma",
            self.already_closed.iter().map(at_line).collect(),
        );
        line(
            "Failures",
            self.failures
                .iter()
                .map(|failure| {
                    let mut text = format!("{}: {}", at_line(&failure.row), failure.message);
                    if failure.unsettled {
                        text.push_str(
                            " (may have been paid; checked against Alma on the next run)",
                        );
                    }
                    text
                })
                .collect(),
        );
        line(
            "Not-found references",
            self.not_found
                .iter()
                .map(|row| {
                    format!(
                        "{} (line {}, Emplid {})",
                        row.reference, row.line, row.emplid
                    )
                })
                .collect(),
        );
        line(
            "Patron mismatches",
            self.patron_mismatches
                .iter()
                .map(|mismatch| {
                    format!(
                        "{}: Emplid {} in the file, the fine is patron {}'s",
                        at_line(&mismatch.row),
                        mismatch.row.emplid,
                        mismatch.fine_patron
                    )
                })
                .collect(),
        );
        line(
            "Malformed lines",
            self.malformed
                .iter()
                .map(|bad| format!("line {}: {}", bad.line, bad.message))
                .collect(),
        );
        text
    }

    fn sort(&mut self) {
        self.paid.sort_by_key(|paid| paid.row.line);
        self.zero_dollar_charges.sort_by_key(|row| row.line);
        self.zero_dollar_payments.sort_by_key(|row| row.line);
        self.already_closed.sort_by_key(|row| row.line);
        self.failures.sort_by_key(|failure| failure.row.line);
        self.not_found.sort_by_key(|row| row.line);
        self.patron_mismatches
            .sort_by_key(|mismatch| mismatch.row.line);
        self.malformed.sort_by_key(|bad| bad.line);
    }
}

impl JobOutcome for PaymentsOutcome {
    /// `paid` counts every payment in Alma after the run, `paid_capped`
    /// and `paid_settled` the capped and settled ones among them.
    fn counts(&self) -> Vec<(String, u64)> {
        let count = |n: usize| n as u64;
        vec![
            ("rows".to_string(), self.rows),
            ("already_processed".to_string(), self.already_processed),
            ("paid".to_string(), count(self.paid.len())),
            (
                "paid_capped".to_string(),
                count(self.paid.iter().filter(|paid| paid.capped).count()),
            ),
            (
                "paid_settled".to_string(),
                count(self.paid.iter().filter(|paid| paid.settled).count()),
            ),
            (
                "zero_dollar_charges".to_string(),
                count(self.zero_dollar_charges.len()),
            ),
            (
                "zero_dollar_payments".to_string(),
                count(self.zero_dollar_payments.len()),
            ),
            (
                "already_closed".to_string(),
                count(self.already_closed.len()),
            ),
            ("failures".to_string(), count(self.failures.len())),
            ("not_found".to_string(), count(self.not_found.len())),
            (
                "patron_mismatches".to_string(),
                count(self.patron_mismatches.len()),
            ),
            ("malformed".to_string(), count(self.malformed.len())),
        ]
    }

    /// One line per row a person should look at, in the summary's order.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for failure in &self.failures {
            problems.push(format!(
                "line {}: reference {} (Emplid {}): Alma call failed{}: {}",
                failure.row.line,
                failure.row.reference,
                failure.row.emplid,
                if failure.unsettled {
                    ", the payment may have been made and is checked on the next run"
                } else {
                    ""
                },
                failure.message
            ));
        }
        for row in &self.not_found {
            problems.push(format!(
                "line {}: reference {} (Emplid {}): no Bursar account line or fine with this reference; \
                 not posted, and tried again on every run: check the reference with the Bursar",
                row.line, row.reference, row.emplid
            ));
        }
        for mismatch in &self.patron_mismatches {
            problems.push(format!(
                "line {}: reference {}: Emplid {} in the file, the fine is patron {}'s; not posted",
                mismatch.row.line,
                mismatch.row.reference,
                mismatch.row.emplid,
                mismatch.fine_patron
            ));
        }
        for bad in &self.malformed {
            problems.push(format!("line {}: malformed: {}", bad.line, bad.message));
        }
        problems
    }

    fn failure(&self) -> Option<String> {
        self.failure_message()
    }
}

/// The comment of a payment posted to Alma, exactly:
///
/// `Paid to bursar on <Date Paid>, imported into Alma via alma-bursar-sync on <run date>.`
///
/// with both dates as `YYYY-MM-DD`, and, when the payment was capped at
/// Alma's balance (`capped = Some((paid, balance))`), followed by
///
/// ` The paid amount of <paid> exceeded the Alma balance of <balance>; <balance> was paid.`
///
/// with amounts as two-decimal numbers (`30.00`). The comment starts with
/// the marker Direction 1 recognises (SPEC 4.7, "Paid to bursar on").
pub fn payment_comment(
    date_paid: NaiveDate,
    run_date: NaiveDate,
    capped: Option<(Money, Money)>,
) -> String {
    let mut comment = format!(
        "Paid to bursar on {}, imported into Alma via alma-bursar-sync on {}.",
        date_paid.format("%Y-%m-%d"),
        run_date.format("%Y-%m-%d")
    );
    if let Some((paid, balance)) = capped {
        let _ = write!(
            comment,
            " The paid amount of {paid} exceeded the Alma balance of {balance}; {balance} was paid."
        );
    }
    comment
}

/// Runs the payments stage (SPEC 7) as a job of kind `BursarPayments`.
///
/// Returns `Err` when the file cannot be listed, fetched or read (nothing
/// was posted; the job is recorded Failed with the error). Otherwise
/// returns the job and the outcome; the job is Failed when
/// [`PaymentsOutcome::is_failure`], Success otherwise. The SFTP calls
/// block; a stage runs alone, so they run on the calling task.
pub async fn run_payments(
    store: &dyn FineStore,
    alma: &AlmaClient,
    drop: &dyn RemoteDir,
    config: &PaymentsConfig,
    now: DateTime<Utc>,
) -> Result<(Job, PaymentsOutcome), StageError> {
    let (job, outcome) = run_as_job(store, JobKind::BursarPayments, now, |_job| {
        work(store, alma, drop, config, now)
    })
    .await?;
    if outcome.is_failure() {
        tracing::error!(summary = %outcome.summary(), "payments failed");
    } else {
        tracing::info!(summary = %outcome.summary(), "payments done");
    }
    Ok((job, outcome))
}

/// Fetches, archives and reads the newest payments file.
fn fetch_file(
    drop: &dyn RemoteDir,
    config: &PaymentsConfig,
) -> Result<(String, PathBuf, bursar_format::PaymentsFile), StageError> {
    let file =
        drop.newest_with_prefix(&config.prefix)?
            .ok_or_else(|| StageError::NoPaymentsFile {
                location: drop.location().to_string(),
                prefix: config.prefix.clone(),
            })?;
    let archive = &config.import_archive_dir;
    std::fs::create_dir_all(archive)
        .map_err(|error| StageError::io("creating the import archive folder", archive, error))?;
    let archived = archive.join(&file.name);
    drop.download(&file.name, &archived)
        .map_err(|source| StageError::PaymentsFetch {
            file: file.name.clone(),
            archive: archive.clone(),
            source: Box::new(source),
        })?;
    tracing::info!(file = %file.name, modified = %file.modified, archived = %archived.display(), "payments file fetched");
    let reader = File::open(&archived)
        .map_err(|error| StageError::io("opening the archived payments file", &archived, error))?;
    let parsed = read_payments(reader, &archived.display().to_string(), &config.columns).map_err(
        |source| StageError::PaymentsFile {
            archived: archived.clone(),
            source: Box::new(source),
        },
    )?;
    Ok((file.name, archived, parsed))
}

/// One key to work, with what is known of it.
struct Work {
    key: String,
    external_id: String,
    row: PaymentRow,
    existing: Option<PaymentRecord>,
}

async fn work(
    store: &dyn FineStore,
    alma: &AlmaClient,
    drop: &dyn RemoteDir,
    config: &PaymentsConfig,
    now: DateTime<Utc>,
) -> Result<PaymentsOutcome, StageError> {
    let (file, archived, parsed) = fetch_file(drop, config)?;
    let mut outcome = PaymentsOutcome {
        file,
        archived,
        malformed: parsed
            .bad_rows
            .into_iter()
            .map(|bad| BadRow {
                message: format!("{}; {UNREADABLE_ROW}", bad.message),
                ..bad
            })
            .collect(),
        ..PaymentsOutcome::default()
    };
    for bad in &outcome.malformed {
        tracing::warn!(line = bad.line, problem = %bad.message, "malformed payment row");
    }

    let mut keyed = Vec::new();
    for (key, row) in keyed_rows(parsed.rows) {
        if row.paid_amount.is_negative() {
            outcome.malformed.push(BadRow {
                line: row.line,
                message: format!(
                    "Paid Amount {} is negative (a refund or reversal at the Bursar); it is not posted to Alma, \
                     handle it by hand",
                    row.paid_amount
                ),
            });
            continue;
        }
        keyed.push((key, row));
    }

    outcome.rows = keyed.len() as u64;
    let keys: Vec<String> = keyed.iter().map(|(key, _)| key.key_string()).collect();
    let mut records: HashMap<String, PaymentRecord> = HashMap::new();
    for batch in keys.chunks(STORE_BATCH) {
        for record in store.payment_records(batch).await? {
            records.insert(record.key.clone(), record);
        }
    }

    let mut work_items = Vec::new();
    for ((key, row), key_string) in keyed.into_iter().zip(keys) {
        let existing = records.remove(&key_string);
        if existing
            .as_ref()
            .is_some_and(|record| record.outcome.is_final())
        {
            outcome.already_processed += 1;
            continue;
        }
        work_items.push(Work {
            external_id: external_transaction_id(&key),
            key: key_string,
            row,
            existing,
        });
    }

    // Reference -> Bursar account line -> fine, read once for every row.
    let references: Vec<FineId> = work_items
        .iter()
        .map(|item| item.row.reference.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut fines: HashMap<FineId, Fine> = HashMap::new();
    for batch in references.chunks(STORE_BATCH) {
        for ledger in store.ledgers(batch).await? {
            let id = ledger.fine.id.clone();
            if ledger.lines.iter().any(|line| line.reference == id) {
                fines.insert(id, ledger.fine);
            }
        }
    }

    let limit = config.concurrency.map_or_else(
        || {
            usize::try_from(alma.config().requests_per_second)
                .unwrap_or(1)
                .saturating_mul(2)
                .max(1)
        },
        NonZeroUsize::get,
    );
    tracing::info!(
        rows = outcome.rows,
        already_processed = outcome.already_processed,
        to_work = work_items.len(),
        concurrency = limit,
        "working payment rows"
    );
    let context = RowContext {
        store,
        alma,
        run_date: config.run_date,
        now,
    };
    let context = &context;
    let fines = &fines;
    // The rows of one fine are worked one after the other, in file order,
    // so each reads the balance the previous one left (SPEC 7.5's balance
    // test stays sound); different fines are worked concurrently.
    let mut groups: Vec<Vec<Work>> = Vec::new();
    let mut group_of: HashMap<FineId, usize> = HashMap::new();
    for item in work_items {
        let index = *group_of
            .entry(item.row.reference.clone())
            .or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
        if let Some(group) = groups.get_mut(index) {
            group.push(item);
        }
    }
    let tasks = groups.into_iter().map(move |group| -> RowsFuture<'_> {
        Box::pin(async move {
            let mut ends = Vec::with_capacity(group.len());
            for item in group {
                let fine = fines.get(&item.row.reference);
                ends.push(context.work_row(item, fine).await?);
            }
            Ok(ends)
        })
    });
    for end in run_bounded(limit, tasks).await? {
        match end {
            RowEnd::Paid(paid) => outcome.paid.push(paid),
            RowEnd::ZeroDollarCharge(row) => outcome.zero_dollar_charges.push(row),
            RowEnd::ZeroDollarPayment(row) => outcome.zero_dollar_payments.push(row),
            RowEnd::AlreadyClosed(row) => outcome.already_closed.push(row),
            RowEnd::NotFound(row) => outcome.not_found.push(row),
            RowEnd::PatronMismatch(mismatch) => outcome.patron_mismatches.push(mismatch),
            RowEnd::Failure(failure) => outcome.failures.push(failure),
        }
    }
    outcome.sort();
    Ok(outcome)
}

/// How one worked row ended.
enum RowEnd {
    Paid(PaidFine),
    ZeroDollarCharge(RowRef),
    ZeroDollarPayment(RowRef),
    AlreadyClosed(RowRef),
    NotFound(RowRef),
    PatronMismatch(PatronMismatch),
    Failure(PaymentFailure),
}

/// The work of the rows of one fine.
type RowsFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<RowEnd>, StageError>> + Send + 'a>>;

/// Drives up to `limit` of `tasks` at once, in any order, like
/// `futures`' `buffer_unordered`. After the first error no new task is
/// started; those under way run to their end, then the error is returned.
async fn run_bounded<'a>(
    limit: usize,
    mut tasks: impl Iterator<Item = RowsFuture<'a>>,
) -> Result<Vec<RowEnd>, StageError> {
    let limit = limit.max(1);
    let mut running: Vec<RowsFuture<'a>> = Vec::new();
    let mut ends = Vec::new();
    let mut first_error: Option<StageError> = None;
    std::future::poll_fn(|cx| {
        loop {
            if first_error.is_none() {
                while running.len() < limit {
                    match tasks.next() {
                        Some(task) => running.push(task),
                        None => break,
                    }
                }
            }
            if running.is_empty() {
                return Poll::Ready(());
            }
            let mut progressed = false;
            let mut index = 0;
            while index < running.len() {
                match running[index].as_mut().poll(cx) {
                    Poll::Ready(result) => {
                        // The last task moves into `index`; poll it next.
                        drop(running.swap_remove(index));
                        progressed = true;
                        match result {
                            Ok(done) => ends.extend(done),
                            Err(error) => {
                                tracing::error!(%error, "stopping: no new payment rows are started");
                                first_error.get_or_insert(error);
                            }
                        }
                    }
                    Poll::Pending => index += 1,
                }
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    })
    .await;
    match first_error {
        Some(error) => Err(error),
        None => Ok(ends),
    }
}

/// What every row's task shares.
struct RowContext<'a> {
    store: &'a dyn FineStore,
    alma: &'a AlmaClient,
    run_date: NaiveDate,
    now: DateTime<Utc>,
}

/// What settling a `Posting` record against Alma found (SPEC 7.5).
enum Settled {
    /// The payment was made: record it, post nothing.
    Made,
    /// It was not: work the row again from this fee, read just now.
    NotMade(Box<Fee>),
    /// Alma could not be asked: the record stays `Posting`.
    Unknown(AlmaError),
}

/// Whether a failed POST may still have made the payment: no answer or a
/// cut-off one (other than a refused connection, which the client
/// retries), a 5xx, or a 2xx we could not read.
fn may_have_posted(error: &AlmaError) -> bool {
    match error {
        AlmaError::Network { source, .. } => !source.is_connect(),
        AlmaError::Decode { .. } => true,
        AlmaError::Http { status, .. } => *status >= 500,
        other => other.fault().is_some_and(|fault| fault.status >= 500),
    }
}

impl RowContext<'_> {
    fn record(
        &self,
        item: &Work,
        fine_id: Option<FineId>,
        outcome: PaymentOutcome,
    ) -> PaymentRecord {
        PaymentRecord {
            key: item.key.clone(),
            fine_id,
            patron_id: item.row.emplid.clone(),
            paid_amount: item.row.paid_amount,
            outcome,
            balance_read: None,
            amount_posted: None,
            external_transaction_id: item.external_id.clone(),
            first_seen_at: item
                .existing
                .as_ref()
                .map_or(self.now, |record| record.first_seen_at),
            updated_at: self.now,
        }
    }

    async fn put(&self, record: &PaymentRecord) -> Result<(), StageError> {
        self.store.put_payment_record(record).await?;
        Ok(())
    }

    /// Settles a record left in `Posting` by an earlier run.
    async fn settle(&self, item: &Work, posting: &PaymentRecord) -> Settled {
        let fine_id = posting
            .fine_id
            .clone()
            .unwrap_or_else(|| item.row.reference.clone());
        let fee = match self.alma.get_fee(&item.row.emplid, &fine_id).await {
            Ok(fee) => fee,
            Err(AlmaError::FeeClosed(_)) => return Settled::Made,
            Err(error) => return Settled::Unknown(error),
        };
        let lowered = match (posting.balance_read, posting.amount_posted) {
            (Some(read), Some(amount)) => fee.balance <= read - amount,
            _ => false,
        };
        let ours = fee.transactions.iter().any(|transaction| {
            transaction.external_transaction_id.as_deref() == Some(item.external_id.as_str())
        });
        if fee.is_closed() || lowered || ours {
            Settled::Made
        } else {
            Settled::NotMade(Box::new(fee))
        }
    }

    /// Works one key to its outcome and writes its record (SPEC 7.4, 7.5).
    async fn work_row(&self, item: Work, fine: Option<&Fine>) -> Result<RowEnd, StageError> {
        let row_ref = RowRef {
            line: item.row.line,
            key: item.key.clone(),
            reference: item.row.reference.clone(),
            emplid: item.row.emplid.clone(),
            paid_amount: item.row.paid_amount,
        };

        // A payment an earlier run may have made is settled first.
        let mut fee_read = None;
        if let Some(posting) = item
            .existing
            .as_ref()
            .filter(|record| record.outcome == PaymentOutcome::Posting)
        {
            match self.settle(&item, posting).await {
                Settled::Made => {
                    let posted = posting.amount_posted.unwrap_or(item.row.paid_amount);
                    let capped = posted < item.row.paid_amount;
                    let mut record = posting.clone();
                    record.outcome = if capped {
                        PaymentOutcome::PaidCapped
                    } else {
                        PaymentOutcome::Paid
                    };
                    record.updated_at = self.now;
                    self.put(&record).await?;
                    tracing::warn!(key = %item.key, line = item.row.line, "an earlier run's payment was made in Alma; recorded, not posted again");
                    return Ok(RowEnd::Paid(PaidFine {
                        row: row_ref,
                        posted,
                        balance_read: posting.balance_read.unwrap_or(posted),
                        capped,
                        settled: true,
                    }));
                }
                Settled::NotMade(fee) => {
                    tracing::warn!(key = %item.key, line = item.row.line, "an earlier run's payment was not made in Alma; posting it again");
                    fee_read = Some(*fee);
                }
                Settled::Unknown(error) => {
                    return Ok(RowEnd::Failure(PaymentFailure {
                        row: row_ref,
                        message: error.to_string(),
                        unsettled: true,
                    }));
                }
            }
        }

        let Some(fine) = fine else {
            self.put(&self.record(&item, None, PaymentOutcome::NotFound))
                .await?;
            return Ok(RowEnd::NotFound(row_ref));
        };
        let fine_id = Some(fine.id.clone());
        if fine.patron_id != item.row.emplid {
            self.put(&self.record(&item, fine_id, PaymentOutcome::PatronMismatch))
                .await?;
            return Ok(RowEnd::PatronMismatch(PatronMismatch {
                row: row_ref,
                fine_patron: fine.patron_id.clone(),
            }));
        }
        if item.row.charge_amount.is_zero() {
            self.put(&self.record(&item, fine_id, PaymentOutcome::ZeroDollarCharge))
                .await?;
            return Ok(RowEnd::ZeroDollarCharge(row_ref));
        }
        if item.row.paid_amount.is_zero() {
            self.put(&self.record(&item, fine_id, PaymentOutcome::ZeroDollarPayment))
                .await?;
            return Ok(RowEnd::ZeroDollarPayment(row_ref));
        }

        let fee = match fee_read {
            Some(fee) => Ok(fee),
            None => self.alma.get_fee(&item.row.emplid, &fine.id).await,
        };
        let fee = match fee {
            Ok(fee) if !fee.is_closed() && fee.balance.is_positive() => fee,
            Ok(_) | Err(AlmaError::FeeClosed(_)) => {
                self.put(&self.record(&item, fine_id, PaymentOutcome::AlreadyClosed))
                    .await?;
                return Ok(RowEnd::AlreadyClosed(row_ref));
            }
            Err(error) => {
                let message = error.to_string();
                tracing::warn!(key = %item.key, line = item.row.line, %message, "reading the fee failed");
                let outcome = PaymentOutcome::AlmaError {
                    message: message.clone(),
                };
                self.put(&self.record(&item, fine_id, outcome)).await?;
                return Ok(RowEnd::Failure(PaymentFailure {
                    row: row_ref,
                    message,
                    unsettled: false,
                }));
            }
        };

        let paid = item.row.paid_amount;
        let amount = paid.min(fee.balance);
        let capped = amount < paid;
        let mut posting = self.record(&item, fine_id.clone(), PaymentOutcome::Posting);
        posting.balance_read = Some(fee.balance);
        posting.amount_posted = Some(amount);
        self.put(&posting).await?;
        fail_point!("payments-before-post", |_| Err(crate::error::interrupted(
            "payments-before-post"
        )));
        let request = PayRequest {
            amount,
            method: PaymentMethod::Online,
            comment: payment_comment(
                item.row.date_paid,
                self.run_date,
                capped.then_some((paid, fee.balance)),
            ),
            external_transaction_id: item.external_id.clone(),
        };
        match self
            .alma
            .pay_fee(&item.row.emplid, &fine.id, &request)
            .await
        {
            Ok(_) => {
                fail_point!("payments-after-post", |_| Err(crate::error::interrupted(
                    "payments-after-post"
                )));
                let mut paid_record = posting;
                paid_record.outcome = if capped {
                    PaymentOutcome::PaidCapped
                } else {
                    PaymentOutcome::Paid
                };
                self.put(&paid_record).await?;
                tracing::info!(key = %item.key, fine = %fine.id, %amount, capped, "paid");
                Ok(RowEnd::Paid(PaidFine {
                    row: row_ref,
                    posted: amount,
                    balance_read: fee.balance,
                    capped,
                    settled: false,
                }))
            }
            Err(AlmaError::FeeClosed(_)) => {
                self.put(&self.record(&item, fine_id, PaymentOutcome::AlreadyClosed))
                    .await?;
                Ok(RowEnd::AlreadyClosed(row_ref))
            }
            Err(error) if may_have_posted(&error) => {
                // The record stays Posting: the next run settles it.
                let message = error.to_string();
                tracing::error!(key = %item.key, fine = %fine.id, %message, "the payment may have been made; left as posting, settled on the next run");
                Ok(RowEnd::Failure(PaymentFailure {
                    row: row_ref,
                    message,
                    unsettled: true,
                }))
            }
            Err(error) => {
                let message = error.to_string();
                tracing::warn!(key = %item.key, fine = %fine.id, %message, "Alma refused the payment");
                let outcome = PaymentOutcome::AlmaError {
                    message: message.clone(),
                };
                self.put(&self.record(&item, fine_id, outcome)).await?;
                Ok(RowEnd::Failure(PaymentFailure {
                    row: row_ref,
                    message,
                    unsettled: false,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap_or_default()
    }

    #[test]
    fn the_comment_is_exact_and_says_when_capped() {
        assert_eq!(
            payment_comment(date("2024-05-01"), date("2024-05-03"), None),
            "Paid to bursar on 2024-05-01, imported into Alma via alma-bursar-sync on 2024-05-03."
        );
        assert_eq!(
            payment_comment(
                date("2024-05-01"),
                date("2024-05-03"),
                Some((Money::from_cents(3000), Money::from_cents(2550)))
            ),
            "Paid to bursar on 2024-05-01, imported into Alma via alma-bursar-sync on 2024-05-03. \
             The paid amount of 30.00 exceeded the Alma balance of 25.50; 25.50 was paid."
        );
    }

    #[test]
    fn only_uncertain_post_errors_keep_the_record_posting() {
        let fault = |status: u16| alma_api::ApiFault {
            path: "/almaws/v1/users/1/fees/2".into(),
            status,
            code: "402119".into(),
            message: "General error.".into(),
            tracking_id: None,
        };
        assert!(may_have_posted(&AlmaError::Other(fault(500))));
        assert!(may_have_posted(&AlmaError::Http {
            path: "/x".into(),
            status: 502,
            attempts: 1,
            excerpt: "Bad Gateway".into()
        }));
        assert!(may_have_posted(&AlmaError::Decode {
            path: "/x".into(),
            message: "eof".into()
        }));
        assert!(!may_have_posted(&AlmaError::Other(fault(400))));
        assert!(!may_have_posted(&AlmaError::InvalidParameter(fault(400))));
        assert!(!may_have_posted(&AlmaError::DailyLimit(fault(429))));
        assert!(!may_have_posted(&AlmaError::Http {
            path: "/x".into(),
            status: 404,
            attempts: 1,
            excerpt: "Not Found".into()
        }));
    }
}
