#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The pure planning of import and export, on the spec's cases, with the
//! exact records each plan writes.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use fine_store::{ChangeSet, ExportItem, FineLedger};
use sync_core::Money;
use sync_core::records::*;
use sync_core::rules::export::QuarantineReason;
use sync_core::rules::opening::ReportedTransaction;
use sync_core::rules::payments::DeskPaymentPolicy;
use sync_stages::export_plan::{BillingRules, export_lines, plan_commit, plan_decisions};
use sync_stages::import_plan::{ImportPlan, ImportSettings, KnownState, Reports, plan_import};

fn at(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").unwrap()
}

fn now() -> DateTime<Utc> {
    at("2024-12-10T06:00:00").and_utc()
}

fn m(cents: i64) -> Money {
    Money::from_cents(cents)
}

fn fine(id: &str, fee_type: FeeType, cents: i64) -> Fine {
    Fine {
        id: FineId::new(id),
        patron_id: PatronId::new("P1"),
        loan_id: Some(LoanId::new("L1")),
        fee_type,
        closed: false,
        created_at: at("2024-12-01T10:00:00"),
        status_at: at("2024-12-01T10:00:00"),
        original_amount: m(cents),
        remaining_amount: m(cents),
        comment: None,
        item: ItemDetails {
            location_code: Some("main".into()),
            ..ItemDetails::default()
        },
    }
}

fn row(id: &str, fine: &str, kind: AlmaTxnType, cents: i64, created: &str) -> ReportedTransaction {
    ReportedTransaction {
        id: AlmaTxnId::new(id),
        fine_id: FineId::new(fine),
        kind,
        amount: kind.signed(m(cents)),
        created_at: at(created),
        note: None,
    }
}

fn opening(fine: &Fine, pending: bool) -> AlmaTransaction {
    AlmaTransaction {
        id: None,
        fine_id: fine.id.clone(),
        kind: AlmaTxnType::Fine,
        amount: fine.original_amount,
        created_at: fine.created_at,
        note: None,
        pending,
        source_credit_fine: None,
    }
}

fn line(fine: &Fine, account: &str, billed: bool) -> BursarAccountLine {
    BursarAccountLine {
        reference: fine.id.clone(),
        patron_id: fine.patron_id.clone(),
        account: account.into(),
        replacement_fee: fine.fee_type == FeeType::LostItemReplacementFee,
        billing: billed.then(|| {
            BillingRules::default().billing(NaiveDate::from_ymd_opt(2024, 12, 2).unwrap())
        }),
    }
}

fn charge(fine: &Fine, cents: i64, n: u32, export: ExportState) -> BursarTransaction {
    BursarTransaction {
        reference: fine.id.clone(),
        n,
        kind: BursarTxnType::Fine,
        amount: m(cents),
        created_at: at("2024-12-02T06:00:00").and_utc(),
        export,
    }
}

/// A fine billed in export 1 with nothing pending.
fn billed_ledger(fine: &Fine) -> FineLedger {
    FineLedger {
        fine: fine.clone(),
        alma: vec![opening(fine, false)],
        lines: vec![line(fine, "531000000002", true)],
        bursar: vec![charge(
            fine,
            fine.original_amount.cents(),
            1,
            ExportState::Exported(1),
        )],
    }
}

/// The plan with its new ledgers spread into record lists, so that one
/// comparison covers new and known fines alike.
fn flat_plan_import(
    reports: Reports,
    known: KnownState,
    settings: &ImportSettings,
    now: DateTime<Utc>,
) -> ImportPlan {
    let mut plan = plan_import(reports, known, settings, now);
    plan.changes = plan.changes.flattened();
    plan
}

fn plan(reports: &Reports, known: &KnownState) -> sync_stages::import_plan::ImportPlan {
    flat_plan_import(
        reports.clone(),
        known.clone(),
        &ImportSettings::default(),
        now(),
    )
}

fn count(plan: &sync_stages::import_plan::ImportPlan, name: &str) -> u64 {
    plan.counts
        .named()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, c)| c)
        .unwrap()
}

#[test]
fn a_new_fine_gets_its_opening_transaction_and_account_line() {
    let overdue = fine("F1", FeeType::OverdueFine, 1500);
    let reports = Reports {
        fines: vec![overdue.clone()],
        transactions: vec![],
        balances: vec![Patron {
            id: PatronId::new("P1"),
            balance: m(1500),
        }],
    };
    let plan = plan(&reports, &KnownState::default());
    assert_eq!(
        plan.changes,
        ChangeSet {
            patrons: vec![Patron {
                id: PatronId::new("P1"),
                balance: m(1500)
            }],
            fines: vec![overdue.clone()],
            alma_transactions: vec![opening(&overdue, true)],
            account_lines: vec![line(&overdue, "531000000002", false)],
            bursar_transactions: vec![],
            reconciled_alma: vec![],
            new_ledgers: vec![],
        }
    );
    assert_eq!(count(&plan, "fines_new"), 1);
    assert_eq!(count(&plan, "patrons_new"), 1);
    assert!(plan.problems.is_empty());
}

#[test]
fn the_creation_row_is_the_opening_and_a_later_fine_row_an_increase() {
    let lost = fine("F1", FeeType::LostItemReplacementFee, 6500);
    let reports = Reports {
        fines: vec![lost.clone()],
        transactions: vec![
            row("T1", "F1", AlmaTxnType::Fine, 6500, "2024-12-01T10:00:20"),
            row("T2", "F1", AlmaTxnType::Fine, 500, "2024-12-03T09:00:00"),
        ],
        balances: vec![],
    };
    let plan = plan(&reports, &KnownState::default());
    let mut expected_opening = opening(&lost, true);
    expected_opening.id = Some(AlmaTxnId::new("T1"));
    expected_opening.created_at = at("2024-12-01T10:00:20");
    let increase = reports.transactions[1].to_pending();
    assert_eq!(
        plan.changes.alma_transactions,
        vec![expected_opening, increase]
    );
    assert_eq!(
        plan.changes.account_lines,
        vec![line(&lost, "531000000001", false)]
    );
    assert_eq!(count(&plan, "transactions_new"), 1);
}

#[test]
fn a_known_fine_is_updated_but_its_original_amount_is_only_reported() {
    let stored = fine("F1", FeeType::OverdueFine, 1500);
    let mut reported = stored.clone();
    reported.original_amount = m(2000);
    reported.remaining_amount = m(0);
    reported.closed = true;
    let known = KnownState {
        ledgers: vec![billed_ledger(&stored)],
        ..KnownState::default()
    };
    let plan = plan(
        &Reports {
            fines: vec![reported.clone()],
            ..Reports::default()
        },
        &known,
    );
    let mut expected = reported.clone();
    expected.original_amount = m(1500);
    assert_eq!(
        plan.changes,
        ChangeSet {
            fines: vec![expected],
            ..ChangeSet::default()
        }
    );
    assert_eq!(plan.problems.len(), 1);
    assert_eq!(plan.problems[0].subject, "F1");
    assert!(
        plan.problems[0].message.contains("from 15.00 to 20.00"),
        "{}",
        plan.problems[0]
    );
}

#[test]
fn an_unchanged_known_fine_plans_nothing() {
    let stored = fine("F1", FeeType::OverdueFine, 1500);
    let known = KnownState {
        ledgers: vec![billed_ledger(&stored)],
        patrons: vec![Patron {
            id: PatronId::new("P1"),
            balance: m(1500),
        }],
        ..KnownState::default()
    };
    let reports = Reports {
        fines: vec![stored.clone()],
        transactions: vec![],
        balances: vec![Patron {
            id: PatronId::new("P1"),
            balance: m(1500),
        }],
    };
    let plan = plan(&reports, &known);
    assert!(plan.changes.is_empty(), "{:?}", plan.changes);
    assert_eq!(count(&plan, "fines_unchanged"), 1);
    assert_eq!(count(&plan, "patrons_unchanged"), 1);
}

/// Of two stored fines, the one whose transaction note Alma changed
/// writes exactly that transaction and a new one; the other writes nothing.
#[test]
fn only_what_changed_in_a_stored_ledger_is_written() {
    let changed = fine("F1", FeeType::OverdueFine, 1500);
    let untouched = fine("F2", FeeType::OverdueFine, 700);
    let mut reported_row = row("T1", "F1", AlmaTxnType::Fine, 1500, "2024-12-01T10:00:00");
    let mut stored_ledger = billed_ledger(&changed);
    stored_ledger.alma = vec![reported_row.to_pending()];
    stored_ledger.alma[0].pending = false;
    reported_row.note = Some("fine note edited in Alma".into());
    let waive = row("T2", "F1", AlmaTxnType::Waive, 500, "2024-12-05T09:00:00");
    let known = KnownState {
        ledgers: vec![stored_ledger.clone(), billed_ledger(&untouched)],
        ..KnownState::default()
    };
    let reports = Reports {
        fines: vec![changed.clone(), untouched.clone()],
        transactions: vec![reported_row.clone(), waive.clone()],
        balances: vec![],
    };
    let plan = plan(&reports, &known);
    let mut noted = stored_ledger.alma[0].clone();
    noted.note = Some("fine note edited in Alma".into());
    assert_eq!(
        plan.changes.alma_transactions,
        vec![noted, waive.to_pending()]
    );
    assert!(plan.changes.fines.is_empty());
    assert!(plan.changes.account_lines.is_empty());
    assert!(plan.changes.bursar_transactions.is_empty());
    assert_eq!(count(&plan, "transactions_updated"), 1);
    assert_eq!(count(&plan, "transactions_new"), 1);
    assert_eq!(count(&plan, "fines_unchanged"), 2);
}

#[test]
fn a_credit_on_a_loan_shared_by_two_fines_is_split() {
    let lost = fine("F1", FeeType::LostItemReplacementFee, 6500);
    let process = fine("F2", FeeType::LostItemProcessFee, 1000);
    let mut credit = fine("C1", FeeType::Credit, -7000);
    credit.comment = Some("item returned".into());
    let reports = Reports {
        fines: vec![lost.clone(), process.clone(), credit],
        ..Reports::default()
    };
    let plan = plan(&reports, &KnownState::default());
    let credit_txn = |target: &Fine, cents: i64| AlmaTransaction {
        id: None,
        fine_id: target.id.clone(),
        kind: AlmaTxnType::Credit,
        amount: m(-cents),
        created_at: at("2024-12-01T10:00:00"),
        note: Some("item returned".into()),
        pending: true,
        source_credit_fine: Some(FineId::new("C1")),
    };
    assert_eq!(
        plan.changes.alma_transactions,
        vec![
            opening(&lost, true),
            credit_txn(&lost, 6500),
            opening(&process, true),
            credit_txn(&process, 500)
        ]
    );
    assert_eq!(
        plan.changes.fines,
        vec![lost, process],
        "the credit fine itself is not stored"
    );
    assert_eq!(count(&plan, "credits_split"), 1);
}

#[test]
fn a_credit_whose_loan_has_no_fine_is_reported_and_the_rest_imports() {
    let overdue = fine("F1", FeeType::OverdueFine, 1500);
    let mut credit = fine("C1", FeeType::Credit, -300);
    credit.loan_id = Some(LoanId::new("L9"));
    let reports = Reports {
        fines: vec![overdue.clone(), credit],
        ..Reports::default()
    };
    let plan = plan(&reports, &KnownState::default());
    assert_eq!(plan.changes.fines, vec![overdue]);
    assert_eq!(plan.problems.len(), 1);
    assert_eq!(plan.problems[0].subject, "C1");
    assert_eq!(
        plan.problems[0].message,
        "credit of 3.00 on loan L9 not applied: no fine is stored for the credit's loan; it is tried again on the next import"
    );
    assert_eq!(count(&plan, "credits_unmatched"), 1);
}

#[test]
fn a_credit_without_a_loan_is_a_standalone_fine_and_a_known_credit_is_skipped() {
    let mut standalone = fine("C1", FeeType::Credit, -300);
    standalone.loan_id = None;
    let known_credit = fine("C2", FeeType::Credit, -300);
    let known = KnownState {
        credit_sources: BTreeSet::from([FineId::new("C2")]),
        ..KnownState::default()
    };
    let reports = Reports {
        fines: vec![standalone.clone(), known_credit],
        ..Reports::default()
    };
    let plan = plan(&reports, &known);
    let mut credit_opening = opening(&standalone, false);
    credit_opening.kind = AlmaTxnType::Credit;
    assert_eq!(
        plan.changes,
        ChangeSet {
            fines: vec![standalone],
            alma_transactions: vec![credit_opening],
            ..ChangeSet::default()
        }
    );
    assert_eq!(count(&plan, "credits_standalone"), 1);
    assert_eq!(count(&plan, "credits_already_known"), 1);
}

#[test]
fn transactions_of_unknown_fines_are_reported_and_ignored_fines_vanish() {
    let ignored = fine("F7", FeeType::OverdueFine, 100);
    let reports = Reports {
        fines: vec![ignored],
        transactions: vec![
            row("T1", "F9", AlmaTxnType::Waive, 100, "2024-12-03T09:00:00"),
            row("T2", "F7", AlmaTxnType::Waive, 100, "2024-12-03T09:00:00"),
        ],
        balances: vec![],
    };
    let settings = ImportSettings {
        ignored_fines: BTreeSet::from([FineId::new("F7")]),
        ..ImportSettings::default()
    };
    let plan = flat_plan_import(reports, KnownState::default(), &settings, now());
    assert!(plan.changes.is_empty());
    assert_eq!(plan.problems.len(), 1);
    assert_eq!(plan.problems[0].subject, "T1");
    assert_eq!(count(&plan, "fines_ignored"), 1);
}

#[test]
fn a_late_creation_row_of_a_known_fine_is_not_an_increase() {
    let stored = fine("F1", FeeType::OverdueFine, 1500);
    let known = KnownState {
        ledgers: vec![billed_ledger(&stored)],
        ..KnownState::default()
    };
    let reports = Reports {
        transactions: vec![
            row("T1", "F1", AlmaTxnType::Fine, 1500, "2024-12-01T10:00:05"),
            row("T2", "F1", AlmaTxnType::Fine, 1500, "2024-12-01T10:00:30"),
        ],
        ..Reports::default()
    };
    let plan = plan(&reports, &known);
    // T1 (closest) is the creation; T2 is a genuine second Fine row.
    assert_eq!(
        plan.changes.alma_transactions,
        vec![reports.transactions[1].to_pending()]
    );
}

fn payment_plan(
    note: Option<&str>,
    billed: bool,
    policy: DeskPaymentPolicy,
) -> sync_stages::import_plan::ImportPlan {
    let stored = fine("F1", FeeType::OverdueFine, 1500);
    let ledger = if billed {
        billed_ledger(&stored)
    } else {
        FineLedger {
            fine: stored.clone(),
            alma: vec![opening(&stored, true)],
            lines: vec![line(&stored, "531000000002", false)],
            bursar: vec![],
        }
    };
    let mut payment = row(
        "T5",
        "F1",
        AlmaTxnType::Payment,
        1500,
        "2024-12-05T09:00:00",
    );
    payment.note = note.map(str::to_string);
    let known = KnownState {
        ledgers: vec![ledger],
        ..KnownState::default()
    };
    let reports = Reports {
        transactions: vec![payment],
        ..Reports::default()
    };
    let settings = ImportSettings {
        desk_payments: policy,
        ..ImportSettings::default()
    };
    flat_plan_import(reports, known, &settings, now())
}

#[test]
fn a_payment_posted_through_the_bursar_goes_on_the_ledger_and_is_not_exported() {
    let plan = payment_plan(
        Some("Paid to bursar on 2024-12-04, imported ..."),
        true,
        DeskPaymentPolicy::Report,
    );
    let mut settled = row(
        "T5",
        "F1",
        AlmaTxnType::Payment,
        1500,
        "2024-12-05T09:00:00",
    )
    .to_pending();
    settled.note = Some("Paid to bursar on 2024-12-04, imported ...".into());
    settled.pending = false;
    assert_eq!(plan.changes.alma_transactions, vec![settled]);
    assert_eq!(
        plan.changes.bursar_transactions,
        vec![BursarTransaction {
            reference: FineId::new("F1"),
            n: 2,
            kind: BursarTxnType::Payment,
            amount: m(-1500),
            created_at: now(),
            export: ExportState::NotExported,
        }]
    );
    assert!(plan.problems.is_empty());
}

#[test]
fn a_desk_payment_on_a_billed_fine_is_reported_or_left_for_a_reversal() {
    let report = payment_plan(Some("cash"), true, DeskPaymentPolicy::Report);
    assert_eq!(report.changes.bursar_transactions.len(), 1);
    assert_eq!(report.problems.len(), 1);
    assert!(
        report.problems[0].message.contains("tell the Bursar"),
        "{}",
        report.problems[0]
    );

    let reverse = payment_plan(Some("cash"), true, DeskPaymentPolicy::Reverse);
    assert!(reverse.changes.bursar_transactions.is_empty());
    assert!(reverse.changes.alma_transactions[0].pending);
    assert!(
        reverse.problems[0]
            .message
            .contains("a reversal goes to the Bursar")
    );
}

#[test]
fn a_payment_before_billing_stays_pending() {
    let plan = payment_plan(Some("cash"), false, DeskPaymentPolicy::Report);
    assert!(plan.changes.bursar_transactions.is_empty());
    assert!(plan.changes.alma_transactions.iter().all(|t| t.pending));
    assert!(plan.problems.is_empty());
}

#[test]
fn export_decisions_charge_reverse_and_quarantine() {
    let new = fine("F1", FeeType::OverdueFine, 1500);
    let waived = fine("F2", FeeType::OverdueFine, 1000);
    let grown = fine("F3", FeeType::OverdueFine, 1000);
    let new_ledger = FineLedger {
        fine: new.clone(),
        alma: vec![opening(&new, true)],
        lines: vec![line(&new, "531000000002", false)],
        bursar: vec![],
    };
    let mut waived_ledger = billed_ledger(&waived);
    let waive = row("T9", "F2", AlmaTxnType::Waive, 400, "2024-12-05T09:00:00").to_pending();
    waived_ledger.alma.push(waive.clone());
    let mut grown_ledger = billed_ledger(&grown);
    grown_ledger.bursar[0].amount = m(800);
    grown_ledger
        .alma
        .push(row("T8", "F3", AlmaTxnType::Waive, 100, "2024-12-05T09:00:00").to_pending());

    let plan = plan_decisions(&[new_ledger, waived_ledger, grown_ledger], now());
    let pending = |kind, reference: &Fine, n, cents| BursarTransaction {
        reference: reference.id.clone(),
        n,
        kind,
        amount: m(cents),
        created_at: now(),
        export: ExportState::Pending,
    };
    assert_eq!(
        plan.changes.bursar_transactions,
        vec![
            pending(BursarTxnType::Fine, &new, 1, 1500),
            pending(BursarTxnType::Waive, &waived, 2, -400)
        ]
    );
    assert_eq!(plan.changes.reconciled_alma, vec!["opening:F1", "T9"]);
    assert_eq!(plan.changes.alma_transactions, vec![]);
    assert_eq!(
        plan.quarantined,
        vec![(
            FineId::new("F3"),
            QuarantineReason::BilledFineGrew {
                alma: m(900),
                bursar: m(800)
            }
        )]
    );
    assert_eq!((plan.charges, plan.reversals), (1, 1));
}

#[test]
fn an_export_commit_bills_its_charges_and_renders_stable_lines() {
    let new = fine("F1", FeeType::OverdueFine, 1500);
    let old = fine("F2", FeeType::OverdueFine, 1000);
    let items = vec![
        ExportItem {
            transaction: charge(&new, 1500, 1, ExportState::Pending),
            line: line(&new, "531000000002", false),
        },
        ExportItem {
            transaction: BursarTransaction {
                reference: old.id.clone(),
                n: 2,
                kind: BursarTxnType::Waive,
                amount: m(-400),
                created_at: now(),
                export: ExportState::Pending,
            },
            line: line(&old, "531000000002", true),
        },
    ];
    let run_date = NaiveDate::from_ymd_opt(2024, 12, 27).unwrap();
    let rules = BillingRules::default();
    let layout = bursar_format::Layout::default();
    let commit = plan_commit(&items, 8, run_date, now(), &rules, &layout)
        .unwrap()
        .unwrap();
    assert_eq!(
        commit.export.charges_file.as_deref(),
        Some("LIB_charges.dat.20241227.8.1")
    );
    assert_eq!(
        commit.export.reversals_file.as_deref(),
        Some("LIB_charges.dat.20241227.8.2")
    );
    assert_eq!(commit.export.line_count, 2);
    let expected_billing = Billing {
        billing_date: run_date,
        due_date: NaiveDate::from_ymd_opt(2025, 2, 25).unwrap(),
        term_code: "2247".into(),
    };
    assert_eq!(commit.billed_lines.len(), 1);
    assert_eq!(commit.billed_lines[0].billing, Some(expected_billing));
    assert_eq!(
        commit.transactions,
        vec![(FineId::new("F1"), 1), (FineId::new("F2"), 2)]
    );

    let (charges, reversals) = export_lines(&commit.export, &items, &rules).unwrap();
    let charges_file = bursar_format::render_file(
        &layout,
        &charges,
        bursar_format::FileSide::Charges,
        8,
        run_date,
    )
    .unwrap()
    .unwrap();
    let reversals_file = bursar_format::render_file(
        &layout,
        &reversals,
        bursar_format::FileSide::Reversals,
        8,
        run_date,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        String::from_utf8(charges_file.bytes).unwrap(),
        format!(
            "{:<11} {:<12} {:>10} {:<9} {:<9} {:<5} {:<3} {:<31}\n",
            "P1", "531000000002", "15.00", "02252025", "12272024", "2247", "", "F1"
        )
    );
    assert_eq!(
        String::from_utf8(reversals_file.bytes).unwrap(),
        format!(
            "{:<11} {:<12} {:>10} {:<9} {:<9} {:<5} {:<3} {:<31}\n",
            "P1", "531000000002", "4.00", "", "", "2247", "Y", "F2"
        )
    );
    assert_eq!(
        plan_commit(&[], 9, run_date, now(), &rules, &layout),
        Ok(None)
    );
}
