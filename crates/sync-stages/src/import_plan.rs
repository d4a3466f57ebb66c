//! What an import merges (SPEC 4.1-4.7), as a pure function.
//!
//! The import stage fetches the three reports completely and loads from the
//! store every record they touch; [`plan_import`] then merges them in the
//! spec's order (patrons, fines, credit fines, transactions, payments) into
//! a working copy of those ledgers, and returns the difference as one
//! [`ChangeSet`] with counts and every problem by id. Running the same
//! import twice plans nothing the second time: merging is idempotent, so
//! an overlapping since-date costs API calls and nothing else.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
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
/// the Bursar Payment transactions it creates. Takes both by value and
/// moves their records into the change set: a first import holds a whole
/// institution, and copies of it would triple the memory it needs.
pub fn plan_import(
    reports: Reports,
    known: KnownState,
    settings: &ImportSettings,
    now: DateTime<Utc>,
) -> ImportPlan {
    let Reports {
        fines,
        transactions,
        balances,
    } = reports;
    let mut merge = Merge::new(known, settings, now);
    merge.patrons(balances);
    // Room for every ledger the merge can add, taken once: grown by
    // doubling, a copy of 200,000 ledgers would be made at the peak.
    let unknown_fines = fines
        .iter()
        .filter(|fine| !merge.position.contains_key(&fine.id))
        .count();
    merge.ledgers.reserve_exact(unknown_fines);
    // Credit fines are few: taken out in place rather than partitioning
    // the report into two new vectors.
    let mut fines = fines;
    let credit_fines: Vec<Fine> = fines
        .extract_if(.., |f| f.fee_type == FeeType::Credit)
        .collect();
    let rows_of_fine = rows_of_fine(&transactions);
    let mut rows_used_as_openings = BTreeSet::new();
    let expected_rows = merge.fines(
        fines,
        &transactions,
        &rows_of_fine,
        &mut rows_used_as_openings,
    );
    let credit_ids: BTreeSet<FineId> = credit_fines.iter().map(|f| f.id.clone()).collect();
    merge.credit_fines(credit_fines);
    let late_openings = merge.late_openings(&transactions, &rows_of_fine);
    drop(rows_of_fine);
    merge.transactions(
        transactions,
        &rows_used_as_openings,
        &late_openings,
        &credit_ids,
        &expected_rows,
    );
    drop(expected_rows);
    merge.sort_by_fine();
    merge.payments();
    merge.finish()
}

/// The indexes of each fine's rows, in report order.
fn rows_of_fine(rows: &[ReportedTransaction]) -> BTreeMap<&FineId, Vec<usize>> {
    let mut of_fine: BTreeMap<&FineId, Vec<usize>> = BTreeMap::new();
    for (index, row) in rows.iter().enumerate() {
        of_fine.entry(&row.fine_id).or_default().push(index);
    }
    of_fine
}

struct Merge<'a> {
    settings: &'a ImportSettings,
    now: DateTime<Utc>,
    known_patrons: Vec<Patron>,
    credit_sources: BTreeSet<FineId>,
    /// The stored payment records, by the fine they were matched to.
    payment_records: BTreeMap<FineId, Vec<PaymentRecord>>,
    /// The fines whose ledgers the store holds.
    stored: HashSet<FineId>,
    /// Stored ledgers as they were before the merge first changed them
    /// (see [`keep_before_image`]): a full re-import holds every stored
    /// ledger, and a copy of each to compare with would double that.
    before: HashMap<FineId, FineLedger>,
    /// The working copy: the stored ledgers and the new fines, merged. A
    /// vector rather than a map: at 200,000 ledgers a map's half-full
    /// nodes cost twice the ledgers' own size, and the new ones become
    /// the change set without a copy (see `finish`).
    ledgers: Vec<FineLedger>,
    /// Where each fine's working ledger is in `ledgers`.
    position: HashMap<FineId, usize>,
    patrons: Vec<Patron>,
    counts: ImportCounts,
    problems: Vec<Problem>,
}

impl<'a> Merge<'a> {
    fn new(known: KnownState, settings: &'a ImportSettings, now: DateTime<Utc>) -> Self {
        let KnownState {
            patrons,
            ledgers,
            credit_sources,
            payment_records,
        } = known;
        let mut ledgers = ledgers;
        ledgers.sort_unstable_by(|a, b| a.fine.id.cmp(&b.fine.id));
        // A fine on a credit's loan may also be one the reports mention.
        ledgers.dedup_by(|a, b| a.fine.id == b.fine.id);
        let stored = ledgers
            .iter()
            .map(|ledger| ledger.fine.id.clone())
            .collect();
        let position = ledgers
            .iter()
            .enumerate()
            .map(|(index, ledger)| (ledger.fine.id.clone(), index))
            .collect();
        let mut records_of_fine: BTreeMap<FineId, Vec<PaymentRecord>> = BTreeMap::new();
        for record in payment_records {
            if let Some(fine) = record.fine_id.clone() {
                records_of_fine.entry(fine).or_default().push(record);
            }
        }
        Merge {
            settings,
            now,
            known_patrons: patrons,
            credit_sources,
            payment_records: records_of_fine,
            stored,
            before: HashMap::new(),
            ledgers,
            position,
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

    /// A fine's working ledger, to be changed.
    fn edit_ledger(&mut self, id: &FineId) -> Option<&mut FineLedger> {
        let ledger = working_ledger(&self.position, &mut self.ledgers, id)?;
        keep_before_image(&self.stored, &mut self.before, ledger);
        Some(ledger)
    }

    /// A stored ledger as the store holds it, whatever the merge changed.
    fn stored_ledger(&self, id: &FineId) -> Option<&FineLedger> {
        if !self.stored.contains(id) {
            return None;
        }
        self.before.get(id).or_else(|| self.ledger(id))
    }

    fn ledger(&self, id: &FineId) -> Option<&FineLedger> {
        self.position
            .get(id)
            .and_then(|&index| self.ledgers.get(index))
    }

    fn insert_ledger(&mut self, ledger: FineLedger) {
        self.position
            .insert(ledger.fine.id.clone(), self.ledgers.len());
        self.ledgers.push(ledger);
    }

    /// Puts the working ledgers in fine id order, the order in which
    /// payments are worked and changes listed; ends lookups by id.
    fn sort_by_fine(&mut self) {
        self.position = HashMap::new();
        self.ledgers
            .sort_unstable_by(|a, b| a.fine.id.cmp(&b.fine.id));
    }

    /// 4.1: insert new patrons, update changed balances; a patron missing
    /// from the report keeps its stored balance.
    fn patrons(&mut self, balances: Vec<Patron>) {
        let stored: BTreeMap<&PatronId, &Patron> =
            self.known_patrons.iter().map(|p| (&p.id, p)).collect();
        let mut seen = BTreeSet::new();
        for patron in balances {
            if seen.contains(&patron.id) {
                continue;
            }
            seen.insert(patron.id.clone());
            match stored.get(&patron.id) {
                None => {
                    self.counts.patrons_new += 1;
                    self.patrons.push(patron);
                }
                Some(old) if old.balance != patron.balance => {
                    self.counts.patrons_updated += 1;
                    self.patrons.push(patron);
                }
                Some(_) => self.counts.patrons_unchanged += 1,
            }
        }
    }

    /// 4.2, 4.3, 4.4: new fines with their opening transaction and account
    /// line; known fines updated, a changed original amount reported.
    /// Returns, by new fine id, how many report rows its ledger will hold.
    fn fines(
        &mut self,
        fines: Vec<Fine>,
        rows: &[ReportedTransaction],
        rows_of_fine: &BTreeMap<&FineId, Vec<usize>>,
        used_as_openings: &mut BTreeSet<usize>,
    ) -> HashMap<FineId, usize> {
        let no_rows = Vec::new();
        let mut expected_rows = HashMap::new();
        for fine in drain_shrinking(fines) {
            if self.ignored(&fine.id) {
                self.counts.fines_ignored += 1;
                continue;
            }
            let Some(ledger) = working_ledger(&self.position, &mut self.ledgers, &fine.id) else {
                let own_rows = rows_of_fine.get(&fine.id).unwrap_or(&no_rows);
                let candidates: Vec<&ReportedTransaction> =
                    own_rows.iter().map(|&i| &rows[i]).collect();
                let (opening, lent) = opening_transaction(&fine, &candidates);
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
                // transactions() makes room for the rest once they come,
                // while the report's buffer shrinks.
                if own_rows.len() > 1 {
                    expected_rows.insert(fine.id.clone(), own_rows.len());
                }
                self.insert_ledger(FineLedger {
                    fine,
                    alma: vec![opening],
                    lines: vec![line],
                    bursar: Vec::new(),
                });
                self.counts.fines_new += 1;
                continue;
            };
            let mut updated = fine;
            let stored_original = ledger.fine.original_amount;
            if updated.original_amount != stored_original {
                let message = format!(
                    "original amount changed in Alma from {stored_original} to {}; not applied (a fine changes only through its transactions): check the fine in Alma",
                    updated.original_amount
                );
                updated.original_amount = stored_original;
                self.counts.original_amount_changes += 1;
                self.problems.push(Problem {
                    subject: updated.id.to_string(),
                    message,
                });
            }
            if updated == ledger.fine {
                self.counts.fines_unchanged += 1;
            } else {
                keep_before_image(&self.stored, &mut self.before, ledger);
                ledger.fine = updated;
                self.counts.fines_updated += 1;
            }
        }
        expected_rows
    }

    /// 4.5: credit fines, distributed over the fines of their loan.
    fn credit_fines(&mut self, credits: Vec<Fine>) {
        let mut fines_of_loan: BTreeMap<LoanId, Vec<FineId>> = BTreeMap::new();
        for ledger in &self.ledgers {
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
        // A credit is shared over its loan's fines in fine id order.
        for fines in fines_of_loan.values_mut() {
            fines.sort_unstable();
        }
        for credit in credits {
            if self.ignored(&credit.id) {
                self.counts.fines_ignored += 1;
                continue;
            }
            if self.position.contains_key(&credit.id) || self.credit_sources.contains(&credit.id) {
                self.counts.credits_already_known += 1;
                continue;
            }
            let Some(loan) = &credit.loan_id else {
                let (opening, _) = opening_transaction::<ReportedTransaction>(&credit, &[]);
                self.insert_ledger(FineLedger {
                    fine: credit,
                    alma: vec![opening],
                    lines: Vec::new(),
                    bursar: Vec::new(),
                });
                self.counts.credits_standalone += 1;
                continue;
            };
            let candidates: Vec<CreditCandidate> = fines_of_loan
                .get(loan)
                .into_iter()
                .flatten()
                .filter_map(|id| self.ledger(id))
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
                        if let Some(target) = self.edit_ledger(&share.fine_id) {
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

    /// A fine stored earlier with a synthetic opening may now show its
    /// creation row; that row is the opening, not an increase. Returns the
    /// indexes of such rows.
    fn late_openings(
        &self,
        rows: &[ReportedTransaction],
        rows_of_fine: &BTreeMap<&FineId, Vec<usize>>,
    ) -> BTreeSet<usize> {
        let mut late_openings = BTreeSet::new();
        for (fine_id, indexes) in rows_of_fine {
            let Some(ledger) = self.stored_ledger(fine_id) else {
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
                    !ledger.alma.iter().any(|t| t.has_key(key))
                })
                .collect();
            let candidates: Vec<&ReportedTransaction> = unknown.iter().map(|&i| &rows[i]).collect();
            if let (_, Some(local)) = opening_transaction(&ledger.fine, &candidates) {
                late_openings.insert(unknown[local]);
            }
        }
        late_openings
    }

    /// 4.6: new transactions of known fines are stored pending; known ones
    /// get their note updated.
    fn transactions(
        &mut self,
        rows: Vec<ReportedTransaction>,
        used_as_openings: &BTreeSet<usize>,
        late_openings: &BTreeSet<usize>,
        credit_fines: &BTreeSet<FineId>,
        expected_rows: &HashMap<FineId, usize>,
    ) {
        for (index, row) in drain_shrinking(rows).enumerate() {
            if used_as_openings.contains(&index) || self.ignored(&row.fine_id) {
                continue;
            }
            let Some(ledger) = working_ledger(&self.position, &mut self.ledgers, &row.fine_id)
            else {
                if credit_fines.contains(&row.fine_id) || self.credit_sources.contains(&row.fine_id)
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
            match ledger.alma.iter().position(|t| t.has_key(row.id.as_str())) {
                Some(known) if ledger.alma[known].note != row.note => {
                    keep_before_image(&self.stored, &mut self.before, ledger);
                    ledger.alma[known].note = row.note;
                    self.counts.transactions_updated += 1;
                }
                Some(_) => self.counts.transactions_unchanged += 1,
                None => {
                    keep_before_image(&self.stored, &mut self.before, ledger);
                    if ledger.alma.len() == ledger.alma.capacity() {
                        // A new fine's rows: room for all of them at once.
                        let expected = expected_rows.get(&row.fine_id).copied().unwrap_or(0);
                        ledger
                            .alma
                            .reserve_exact(expected.saturating_sub(ledger.alma.len()).max(1));
                    }
                    ledger.alma.push(row.into_pending());
                    self.counts.transactions_new += 1;
                }
            }
        }
    }

    /// 4.7: pending Alma payments onto the Bursar ledger.
    fn payments(&mut self) {
        let settings = self.settings;
        let mut problems = Vec::new();
        let no_records = Vec::new();
        for ledger in &mut self.ledgers {
            let billed = ledger.bursar.iter().any(|t| t.kind == BursarTxnType::Fine);
            let records = self
                .payment_records
                .get(&ledger.fine.id)
                .unwrap_or(&no_records);
            for index in 0..ledger.alma.len() {
                let payment = &ledger.alma[index];
                if !payment.pending || payment.kind != AlmaTxnType::Payment {
                    continue;
                }
                let ours = posted_by_direction_two(payment, &settings.posted_marker, records);
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
                        keep_before_image(&self.stored, &mut self.before, ledger);
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

    /// The difference between the working ledgers and what was stored,
    /// moved out of the working copy.
    fn finish(self) -> ImportPlan {
        let Merge {
            stored,
            mut before,
            ledgers: mut new_ledgers,
            patrons,
            counts,
            problems,
            ..
        } = self;
        let mut changes = ChangeSet {
            patrons,
            ..ChangeSet::default()
        };
        for ledger in new_ledgers.extract_if(.., |ledger| stored.contains(&ledger.fine.id)) {
            // A stored ledger the merge never changed has nothing to write.
            let Some(before) = before.remove(&ledger.fine.id) else {
                continue;
            };
            let FineLedger {
                fine,
                alma,
                lines,
                bursar,
            } = ledger;
            if before.fine != fine {
                changes.fines.push(fine);
            }
            changes.alma_transactions.extend(
                alma.into_iter()
                    .filter(|t| before.alma.iter().find(|o| o.same_key(t)) != Some(t)),
            );
            changes.account_lines.extend(
                lines.into_iter().filter(|l| {
                    before.lines.iter().find(|o| o.reference == l.reference) != Some(l)
                }),
            );
            changes
                .bursar_transactions
                .extend(bursar.into_iter().filter(|t| {
                    before
                        .bursar
                        .iter()
                        .find(|o| o.reference == t.reference && o.n == t.n)
                        != Some(t)
                }));
        }
        // What is left is new to the store: its records go whole, in the
        // vector they were merged in.
        new_ledgers.shrink_to_fit();
        changes.new_ledgers = new_ledgers;
        ImportPlan {
            changes,
            counts,
            problems,
        }
    }
}

/// Keeps a stored ledger's before-image, once, ahead of its first change:
/// `finish` writes what differs from it. New ledgers are written whole.
fn keep_before_image(
    stored: &HashSet<FineId>,
    before: &mut HashMap<FineId, FineLedger>,
    ledger: &FineLedger,
) {
    if stored.contains(&ledger.fine.id) && !before.contains_key(&ledger.fine.id) {
        before.insert(ledger.fine.id.clone(), ledger.clone());
    }
}

/// A fine's working ledger; a free function so that the merge's counts
/// and problems can be written while it is borrowed.
fn working_ledger<'l>(
    position: &HashMap<FineId, usize>,
    ledgers: &'l mut [FineLedger],
    id: &FineId,
) -> Option<&'l mut FineLedger> {
    position.get(id).and_then(|&index| ledgers.get_mut(index))
}

/// The items of `items` in order, by value, the vector's buffer shrinking
/// as they are taken: a report's million rows are moved into ledgers one
/// by one, and holding the emptied buffer beside them was the import's
/// memory peak.
fn drain_shrinking<T>(mut items: Vec<T>) -> impl Iterator<Item = T> {
    items.reverse();
    std::iter::from_fn(move || {
        let item = items.pop();
        if items.len() < items.capacity() / 2 {
            items.shrink_to_fit();
        }
        item
    })
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
