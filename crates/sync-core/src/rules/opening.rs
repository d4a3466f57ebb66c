//! The opening transaction of a new fine (SPEC 4.3).
//!
//! Alma's Transactions report does not always carry a fine's creation, so
//! every new fine gets an opening transaction of its original amount. When
//! the report *does* carry it, that row is the opening transaction: it
//! lends its id, and must not be counted a second time as an increase.

use std::borrow::Borrow;

use chrono::{NaiveDateTime, TimeDelta};

use crate::money::Money;
use crate::records::{AlmaTransaction, AlmaTxnId, AlmaTxnType, Fine, FineId};

/// A row of the All Transactions report, already typed and signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportedTransaction {
    pub id: AlmaTxnId,
    pub fine_id: FineId,
    pub kind: AlmaTxnType,
    /// Signed by type.
    pub amount: Money,
    pub created_at: NaiveDateTime,
    pub note: Option<String>,
}

impl ReportedTransaction {
    /// As a stored transaction, pending reconciliation.
    pub fn to_pending(&self) -> AlmaTransaction {
        self.clone().into_pending()
    }

    /// As [`Self::to_pending`], without copying: an import moves a million
    /// rows into the store this way.
    pub fn into_pending(self) -> AlmaTransaction {
        AlmaTransaction {
            id: Some(self.id),
            fine_id: self.fine_id,
            kind: self.kind,
            amount: self.amount,
            created_at: self.created_at,
            note: self.note,
            pending: true,
            source_credit_fine: None,
        }
    }
}

/// How far apart a fine's creation and its Fine row may be for the row to
/// count as the fine's creation.
pub const OPENING_MATCH_WINDOW: TimeDelta = TimeDelta::minutes(1);

/// The opening transaction of a new fine, and which of `rows` (if any) it
/// is, so the caller does not store that row again.
pub fn opening_transaction<R: Borrow<ReportedTransaction>>(
    fine: &Fine,
    rows: &[R],
) -> (AlmaTransaction, Option<usize>) {
    let kind = if fine.original_amount.is_negative() {
        AlmaTxnType::Credit
    } else {
        AlmaTxnType::Fine
    };
    let distance = |row: &ReportedTransaction| (row.created_at - fine.created_at).abs();
    // The closest such row is the creation; any others are increases.
    let lender = rows
        .iter()
        .map(Borrow::borrow)
        .enumerate()
        .filter(|(_, row)| {
            row.fine_id == fine.id
                && row.kind == AlmaTxnType::Fine
                && row.amount == fine.original_amount
                && distance(row) <= OPENING_MATCH_WINDOW
        })
        .min_by(|(_, a), (_, b)| distance(a).cmp(&distance(b)).then(a.id.cmp(&b.id)))
        .map(|(index, _)| index);
    let lent = lender.and_then(|index| rows.get(index)).map(Borrow::borrow);
    let opening = AlmaTransaction {
        id: lent.map(|row| row.id.clone()),
        fine_id: fine.id.clone(),
        kind,
        amount: fine.original_amount,
        created_at: lent.map_or(fine.created_at, |row| row.created_at),
        note: lent.and_then(|row| row.note.clone()),
        pending: kind != AlmaTxnType::Credit,
        source_credit_fine: None,
    };
    (opening, lender)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{at, fine, row};

    #[test]
    fn a_new_fine_without_a_creation_row_gets_a_synthetic_pending_fine() {
        let new_fine = fine("F1", 1500, "2024-05-01T10:00:00");
        let (opening, lent) = opening_transaction::<ReportedTransaction>(&new_fine, &[]);
        assert_eq!(lent, None);
        assert_eq!(opening.id, None);
        assert_eq!(opening.kind, AlmaTxnType::Fine);
        assert_eq!(opening.amount, Money::from_cents(1500));
        assert_eq!(opening.created_at, at("2024-05-01T10:00:00"));
        assert!(opening.pending);
        assert_eq!(opening.key(), "opening:F1");
    }

    #[test]
    fn a_negative_original_opens_with_a_credit_that_is_not_pending() {
        let credit = fine("F2", -500, "2024-05-01T10:00:00");
        let (opening, _) = opening_transaction::<ReportedTransaction>(&credit, &[]);
        assert_eq!(opening.kind, AlmaTxnType::Credit);
        assert_eq!(opening.amount, Money::from_cents(-500));
        assert!(!opening.pending);
    }

    #[test]
    fn the_creation_row_lends_its_id_and_only_it() {
        let new_fine = fine("F1", 1500, "2024-05-01T10:00:00");
        let rows = [
            // Same amount but two minutes later: an increase.
            row("T0", "F1", AlmaTxnType::Fine, 1500, "2024-05-01T10:02:00"),
            // Within the minute but another fine.
            row("T1", "F9", AlmaTxnType::Fine, 1500, "2024-05-01T10:00:10"),
            // Within the minute but another amount: an increase.
            row("T2", "F1", AlmaTxnType::Fine, 1000, "2024-05-01T10:00:10"),
            // Within the minute, a Waive.
            row("T3", "F1", AlmaTxnType::Waive, 1500, "2024-05-01T10:00:10"),
            // The creation: 30 s before the fine's creation time.
            row("T4", "F1", AlmaTxnType::Fine, 1500, "2024-05-01T09:59:30"),
            // Also within the minute but further away than T4.
            row("T5", "F1", AlmaTxnType::Fine, 1500, "2024-05-01T10:00:50"),
        ];
        let (opening, lent) = opening_transaction(&new_fine, &rows);
        assert_eq!(lent, Some(4));
        assert_eq!(opening.id, Some(AlmaTxnId::new("T4")));
        assert_eq!(opening.created_at, at("2024-05-01T09:59:30"));
        assert_eq!(opening.amount, Money::from_cents(1500));
        assert!(opening.pending);
    }

    #[test]
    fn exactly_one_minute_apart_still_matches() {
        let new_fine = fine("F1", 700, "2024-05-01T10:00:00");
        let rows = [row(
            "T9",
            "F1",
            AlmaTxnType::Fine,
            700,
            "2024-05-01T10:01:00",
        )];
        assert_eq!(opening_transaction(&new_fine, &rows).1, Some(0));
    }
}
