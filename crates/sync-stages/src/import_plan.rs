//! What an import merges (SPEC 4.1-4.7), as a pure function.
//!
//! The import stage fetches the three reports completely and loads from the
//! store every record they touch; [`plan_import`] then merges them in the
//! spec's order (patrons, fines, credit fines, transactions, payments) into
//! a working copy of those ledgers, and returns the difference as one
//! [`ChangeSet`] with counts and every problem by id. Running the same
//! import twice plans nothing the second time: merging is idempotent, so
//! an overlapping since-date costs API calls and nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use fine_store::{ChangeSet, FineLedger};
use sync_core::Money;
use sync_core::records::{
    AlmaTransaction, AlmaTxnType, BursarAccountLine, BursarTransaction, BursarTxnType, ExportState,
    FeeType, Fine, FineId, LoanId, Patron, PatronId, PaymentRecord,
};
use sync_core::rules::accounts::AccountRules;
use sync_core::rules::credits::{CreditCandidate, creditable_amount, distribute_credit};
use sync_core::rules::export::line_states;
use sync_core::rules::opening::{ReportedTransaction, opening_transaction};
use sync_core::rules::payments::{
    DeskPaymentPolicy, LineOwed, PaymentHandling, apply_payment_to_ledger, classify_alma_payment,
    posted_by_direction_two,
};

/// The settings the merge depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportSettings {
    /// Fine ids ignored entirely: neither imported nor reported.
    pub ignored_fines: BTreeSet<FineId>,
    pub account_rules: AccountRules,
    pub desk_payments: DeskPaymentPolicy,
    /// How an Alma payment note posted by Direction 2 (or the old tool)
    /// begins (SPEC 4.7).
    pub posted_marker: String,
}

impl Default for ImportSettings {
    fn default() -> Self {
        ImportSettings {
            ignored_fines: BTreeSet::new(),
            account_rules: AccountRules::default(),
            desk_payments: DeskPaymentPolicy::default(),
            posted_marker: "Paid to bursar on".to_string(),
        }
    }
}

/// The three reports, typed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reports {
    pub fines: Vec<Fine>,
    pub transactions: Vec<ReportedTransaction>,
    pub balances: Vec<Patron>,
}

impl Reports {
    /// Every fine id the reports mention: the ledgers to load.
    pub fn fine_ids(&self) -> Vec<FineId> {
        let ids: BTreeSet<&FineId> = self
            .fines
            .iter()
            .map(|f| &f.id)
            .chain(self.transactions.iter().map(|t| &t.fine_id))
            .collect();
        ids.into_iter().cloned().collect()
    }

    /// The loans of credit fines: their fines are credit candidates.
    pub fn credit_loans(&self) -> Vec<LoanId> {
        let loans: BTreeSet<&LoanId> = self
            .credit_fines()
            .filter_map(|f| f.loan_id.as_ref())
            .collect();
        loans.into_iter().cloned().collect()
    }

    pub fn credit_fine_ids(&self) -> Vec<FineId> {
        self.credit_fines().map(|f| f.id.clone()).collect()
    }

    pub fn patron_ids(&self) -> Vec<PatronId> {
        self.balances.iter().map(|p| p.id.clone()).collect()
    }

    fn credit_fines(&self) -> impl Iterator<Item = &Fine> {
        self.fines.iter().filter(|f| f.fee_type == FeeType::Credit)
    }
}

/// What the store already holds of the records the reports touch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnownState {
    pub patrons: Vec<Patron>,
    /// The ledgers of every fine the reports mention, and of every fine on
    /// the loans of the reports' credit fines.
    pub ledgers: Vec<FineLedger>,
    /// Credit fines already taken in (SPEC 4.5).
    pub credit_sources: BTreeSet<FineId>,
    /// Payment records of the fines with Alma payments (SPEC 4.7).
    pub payment_records: Vec<PaymentRecord>,
}

/// Something reported by id; the rest of the import goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The record at fault: a fine, transaction or patron id.
    pub subject: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.message)
    }
}

/// Counts of one import, as the job record and the run report show them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub patrons_new: u64,
    pub patrons_updated: u64,
    pub patrons_unchanged: u64,
    pub fines_new: u64,
    pub fines_updated: u64,
    pub fines_unchanged: u64,
    pub fines_ignored: u64,
    pub original_amount_changes: u64,
    pub transactions_new: u64,
    pub transactions_updated: u64,
    pub transactions_unchanged: u64,
    pub transactions_of_unknown_fines: u64,
    pub credits_applied: u64,
    pub credits_split: u64,
    pub credits_unmatched: u64,
    pub credits_standalone: u64,
    pub credits_already_known: u64,
    pub payments_to_ledger: u64,
    pub payments_left_pending: u64,
    pub overpayments: u64,
    pub desk_payments_on_billed_fines: u64,
}

impl ImportCounts {
    /// Named counts in a stable order, for the job record.
    pub fn named(&self) -> Vec<(String, u64)> {
        let pairs = [
            ("patrons_new", self.patrons_new),
            ("patrons_updated", self.patrons_updated),
            ("patrons_unchanged", self.patrons_unchanged),
            ("fines_new", self.fines_new),
            ("fines_updated", self.fines_updated),
            ("fines_unchanged", self.fines_unchanged),
            ("fines_ignored", self.fines_ignored),
            ("original_amount_changes", self.original_amount_changes),
            ("transactions_new", self.transactions_new),
            ("transactions_updated", self.transactions_updated),
            ("transactions_unchanged", self.transactions_unchanged),
            (
                "transactions_of_unknown_fines",
                self.transactions_of_unknown_fines,
            ),
            ("credits_applied", self.credits_applied),
            ("credits_split", self.credits_split),
            ("credits_unmatched", self.credits_unmatched),
            ("credits_standalone", self.credits_standalone),
            ("credits_already_known", self.credits_already_known),
            ("payments_to_ledger", self.payments_to_ledger),
            ("payments_left_pending", self.payments_left_pending),
            ("overpayments", self.overpayments),
            (
                "desk_payments_on_billed_fines",
                self.desk_payments_on_billed_fines,
            ),
        ];
        pairs
            .into_iter()
            .map(|(name, count)| (name.to_string(), count))
            .collect()
    }
}

/// The outcome of planning an import.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportPlan {
    pub changes: ChangeSet,
    pub counts: ImportCounts,
    pub problems: Vec<Problem>,
}

/// Merges the reports into the known state (SPEC 4.1-4.7). `now` stamps
/// the Bursar Payment transactions it creates.
pub fn plan_import(
    reports: &Reports,
    known: &KnownState,
    settings: &ImportSettings,
    now: DateTime<Utc>,
) -> ImportPlan {
    let mut merge = Merge::new(known, settings, now);
    merge.patrons(&reports.balances);
    let (credit_fines, fines): (Vec<&Fine>, Vec<&Fine>) = reports
        .fines
        .iter()
        .partition(|f| f.fee_type == FeeType::Credit);
    let mut rows_used_as_openings = BTreeSet::new();
    merge.fines(&fines, &reports.transactions, &mut rows_used_as_openings);
    merge.credit_fines(&credit_fines);
    let credit_ids: BTreeSet<&FineId> = credit_fines.iter().map(|f| &f.id).collect();
    merge.transactions(&reports.transactions, &rows_used_as_openings, &credit_ids);
    merge.payments();
    merge.finish()
}

struct Merge<'a> {
    known: &'a KnownState,
    settings: &'a ImportSettings,
    now: DateTime<Utc>,
    original: BTreeMap<FineId, &'a FineLedger>,
    ledgers: BTreeMap<FineId, FineLedger>,
    patrons: Vec<Patron>,
    counts: ImportCounts,
    problems: Vec<Problem>,
}

impl<'a> Merge<'a> {
    fn new(known: &'a KnownState, settings: &'a ImportSettings, now: DateTime<Utc>) -> Self {
        let original: BTreeMap<FineId, &FineLedger> = known
            .ledgers
            .iter()
            .map(|ledger| (ledger.fine.id.clone(), ledger))
            .collect();
        let ledgers = original
            .iter()
            .map(|(id, ledger)| (id.clone(), (*ledger).clone()))
            .collect();
        Merge {
            known,
            settings,
            now,
            original,
            ledgers,
            patrons: Vec::new(),
            counts: ImportCounts::default(),
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, subject: impl fmt::Display, message: String) {
        self.problems.push(Problem {
            subject: subject.to_string(),
            message,
        });
    }

    fn ignored(&self, id: &FineId) -> bool {
        self.settings.ignored_fines.contains(id)
    }

    /// 4.1: insert new patrons, update changed balances; a patron missing
    /// from the report keeps its stored balance.
    fn patrons(&mut self, balances: &[Patron]) {
        let stored: BTreeMap<&PatronId, &Patron> =
            self.known.patrons.iter().map(|p| (&p.id, p)).collect();
        let mut seen = BTreeSet::new();
        for patron in balances {
            if !seen.insert(&patron.id) {
                continue;
            }
            match stored.get(&patron.id) {
                None => {
                    self.counts.patrons_new += 1;
                    self.patrons.push(patron.clone());
                }
                Some(old) if old.balance != patron.balance => {
                    self.counts.patrons_updated += 1;
                    self.patrons.push(patron.clone());
                }
                Some(_) => self.counts.patrons_unchanged += 1,
            }
        }
    }

    /// 4.2, 4.3, 4.4: new fines with their opening transaction and account
    /// line; known fines updated, a changed original amount reported.
    fn fines(
        &mut self,
        fines: &[&Fine],
        rows: &[ReportedTransaction],
        used_as_openings: &mut BTreeSet<usize>,
    ) {
        let mut rows_of_fine: BTreeMap<&FineId, Vec<usize>> = BTreeMap::new();
        for (index, row) in rows.iter().enumerate() {
            rows_of_fine.entry(&row.fine_id).or_default().push(index);
        }
        for fine in fines {
            if self.ignored(&fine.id) {
                self.counts.fines_ignored += 1;
                continue;
            }
            let Some(ledger) = self.ledgers.get_mut(&fine.id) else {
                let own_rows: Vec<usize> = rows_of_fine.get(&fine.id).cloned().unwrap_or_default();
                let candidates: Vec<ReportedTransaction> =
                    own_rows.iter().map(|&i| rows[i].clone()).collect();
                let (opening, lent) = opening_transaction(fine, &candidates);
                if let Some(local) = lent {
                    used_as_openings.insert(own_rows[local]);
                }
                let line = BursarAccountLine {
                    reference: fine.id.clone(),
                    patron_id: fine.patron_id.clone(),
                    account: self
                        .settings
                        .account_rules
                        .account_for(fine.fee_type, fine.item.location_code.as_deref())
                        .to_string(),
                    replacement_fee: fine.fee_type == FeeType::LostItemReplacementFee,
                    billing: None,
                };
                self.ledgers.insert(
                    fine.id.clone(),
                    FineLedger {
                        fine: (*fine).clone(),
                        alma: vec![opening],
                        lines: vec![line],
                        bursar: Vec::new(),
                    },
                );
                self.counts.fines_new += 1;
                continue;
            };
            let mut updated = (*fine).clone();
            let stored_original = ledger.fine.original_amount;
            if updated.original_amount != stored_original {
                let message = format!(
                    "original amount changed in Alma from {stored_original} to {}; not applied (a fine changes only through its transactions): check the fine in Alma",
                    updated.original_amount
                );
                updated.original_amount = stored_original;
                self.counts.original_amount_changes += 1;
                self.problems.push(Problem {
                    subject: fine.id.to_string(),
                    message,
                });
            }
            if updated == ledger.fine {
                self.counts.fines_unchanged += 1;
            } else {
                ledger.fine = updated;
                self.counts.fines_updated += 1;
            }
        }
    }

    /// 4.5: credit fines, distributed over the fines of their loan.
    fn credit_fines(&mut self, credits: &[&Fine]) {
        let mut fines_of_loan: BTreeMap<LoanId, Vec<FineId>> = BTreeMap::new();
        for ledger in self.ledgers.values() {
            if let (Some(loan), false) = (
                &ledger.fine.loan_id,
                ledger.fine.fee_type == FeeType::Credit,
            ) {
                fines_of_loan
                    .entry(loan.clone())
                    .or_default()
                    .push(ledger.fine.id.clone());
            }
        }
        for credit in credits {
            if self.ignored(&credit.id) {
                self.counts.fines_ignored += 1;
                continue;
            }
            if self.ledgers.contains_key(&credit.id)
                || self.known.credit_sources.contains(&credit.id)
            {
                self.counts.credits_already_known += 1;
                continue;
            }
            let Some(loan) = &credit.loan_id else {
                let (opening, _) = opening_transaction(credit, &[]);
                self.ledgers.insert(
                    credit.id.clone(),
                    FineLedger {
                        fine: (*credit).clone(),
                        alma: vec![opening],
                        lines: Vec::new(),
                        bursar: Vec::new(),
                    },
                );
                self.counts.credits_standalone += 1;
                continue;
            };
            let candidates: Vec<CreditCandidate> = fines_of_loan
                .get(loan)
                .into_iter()
                .flatten()
                .filter_map(|id| self.ledgers.get(id))
                .map(|ledger| CreditCandidate {
                    fine_id: ledger.fine.id.clone(),
                    patron_id: ledger.fine.patron_id.clone(),
                    creditable: creditable_amount(&ledger.alma),
                })
                .collect();
            match distribute_credit(&credit.patron_id, credit.original_amount, &candidates) {
                Ok(shares) => {
                    if shares.len() > 1 {
                        self.counts.credits_split += 1;
                    } else {
                        self.counts.credits_applied += 1;
                    }
                    for share in shares {
                        if let Some(target) = self.ledgers.get_mut(&share.fine_id) {
                            target.alma.push(AlmaTransaction {
                                id: None,
                                fine_id: share.fine_id.clone(),
                                kind: AlmaTxnType::Credit,
                                amount: -share.amount,
                                created_at: credit.created_at,
                                note: credit.comment.clone(),
                                pending: true,
                                source_credit_fine: Some(credit.id.clone()),
                            });
                        }
                    }
                }
                Err(problem) => {
                    self.counts.credits_unmatched += 1;
                    self.problem(
                        &credit.id,
                        format!(
                            "credit of {} on loan {loan} not applied: {problem}; it is tried again on the next import",
                            credit.original_amount.abs()
                        ),
                    );
                }
            }
        }
    }

    /// 4.6: new transactions of known fines are stored pending; known ones
    /// get their note updated.
    fn transactions(
        &mut self,
        rows: &[ReportedTransaction],
        used_as_openings: &BTreeSet<usize>,
        credit_fines: &BTreeSet<&FineId>,
    ) {
        // A fine stored earlier with a synthetic opening may now show its
        // creation row; that row is the opening, not an increase.
        let mut late_openings = BTreeSet::new();
        let mut rows_of_fine: BTreeMap<&FineId, Vec<usize>> = BTreeMap::new();
        for (index, row) in rows.iter().enumerate() {
            rows_of_fine.entry(&row.fine_id).or_default().push(index);
        }
        for (fine_id, indexes) in &rows_of_fine {
            let Some(ledger) = self.original.get(*fine_id) else {
                continue;
            };
            let synthetic_opening = ledger
                .alma
                .iter()
                .any(|t| t.id.is_none() && t.source_credit_fine.is_none());
            if !synthetic_opening {
                continue;
            }
            let unknown: Vec<usize> = indexes
                .iter()
                .copied()
                .filter(|&i| {
                    let key = rows[i].id.as_str();
                    !ledger.alma.iter().any(|t| t.key() == key)
                })
                .collect();
            let candidates: Vec<ReportedTransaction> =
                unknown.iter().map(|&i| rows[i].clone()).collect();
            if let (_, Some(local)) = opening_transaction(&ledger.fine, &candidates) {
                late_openings.insert(unknown[local]);
            }
        }

        for (index, row) in rows.iter().enumerate() {
            if used_as_openings.contains(&index) || self.ignored(&row.fine_id) {
                continue;
            }
            let Some(ledger) = self.ledgers.get_mut(&row.fine_id) else {
                if credit_fines.contains(&row.fine_id)
                    || self.known.credit_sources.contains(&row.fine_id)
                {
                    continue;
                }
                self.counts.transactions_of_unknown_fines += 1;
                let message = format!(
                    "transaction of fine {} which is not in the store; it is imported once the fine is (check the fines report's since-date)",
                    row.fine_id
                );
                self.problem(&row.id, message);
                continue;
            };
            if late_openings.contains(&index) {
                self.counts.transactions_unchanged += 1;
                continue;
            }
            match ledger.alma.iter_mut().find(|t| t.key() == row.id.as_str()) {
                Some(existing) if existing.note != row.note => {
                    existing.note = row.note.clone();
                    self.counts.transactions_updated += 1;
                }
                Some(_) => self.counts.transactions_unchanged += 1,
                None => {
                    ledger.alma.push(row.to_pending());
                    self.counts.transactions_new += 1;
                }
            }
        }
    }

    /// 4.7: pending Alma payments onto the Bursar ledger.
    fn payments(&mut self) {
        let settings = self.settings;
        let mut problems = Vec::new();
        for ledger in self.ledgers.values_mut() {
            let billed = ledger.bursar.iter().any(|t| t.kind == BursarTxnType::Fine);
            let records: Vec<PaymentRecord> = self
                .known
                .payment_records
                .iter()
                .filter(|r| r.fine_id.as_ref() == Some(&ledger.fine.id))
                .cloned()
                .collect();
            for index in 0..ledger.alma.len() {
                let payment = &ledger.alma[index];
                if !payment.pending || payment.kind != AlmaTxnType::Payment {
                    continue;
                }
                let ours = posted_by_direction_two(payment, &settings.posted_marker, &records);
                let handling = classify_alma_payment(billed, ours, settings.desk_payments);
                let amount = payment.amount.abs();
                let key = payment.key();
                if handling.is_desk_payment() {
                    self.counts.desk_payments_on_billed_fines += 1;
                    let action = match handling {
                        PaymentHandling::ReverseDesk => {
                            "a reversal goes to the Bursar with the next export"
                        }
                        _ => {
                            "the Bursar still holds the charge: tell the Bursar, or set desk_payments = \"reverse\""
                        }
                    };
                    problems.push(Problem {
                        subject: ledger.fine.id.to_string(),
                        message: format!(
                            "payment {key} of {amount} was made in Alma, not through the Bursar, on a fine already billed; {action}"
                        ),
                    });
                }
                match handling {
                    PaymentHandling::KeepPending | PaymentHandling::ReverseDesk => {
                        self.counts.payments_left_pending += 1;
                    }
                    PaymentHandling::ApplyToLedger | PaymentHandling::ApplyAndReportDesk => {
                        let owed: Vec<LineOwed> = line_states(&ledger.lines, &ledger.bursar)
                            .into_iter()
                            .map(|line| LineOwed {
                                reference: line.reference,
                                owed: line.balance,
                            })
                            .collect();
                        let applied = apply_payment_to_ledger(amount, &owed);
                        for (reference, part) in applied.applied {
                            let n = next_bursar_number(&ledger.bursar, &reference);
                            ledger.bursar.push(BursarTransaction {
                                reference,
                                n,
                                kind: BursarTxnType::Payment,
                                amount: -part,
                                created_at: self.now,
                                export: ExportState::NotExported,
                            });
                        }
                        if applied.overpayment.is_positive() {
                            self.counts.overpayments += 1;
                            problems.push(Problem {
                                subject: ledger.fine.id.to_string(),
                                message: format!(
                                    "payment {key} of {amount} is {} more than the Bursar was owed; check for a refund",
                                    applied.overpayment
                                ),
                            });
                        }
                        ledger.alma[index].pending = false;
                        self.counts.payments_to_ledger += 1;
                    }
                }
            }
        }
        self.problems.extend(problems);
    }

    /// The difference between the working ledgers and what was stored.
    fn finish(self) -> ImportPlan {
        let mut changes = ChangeSet {
            patrons: self.patrons,
            ..ChangeSet::default()
        };
        for (id, ledger) in self.ledgers {
            let before = self.original.get(&id).copied();
            if before.is_none_or(|b| b.fine != ledger.fine) {
                changes.fines.push(ledger.fine.clone());
            }
            let old_alma = |t: &AlmaTransaction| {
                before.and_then(|b| b.alma.iter().find(|o| o.key() == t.key()))
            };
            changes.alma_transactions.extend(
                ledger
                    .alma
                    .iter()
                    .filter(|t| old_alma(t) != Some(*t))
                    .cloned(),
            );
            let old_line = |l: &BursarAccountLine| {
                before.and_then(|b| b.lines.iter().find(|o| o.reference == l.reference))
            };
            changes.account_lines.extend(
                ledger
                    .lines
                    .iter()
                    .filter(|l| old_line(l) != Some(*l))
                    .cloned(),
            );
            let old_bursar = |t: &BursarTransaction| {
                before.and_then(|b| {
                    b.bursar
                        .iter()
                        .find(|o| o.reference == t.reference && o.n == t.n)
                })
            };
            changes.bursar_transactions.extend(
                ledger
                    .bursar
                    .iter()
                    .filter(|t| old_bursar(t) != Some(*t))
                    .cloned(),
            );
        }
        ImportPlan {
            changes,
            counts: self.counts,
            problems: self.problems,
        }
    }
}

/// The number of a line's next Bursar transaction.
pub fn next_bursar_number(transactions: &[BursarTransaction], reference: &FineId) -> u32 {
    transactions
        .iter()
        .filter(|t| &t.reference == reference)
        .map(|t| t.n)
        .max()
        .unwrap_or(0)
        + 1
}

/// The sum of a ledger's Alma transactions (A of SPEC 5.1).
pub fn alma_sum(ledger: &FineLedger) -> Money {
    ledger.alma.iter().map(|t| t.amount).sum()
}
