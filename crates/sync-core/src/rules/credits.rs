//! Distributing a Credit-type fine over the fines of its loan (SPEC 4.5).
//!
//! Alma records some credits as a negative fine on the loan rather than as
//! a transaction on the fine it credits. The credit is spread over the
//! loan's fines as Credit transactions; it is never split across patrons
//! and never more than the fines can take, and when it cannot be placed
//! nothing is placed: the credit is reported and tried again next import.

use crate::money::Money;
use crate::records::{AlmaTransaction, AlmaTxnType, FineId, PatronId};

/// A fine on the credit's loan, with what it can still be credited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreditCandidate {
    pub fine_id: FineId,
    pub patron_id: PatronId,
    /// See [`creditable_amount`].
    pub creditable: Money,
}

/// The part of a credit that goes to one fine (a positive magnitude; the
/// Credit transaction carries it negated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreditShare {
    pub fine_id: FineId,
    pub amount: Money,
}

/// Why a credit could not be placed. The credit is reported; the rest of
/// the import goes on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CreditProblem {
    #[error("no fine is stored for the credit's loan")]
    NoFineOnLoan,
    #[error(
        "fine {fine_id} on the credit's loan belongs to patron {fine_patron}, the credit to {credit_patron}"
    )]
    PatronMismatch {
        fine_id: FineId,
        fine_patron: PatronId,
        credit_patron: PatronId,
    },
    #[error("credit of {credit} exceeds the {creditable} the loan's fines can be credited")]
    ExceedsCreditable { credit: Money, creditable: Money },
}

/// What a fine can be credited: the sum of its transactions other than
/// payments (payments are money received, not a charge to undo).
pub fn creditable_amount(transactions: &[AlmaTransaction]) -> Money {
    transactions
        .iter()
        .filter(|t| t.kind != AlmaTxnType::Payment)
        .map(|t| t.amount)
        .sum()
}

/// Spreads `credit` (its magnitude is used) over `candidates`: all of it
/// to the one fine whose creditable amount equals it exactly, otherwise
/// filling fines in descending order of creditable amount. Between equal
/// candidates the lower fine id wins. The shares always sum to the credit.
pub fn distribute_credit(
    credit_patron: &PatronId,
    credit: Money,
    candidates: &[CreditCandidate],
) -> Result<Vec<CreditShare>, CreditProblem> {
    let credit = credit.abs();
    if candidates.is_empty() {
        return Err(CreditProblem::NoFineOnLoan);
    }
    let mut ordered: Vec<&CreditCandidate> = candidates.iter().collect();
    ordered.sort_by(|a, b| {
        b.creditable
            .cmp(&a.creditable)
            .then_with(|| a.fine_id.cmp(&b.fine_id))
    });
    if let Some(stranger) = ordered.iter().find(|c| &c.patron_id != credit_patron) {
        return Err(CreditProblem::PatronMismatch {
            fine_id: stranger.fine_id.clone(),
            fine_patron: stranger.patron_id.clone(),
            credit_patron: credit_patron.clone(),
        });
    }
    let creditable: Money = ordered
        .iter()
        .map(|c| c.creditable)
        .filter(|amount| amount.is_positive())
        .sum();
    if credit > creditable {
        return Err(CreditProblem::ExceedsCreditable { credit, creditable });
    }
    if credit.is_zero() {
        return Ok(Vec::new());
    }
    // Lowest fine id among exact matches, because `ordered` is sorted by id
    // within equal amounts.
    if let Some(exact) = ordered.iter().find(|c| c.creditable == credit) {
        return Ok(vec![CreditShare {
            fine_id: exact.fine_id.clone(),
            amount: credit,
        }]);
    }
    let mut left = credit;
    let mut shares = Vec::new();
    for candidate in ordered {
        if left.is_zero() {
            break;
        }
        if !candidate.creditable.is_positive() {
            continue;
        }
        let amount = left.min(candidate.creditable);
        shares.push(CreditShare {
            fine_id: candidate.fine_id.clone(),
            amount,
        });
        left -= amount;
    }
    Ok(shares)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: &str, patron: &str, cents: i64) -> CreditCandidate {
        CreditCandidate {
            fine_id: FineId::new(id),
            patron_id: PatronId::new(patron),
            creditable: Money::from_cents(cents),
        }
    }

    fn shares(pairs: &[(&str, i64)]) -> Vec<CreditShare> {
        pairs
            .iter()
            .map(|(id, cents)| CreditShare {
                fine_id: FineId::new(*id),
                amount: Money::from_cents(*cents),
            })
            .collect()
    }

    #[test]
    fn distribution_table() {
        let p = PatronId::new("P1");
        type Case = (
            &'static str,
            i64,
            Vec<CreditCandidate>,
            Result<Vec<CreditShare>, CreditProblem>,
        );
        let cases: Vec<Case> = vec![
            (
                "an exact match takes it all, even when it is not the largest",
                1000,
                vec![candidate("A", "P1", 5000), candidate("B", "P1", 1000)],
                Ok(shares(&[("B", 1000)])),
            ),
            (
                "between equal exact matches the lower fine id wins",
                1000,
                vec![candidate("B", "P1", 1000), candidate("A", "P1", 1000)],
                Ok(shares(&[("A", 1000)])),
            ),
            (
                "otherwise fill in descending creditable order",
                7000,
                vec![
                    candidate("A", "P1", 1000),
                    candidate("B", "P1", 5000),
                    candidate("C", "P1", 3000),
                ],
                Ok(shares(&[("B", 5000), ("C", 2000)])),
            ),
            (
                "equal amounts fill the lower fine id first",
                1500,
                vec![candidate("B", "P1", 1000), candidate("A", "P1", 1000)],
                Ok(shares(&[("A", 1000), ("B", 500)])),
            ),
            (
                "a fine with nothing creditable takes nothing",
                1000,
                vec![candidate("A", "P1", 0), candidate("B", "P1", 1200)],
                Ok(shares(&[("B", 1000)])),
            ),
            (
                "the credit's sign does not matter",
                -500,
                vec![candidate("A", "P1", 800)],
                Ok(shares(&[("A", 500)])),
            ),
            (
                "a loan with no fine is reported",
                500,
                vec![],
                Err(CreditProblem::NoFineOnLoan),
            ),
            (
                "a fine of another patron is reported",
                500,
                vec![candidate("A", "P1", 800), candidate("B", "P2", 800)],
                Err(CreditProblem::PatronMismatch {
                    fine_id: FineId::new("B"),
                    fine_patron: PatronId::new("P2"),
                    credit_patron: PatronId::new("P1"),
                }),
            ),
            (
                "more than can be credited is reported and nothing is placed",
                2001,
                vec![candidate("A", "P1", 1000), candidate("B", "P1", 1000)],
                Err(CreditProblem::ExceedsCreditable {
                    credit: Money::from_cents(2001),
                    creditable: Money::from_cents(2000),
                }),
            ),
        ];
        for (name, credit, candidates, expected) in cases {
            assert_eq!(
                distribute_credit(&p, Money::from_cents(credit), &candidates),
                expected,
                "{name}"
            );
        }
    }
}
