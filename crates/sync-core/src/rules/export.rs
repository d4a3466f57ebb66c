//! The per-fine export decision (SPEC 5.1) and reversal allocation.
//!
//! For a fine with pending Alma transactions, A is what Alma says the fine
//! is worth now, B what the Bursar has been told, and D = A - B what the
//! Bursar must be told next: a charge of D, a reversal of |D|, or nothing.
//! Data that no honest history produces (sums above the original amount, a
//! billed fine that grew, a reversal with nowhere to go) quarantines that
//! one fine: it is reported and retried, and every other fine goes on.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::money::Money;
use crate::records::{BursarAccountLine, BursarTransaction, BursarTxnType, FineId};

/// An account line's standing with the Bursar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineState {
    pub reference: FineId,
    /// Sum of the line's Bursar transactions, exported or pending.
    pub balance: Money,
    /// Sum of the line's Bursar Fine transactions: what it was charged. A
    /// Credit may take the line down to minus this, never further.
    pub charged: Money,
}

/// The states of `lines`, from their Bursar transactions.
pub fn line_states(
    lines: &[BursarAccountLine],
    transactions: &[BursarTransaction],
) -> Vec<LineState> {
    lines
        .iter()
        .map(|line| {
            let of_line = || {
                transactions
                    .iter()
                    .filter(|t| t.reference == line.reference)
            };
            LineState {
                reference: line.reference.clone(),
                balance: of_line().map(|t| t.amount).sum(),
                charged: of_line()
                    .filter(|t| t.kind == BursarTxnType::Fine)
                    .map(|t| t.amount)
                    .sum(),
            }
        })
        .collect()
}

/// Why a fine is held back from the export, in the order the rules are
/// tried (the first that applies is reported).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuarantineReason {
    /// |A| is above the fine's original amount.
    AlmaSumAboveOriginal { alma: Money, original: Money },
    /// |B| is above the fine's original amount.
    BursarSumAboveOriginal { bursar: Money, original: Money },
    /// D > 0 while B != 0: a fine already billed grew.
    BilledFineGrew { alma: Money, bursar: Money },
    /// The reversal is larger than its lines can take.
    ReversalUnallocatable { reversal: Money, allocatable: Money },
    /// A charge is due but the fine has no Bursar account line (a
    /// standalone credit fine).
    NoAccountLine { charge: Money },
}

impl fmt::Display for QuarantineReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuarantineReason::AlmaSumAboveOriginal { alma, original } => write!(
                f,
                "Alma transactions sum to {alma}, more than the original amount {original}"
            ),
            QuarantineReason::BursarSumAboveOriginal { bursar, original } => write!(
                f,
                "Bursar transactions sum to {bursar}, more than the original amount {original}"
            ),
            QuarantineReason::BilledFineGrew { alma, bursar } => write!(
                f,
                "fine already billed {bursar} grew to {alma} in Alma; bill the increase by hand or correct it in Alma"
            ),
            QuarantineReason::ReversalUnallocatable {
                reversal,
                allocatable,
            } => write!(
                f,
                "reversal of {reversal} exceeds the {allocatable} its account lines can take"
            ),
            QuarantineReason::NoAccountLine { charge } => {
                write!(
                    f,
                    "charge of {charge} due but the fine has no Bursar account line"
                )
            }
        }
    }
}

/// A reversal's type: Waive when Alma's sum is still >= 0, else Credit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReversalKind {
    Waive,
    Credit,
}

impl From<ReversalKind> for BursarTxnType {
    fn from(kind: ReversalKind) -> BursarTxnType {
        match kind {
            ReversalKind::Waive => BursarTxnType::Waive,
            ReversalKind::Credit => BursarTxnType::Credit,
        }
    }
}

/// What the export does with one fine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportDecision {
    Quarantine(QuarantineReason),
    /// D = 0.
    NothingToSend,
    /// D > 0: a pending-export Bursar Fine of `amount` on `reference`.
    Charge {
        reference: FineId,
        amount: Money,
    },
    /// D < 0: reversals whose magnitudes sum to |D|, one per line.
    Reversal {
        kind: ReversalKind,
        allocations: Vec<(FineId, Money)>,
    },
}

impl ExportDecision {
    /// The new Bursar transactions as (reference, type, signed amount).
    /// Their sum is D; empty for a quarantine or nothing to send.
    pub fn bursar_entries(&self) -> Vec<(FineId, BursarTxnType, Money)> {
        match self {
            ExportDecision::Quarantine(_) | ExportDecision::NothingToSend => Vec::new(),
            ExportDecision::Charge { reference, amount } => {
                vec![(reference.clone(), BursarTxnType::Fine, *amount)]
            }
            ExportDecision::Reversal { kind, allocations } => allocations
                .iter()
                .map(|(reference, amount)| (reference.clone(), (*kind).into(), -*amount))
                .collect(),
        }
    }

    /// Whether the fine's pending Alma transactions are settled by it.
    pub fn settles(&self) -> bool {
        !matches!(self, ExportDecision::Quarantine(_))
    }
}

/// Decides what the Bursar must be told about one fine. `alma_sum` is the
/// sum of all its Alma transactions; `lines` its account lines in order.
pub fn decide_export(original: Money, alma_sum: Money, lines: &[LineState]) -> ExportDecision {
    let bursar_sum: Money = lines.iter().map(|l| l.balance).sum();
    let original = original.abs();
    let quarantine = ExportDecision::Quarantine;
    if alma_sum.abs() > original {
        return quarantine(QuarantineReason::AlmaSumAboveOriginal {
            alma: alma_sum,
            original,
        });
    }
    if bursar_sum.abs() > original {
        return quarantine(QuarantineReason::BursarSumAboveOriginal {
            bursar: bursar_sum,
            original,
        });
    }
    let difference = alma_sum - bursar_sum;
    if difference.is_positive() && !bursar_sum.is_zero() {
        return quarantine(QuarantineReason::BilledFineGrew {
            alma: alma_sum,
            bursar: bursar_sum,
        });
    }
    if difference.is_zero() {
        return ExportDecision::NothingToSend;
    }
    if difference.is_positive() {
        return match lines.first() {
            Some(line) => ExportDecision::Charge {
                reference: line.reference.clone(),
                amount: difference,
            },
            None => quarantine(QuarantineReason::NoAccountLine { charge: difference }),
        };
    }
    let kind = if alma_sum.is_negative() {
        ReversalKind::Credit
    } else {
        ReversalKind::Waive
    };
    match allocate_reversal(difference.abs(), kind, lines) {
        Ok(allocations) => ExportDecision::Reversal { kind, allocations },
        Err(allocatable) => quarantine(QuarantineReason::ReversalUnallocatable {
            reversal: difference.abs(),
            allocatable,
        }),
    }
}

/// Spreads a reversal of `amount` (a magnitude) over `lines`: lines with a
/// positive balance are brought down to zero first, in order; a Credit may
/// then take a line below zero, to at most minus what it was charged. One
/// allocation per line. On failure, returns what could be allocated.
pub fn allocate_reversal(
    amount: Money,
    kind: ReversalKind,
    lines: &[LineState],
) -> Result<Vec<(FineId, Money)>, Money> {
    let mut taken: Vec<Money> = vec![Money::ZERO; lines.len()];
    let mut left = amount.abs();
    let mut take = |index: usize, room: Money, left: &mut Money| {
        if room.is_positive() && left.is_positive() {
            let amount = room.min(*left);
            taken[index] += amount;
            *left -= amount;
        }
    };
    for (index, line) in lines.iter().enumerate() {
        take(index, line.balance, &mut left);
    }
    if kind == ReversalKind::Credit {
        for (index, line) in lines.iter().enumerate() {
            // Room below zero: down to -charged from wherever phase one
            // left the line (which is zero, or its balance if negative).
            let balance_now = line.balance.min(Money::ZERO);
            take(index, balance_now + line.charged, &mut left);
        }
    }
    if left.is_positive() {
        return Err(amount.abs() - left);
    }
    Ok(lines
        .iter()
        .zip(taken)
        .filter(|(_, amount)| amount.is_positive())
        .map(|(line, amount)| (line.reference.clone(), amount))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(cents: i64) -> Money {
        Money::from_cents(cents)
    }

    fn line(reference: &str, balance: i64, charged: i64) -> LineState {
        LineState {
            reference: FineId::new(reference),
            balance: m(balance),
            charged: m(charged),
        }
    }

    fn reversal(kind: ReversalKind, allocations: &[(&str, i64)]) -> ExportDecision {
        ExportDecision::Reversal {
            kind,
            allocations: allocations
                .iter()
                .map(|(r, c)| (FineId::new(*r), m(*c)))
                .collect(),
        }
    }

    #[test]
    fn decision_table() {
        use QuarantineReason::*;
        use ReversalKind::*;
        let charge = |amount| ExportDecision::Charge {
            reference: FineId::new("F1"),
            amount: m(amount),
        };
        let cases: Vec<(&str, i64, i64, Vec<LineState>, ExportDecision)> = vec![
            (
                "new fine: charge it all",
                1500,
                1500,
                vec![line("F1", 0, 0)],
                charge(1500),
            ),
            (
                "paid in part before billing: charge the rest",
                1500,
                1000,
                vec![line("F1", 0, 0)],
                charge(1000),
            ),
            (
                "paid in full at the desk before billing: nothing",
                1500,
                0,
                vec![line("F1", 0, 0)],
                ExportDecision::NothingToSend,
            ),
            (
                "billed and unchanged: nothing",
                1500,
                1500,
                vec![line("F1", 1500, 1500)],
                ExportDecision::NothingToSend,
            ),
            (
                "waived after billing: Waive reversal",
                1500,
                0,
                vec![line("F1", 1500, 1500)],
                reversal(Waive, &[("F1", 1500)]),
            ),
            (
                "partly waived after billing",
                1500,
                500,
                vec![line("F1", 1500, 1500)],
                reversal(Waive, &[("F1", 1000)]),
            ),
            (
                "credited below zero: Credit down to minus the charge",
                1500,
                -500,
                vec![line("F1", 1500, 1500)],
                reversal(Credit, &[("F1", 2000)]),
            ),
            (
                "credited to minus the original",
                1500,
                -1500,
                vec![line("F1", 1500, 1500)],
                reversal(Credit, &[("F1", 3000)]),
            ),
            (
                "Alma sum above original",
                1500,
                1600,
                vec![line("F1", 0, 0)],
                ExportDecision::Quarantine(AlmaSumAboveOriginal {
                    alma: m(1600),
                    original: m(1500),
                }),
            ),
            (
                "Alma sum below minus original",
                1500,
                -1600,
                vec![line("F1", 1500, 1500)],
                ExportDecision::Quarantine(AlmaSumAboveOriginal {
                    alma: m(-1600),
                    original: m(1500),
                }),
            ),
            (
                "Bursar sum above original",
                1500,
                1500,
                vec![line("F1", 1700, 1700)],
                ExportDecision::Quarantine(BursarSumAboveOriginal {
                    bursar: m(1700),
                    original: m(1500),
                }),
            ),
            (
                "Alma's rule is reported first",
                1500,
                1600,
                vec![line("F1", 1700, 1700)],
                ExportDecision::Quarantine(AlmaSumAboveOriginal {
                    alma: m(1600),
                    original: m(1500),
                }),
            ),
            (
                "a billed fine grew",
                1500,
                1500,
                vec![line("F1", 1000, 1000)],
                ExportDecision::Quarantine(BilledFineGrew {
                    alma: m(1500),
                    bursar: m(1000),
                }),
            ),
            (
                "reversal with a line that was never charged",
                1500,
                -200,
                vec![line("F1", 0, 0)],
                ExportDecision::Quarantine(ReversalUnallocatable {
                    reversal: m(200),
                    allocatable: m(0),
                }),
            ),
            (
                "charge without an account line",
                1500,
                1500,
                vec![],
                ExportDecision::Quarantine(NoAccountLine { charge: m(1500) }),
            ),
        ];
        for (name, original, alma, lines, expected) in cases {
            assert_eq!(
                decide_export(m(original), m(alma), &lines),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn allocation_table() {
        use ReversalKind::*;
        type Case = (
            &'static str,
            i64,
            ReversalKind,
            Vec<LineState>,
            Result<Vec<(FineId, Money)>, Money>,
        );
        let cases: Vec<Case> = vec![
            (
                "positive lines go to zero first, in order",
                1200,
                Waive,
                vec![line("A", 500, 500), line("B", 1000, 1000)],
                Ok(vec![(FineId::new("A"), m(500)), (FineId::new("B"), m(700))]),
            ),
            (
                "a Waive never takes a line below zero",
                1600,
                Waive,
                vec![line("A", 500, 500), line("B", 1000, 1000)],
                Err(m(1500)),
            ),
            (
                "a Credit goes below zero only after every line is at zero",
                1800,
                Credit,
                vec![line("A", 500, 500), line("B", 1000, 1000)],
                Ok(vec![
                    (FineId::new("A"), m(800)),
                    (FineId::new("B"), m(1000)),
                ]),
            ),
            (
                "a Credit stops at minus the charge",
                3100,
                Credit,
                vec![line("A", 500, 500), line("B", 1000, 1000)],
                Err(m(3000)),
            ),
            (
                "a line already below zero has only its remaining room",
                200,
                Credit,
                vec![line("A", -300, 500)],
                Ok(vec![(FineId::new("A"), m(200))]),
            ),
            (
                "and not a cent more",
                201,
                Credit,
                vec![line("A", -300, 500)],
                Err(m(200)),
            ),
        ];
        for (name, amount, kind, lines, expected) in cases {
            assert_eq!(
                allocate_reversal(m(amount), kind, &lines),
                expected,
                "{name}"
            );
        }
    }
}
