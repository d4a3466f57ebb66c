#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Direction 2 on the Bursar's bad days: a payments CSV with each kind of
//! malformed row, and the files that cannot be read at all.
//!
//! The rule (SPEC 7.2, `sync_stages::payments`): a row that cannot be read
//! is reported with its line, the column and the value, and what to do;
//! the other rows of the file are posted. A file whose header cannot be
//! used is held back whole. Each case checks what the operator sees, that
//! the good rows were posted exactly once, and that once the Bursar's next
//! file carries the row corrected, Alma and the store end exactly as
//! after a clean run of the corrected file.

mod common;

use alma_sim::SimPayment;
use bursar_format::{BadRow, PaymentKey, external_transaction_id};
use chrono::{DateTime, NaiveDate, Utc};
use common::*;
use sync_core::Money;
use sync_core::records::{FineId, JobStatus, PatronId, PaymentOutcome, PaymentRecord};
use sync_core::rules::payments::DeskPaymentPolicy;
use sync_stages::StageError;
use sync_stages::payments::UNREADABLE_ROW;

const BAD_FILE: &str = "ASUSASF_LIBRARY_REPORT_DTRANGE_20241212.csv";
const FIXED_FILE: &str = "ASUSASF_LIBRARY_REPORT_DTRANGE_20241213.csv";

/// Lines 2 and 4 of every file: good rows around the row under test.
const FIRST: &str = "1000001,2024-12-12,2200000001,15.00,15.00,LIBFINE,Overdue fine\n";
const LAST: &str = "1000003,2024-12-12,2200000004,20.00,20.00,LIBFINE,Overdue fine\n";
/// Line 3 as it should be: part of a 65.00 replacement fee.
const MIDDLE: &str =
    "1000002,2024-12-12,2200000002,65.00,30.00,LIBFINE,Lost item replacement fee\n";

fn now() -> DateTime<Utc> {
    at(PAY_DAY)
}

/// A payments file whose line 3 is `middle`.
fn file(middle: &[u8]) -> Vec<u8> {
    [
        PAYMENTS_HEADER.as_bytes(),
        FIRST.as_bytes(),
        middle,
        LAST.as_bytes(),
    ]
    .concat()
}

/// A rig after day 1, with Alma's fees as day 1 left them.
async fn after_day_one() -> Rig {
    let rig = Rig::new(DeskPaymentPolicy::Report).await;
    rig.day("day1", at(DAY1)).await;
    rig.open_fees().await;
    rig
}

/// Alma's payments and the store's payment records after a clean run of
/// `content`.
async fn clean_run(content: &[u8]) -> (Vec<SimPayment>, Vec<PaymentRecord>) {
    let clean = after_day_one().await;
    clean.drop_payments(FIXED_FILE, content, 1);
    let (job, _) = clean.pay(now()).await.unwrap();
    assert_eq!(job.status, JobStatus::Success);
    (clean.alma_payments(), payment_records(&clean).await)
}

async fn payment_records(rig: &Rig) -> Vec<PaymentRecord> {
    rig.store.dump().await.unwrap().payments
}

/// Alma's payments less those on `fine`.
fn without(payments: &[SimPayment], fine: &str) -> Vec<SimPayment> {
    payments
        .iter()
        .filter(|payment| payment.fee_id != fine)
        .cloned()
        .collect()
}

/// The Bursar's next file carries line 3 corrected: the run posts the
/// rows of `new` (line, reference) alone, and Alma and the store end as
/// after a clean run of it.
async fn corrected_file_ends_as_a_clean_run(rig: &Rig, new: &[(u64, &str)]) {
    let (clean_payments, clean_records) = clean_run(&file(MIDDLE.as_bytes())).await;
    rig.drop_payments(FIXED_FILE, &file(MIDDLE.as_bytes()), 2);
    let (job, outcome) = rig.pay(now()).await.unwrap();
    assert_eq!(job.status, JobStatus::Success);
    assert_eq!(outcome.file, FIXED_FILE);
    assert_eq!(outcome.malformed, []);
    let paid: Vec<(u64, &str)> = outcome
        .paid
        .iter()
        .map(|paid| (paid.row.line, paid.row.reference.as_str()))
        .collect();
    assert_eq!(paid, new, "only the corrected rows are new");
    assert_eq!(rig.alma_payments(), clean_payments);
    assert_eq!(payment_records(rig).await, clean_records);
}

/// A file whose line 3 reads as `bad`: the run reports exactly `problem`
/// for line 3 with what to do, posts lines 2 and 4 once, and the
/// corrected file ends the day as a clean run does.
async fn a_bad_row(bad: &[u8], problem: &str) {
    let (clean_payments, _) = clean_run(&file(MIDDLE.as_bytes())).await;
    let rig = after_day_one().await;
    rig.drop_payments(BAD_FILE, &file(bad), 1);

    let (job, outcome) = rig.pay(now()).await.unwrap();

    let message = format!("{problem}; {UNREADABLE_ROW}");
    assert_eq!(
        outcome.malformed,
        [BadRow {
            line: 3,
            message: message.clone()
        }]
    );
    // What the operator reads: the file in the summary's first line (and
    // in the CLI's stage line), the line, the column and the value, and
    // what to do in the problem.
    let summary = outcome.summary();
    assert!(
        summary.starts_with(&format!(
            "Payments file {BAD_FILE} (kept as {}): 2 rows, 0 already processed.\n",
            rig.root.join("payments-archive").join(BAD_FILE).display()
        )),
        "{summary}"
    );
    assert!(
        summary.ends_with(&format!("\nMalformed lines (1): line 3: {message}\n")),
        "{summary}"
    );
    assert_eq!(job.problems, [format!("line 3: malformed: {message}")]);
    assert_eq!(
        job.status,
        JobStatus::Success,
        "a malformed row alone fails nothing"
    );
    // The good rows were posted, once each; the bad one not at all.
    assert_eq!(rig.alma_payments(), without(&clean_payments, "2200000002"));
    let records = payment_records(&rig).await;
    assert_eq!(records.len(), 2);
    assert!(
        records
            .iter()
            .all(|record| record.outcome == PaymentOutcome::Paid)
    );

    // The same file again: nothing posted twice, the row reported again.
    let (_, again) = rig.pay(now()).await.unwrap();
    assert_eq!((again.already_processed, again.paid.len()), (2, 0));
    assert_eq!(again.malformed, outcome.malformed);
    assert_eq!(rig.alma_payments(), without(&clean_payments, "2200000002"));

    corrected_file_ends_as_a_clean_run(&rig, &[(3, "2200000002")]).await;
}

const NOT_A_DECIMAL: &str =
    "is not a decimal number like 12.50 (digits, one optional '.', optional leading '-')";
const NOT_A_DATE: &str =
    "is not a date like 2024-05-01, 05/01/2024 or 5/1/2024 (a time may follow)";

#[tokio::test]
async fn a_paid_amount_that_is_not_a_number() {
    a_bad_row(
        b"1000002,2024-12-12,2200000002,65.00,abc,LIBFINE,Lost item replacement fee\n",
        &format!("Paid Amount \"abc\": amount \"abc\" {NOT_A_DECIMAL}"),
    )
    .await;
}

#[tokio::test]
async fn a_paid_amount_with_too_many_decimals() {
    a_bad_row(
        b"1000002,2024-12-12,2200000002,65.00,30.005,LIBFINE,Lost item replacement fee\n",
        "Paid Amount \"30.005\": amount \"30.005\" has a non-zero digit past the second decimal place; \
         cents are the smallest unit",
    )
    .await;
}

#[tokio::test]
async fn a_paid_amount_with_a_currency_sign() {
    a_bad_row(
        b"1000002,2024-12-12,2200000002,65.00,$30.00,LIBFINE,Lost item replacement fee\n",
        &format!("Paid Amount \"$30.00\": amount \"$30.00\" {NOT_A_DECIMAL}"),
    )
    .await;
}

#[tokio::test]
async fn a_quoted_paid_amount_with_a_thousands_separator() {
    a_bad_row(
        b"1000002,2024-12-12,2200000002,65.00,\"1,030.00\",LIBFINE,Lost item replacement fee\n",
        &format!("Paid Amount \"1,030.00\": amount \"1,030.00\" {NOT_A_DECIMAL}"),
    )
    .await;
}

#[tokio::test]
async fn a_paid_amount_out_of_range() {
    a_bad_row(
        b"1000002,2024-12-12,2200000002,65.00,1000000000000.00,LIBFINE,Lost item replacement fee\n",
        "Paid Amount \"1000000000000.00\": amount \"1000000000000.00\" is out of range \
         (more than 100,000,000,000.00 in magnitude)",
    )
    .await;
}

#[tokio::test]
async fn an_empty_paid_amount() {
    a_bad_row(
        b"1000002,2024-12-12,2200000002,65.00,,LIBFINE,Lost item replacement fee\n",
        "Paid Amount \"\": amount is empty; expected a decimal like 12.50",
    )
    .await;
}

#[tokio::test]
async fn a_charge_amount_that_is_not_a_number() {
    a_bad_row(
        b"1000002,2024-12-12,2200000002,sixty-five,30.00,LIBFINE,Lost item replacement fee\n",
        &format!("Charge Amount \"sixty-five\": amount \"sixty-five\" {NOT_A_DECIMAL}"),
    )
    .await;
}

#[tokio::test]
async fn an_empty_emplid() {
    a_bad_row(
        b",2024-12-12,2200000002,65.00,30.00,LIBFINE,Lost item replacement fee\n",
        "Emplid is empty",
    )
    .await;
}

#[tokio::test]
async fn an_empty_reference_number() {
    a_bad_row(
        b"1000002,2024-12-12,,65.00,30.00,LIBFINE,Lost item replacement fee\n",
        "Reference Number is empty",
    )
    .await;
}

#[tokio::test]
async fn a_date_that_does_not_exist() {
    a_bad_row(
        b"1000002,2024-12-32,2200000002,65.00,30.00,LIBFINE,Lost item replacement fee\n",
        &format!("Date Paid \"2024-12-32\" {NOT_A_DATE}"),
    )
    .await;
}

#[tokio::test]
async fn a_date_with_a_two_digit_year() {
    // 12/12/24 could be 1924 or 2024: refused rather than guessed.
    a_bad_row(
        b"1000002,12/12/24,2200000002,65.00,30.00,LIBFINE,Lost item replacement fee\n",
        &format!("Date Paid \"12/12/24\" {NOT_A_DATE}"),
    )
    .await;
}

#[tokio::test]
async fn an_empty_date() {
    a_bad_row(
        b"1000002,,2200000002,65.00,30.00,LIBFINE,Lost item replacement fee\n",
        &format!("Date Paid \"\" {NOT_A_DATE}"),
    )
    .await;
}

#[tokio::test]
async fn a_row_with_several_problems_names_each() {
    a_bad_row(
        b"1000002,yesterday,2200000002,65.00,thirty,LIBFINE,Lost item replacement fee\n",
        &format!(
            "Date Paid \"yesterday\" {NOT_A_DATE}; Paid Amount \"thirty\": amount \"thirty\" {NOT_A_DECIMAL}"
        ),
    )
    .await;
}

#[tokio::test]
async fn a_row_with_too_few_fields() {
    a_bad_row(
        b"1000002,2024-12-12,2200000002,65.00,30.00,LIBFINE\n",
        "the row has 6 fields but the header has 7; is there an unquoted comma in a value?",
    )
    .await;
}

#[tokio::test]
async fn a_row_with_too_many_fields() {
    // An unquoted comma in the description.
    a_bad_row(
        b"1000002,2024-12-12,2200000002,65.00,30.00,LIBFINE,Lost item, replacement fee\n",
        "the row has 8 fields but the header has 7; is there an unquoted comma in a value?",
    )
    .await;
}

#[tokio::test]
async fn an_emplid_that_is_not_utf8() {
    a_bad_row(
        b"100\xff0002,2024-12-12,2200000002,65.00,30.00,LIBFINE,Lost item replacement fee\n",
        "Emplid \"100\u{fffd}0002\" is not valid UTF-8; Emplid is empty",
    )
    .await;
}

/// A description in Latin-1 (a PeopleSoft export in Windows-1252, say)
/// holds the whole row back, though the description is used for nothing:
/// the reader's rule, reported rather than changed.
#[tokio::test]
async fn a_description_that_is_not_utf8() {
    a_bad_row(
        b"1000002,2024-12-12,2200000002,65.00,30.00,LIBFINE,Caf\xe9 damage\n",
        "Charge Description \"Caf\u{fffd} damage\" is not valid UTF-8",
    )
    .await;
}

/// A negative Paid Amount is a refund or a reversal at the Bursar: not
/// malformed, but not posted either (SPEC 7 has no way to post one). It
/// stays in the cumulative file, so it is reported on every run, and the
/// rest of the file ends as a clean run of the file without it.
#[tokio::test]
async fn a_negative_paid_amount_is_left_to_a_person() {
    let (clean_payments, clean_records) =
        clean_run(&[PAYMENTS_HEADER, FIRST, LAST].concat().into_bytes()).await;
    let rig = after_day_one().await;
    rig.drop_payments(
        BAD_FILE,
        &file(b"1000002,2024-12-12,2200000002,65.00,-30.00,LIBFINE,Refund\n"),
        1,
    );

    for run in 0..2 {
        let (job, outcome) = rig.pay(now()).await.unwrap();
        let message = "Paid Amount -30.00 is negative (a refund or reversal at the Bursar); \
                       it is not posted to Alma, handle it by hand";
        assert_eq!(
            outcome.malformed,
            [BadRow {
                line: 3,
                message: message.to_string()
            }],
            "run {run}"
        );
        assert_eq!(job.problems, [format!("line 3: malformed: {message}")]);
        assert_eq!(job.status, JobStatus::Success);
        assert_eq!(outcome.already_processed, 2 * run);
        assert_eq!(rig.alma_payments(), clean_payments, "run {run}");
        assert_eq!(payment_records(&rig).await, clean_records, "run {run}");
    }
}

/// `30.5` is an amount (Alma itself writes amounts so): it is read as
/// 30.50, and the day ends exactly as with `30.50`.
#[tokio::test]
async fn a_paid_amount_with_one_decimal_is_read_as_cents() {
    let (clean_payments, clean_records) = clean_run(&file(
        b"1000002,2024-12-12,2200000002,65.00,30.50,LIBFINE,Lost item replacement fee\n",
    ))
    .await;
    let rig = after_day_one().await;
    rig.drop_payments(
        FIXED_FILE,
        &file(b"1000002,2024-12-12,2200000002,65,30.5,LIBFINE,Lost item replacement fee\n"),
        1,
    );
    let (job, outcome) = rig.pay(now()).await.unwrap();
    assert_eq!(job.status, JobStatus::Success);
    assert_eq!(outcome.malformed, []);
    assert_eq!(outcome.paid.len(), 3);
    assert_eq!(rig.alma_payments(), clean_payments);
    assert_eq!(payment_records(&rig).await, clean_records);
}

fn key(emplid: &str, reference: &str, charge: &str, paid: &str, n: u32) -> PaymentKey {
    PaymentKey {
        emplid: PatronId::new(emplid),
        date_paid: NaiveDate::from_ymd_opt(2024, 12, 12).unwrap(),
        reference: FineId::new(reference),
        charge_amount: Money::parse(charge).unwrap(),
        paid_amount: Money::parse(paid).unwrap(),
        n,
    }
}

/// A reference the store has no Bursar account line for (a typo at the
/// Bursar): reported by line and reference, recorded as not found, and
/// tried again on every run. Once the next file carries the reference
/// corrected, the day ends as a clean run, plus the not-found record of
/// the mistyped key, which no file names any more.
#[tokio::test]
async fn an_unknown_reference_number() {
    let rig = after_day_one().await;
    rig.drop_payments(
        BAD_FILE,
        &file(b"1000002,2024-12-12,2200000092,65.00,30.00,LIBFINE,Lost item replacement fee\n"),
        1,
    );
    let (job, outcome) = rig.pay(now()).await.unwrap();
    assert_eq!(job.status, JobStatus::Success);
    assert_eq!(outcome.malformed, []);
    let not_found: Vec<(u64, &str)> = outcome
        .not_found
        .iter()
        .map(|row| (row.line, row.reference.as_str()))
        .collect();
    assert_eq!(not_found, [(3, "2200000092")]);
    assert_eq!(
        job.problems,
        [
            "line 3: reference 2200000092 (Emplid 1000002): no Bursar account line or fine with \
          this reference; not posted, and tried again on every run: check the reference with the Bursar"
        ]
    );
    assert_eq!(outcome.paid.len(), 2);
    assert!(
        rig.alma_payments()
            .iter()
            .all(|payment| payment.fee_id != "2200000002")
    );

    let (clean_payments, mut clean_records) = clean_run(&file(MIDDLE.as_bytes())).await;
    rig.drop_payments(FIXED_FILE, &file(MIDDLE.as_bytes()), 2);
    let (job, outcome) = rig.pay(now()).await.unwrap();
    assert_eq!(job.status, JobStatus::Success);
    assert_eq!(outcome.paid.len(), 1);
    assert_eq!(rig.alma_payments(), clean_payments);
    let typo = key("1000002", "2200000092", "65.00", "30.00", 1);
    clean_records.push(PaymentRecord {
        key: typo.key_string(),
        fine_id: None,
        patron_id: PatronId::new("1000002"),
        paid_amount: Money::from_cents(3000),
        outcome: PaymentOutcome::NotFound,
        balance_read: None,
        amount_posted: None,
        external_transaction_id: external_transaction_id(&typo),
        first_seen_at: now(),
        updated_at: now(),
    });
    clean_records.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(payment_records(&rig).await, clean_records);
}

/// Two identical rows are two payments (SPEC 7.3: the key counts them),
/// not a malformed row: each is posted, the second capped by what the
/// first left, and a re-run posts neither again.
#[tokio::test]
async fn a_duplicated_row_is_two_payments() {
    let rig = after_day_one().await;
    rig.drop_payments(
        BAD_FILE,
        &[PAYMENTS_HEADER, FIRST, FIRST, MIDDLE, MIDDLE, LAST]
            .concat()
            .into_bytes(),
        1,
    );
    for run in 0..2 {
        let (job, outcome) = rig.pay(now()).await.unwrap();
        assert_eq!(job.status, JobStatus::Success);
        assert_eq!(outcome.already_processed, if run == 0 { 0 } else { 5 });
        let paid: Vec<(String, String)> = rig
            .alma_payments()
            .iter()
            .map(|payment| (payment.fee_id.clone(), payment.amount.to_string()))
            .collect();
        assert_eq!(
            paid,
            [
                ("2200000001".to_string(), "15.00".to_string()),
                ("2200000002".to_string(), "30.00".to_string()),
                ("2200000002".to_string(), "30.00".to_string()),
                ("2200000004".to_string(), "20.00".to_string()),
            ],
            "run {run}"
        );
    }
    let outcomes: Vec<(String, PaymentOutcome)> = payment_records(&rig)
        .await
        .into_iter()
        .map(|record| (record.key, record.outcome))
        .collect();
    let mut expected = vec![
        (
            key("1000001", "2200000001", "15.00", "15.00", 1).key_string(),
            PaymentOutcome::Paid,
        ),
        // The fee was closed by the first payment.
        (
            key("1000001", "2200000001", "15.00", "15.00", 2).key_string(),
            PaymentOutcome::AlreadyClosed,
        ),
        (
            key("1000002", "2200000002", "65.00", "30.00", 1).key_string(),
            PaymentOutcome::Paid,
        ),
        (
            key("1000002", "2200000002", "65.00", "30.00", 2).key_string(),
            PaymentOutcome::Paid,
        ),
        (
            key("1000003", "2200000004", "20.00", "20.00", 1).key_string(),
            PaymentOutcome::Paid,
        ),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(outcomes, expected);
    assert_eq!(
        rig.sim.fee("2200000002").unwrap().balance,
        Money::from_cents(500)
    );
}

/// An opening quote never closed: the CSV reader takes the rest of the
/// file as one value, so line 3 swallows line 4. The row is refused,
/// naming the lines it swallowed; line 4 is posted once the file is
/// corrected.
#[tokio::test]
async fn an_unterminated_quote_swallows_the_rows_after_it() {
    let (clean_payments, _) = clean_run(&file(MIDDLE.as_bytes())).await;
    let rig = after_day_one().await;
    rig.drop_payments(
        BAD_FILE,
        &file(b"1000002,2024-12-12,2200000002,65.00,30.00,LIBFINE,\"Lost item replacement fee\n"),
        1,
    );
    let (job, outcome) = rig.pay(now()).await.unwrap();
    assert_eq!(job.status, JobStatus::Success);
    assert_eq!(
        outcome.malformed,
        [BadRow {
            line: 3,
            message: format!(
                "a quote (\") opened in this row is never closed, so lines 3 to 4 (the end of the \
                 file) were read as one row: the rows after it are not read; {UNREADABLE_ROW}"
            ),
        }]
    );
    assert_eq!(
        rig.alma_payments(),
        without(&without(&clean_payments, "2200000002"), "2200000004")
    );
    corrected_file_ends_as_a_clean_run(&rig, &[(3, "2200000002"), (4, "2200000004")]).await;
}

/// A file that cannot be read at all: the run fails naming the file (the
/// kept copy), the column or setting and what to do; nothing is posted
/// or recorded; the corrected file ends the day as a clean run.
async fn a_bad_file(content: &[u8], expected: &str) {
    let rig = after_day_one().await;
    rig.drop_payments(BAD_FILE, content, 1);

    let error = rig.pay(now()).await.unwrap_err();
    assert!(
        matches!(error, StageError::PaymentsFile { .. }),
        "{error:?}"
    );
    let kept = rig.root.join("payments-archive").join(BAD_FILE);
    let expected = format!(
        "payments file {}: {expected}; nothing was posted. Fix the report or the payment column \
         settings and run again",
        kept.display()
    );
    assert_eq!(error.to_string(), expected);
    assert_eq!(rig.alma_payments(), []);
    assert_eq!(payment_records(&rig).await, []);
    let job = rig.store.dump().await.unwrap().jobs.pop().unwrap();
    assert_eq!(
        (job.status, job.error.as_deref()),
        (JobStatus::Failed, Some(expected.as_str()))
    );

    let (clean_payments, clean_records) = clean_run(&file(MIDDLE.as_bytes())).await;
    rig.drop_payments(FIXED_FILE, &file(MIDDLE.as_bytes()), 2);
    let (job, outcome) = rig.pay(now()).await.unwrap();
    assert_eq!(job.status, JobStatus::Success);
    assert_eq!(outcome.paid.len(), 3);
    assert_eq!(rig.alma_payments(), clean_payments);
    assert_eq!(payment_records(&rig).await, clean_records);
}

#[tokio::test]
async fn a_missing_column_holds_the_file_back() {
    a_bad_file(
        b"Emplid,Date Paid,Reference Number,Charge Amount,Amount Paid,Item Type,Charge Description\n\
          1000001,2024-12-12,2200000001,15.00,15.00,LIBFINE,Overdue fine\n",
        "no column \"Paid Amount\" in the header (found: \"Emplid\", \"Date Paid\", \"Reference Number\", \
         \"Charge Amount\", \"Amount Paid\", \"Item Type\", \"Charge Description\"); if the report renamed it, \
         set payment column `paid_amount` in the configuration",
    )
    .await;
}

#[tokio::test]
async fn a_column_named_twice_holds_the_file_back() {
    a_bad_file(
        b"Emplid,Date Paid,Reference Number,Charge Amount,Paid Amount,Item Type,Charge Description,Emplid\n\
          1000001,2024-12-12,2200000001,15.00,15.00,LIBFINE,Overdue fine,1000001\n",
        "column \"Emplid\" appears twice in the header (columns 1 and 8); cannot tell which one to read",
    )
    .await;
}

#[tokio::test]
async fn an_empty_file_fails_the_run() {
    a_bad_file(
        b"",
        "it is empty, not even a header line; expected the columns \"Emplid\", \"Date Paid\", \
         \"Reference Number\", \"Charge Amount\", \"Paid Amount\", \"Item Type\", \"Charge Description\"",
    )
    .await;
}
