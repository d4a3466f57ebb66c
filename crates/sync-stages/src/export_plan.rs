//! What an export decides and commits (SPEC 5.1-5.2), as pure functions.
//!
//! An export is two committed steps, each all-or-nothing:
//! 1. [`plan_decisions`]: for every fine with pending Alma transactions,
//!    the decision of 5.1 becomes pending-export Bursar transactions and
//!    the fine's Alma transactions stop being pending; quarantined fines
//!    are reported and left pending. Each slice of fines is committed on
//!    its own (a fine's decision is whole within one), so a run stopped
//!    between slices leaves decided fines decided and the rest pending.
//! 2. [`plan_commit`]: every pending-export Bursar transaction goes into
//!    one new export; each charge's line gets its billing if it has none.
//!
//! The files are then rendered from the committed export by
//! [`export_lines`], which reads nothing that a later run can change: a
//! charge's dates and term come from the export's own billing date, a
//! reversal's term code from its line's first charge (set once, never
//! changed). So a re-render of an export gives the same bytes.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use fine_store::{ChangeSet, ExportCommit, ExportItem, FineLedger};
use sync_core::records::{Billing, BursarTransaction, Export, ExportState, FineId};
use sync_core::rules::calendar::{DueDateRule, TermRule};
use sync_core::rules::export::{ExportDecision, QuarantineReason, decide_export, line_states};

use crate::import_plan::{Problem, alma_sum, next_bursar_number};
use bursar_format::{BursarLine, FileSide, Layout};

/// The billing calendar of the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BillingRules {
    pub due_date: DueDateRule,
    pub term: TermRule,
}

impl BillingRules {
    pub fn billing(&self, billing_date: NaiveDate) -> Billing {
        Billing {
            billing_date,
            due_date: self.due_date.due_date(billing_date),
            term_code: self.term.term_code(billing_date),
        }
    }
}

/// The decisions of one export run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecisionPlan {
    pub changes: ChangeSet,
    pub charges: u64,
    pub reversals: u64,
    pub nothing_to_send: u64,
    pub quarantined: Vec<(FineId, QuarantineReason)>,
}

impl DecisionPlan {
    pub fn problems(&self) -> Vec<Problem> {
        self.quarantined
            .iter()
            .map(|(id, reason)| Problem {
                subject: id.to_string(),
                message: format!(
                    "quarantined: {reason}; its transactions stay pending and it is retried on every run"
                ),
            })
            .collect()
    }
}

/// Step 1: the decision of SPEC 5.1 for each ledger (fines with pending
/// Alma transactions). `now` stamps the new Bursar transactions.
pub fn plan_decisions(ledgers: &[FineLedger], now: DateTime<Utc>) -> DecisionPlan {
    let mut plan = DecisionPlan::default();
    for ledger in ledgers {
        let lines = line_states(&ledger.lines, &ledger.bursar);
        let decision = decide_export(ledger.fine.original_amount, alma_sum(ledger), &lines);
        match &decision {
            ExportDecision::Quarantine(reason) => {
                plan.quarantined
                    .push((ledger.fine.id.clone(), reason.clone()));
                continue;
            }
            ExportDecision::NothingToSend => plan.nothing_to_send += 1,
            ExportDecision::Charge { .. } => plan.charges += 1,
            ExportDecision::Reversal { .. } => plan.reversals += 1,
        }
        let mut bursar = ledger.bursar.clone();
        for (reference, kind, amount) in decision.bursar_entries() {
            let n = next_bursar_number(&bursar, &reference);
            let transaction = BursarTransaction {
                reference,
                n,
                kind,
                amount,
                created_at: now,
                export: ExportState::Pending,
            };
            plan.changes.bursar_transactions.push(transaction.clone());
            bursar.push(transaction);
        }
        plan.changes
            .reconciled_alma
            .extend(ledger.alma.iter().filter(|t| t.pending).map(|t| t.key()));
    }
    plan
}

/// Why an export cannot be committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    #[error(
        "fine {reference}: a reversal of {amount} is pending export but its account line was never charged (no billing date or term code); the store is inconsistent: look the fine up with lookup-fine"
    )]
    ReversalWithoutBilling {
        reference: FineId,
        amount: sync_core::Money,
    },
    #[error("the bursar layout cannot name the export's files: {0}")]
    FileName(String),
}

/// Step 2: all pending-export transactions into export `seq`, billed on
/// `run_date`. None when nothing is pending: no export, no file.
pub fn plan_commit(
    items: &[ExportItem],
    seq: u64,
    run_date: NaiveDate,
    now: DateTime<Utc>,
    rules: &BillingRules,
    layout: &Layout,
) -> Result<Option<ExportCommit>, CommitError> {
    if items.is_empty() {
        return Ok(None);
    }
    let mut billed: BTreeMap<FineId, sync_core::records::BursarAccountLine> = BTreeMap::new();
    for item in items.iter().filter(|i| i.transaction.amount.is_positive()) {
        if item.line.billing.is_none() {
            let mut line = item.line.clone();
            line.billing = Some(rules.billing(run_date));
            billed.insert(line.reference.clone(), line);
        }
    }
    for item in items.iter().filter(|i| !i.transaction.amount.is_positive()) {
        let reference = &item.transaction.reference;
        if item.line.billing.is_none() && !billed.contains_key(reference) {
            return Err(CommitError::ReversalWithoutBilling {
                reference: reference.clone(),
                amount: item.transaction.amount,
            });
        }
    }
    let has = |charge: bool| {
        items
            .iter()
            .any(|i| i.transaction.amount.is_positive() == charge)
    };
    let name = |side| {
        layout
            .file_name(side, seq, run_date)
            .map_err(|e| CommitError::FileName(e.to_string()))
    };
    let charges_file = if has(true) {
        Some(name(FileSide::Charges)?)
    } else {
        None
    };
    let reversals_file = if has(false) {
        Some(name(FileSide::Reversals)?)
    } else {
        None
    };
    Ok(Some(ExportCommit {
        export: Export {
            seq,
            created_at: now,
            billing_date: run_date,
            charges_file,
            reversals_file,
            line_count: items.len() as u64,
            sent_at: None,
        },
        billed_lines: billed.into_values().collect(),
        transactions: items
            .iter()
            .map(|i| (i.transaction.reference.clone(), i.transaction.n))
            .collect(),
    }))
}

/// The file lines of a committed export, charges and reversals, in the
/// order of `items` (reference, then creation).
pub fn export_lines(
    export: &Export,
    items: &[ExportItem],
    rules: &BillingRules,
) -> Result<(Vec<BursarLine>, Vec<BursarLine>), CommitError> {
    let own_billing = rules.billing(export.billing_date);
    let mut charges = Vec::new();
    let mut reversals = Vec::new();
    for item in items {
        let transaction = &item.transaction;
        let reversal = !transaction.amount.is_positive();
        let term_code = if reversal {
            match &item.line.billing {
                Some(billing) => billing.term_code.clone(),
                None => {
                    return Err(CommitError::ReversalWithoutBilling {
                        reference: transaction.reference.clone(),
                        amount: transaction.amount,
                    });
                }
            }
        } else {
            own_billing.term_code.clone()
        };
        let line = BursarLine {
            patron_id: item.line.patron_id.clone(),
            account: item.line.account.clone(),
            amount: transaction.amount,
            due_date: (!reversal).then_some(own_billing.due_date),
            billing_date: (!reversal).then_some(own_billing.billing_date),
            term_code,
            reversal,
            reference: transaction.reference.clone(),
        };
        if reversal {
            reversals.push(line);
        } else {
            charges.push(line);
        }
    }
    Ok((charges, reversals))
}
