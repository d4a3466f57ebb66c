//! Property tests of the invariants every rule keeps, whatever the data:
//! no rule creates or destroys a cent, a settled fine's Bursar sum equals
//! its Alma sum, reversals stay within what was charged, and the billing
//! calendar always gives a due 25th after the billing date and a term of
//! the right shape.

use chrono::{Datelike, NaiveDate};
use proptest::prelude::*;

use crate::money::Money;
use crate::records::{FineId, PatronId};
use crate::rules::calendar::{DueDateRule, TermRule};
use crate::rules::credits::{CreditCandidate, distribute_credit};
use crate::rules::export::{
    ExportDecision, LineState, ReversalKind, allocate_reversal, decide_export,
};
use crate::rules::payments::{LineOwed, apply_payment_to_ledger};

fn cents(range: std::ops::RangeInclusive<i64>) -> impl Strategy<Value = Money> {
    range.prop_map(Money::from_cents)
}

fn line_states() -> impl Strategy<Value = Vec<LineState>> {
    prop::collection::vec((0i64..5_000, -5_000i64..5_000), 0..4).prop_map(|pairs| {
        pairs
            .into_iter()
            .enumerate()
            .map(|(index, (charged, reversed))| LineState {
                reference: FineId::new(format!("F{index}")),
                // A line's balance lies between minus and plus its charge.
                balance: Money::from_cents(reversed.clamp(-charged, charged)),
                charged: Money::from_cents(charged),
            })
            .collect()
    })
}

fn billing_dates() -> impl Strategy<Value = NaiveDate> {
    (1990i32..2200, 1u32..=12, 1u32..=31)
        .prop_filter_map("a real date", |(y, m, d)| NaiveDate::from_ymd_opt(y, m, d))
}

proptest! {
    #[test]
    fn money_display_parses_back(amount in -Money::MAX_ABS_CENTS..=Money::MAX_ABS_CENTS) {
        let money = Money::from_cents(amount);
        prop_assert_eq!(Money::parse(&money.to_string()), Ok(money));
    }

    #[test]
    fn credit_distribution_places_exactly_the_credit(
        credit in cents(-20_000..=20_000),
        creditable in prop::collection::vec(-3_000i64..10_000, 0..5),
    ) {
        let patron = PatronId::new("P1");
        let candidates: Vec<CreditCandidate> = creditable
            .iter()
            .enumerate()
            .map(|(index, amount)| CreditCandidate {
                fine_id: FineId::new(format!("F{index}")),
                patron_id: patron.clone(),
                creditable: Money::from_cents(*amount),
            })
            .collect();
        if let Ok(shares) = distribute_credit(&patron, credit, &candidates) {
            let placed: Money = shares.iter().map(|s| s.amount).sum();
            prop_assert_eq!(placed, credit.abs());
            for share in &shares {
                let candidate = candidates.iter().find(|c| c.fine_id == share.fine_id);
                prop_assert!(candidate.is_some_and(|c| share.amount <= c.creditable));
                prop_assert!(share.amount.is_positive());
            }
        }
    }

    #[test]
    fn a_payment_is_applied_or_reported_to_the_cent(
        payment in cents(0..=20_000),
        owed in prop::collection::vec(-3_000i64..10_000, 0..4),
    ) {
        let lines: Vec<LineOwed> = owed
            .iter()
            .enumerate()
            .map(|(index, amount)| LineOwed {
                reference: FineId::new(format!("F{index}")),
                owed: Money::from_cents(*amount),
            })
            .collect();
        let result = apply_payment_to_ledger(payment, &lines);
        let applied: Money = result.applied.iter().map(|(_, amount)| *amount).sum();
        prop_assert_eq!(applied + result.overpayment, payment);
        prop_assert!(!result.overpayment.is_negative());
        for (reference, amount) in &result.applied {
            let line = lines.iter().find(|l| &l.reference == reference);
            prop_assert!(line.is_some_and(|l| *amount <= l.owed));
        }
    }

    #[test]
    fn a_settled_fine_leaves_bursar_equal_to_alma(
        original in cents(0..=10_000),
        alma in cents(-10_000..=10_000),
        lines in line_states(),
    ) {
        let decision = decide_export(original, alma, &lines);
        let bursar_before: Money = lines.iter().map(|l| l.balance).sum();
        let new_entries: Money = decision.bursar_entries().iter().map(|e| e.2).sum();
        if decision.settles() {
            prop_assert_eq!(bursar_before + new_entries, alma);
        } else {
            prop_assert_eq!(new_entries, Money::ZERO);
        }
        if let ExportDecision::Charge { amount, .. } = &decision {
            prop_assert!(amount.is_positive());
            prop_assert!(bursar_before.is_zero());
        }
    }

    #[test]
    fn a_reversal_stays_within_what_was_charged(
        amount in cents(1..=20_000),
        credit in any::<bool>(),
        lines in line_states(),
    ) {
        let kind = if credit { ReversalKind::Credit } else { ReversalKind::Waive };
        match allocate_reversal(amount, kind, &lines) {
            Ok(allocations) => {
                let total: Money = allocations.iter().map(|(_, a)| *a).sum();
                prop_assert_eq!(total, amount);
                for (reference, taken) in &allocations {
                    let line = lines.iter().find(|l| &l.reference == reference);
                    prop_assert!(line.is_some());
                    if let Some(line) = line {
                        let after = line.balance - *taken;
                        let floor = if credit { -line.charged } else { Money::ZERO };
                        prop_assert!(after >= floor, "{after} below {floor}");
                        prop_assert!(taken.is_positive());
                    }
                }
            }
            Err(allocatable) => {
                prop_assert!(allocatable < amount);
                prop_assert!(!allocatable.is_negative());
            }
        }
    }

    #[test]
    fn due_dates_are_the_25th_after_billing(billing in billing_dates()) {
        let due = DueDateRule::default().due_date(billing);
        prop_assert_eq!(due.day(), 25);
        prop_assert!(due > billing);
        prop_assert!((due - billing).num_days() <= 62);
    }

    #[test]
    fn term_codes_are_one_of_the_three_seasons(billing in billing_dates()) {
        let code = TermRule::default().term_code(billing);
        let expected_year = format!("{:02}", billing.year().rem_euclid(100));
        prop_assert_eq!(code.len(), 4);
        prop_assert!(code.starts_with('2'));
        prop_assert_eq!(&code[1..3], expected_year.as_str());
        prop_assert!(["1", "4", "7"].contains(&&code[3..]), "{}", code);
    }
}
