//! Small constructors for the crate's tests.

use chrono::NaiveDateTime;

use crate::money::Money;
use crate::records::{AlmaTxnId, AlmaTxnType, FeeType, Fine, FineId, ItemDetails, PatronId};
use crate::rules::opening::ReportedTransaction;

pub fn at(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").unwrap()
}

pub fn fine(id: &str, original_cents: i64, created: &str) -> Fine {
    Fine {
        id: FineId::new(id),
        patron_id: PatronId::new("P1"),
        loan_id: None,
        fee_type: FeeType::OverdueFine,
        closed: false,
        created_at: at(created),
        status_at: at(created),
        original_amount: Money::from_cents(original_cents),
        remaining_amount: Money::from_cents(original_cents),
        comment: None,
        item: ItemDetails::default(),
    }
}

pub fn row(
    id: &str,
    fine: &str,
    kind: AlmaTxnType,
    cents: i64,
    created: &str,
) -> ReportedTransaction {
    ReportedTransaction {
        id: AlmaTxnId::new(id),
        fine_id: FineId::new(fine),
        kind,
        amount: kind.signed(Money::from_cents(cents)),
        created_at: at(created),
        note: None,
    }
}
