#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Direction 2 end to end (SPEC 7): a mock Alma (wiremock), the real
//! SQLite store in a temporary folder, and the payments drop folder as a
//! local folder (and once as a folder on the real OpenSSH SFTP server).
//!
//! Every test checks what a person would check: the records in the store,
//! the exact requests Alma received, and the run summary.

use std::collections::BTreeMap;
use std::fs;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use alma_api::{AlmaClient, AlmaConfig, ApiKey, RetryPolicy};
use bursar_format::{PaymentKey, external_transaction_id};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use fine_store::{ChangeSet, FineStore, SqliteStore};
use sftp_transport::{IfMissing, LocalDir, RemoteDir};
use sync_core::Money;
use sync_core::records::{
    BursarAccountLine, FeeType, Fine, FineId, ItemDetails, Job, JobKind, JobStatus, PatronId,
    PaymentOutcome, PaymentRecord,
};
use sync_stages::StageError;
use sync_stages::payments::{
    PaymentsConfig, PaymentsOutcome, UNREADABLE_ROW, payment_comment, run_payments,
};
use tempfile::TempDir;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

const P1: &str = "1000000001";
const P2: &str = "1000000002";
const PREFIX: &str = "ASUSASF_LIBRARY_REPORT_DTRANGE";
const FILE_0503: &str = "ASUSASF_LIBRARY_REPORT_DTRANGE_20240503.csv";
const FILE_0510: &str = "ASUSASF_LIBRARY_REPORT_DTRANGE_20240510.csv";
const FILE_RESTART: &str = "ASUSASF_LIBRARY_REPORT_DTRANGE_20250106.csv";

// ---------------------------------------------------------------- helpers

fn fixture_path(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(dir)
        .join(name)
}

fn fixture(dir: &str, name: &str) -> String {
    let path = fixture_path(dir, name);
    fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn money(text: &str) -> Money {
    Money::parse(text).unwrap()
}

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn naive(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").unwrap()
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
        still_preparing_delay: Duration::from_millis(1),
        still_preparing_attempts: 2,
        per_second_429_delay: Duration::from_millis(1),
        per_second_429_attempts: 2,
    }
}

/// A fresh store, drop folder, archive folder and mock Alma.
struct Env {
    tmp: TempDir,
    store: SqliteStore,
    server: MockServer,
    alma: AlmaClient,
    drop_dir: PathBuf,
    archive: PathBuf,
}

impl Env {
    async fn new() -> Env {
        Env::with_timeout(Duration::from_secs(10)).await
    }

    async fn with_timeout(timeout: Duration) -> Env {
        let tmp = TempDir::new().unwrap();
        let store = SqliteStore::open(tmp.path().join("state.db")).unwrap();
        let server = MockServer::start().await;
        let mut config = AlmaConfig::new(server.uri(), ApiKey::new("l8xx-payments-test"));
        config.requests_per_second = 1000;
        config.retry = fast_retry();
        config.timeout = timeout;
        let alma = AlmaClient::new(config).unwrap();
        let drop_dir = tmp.path().join("drop");
        fs::create_dir_all(&drop_dir).unwrap();
        let archive = tmp.path().join("archive");
        Env {
            tmp,
            store,
            server,
            alma,
            drop_dir,
            archive,
        }
    }

    fn config(&self, run_date: &str) -> PaymentsConfig {
        PaymentsConfig::new(PREFIX, &self.archive, day(run_date))
    }

    fn drop(&self) -> LocalDir {
        LocalDir::open(&self.drop_dir, IfMissing::Fail).unwrap()
    }

    /// Puts a file into the drop folder with the given modification time
    /// (seconds after 2024-05-01).
    fn put_file(&self, name: &str, content: &str, mtime_offset: u64) {
        let path = self.drop_dir.join(name);
        fs::write(&path, content).unwrap();
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_521_600 + mtime_offset);
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(time)
            .unwrap();
    }

    async fn run(&self, run_date: &str, now: &str) -> Result<(Job, PaymentsOutcome), StageError> {
        self.run_with(&self.config(run_date), now).await
    }

    async fn run_with(
        &self,
        config: &PaymentsConfig,
        now: &str,
    ) -> Result<(Job, PaymentsOutcome), StageError> {
        run_payments(&self.store, &self.alma, &self.drop(), config, at(now)).await
    }

    async fn jobs(&self) -> Vec<Job> {
        self.store.dump().await.unwrap().jobs
    }

    async fn records(&self) -> Vec<PaymentRecord> {
        self.store.dump().await.unwrap().payments
    }

    /// Every payment POST Alma received: path and query parameters.
    async fn payments_received(&self) -> Vec<(String, BTreeMap<String, String>)> {
        let mut posts: Vec<_> = self
            .server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|request| request.method.as_str() == "POST")
            .map(|request| {
                let query = request.url.query_pairs().into_owned().collect();
                (request.url.path().to_string(), query)
            })
            .collect();
        posts.sort();
        posts
    }

    /// Every fee GET Alma received, by path, sorted.
    async fn fee_reads(&self) -> Vec<String> {
        let mut gets: Vec<_> = self
            .server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|request| request.method.as_str() == "GET")
            .map(|request| {
                assert_eq!(
                    request.url.query(),
                    Some("user_id_type=all_unique"),
                    "a fee is read by the Emplid as an all_unique user id"
                );
                request.url.path().to_string()
            })
            .collect();
        gets.sort();
        gets
    }
}

fn fine(id: &str, patron: &str, amount: &str) -> Fine {
    Fine {
        id: FineId::new(id),
        patron_id: PatronId::new(patron),
        loan_id: None,
        fee_type: FeeType::OverdueFine,
        closed: false,
        created_at: naive("2024-04-01T10:00:00"),
        status_at: naive("2024-04-01T10:00:00"),
        original_amount: money(amount),
        remaining_amount: money(amount),
        comment: None,
        item: ItemDetails::default(),
    }
}

fn line(id: &str, patron: &str) -> BursarAccountLine {
    BursarAccountLine {
        reference: FineId::new(id),
        patron_id: PatronId::new(patron),
        account: "531000000002".to_string(),
        replacement_fee: false,
        billing: None,
    }
}

/// Fines with account lines, and one fine (a standalone credit) without.
async fn seed(store: &SqliteStore, fines: &[(&str, &str, &str)]) {
    let mut changes = ChangeSet::default();
    for (id, patron, amount) in fines {
        changes.fines.push(fine(id, patron, amount));
        changes.account_lines.push(line(id, patron));
    }
    let mut credit = fine("2200000011", P1, "-2.00");
    credit.fee_type = FeeType::Credit;
    changes.fines.push(credit);
    store.apply(changes.clone()).await.unwrap();
}

const FINES: [(&str, &str, &str); 12] = [
    ("2200000001", P1, "25.00"),
    ("2200000002", P1, "30.00"),
    ("2200000003", P1, "5.00"),
    ("2200000004", P1, "5.00"),
    ("2200000005", P1, "5.00"),
    ("2200000006", P1, "12.50"),
    ("2200000007", P1, "8.00"),
    ("2200000008", P2, "4.00"),
    ("2200000009", P2, "30.00"),
    ("2200000010", P1, "6.00"),
    ("2200000012", P1, "7.00"),
    ("2200000013", P2, "9.00"),
];

fn fee_path(patron: &str, fine: &str) -> String {
    format!("/almaws/v1/users/{patron}/fees/{fine}")
}

fn fee_json(fine: &str, patron: &str, status: &str, balance: &str, transactions: &str) -> String {
    format!(
        r#"{{"id":"{fine}","type":{{"value":"OVERDUEFINE","desc":"Overdue fine"}},"status":{{"value":"{status}"}},"user_primary_id":{{"value":"{patron}"}},"balance":{balance},"original_amount":30.0,"transaction":[{transactions}]}}"#
    )
}

fn json(status: u16, body: String) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("Content-Type", "application/json")
        .set_body_string(body)
}

/// Alma answers a GET of the fee with an active fee of this balance.
async fn fee_reads_as(server: &MockServer, patron: &str, fine: &str, balance: &str) {
    Mock::given(method("GET"))
        .and(path(fee_path(patron, fine)))
        .respond_with(json(200, fee_json(fine, patron, "ACTIVE", balance, "")))
        .mount(server)
        .await;
}

/// Alma answers a GET of the fee with this error answer.
async fn fee_read_fails(server: &MockServer, patron: &str, fine: &str, status: u16, body: String) {
    Mock::given(method("GET"))
        .and(path(fee_path(patron, fine)))
        .respond_with(json(status, body))
        .mount(server)
        .await;
}

/// Alma accepts payments on the fee and answers with it after.
async fn fee_accepts_payments(server: &MockServer, patron: &str, fine: &str, balance_after: &str) {
    Mock::given(method("POST"))
        .and(path(fee_path(patron, fine)))
        .and(query_param("op", "pay"))
        .respond_with(json(
            200,
            fee_json(fine, patron, "ACTIVE", balance_after, ""),
        ))
        .mount(server)
        .await;
}

/// The Alma answers for the fines of the 2024-05-03 file.
async fn alma_for_first_file(server: &MockServer) {
    fee_reads_as(server, P1, "2200000001", "25.0").await;
    fee_accepts_payments(server, P1, "2200000001", "0.0").await;
    fee_reads_as(server, P1, "2200000002", "25.50").await;
    fee_accepts_payments(server, P1, "2200000002", "0.0").await;
    fee_read_fails(
        server,
        P1,
        "2200000006",
        400,
        fixture("alma/errors", "fee_closed.json"),
    )
    .await;
    fee_reads_as(server, P1, "2200000007", "8").await;
    Mock::given(method("POST"))
        .and(path(fee_path(P1, "2200000007")))
        .respond_with(
            ResponseTemplate::new(400)
                .insert_header("Content-Type", "application/xml")
                .set_body_string(fixture("alma/errors", "restricted.xml")),
        )
        .mount(server)
        .await;
    fee_reads_as(server, P2, "2200000009", "30.00").await;
    fee_accepts_payments(server, P2, "2200000009", "20.00").await;
    fee_read_fails(
        server,
        P1,
        "2200000010",
        400,
        fixture("alma/errors", "fine_not_found.json"),
    )
    .await;
}

fn key(emplid: &str, date: &str, reference: &str, charge: &str, paid: &str, n: u32) -> PaymentKey {
    PaymentKey {
        emplid: PatronId::new(emplid),
        date_paid: day(date),
        reference: FineId::new(reference),
        charge_amount: money(charge),
        paid_amount: money(paid),
        n,
    }
}

/// The record a key should have.
#[allow(clippy::too_many_arguments)]
fn record(
    key: &PaymentKey,
    fine: Option<&str>,
    outcome: PaymentOutcome,
    balance_read: Option<&str>,
    amount_posted: Option<&str>,
    first_seen: &str,
    updated: &str,
) -> PaymentRecord {
    PaymentRecord {
        key: key.key_string(),
        fine_id: fine.map(FineId::new),
        patron_id: key.emplid.clone(),
        paid_amount: key.paid_amount,
        outcome,
        balance_read: balance_read.map(money),
        amount_posted: amount_posted.map(money),
        external_transaction_id: external_transaction_id(key),
        first_seen_at: at(first_seen),
        updated_at: at(updated),
    }
}

/// The query of a payment POST.
fn pay_query(amount: &str, comment: &str, key: &PaymentKey) -> BTreeMap<String, String> {
    [
        ("op", "pay"),
        ("amount", amount),
        ("method", "ONLINE"),
        ("comment", comment),
        (
            "external_transaction_id",
            external_transaction_id(key).as_str(),
        ),
        ("user_id_type", "all_unique"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect()
}

const RUN1: &str = "2024-05-03T07:00:00Z";
const RUN2: &str = "2024-05-10T07:00:00Z";
const RUN3: &str = "2024-05-11T07:00:00Z";

const RESTRICTED: &str = "fee is restricted from API changes by the library: /almaws/v1/users/1000000001/fees/2200000007 answered HTTP 400 with Alma error 60340: The fee is restricted by the library and cannot be changed through the API. (tracking id E01-0105140016-PQRST-AWAE1234567893)";
const NOT_IN_ALMA: &str = "fine not found in Alma: /almaws/v1/users/1000000001/fees/2200000010 answered HTTP 400 with Alma error 401665: Fine not found. (tracking id E01-0105140016-ABCDE-AWAE1234567890)";

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn a_file_with_every_outcome_posts_exactly_the_payments_it_should() {
    let env = Env::new().await;
    seed(&env.store, &FINES).await;
    alma_for_first_file(&env.server).await;
    let content = fixture("payments", FILE_0503);
    env.put_file(FILE_0503, &content, 0);

    let (job, outcome) = env.run("2024-05-03", RUN1).await.unwrap();

    // Alma received exactly these payments, with these parameters.
    let k1 = key(P1, "2024-05-01", "2200000001", "25.00", "25.00", 1);
    let k2 = key(P1, "2024-05-02", "2200000002", "30.00", "30.00", 1);
    let k4 = key(P1, "2024-05-01", "2200000004", "0.00", "5.00", 1);
    let k5 = key(P1, "2024-05-01", "2200000005", "5.00", "0.00", 1);
    let k6 = key(P1, "2024-05-01", "2200000006", "12.50", "12.50", 1);
    let k7 = key(P1, "2024-05-01", "2200000007", "8.00", "8.00", 1);
    let k_unknown = key(P1, "2024-05-01", "9999999999", "3.00", "3.00", 1);
    let k8 = key(P1, "2024-05-01", "2200000008", "4.00", "4.00", 1);
    let k9a = key(P2, "2024-05-02", "2200000009", "10.00", "10.00", 1);
    let k9b = key(P2, "2024-05-02", "2200000009", "10.00", "10.00", 2);
    let k10 = key(P1, "2024-05-01", "2200000010", "6.00", "6.00", 1);
    let k11 = key(P1, "2024-05-01", "2200000011", "2.00", "2.00", 1);
    let plain = |paid: &str| {
        format!("Paid to bursar on {paid}, imported into Alma via alma-bursar-sync on 2024-05-03.")
    };
    let mut expected_posts = vec![
        (
            fee_path(P1, "2200000001"),
            pay_query("25.00", &plain("2024-05-01"), &k1),
        ),
        (
            fee_path(P1, "2200000002"),
            pay_query(
                "25.50",
                "Paid to bursar on 2024-05-02, imported into Alma via alma-bursar-sync on 2024-05-03. \
                 The paid amount of 30.00 exceeded the Alma balance of 25.50; 25.50 was paid.",
                &k2,
            ),
        ),
        (
            fee_path(P1, "2200000007"),
            pay_query("8.00", &plain("2024-05-01"), &k7),
        ),
        (
            fee_path(P2, "2200000009"),
            pay_query("10.00", &plain("2024-05-02"), &k9a),
        ),
        (
            fee_path(P2, "2200000009"),
            pay_query("10.00", &plain("2024-05-02"), &k9b),
        ),
    ];
    expected_posts.sort();
    assert_eq!(env.payments_received().await, expected_posts);
    // Fees are read only for rows that got that far, and each once.
    assert_eq!(
        env.fee_reads().await,
        [
            fee_path(P1, "2200000001"),
            fee_path(P1, "2200000002"),
            fee_path(P1, "2200000006"),
            fee_path(P1, "2200000007"),
            fee_path(P1, "2200000010"),
            fee_path(P2, "2200000009"),
            fee_path(P2, "2200000009"),
        ]
    );

    // The store holds exactly these records.
    let mut expected = vec![
        record(
            &k1,
            Some("2200000001"),
            PaymentOutcome::Paid,
            Some("25.00"),
            Some("25.00"),
            RUN1,
            RUN1,
        ),
        record(
            &k2,
            Some("2200000002"),
            PaymentOutcome::PaidCapped,
            Some("25.50"),
            Some("25.50"),
            RUN1,
            RUN1,
        ),
        record(
            &k4,
            Some("2200000004"),
            PaymentOutcome::ZeroDollarCharge,
            None,
            None,
            RUN1,
            RUN1,
        ),
        record(
            &k5,
            Some("2200000005"),
            PaymentOutcome::ZeroDollarPayment,
            None,
            None,
            RUN1,
            RUN1,
        ),
        record(
            &k6,
            Some("2200000006"),
            PaymentOutcome::AlreadyClosed,
            None,
            None,
            RUN1,
            RUN1,
        ),
        record(
            &k7,
            Some("2200000007"),
            PaymentOutcome::AlmaError {
                message: RESTRICTED.to_string(),
            },
            None,
            None,
            RUN1,
            RUN1,
        ),
        record(
            &k_unknown,
            None,
            PaymentOutcome::NotFound,
            None,
            None,
            RUN1,
            RUN1,
        ),
        record(
            &k8,
            Some("2200000008"),
            PaymentOutcome::PatronMismatch,
            None,
            None,
            RUN1,
            RUN1,
        ),
        record(
            &k9a,
            Some("2200000009"),
            PaymentOutcome::Paid,
            Some("30.00"),
            Some("10.00"),
            RUN1,
            RUN1,
        ),
        record(
            &k9b,
            Some("2200000009"),
            PaymentOutcome::Paid,
            Some("30.00"),
            Some("10.00"),
            RUN1,
            RUN1,
        ),
        record(
            &k10,
            Some("2200000010"),
            PaymentOutcome::AlmaError {
                message: NOT_IN_ALMA.to_string(),
            },
            None,
            None,
            RUN1,
            RUN1,
        ),
        record(&k11, None, PaymentOutcome::NotFound, None, None, RUN1, RUN1),
    ];
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(env.records().await, expected);

    // The summary a person reads.
    let archived = env.archive.join(FILE_0503);
    assert_eq!(
        outcome.summary(),
        format!(
            "Payments file {FILE_0503} (kept as {}): 12 rows, 0 already processed.\n\
             Fines paid (4): 2200000001, 2200000002, 2200000009, 2200000009\n\
             Capped at the Alma balance (1): 2200000002 (paid 30.00 at the Bursar, Alma balance 25.50, posted 25.50)\n\
             Zero-dollar charges (1): 2200000004 (line 6)\n\
             Zero-dollar payments (1): 2200000005 (line 7)\n\
             Already closed in Alma (1): 2200000006 (line 8)\n\
             Failures (2): 2200000007 (line 9): {RESTRICTED}, 2200000010 (line 14): {NOT_IN_ALMA}\n\
             Not-found references (2): 9999999999 (line 10, Emplid 1000000001), 2200000011 (line 15, Emplid 1000000001)\n\
             Patron mismatches (1): 2200000008 (line 11): Emplid 1000000001 in the file, the fine is patron 1000000002's\n\
             Malformed lines (2): line 5: Date Paid \"2024-13-01\" is not a date like 2024-05-01, 05/01/2024 or 5/1/2024 (a time may follow); {UNREADABLE_ROW}, \
             line 16: Paid Amount -25.00 is negative (a refund or reversal at the Bursar); it is not posted to Alma, handle it by hand\n",
            archived.display()
        )
    );
    assert!(!outcome.is_failure());
    assert_eq!(outcome.failure_message(), None);

    // The job, and the archive copy under the same name.
    assert_eq!(job.kind, JobKind::BursarPayments);
    assert_eq!(job.status, JobStatus::Success);
    assert_eq!(job.error, None);
    let counts: Vec<(&str, u64)> = job.counts.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    assert_eq!(
        counts,
        [
            ("rows", 12),
            ("already_processed", 0),
            ("paid", 4),
            ("paid_capped", 1),
            ("paid_settled", 0),
            ("zero_dollar_charges", 1),
            ("zero_dollar_payments", 1),
            ("already_closed", 1),
            ("failures", 2),
            ("not_found", 2),
            ("patron_mismatches", 1),
            ("malformed", 2),
        ]
    );
    assert_eq!(job.problems.len(), 7, "{:#?}", job.problems);
    assert_eq!(
        job.problems[0],
        format!("line 9: reference 2200000007 (Emplid 1000000001): Alma call failed: {RESTRICTED}")
    );
    assert_eq!(env.jobs().await, [job]);
    assert_eq!(fs::read_to_string(&archived).unwrap(), content);
}

#[tokio::test]
async fn the_same_file_again_posts_nothing_and_retries_only_unfinished_rows() {
    let env = Env::new().await;
    seed(&env.store, &FINES).await;
    alma_for_first_file(&env.server).await;
    env.put_file(FILE_0503, &fixture("payments", FILE_0503), 0);
    env.run("2024-05-03", RUN1).await.unwrap();
    let records_after_first = env.records().await;
    env.server.reset().await;
    // Alma still refuses the two failing rows.
    alma_for_first_file(&env.server).await;

    let (job, outcome) = env.run("2024-05-10", RUN2).await.unwrap();

    assert_eq!(
        env.payments_received().await.len(),
        1,
        "only the refused payment is tried again"
    );
    assert_eq!(
        env.payments_received().await[0].0,
        fee_path(P1, "2200000007"),
    );
    assert_eq!(
        env.fee_reads().await,
        [fee_path(P1, "2200000007"), fee_path(P1, "2200000010")],
        "final rows are not even read again"
    );
    assert_eq!(outcome.already_processed, 7);
    assert!(outcome.paid.is_empty());
    assert_eq!(outcome.failures.len(), 2);
    assert_eq!(outcome.not_found.len(), 2);
    assert_eq!(outcome.patron_mismatches.len(), 1);
    assert_eq!(
        outcome.malformed.len(),
        2,
        "malformed lines are reported on every run"
    );
    // Nothing succeeded this run and Alma failed: the job fails, with the
    // summary still recorded.
    assert!(outcome.is_failure());
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(
        job.error.as_deref(),
        Some(
            format!(
                "no payment succeeded and 2 row(s) failed in Alma (they are tried again on the next run); \
                 the first, line 9 reference 2200000007: {RESTRICTED}"
            )
            .as_str()
        )
    );
    assert_eq!(job.counts[1], ("already_processed".to_string(), 7));
    // Final records are untouched; the retried ones only get a new time.
    let after = env.records().await;
    for (before, now) in records_after_first.iter().zip(&after) {
        if before.outcome.is_final() {
            assert_eq!(before, now);
        } else {
            assert_eq!(
                PaymentRecord {
                    updated_at: at(RUN2),
                    ..before.clone()
                },
                *now
            );
        }
    }
}

#[tokio::test]
async fn a_cumulative_file_posts_only_its_new_rows_and_older_or_restarted_files_post_nothing() {
    let env = Env::new().await;
    seed(&env.store, &FINES).await;
    alma_for_first_file(&env.server).await;
    env.put_file(FILE_0503, &fixture("payments", FILE_0503), 0);
    env.run("2024-05-03", RUN1).await.unwrap();

    // A week later: the cumulative file, the newest by time; an unrelated
    // file, newer still, does not have the prefix.
    env.server.reset().await;
    fee_reads_as(&env.server, P1, "2200000007", "8.00").await;
    fee_accepts_payments(&env.server, P1, "2200000007", "0.00").await;
    fee_read_fails(
        &env.server,
        P1,
        "2200000010",
        400,
        fixture("alma/errors", "fine_not_found.json"),
    )
    .await;
    fee_reads_as(&env.server, P1, "2200000012", "7.00").await;
    fee_accepts_payments(&env.server, P1, "2200000012", "0.00").await;
    fee_reads_as(&env.server, P2, "2200000009", "10.00").await;
    fee_accepts_payments(&env.server, P2, "2200000009", "0.00").await;
    fee_reads_as(&env.server, P2, "2200000013", "9.00").await;
    fee_accepts_payments(&env.server, P2, "2200000013", "0.00").await;
    env.put_file(FILE_0510, &fixture("payments", FILE_0510), 7 * 86_400);
    env.put_file("OTHER_REPORT.csv", "not, a, payments, file\n", 8 * 86_400);

    let (job, outcome) = env.run("2024-05-10", RUN2).await.unwrap();

    assert_eq!(outcome.file, FILE_0510);
    assert_eq!(job.status, JobStatus::Success);
    let posted: Vec<(String, String)> = env
        .payments_received()
        .await
        .into_iter()
        .map(|(path, query)| (path, query["amount"].clone()))
        .collect();
    assert_eq!(
        posted,
        [
            // The restricted fee, now accepted by Alma (retried, not new).
            (fee_path(P1, "2200000007"), "8.00".to_string()),
            // The three new rows.
            (fee_path(P1, "2200000012"), "7.00".to_string()),
            (fee_path(P2, "2200000009"), "10.00".to_string()),
            (fee_path(P2, "2200000013"), "9.00".to_string()),
        ]
    );
    assert_eq!(outcome.rows, 15);
    assert_eq!(outcome.already_processed, 7);
    let paid: Vec<(u64, &str)> = outcome
        .paid
        .iter()
        .map(|paid| (paid.row.line, paid.row.reference.as_str()))
        .collect();
    assert_eq!(
        paid,
        [
            (9, "2200000007"),
            (17, "2200000012"),
            (18, "2200000009"),
            (19, "2200000013")
        ]
    );
    let k_new = key(P2, "2024-05-07", "2200000009", "10.00", "10.00", 1);
    let stored = env
        .store
        .payment_records(&[k_new.key_string()])
        .await
        .unwrap();
    assert_eq!(
        stored,
        [record(
            &k_new,
            Some("2200000009"),
            PaymentOutcome::Paid,
            Some("10.00"),
            Some("10.00"),
            RUN2,
            RUN2
        )]
    );
    let archived: Vec<String> = {
        let mut names: Vec<String> = fs::read_dir(&env.archive)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    assert_eq!(archived, [FILE_0503, FILE_0510]);

    // The older file comes back as the newest, then the range restarts
    // with rows seen before: nothing is posted either time.
    let posts_before = env.payments_received().await.len();
    env.put_file(FILE_0503, &fixture("payments", FILE_0503), 9 * 86_400);
    let (_, older) = env.run("2024-05-11", RUN3).await.unwrap();
    assert_eq!(older.file, FILE_0503);
    assert_eq!(older.already_processed, 8);
    assert!(older.paid.is_empty());
    env.put_file(
        FILE_RESTART,
        &fixture("payments", FILE_RESTART),
        10 * 86_400,
    );
    let (job, restarted) = env.run("2025-01-06", "2025-01-06T07:00:00Z").await.unwrap();
    assert_eq!(restarted.file, FILE_RESTART);
    assert_eq!(restarted.rows, 3);
    assert_eq!(restarted.already_processed, 3);
    assert_eq!(job.status, JobStatus::Success);
    assert_eq!(env.payments_received().await.len(), posts_before);
}

#[tokio::test]
async fn a_malformed_row_in_the_middle_is_reported_by_line_and_the_rest_is_paid() {
    let env = Env::new().await;
    seed(&env.store, &FINES).await;
    fee_reads_as(&env.server, P1, "2200000001", "25.00").await;
    fee_accepts_payments(&env.server, P1, "2200000001", "0.00").await;
    fee_reads_as(&env.server, P1, "2200000012", "7.00").await;
    fee_accepts_payments(&env.server, P1, "2200000012", "0.00").await;
    env.put_file(
        "ASUSASF_LIBRARY_REPORT_DTRANGE_x.csv",
        "Charge Description,Emplid,Date Paid,Reference Number,Charge Amount,Paid Amount,Item Type\r\n\
         \"Overdue, two lines\r\nof description\",1000000001,2024-05-01,2200000001,25.00,25.00,LIBFINE\r\n\
         Bad,1000000001,2024-05-01,2200000003,5.00,five,LIBFINE\r\n\
         New,1000000001,2024-05-06,2200000012,7.00,7.00,LIBFINE\r\n",
        0,
    );

    let (job, outcome) = env.run("2024-05-10", RUN2).await.unwrap();

    assert_eq!(outcome.malformed.len(), 1);
    assert_eq!(outcome.malformed[0].line, 4);
    assert!(
        outcome.malformed[0]
            .message
            .contains("Paid Amount \"five\""),
        "{}",
        outcome.malformed[0].message
    );
    assert_eq!(outcome.paid.len(), 2);
    assert_eq!(env.payments_received().await.len(), 2);
    assert_eq!(
        job.status,
        JobStatus::Success,
        "a malformed row alone fails nothing"
    );
    assert!(
        job.problems
            .iter()
            .any(|problem| problem.starts_with("line 4: malformed: Paid Amount \"five\"")),
        "{:?}",
        job.problems
    );
    assert!(
        outcome
            .summary()
            .contains("Malformed lines (1): line 4: Paid Amount \"five\"")
    );
}

/// Alma accepts the payment but its answer never arrives (the client
/// times out): the record stays Posting. The next run settles it against
/// Alma and posts nothing: Alma received exactly one payment.
#[tokio::test]
async fn a_payment_whose_answer_is_lost_is_settled_not_posted_twice() {
    let env = Env::with_timeout(Duration::from_millis(500)).await;
    seed(&env.store, &FINES).await;
    env.put_file(
        "ASUSASF_LIBRARY_REPORT_DTRANGE_1.csv",
        "Emplid,Date Paid,Reference Number,Charge Amount,Paid Amount,Item Type,Charge Description\n\
         1000000001,2024-05-01,2200000001,25.00,20.00,LIBFINE,Partial payment\n",
        0,
    );
    fee_reads_as(&env.server, P1, "2200000001", "25.00").await;
    Mock::given(method("POST"))
        .and(path(fee_path(P1, "2200000001")))
        .respond_with(
            json(200, fee_json("2200000001", P1, "ACTIVE", "5.00", ""))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&env.server)
        .await;

    let (job, outcome) = env.run("2024-05-03", RUN1).await.unwrap();

    let k = key(P1, "2024-05-01", "2200000001", "25.00", "20.00", 1);
    assert_eq!(env.payments_received().await.len(), 1);
    assert_eq!(
        env.records().await,
        [record(
            &k,
            Some("2200000001"),
            PaymentOutcome::Posting,
            Some("25.00"),
            Some("20.00"),
            RUN1,
            RUN1
        )]
    );
    assert!(outcome.failures[0].unsettled);
    assert!(outcome.is_failure());
    assert_eq!(job.status, JobStatus::Failed);
    assert!(
        outcome
            .summary()
            .contains("(may have been paid; checked against Alma on the next run)"),
        "{}",
        outcome.summary()
    );

    // Next run: Alma shows the lowered balance. No POST may be sent.
    env.server.reset().await;
    fee_reads_as(&env.server, P1, "2200000001", "5.00").await;
    Mock::given(method("POST"))
        .respond_with(json(500, "{}".to_string()))
        .expect(0)
        .mount(&env.server)
        .await;

    let (job, outcome) = env.run("2024-05-04", RUN2).await.unwrap();

    assert_eq!(env.fee_reads().await, [fee_path(P1, "2200000001")]);
    assert_eq!(env.payments_received().await, []);
    assert_eq!(
        env.records().await,
        [record(
            &k,
            Some("2200000001"),
            PaymentOutcome::Paid,
            Some("25.00"),
            Some("20.00"),
            RUN1,
            RUN2
        )]
    );
    assert!(outcome.paid[0].settled);
    assert_eq!(job.status, JobStatus::Success);
    assert!(
        outcome
            .summary()
            .contains("Fines paid (1): 2200000001 (settled)\n")
    );
}

/// The process dies while Alma is making the payment: the run is dropped
/// the moment the POST reaches Alma, before it can record anything more.
/// A later run finds the record Posting and settles it.
#[tokio::test]
async fn a_run_killed_after_alma_got_the_payment_does_not_pay_again() {
    let env = Env::new().await;
    seed(&env.store, &FINES).await;
    env.put_file(
        "ASUSASF_LIBRARY_REPORT_DTRANGE_1.csv",
        "Emplid,Date Paid,Reference Number,Charge Amount,Paid Amount,Item Type,Charge Description\n\
         1000000001,2024-05-01,2200000001,25.00,25.00,LIBFINE,Overdue fine\n",
        0,
    );
    fee_reads_as(&env.server, P1, "2200000001", "25.00").await;
    Mock::given(method("POST"))
        .and(path(fee_path(P1, "2200000001")))
        .respond_with(
            json(200, fee_json("2200000001", P1, "CLOSED", "0", ""))
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&env.server)
        .await;

    let config = env.config("2024-05-03");
    let drop = env.drop();
    let run = run_payments(&env.store, &env.alma, &drop, &config, at(RUN1));
    let killed = async {
        while env.payments_received().await.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::select! {
        result = run => panic!("the run should have been killed, it ended: {result:?}"),
        () = killed => {}
    }

    let k = key(P1, "2024-05-01", "2200000001", "25.00", "25.00", 1);
    assert_eq!(
        env.records().await,
        [record(
            &k,
            Some("2200000001"),
            PaymentOutcome::Posting,
            Some("25.00"),
            Some("25.00"),
            RUN1,
            RUN1
        )]
    );
    assert_eq!(env.jobs().await[0].status, JobStatus::InProgress);

    // Alma made the payment in full: the fee is closed now.
    env.server.reset().await;
    fee_read_fails(
        &env.server,
        P1,
        "2200000001",
        400,
        fixture("alma/errors", "fee_closed.json"),
    )
    .await;
    Mock::given(method("POST"))
        .respond_with(json(500, "{}".to_string()))
        .expect(0)
        .mount(&env.server)
        .await;

    let (job, outcome) = env.run("2024-05-04", RUN2).await.unwrap();

    assert_eq!(env.payments_received().await, []);
    assert_eq!(
        env.records().await,
        [record(
            &k,
            Some("2200000001"),
            PaymentOutcome::Paid,
            Some("25.00"),
            Some("25.00"),
            RUN1,
            RUN2
        )]
    );
    assert!(outcome.paid[0].settled);
    assert_eq!(job.status, JobStatus::Success);
}

/// The other ways a Posting record settles: a fee transaction carrying
/// our external id (balance unchanged); and nothing found, so it is
/// posted again, once.
#[tokio::test]
async fn a_posting_record_settles_by_its_external_id_or_is_posted_again() {
    let env = Env::new().await;
    seed(&env.store, &FINES).await;
    env.put_file(
        "ASUSASF_LIBRARY_REPORT_DTRANGE_1.csv",
        "Emplid,Date Paid,Reference Number,Charge Amount,Paid Amount,Item Type,Charge Description\n\
         1000000001,2024-05-01,2200000001,25.00,25.00,LIBFINE,Found by id\n\
         1000000001,2024-05-01,2200000002,30.00,30.00,LIBFINE,Never made\n",
        0,
    );
    let k1 = key(P1, "2024-05-01", "2200000001", "25.00", "25.00", 1);
    let k2 = key(P1, "2024-05-01", "2200000002", "30.00", "30.00", 1);
    // An earlier run left both Posting.
    for (k, fine, balance, amount) in [
        (&k1, "2200000001", "25.00", "25.00"),
        (&k2, "2200000002", "30.00", "30.00"),
    ] {
        env.store
            .put_payment_record(&record(
                k,
                Some(fine),
                PaymentOutcome::Posting,
                Some(balance),
                Some(amount),
                RUN1,
                RUN1,
            ))
            .await
            .unwrap();
    }
    let ours = format!(
        r#"{{"type":{{"value":"PAYMENT"}},"amount":25.0,"external_transaction_id":"{}"}}"#,
        external_transaction_id(&k1)
    );
    Mock::given(method("GET"))
        .and(path(fee_path(P1, "2200000001")))
        .respond_with(json(
            200,
            fee_json("2200000001", P1, "ACTIVE", "25.00", &ours),
        ))
        .mount(&env.server)
        .await;
    let someone_elses =
        r#"{"type":{"value":"PAYMENT"},"amount":0.5,"external_transaction_id":"bursar-0000"}"#;
    Mock::given(method("GET"))
        .and(path(fee_path(P1, "2200000002")))
        .respond_with(json(
            200,
            fee_json("2200000002", P1, "ACTIVE", "29.50", someone_elses),
        ))
        .mount(&env.server)
        .await;
    fee_accepts_payments(&env.server, P1, "2200000002", "0.00").await;

    let (job, outcome) = env.run("2024-05-04", RUN2).await.unwrap();

    assert_eq!(job.status, JobStatus::Success);
    let posts = env.payments_received().await;
    assert_eq!(posts.len(), 1, "only the payment Alma never made is posted");
    assert_eq!(posts[0].0, fee_path(P1, "2200000002"));
    assert_eq!(
        posts[0].1["amount"], "29.50",
        "from the balance read when settling"
    );
    assert_eq!(
        env.fee_reads().await.len(),
        2,
        "the fee read while settling is the one the payment uses"
    );
    assert_eq!(
        env.records().await,
        [
            record(
                &k1,
                Some("2200000001"),
                PaymentOutcome::Paid,
                Some("25.00"),
                Some("25.00"),
                RUN1,
                RUN2
            ),
            record(
                &k2,
                Some("2200000002"),
                PaymentOutcome::PaidCapped,
                Some("29.50"),
                Some("29.50"),
                RUN1,
                RUN2
            ),
        ]
    );
    let settled: Vec<bool> = outcome.paid.iter().map(|paid| paid.settled).collect();
    assert_eq!(settled, [true, false]);
}

#[tokio::test]
async fn when_every_alma_call_fails_the_job_fails_and_rows_stay_open() {
    let env = Env::new().await;
    seed(&env.store, &FINES).await;
    env.put_file(
        "ASUSASF_LIBRARY_REPORT_DTRANGE_1.csv",
        "Emplid,Date Paid,Reference Number,Charge Amount,Paid Amount,Item Type,Charge Description\n\
         1000000001,2024-05-01,2200000001,25.00,25.00,LIBFINE,Overdue fine\n\
         1000000001,2024-05-01,9999999999,3.00,3.00,LIBFINE,Unknown\n",
        0,
    );
    Mock::given(method("GET"))
        .respond_with(json(
            500,
            fixture("alma/errors", "internal_server_error.json"),
        ))
        .mount(&env.server)
        .await;

    let (job, outcome) = env.run("2024-05-03", RUN1).await.unwrap();

    assert!(outcome.is_failure());
    assert_eq!(job.status, JobStatus::Failed);
    assert!(
        job.error
            .as_deref()
            .unwrap()
            .contains("Internal Server Error"),
        "{job:?}"
    );
    assert_eq!(env.jobs().await, [job]);
    assert_eq!(
        env.store
            .last_successful_job(JobKind::BursarPayments)
            .await
            .unwrap(),
        None
    );
    let outcomes: Vec<bool> = env
        .records()
        .await
        .iter()
        .map(|r| r.outcome.is_final())
        .collect();
    assert_eq!(outcomes, [false, false]);
    assert_eq!(env.payments_received().await, []);

    // Not found alone does not fail a run.
    env.server.reset().await;
    fee_reads_as(&env.server, P1, "2200000001", "0").await;
    let (job, outcome) = env.run("2024-05-04", RUN2).await.unwrap();
    assert_eq!(
        outcome.already_closed.len(),
        1,
        "no balance left counts as closed"
    );
    assert_eq!(outcome.not_found.len(), 1);
    assert!(!outcome.is_failure());
    assert_eq!(job.status, JobStatus::Success);
}

#[tokio::test]
async fn no_file_or_an_unreadable_file_fails_the_job_with_a_named_error() {
    let env = Env::new().await;
    env.put_file("SOMETHING_ELSE.csv", "x\n", 0);

    let error = env.run("2024-05-03", RUN1).await.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, StageError::NoPaymentsFile { .. }),
        "{error:?}"
    );
    assert!(message.contains(&format!("{PREFIX:?}")), "{message}");
    assert!(
        message.contains(&env.drop_dir.display().to_string()),
        "{message}"
    );

    env.put_file(
        "ASUSASF_LIBRARY_REPORT_DTRANGE_1.csv",
        "Emplid,Date,Reference Number,Charge Amount,Paid Amount,Item Type,Charge Description\n",
        0,
    );
    let error = env.run("2024-05-03", RUN2).await.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, StageError::PaymentsFile { .. }),
        "{error:?}"
    );
    assert!(message.contains("Date Paid"), "{message}");
    assert!(message.contains("nothing was posted"), "{message}");

    let jobs = env.jobs().await;
    assert_eq!(jobs.len(), 2);
    assert!(
        jobs.iter()
            .all(|job| job.status == JobStatus::Failed && job.error.is_some())
    );
    assert_eq!(env.records().await, []);
}

/// A large file is bound by the rate limit, not by Alma's latency: with
/// every answer taking 200 ms, 40 payments (80 requests) take far less
/// than the 16 s they would one at a time.
#[tokio::test]
async fn rows_are_worked_concurrently() {
    let env = Env::new().await;
    let ids: Vec<String> = (0..40).map(|i| format!("33000000{i:02}")).collect();
    let fines: Vec<(&str, &str, &str)> = ids.iter().map(|id| (id.as_str(), P1, "5.00")).collect();
    seed(&env.store, &fines).await;
    let mut csv = "Emplid,Date Paid,Reference Number,Charge Amount,Paid Amount,Item Type,Charge Description\n".to_string();
    for id in &ids {
        csv.push_str(&format!("{P1},2024-05-01,{id},5.00,5.00,LIBFINE,Fine\n"));
    }
    env.put_file("ASUSASF_LIBRARY_REPORT_DTRANGE_big.csv", &csv, 0);
    // Each answer is held back `slow`: worked one after another, no GET
    // could arrive while an earlier one is still unanswered.
    let slow = Duration::from_millis(200);
    let get_times = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("GET"))
        .respond_with(RecordArrival {
            arrivals: Arc::clone(&get_times),
            answer: json(200, fee_json("x", P1, "ACTIVE", "5.00", "")).set_delay(slow),
        })
        .mount(&env.server)
        .await;
    Mock::given(method("POST"))
        .respond_with(json(200, fee_json("x", P1, "CLOSED", "0", "")).set_delay(slow))
        .expect(40)
        .mount(&env.server)
        .await;
    let mut config = env.config("2024-05-03");
    config.concurrency = NonZeroUsize::new(20);

    let (_, outcome) = env.run_with(&config, RUN1).await.unwrap();

    let arrivals = get_times.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 40);
    let most_unanswered = arrivals
        .iter()
        .map(|&start| {
            arrivals
                .iter()
                .filter(|&&other| other >= start && other < start + slow)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        most_unanswered >= 2,
        "GETs were sent one at a time (at most {most_unanswered} unanswered at once)"
    );
    assert_eq!(outcome.paid.len(), 40);
    let lines: Vec<u64> = outcome.paid.iter().map(|paid| paid.row.line).collect();
    assert_eq!(
        lines,
        (2..42).collect::<Vec<u64>>(),
        "the summary is in file order"
    );
    let records = env.records().await;
    assert_eq!(records.len(), 40);
    assert!(records.iter().all(|r| r.outcome == PaymentOutcome::Paid));
}

/// Answers with `answer`, noting when each request arrived.
struct RecordArrival {
    arrivals: Arc<Mutex<Vec<Instant>>>,
    answer: ResponseTemplate,
}

impl Respond for RecordArrival {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        if let Ok(mut arrivals) = self.arrivals.lock() {
            arrivals.push(Instant::now());
        }
        self.answer.clone()
    }
}

/// Two payments on one fine go one after the other: the second reads the
/// balance the first left and is capped by it, even with room for many
/// concurrent rows.
#[tokio::test]
async fn payments_on_one_fine_are_posted_in_turn_and_capped_by_the_balance_left() {
    let env = Env::new().await;
    seed(&env.store, &FINES).await;
    env.put_file(
        "ASUSASF_LIBRARY_REPORT_DTRANGE_1.csv",
        "Emplid,Date Paid,Reference Number,Charge Amount,Paid Amount,Item Type,Charge Description\n\
         1000000001,2024-05-01,2200000001,25.00,10.00,LIBFINE,First\n\
         1000000001,2024-05-01,2200000001,25.00,10.00,LIBFINE,Second\n",
        0,
    );
    let slow = Duration::from_millis(100);
    Mock::given(method("GET"))
        .and(path(fee_path(P1, "2200000001")))
        .respond_with(json(200, fee_json("2200000001", P1, "ACTIVE", "15.00", "")).set_delay(slow))
        .up_to_n_times(1)
        .mount(&env.server)
        .await;
    Mock::given(method("GET"))
        .and(path(fee_path(P1, "2200000001")))
        .respond_with(json(200, fee_json("2200000001", P1, "ACTIVE", "5.00", "")))
        .mount(&env.server)
        .await;
    fee_accepts_payments(&env.server, P1, "2200000001", "5.00").await;

    let (_, outcome) = env.run("2024-05-03", RUN1).await.unwrap();

    let order: Vec<String> = env
        .server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|request| {
            let amount = request
                .url
                .query_pairs()
                .find(|(name, _)| name == "amount")
                .map(|(_, value)| format!(" {value}"))
                .unwrap_or_default();
            format!("{}{amount}", request.method)
        })
        .collect();
    assert_eq!(order, ["GET", "POST 10.00", "GET", "POST 5.00"]);
    let posted: Vec<(u64, String, bool)> = outcome
        .paid
        .iter()
        .map(|paid| (paid.row.line, paid.posted.to_string(), paid.capped))
        .collect();
    assert_eq!(
        posted,
        [
            (2, "10.00".to_string(), false),
            (3, "5.00".to_string(), true)
        ]
    );
}

#[test]
fn the_comment_is_exactly_as_documented() {
    assert_eq!(
        payment_comment(day("2024-12-31"), day("2025-01-02"), None),
        "Paid to bursar on 2024-12-31, imported into Alma via alma-bursar-sync on 2025-01-02."
    );
    assert_eq!(
        payment_comment(
            day("2024-12-31"),
            day("2025-01-02"),
            Some((money("100"), money("0.05")))
        ),
        "Paid to bursar on 2024-12-31, imported into Alma via alma-bursar-sync on 2025-01-02. \
         The paid amount of 100.00 exceeded the Alma balance of 0.05; 0.05 was paid."
    );
}

// ------------------------------------------------------------------- SFTP

const SFTP_VARS: [&str; 5] = [
    "ABS_TEST_SFTP_HOST",
    "ABS_TEST_SFTP_PORT",
    "ABS_TEST_SFTP_USER",
    "ABS_TEST_SFTP_KEY",
    "ABS_TEST_SFTP_KNOWN_HOSTS",
];

/// The test SFTP server's settings, or `None` (after saying so) when it is
/// not configured. Under `CI=true` a missing server fails the test.
fn sftp_config() -> Option<sftp_transport::SftpConfig> {
    let missing: Vec<&str> = SFTP_VARS
        .into_iter()
        .chain(["ABS_TEST_SFTP_ROOT"])
        .filter(|var| std::env::var(var).map_or(true, |value| value.is_empty()))
        .collect();
    if !missing.is_empty() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but the SFTP test server is not configured (missing {missing:?}): \
             run scripts/test-services.sh start and source .test-services/env before the tests"
        );
        eprintln!(
            "SKIPPED: SFTP test server not running (run scripts/test-services.sh start and source .test-services/env)"
        );
        return None;
    }
    let var = |name: &str| std::env::var(name).unwrap();
    let mut config = sftp_transport::SftpConfig::new(
        var("ABS_TEST_SFTP_HOST"),
        var("ABS_TEST_SFTP_USER"),
        sftp_transport::SftpAuth::PrivateKey {
            path: var("ABS_TEST_SFTP_KEY").into(),
            passphrase: None,
        },
        PathBuf::from(var("ABS_TEST_SFTP_KNOWN_HOSTS")),
        var("ABS_TEST_SFTP_ROOT"),
    );
    config.port = var("ABS_TEST_SFTP_PORT").parse().unwrap();
    config.connect_timeout = Duration::from_secs(5);
    config.io_timeout = Duration::from_secs(30);
    Some(config)
}

#[tokio::test]
async fn the_newest_file_is_fetched_from_the_sftp_server_and_archived() {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let folder = format!("payments-{}-{nanos}", std::process::id());
    let Some(config) = sftp_config() else {
        return;
    };
    // This test's own folder on the server, with the file in it.
    let root = sftp_transport::SftpDir::connect(&config).unwrap();
    let dir = root.open_folder(&folder, IfMissing::Create).unwrap();
    let env = Env::new().await;
    seed(&env.store, &FINES).await;
    let content = "Emplid,Date Paid,Reference Number,Charge Amount,Paid Amount,Item Type,Charge Description\n\
                   1000000001,2024-05-01,2200000001,25.00,25.00,LIBFINE,Overdue fine\n\
                   1000000001,2024-05-01,2200000004,0.00,5.00,LIBFINE,Zero charge\n";
    let local = env.tmp.path().join(FILE_0510);
    fs::write(&local, content).unwrap();
    dir.upload_atomic(&local, FILE_0510).unwrap();
    fee_reads_as(&env.server, P1, "2200000001", "25.00").await;
    fee_accepts_payments(&env.server, P1, "2200000001", "0.00").await;

    let (job, outcome) = run_payments(
        &env.store,
        &env.alma,
        &dir,
        &env.config("2024-05-10"),
        at(RUN2),
    )
    .await
    .unwrap();

    assert_eq!(job.status, JobStatus::Success);
    assert_eq!(outcome.file, FILE_0510);
    assert_eq!(outcome.paid.len(), 1);
    assert_eq!(outcome.zero_dollar_charges.len(), 1);
    assert_eq!(env.payments_received().await.len(), 1);
    assert_eq!(
        fs::read_to_string(env.archive.join(FILE_0510)).unwrap(),
        content
    );
}
