//! Payments seen in Alma, reconciled to the Bursar ledger (SPEC 4.7).
//!
//! A payment in Alma is money someone received. When Direction 2 posted
//! it, the Bursar holds that money: it goes on the Bursar ledger as a
//! Payment and is never exported. When it was paid at the library's desk
//! on a fine the Bursar already bills, the Bursar still holds a charge the
//! patron has paid: that is reported, or (by setting) left pending so the
//! export sends a reversal. On a fine not billed yet it simply stays
//! pending and lowers what the export charges.

use serde::{Deserialize, Serialize};

use crate::money::Money;
use crate::records::{AlmaTransaction, FineId, PaymentOutcome, PaymentRecord};

/// What to do with a desk payment on a billed fine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeskPaymentPolicy {
    /// Record it on the ledger and list it in the run report for a person.
    #[default]
    Report,
    /// Leave it pending so the export sends the Bursar a reversal.
    Reverse,
}

/// How one pending Alma payment is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentHandling {
    /// Nothing billed yet: stays pending; the export charges less.
    KeepPending,
    /// Posted by Direction 2: onto the Bursar ledger, no longer pending.
    ApplyToLedger,
    /// Paid at the desk on a billed fine, [`DeskPaymentPolicy::Report`]:
    /// onto the ledger like any payment, and reported.
    ApplyAndReportDesk,
    /// Paid at the desk on a billed fine, [`DeskPaymentPolicy::Reverse`]:
    /// stays pending so the export reverses the charge; reported.
    ReverseDesk,
}

impl PaymentHandling {
    pub fn is_desk_payment(self) -> bool {
        matches!(
            self,
            PaymentHandling::ApplyAndReportDesk | PaymentHandling::ReverseDesk
        )
    }
}

/// Whether Direction 2 posted this Alma payment: a payment record of the
/// same fine posted the same amount, or the note starts with the marker our
/// comments (and the old tool's) begin with.
pub fn posted_by_direction_two(
    payment: &AlmaTransaction,
    marker: &str,
    records: &[PaymentRecord],
) -> bool {
    let noted = !marker.is_empty()
        && payment
            .note
            .as_deref()
            .is_some_and(|note| note.trim_start().starts_with(marker));
    noted
        || records.iter().any(|record| {
            record.fine_id.as_ref() == Some(&payment.fine_id)
                && matches!(
                    record.outcome,
                    PaymentOutcome::Paid | PaymentOutcome::PaidCapped | PaymentOutcome::Posting
                )
                && record.amount_posted == Some(payment.amount.abs())
        })
}

pub fn classify_alma_payment(
    billed: bool,
    posted_by_us: bool,
    policy: DeskPaymentPolicy,
) -> PaymentHandling {
    match (billed, posted_by_us, policy) {
        (false, _, _) => PaymentHandling::KeepPending,
        (true, true, _) => PaymentHandling::ApplyToLedger,
        (true, false, DeskPaymentPolicy::Report) => PaymentHandling::ApplyAndReportDesk,
        (true, false, DeskPaymentPolicy::Reverse) => PaymentHandling::ReverseDesk,
    }
}

/// What an account line still owes the Bursar: its balance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineOwed {
    pub reference: FineId,
    pub owed: Money,
}

/// A payment spread over account lines. `applied` amounts are positive
/// magnitudes (the Bursar Payment transactions carry them negated).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerPayment {
    pub applied: Vec<(FineId, Money)>,
    /// What no line owed: reported as an overpayment.
    pub overpayment: Money,
}

/// Applies a payment (its magnitude) to the lines in order, each up to
/// what it owes; the rest is an overpayment. Applied plus overpayment is
/// always the payment.
pub fn apply_payment_to_ledger(payment: Money, lines: &[LineOwed]) -> LedgerPayment {
    let mut left = payment.abs();
    let mut applied = Vec::new();
    for line in lines {
        if left.is_zero() {
            break;
        }
        if !line.owed.is_positive() {
            continue;
        }
        let amount = left.min(line.owed);
        applied.push((line.reference.clone(), amount));
        left -= amount;
    }
    LedgerPayment {
        applied,
        overpayment: left,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{AlmaTxnType, PatronId};
    use crate::testing::at;

    fn owed(reference: &str, cents: i64) -> LineOwed {
        LineOwed {
            reference: FineId::new(reference),
            owed: Money::from_cents(cents),
        }
    }

    #[test]
    fn payments_fill_what_lines_owe_and_report_the_excess() {
        let cases = [
            (1000, vec![owed("A", 1500)], vec![("A", 1000)], 0),
            (1500, vec![owed("A", 1500)], vec![("A", 1500)], 0),
            (2000, vec![owed("A", 1500)], vec![("A", 1500)], 500),
            (
                2000,
                vec![owed("A", 0), owed("B", 800)],
                vec![("B", 800)],
                1200,
            ),
            (
                900,
                vec![owed("A", -300), owed("B", 500), owed("C", 500)],
                vec![("B", 500), ("C", 400)],
                0,
            ),
            (700, vec![], vec![], 700),
        ];
        for (payment, lines, applied, overpayment) in cases {
            let result = apply_payment_to_ledger(Money::from_cents(payment), &lines);
            let expected = LedgerPayment {
                applied: applied
                    .into_iter()
                    .map(|(r, c)| (FineId::new(r), Money::from_cents(c)))
                    .collect(),
                overpayment: Money::from_cents(overpayment),
            };
            assert_eq!(result, expected, "payment {payment}");
        }
    }

    #[test]
    fn handling_by_billing_and_origin() {
        use DeskPaymentPolicy::*;
        use PaymentHandling::*;
        let cases = [
            (false, false, Report, KeepPending),
            (false, true, Reverse, KeepPending),
            (true, true, Report, ApplyToLedger),
            (true, true, Reverse, ApplyToLedger),
            (true, false, Report, ApplyAndReportDesk),
            (true, false, Reverse, ReverseDesk),
        ];
        for (billed, ours, policy, expected) in cases {
            assert_eq!(classify_alma_payment(billed, ours, policy), expected);
        }
    }

    fn alma_payment(note: Option<&str>, cents: i64) -> AlmaTransaction {
        AlmaTransaction {
            id: Some(crate::records::AlmaTxnId::new("T1")),
            fine_id: FineId::new("F1"),
            kind: AlmaTxnType::Payment,
            amount: Money::from_cents(-cents),
            created_at: at("2024-05-02T09:00:00"),
            note: note.map(str::to_string),
            pending: true,
            source_credit_fine: None,
        }
    }

    fn record(fine: &str, outcome: PaymentOutcome, posted: i64) -> PaymentRecord {
        PaymentRecord {
            key: "k".into(),
            fine_id: Some(FineId::new(fine)),
            patron_id: PatronId::new("P1"),
            paid_amount: Money::from_cents(posted),
            outcome,
            balance_read: None,
            amount_posted: Some(Money::from_cents(posted)),
            external_transaction_id: "x".into(),
            first_seen_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn recognises_payments_direction_two_posted() {
        let marker = "Paid to bursar on";
        let noted = alma_payment(Some("Paid to bursar on 2024-05-01, imported ..."), 500);
        assert!(posted_by_direction_two(&noted, marker, &[]));
        let desk = alma_payment(Some("cash at circulation desk"), 500);
        assert!(!posted_by_direction_two(&desk, marker, &[]));
        assert!(!posted_by_direction_two(
            &alma_payment(None, 500),
            marker,
            &[]
        ));
        let matching = [record("F1", PaymentOutcome::Paid, 500)];
        assert!(posted_by_direction_two(&desk, marker, &matching));
        let other_amount = [record("F1", PaymentOutcome::Paid, 400)];
        assert!(!posted_by_direction_two(&desk, marker, &other_amount));
        let other_fine = [record("F2", PaymentOutcome::Paid, 500)];
        assert!(!posted_by_direction_two(&desk, marker, &other_fine));
        let not_posted = [record("F1", PaymentOutcome::NotFound, 500)];
        assert!(!posted_by_direction_two(&desk, marker, &not_posted));
    }
}
