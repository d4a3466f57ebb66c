//! The Bursar's side of the crash test's Direction 2: the payments CSV it
//! returns for fines Direction 1 billed, deterministic from the seed and
//! the store (which every run, killed or not, must bring to the same
//! state before the payments stage).
//!
//! Most rows pay a billed fine in full; some pay part of it, some pay a
//! fine twice (two partial payments, or two equal ones, which are two keys
//! of SPEC 7.3), some pay more than the balance (capped at it). A few rows
//! the stage must refuse or hold: a patron mismatch, a reference that is
//! not billed, zero-dollar charge and payment, a refund (negative paid
//! amount), an unreadable amount, and fines closed in Alma since billing.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use fine_store::StoreDump;
use sync_core::Money;
use sync_core::records::Fine;

use crate::synth::{Rng, fine_id};

/// The start of the payments file's name (SPEC 7.1).
pub const PREFIX: &str = "ASUSASF_LIBRARY_REPORT_DTRANGE";
/// The file the Bursar drops.
pub const FILE_NAME: &str = "ASUSASF_LIBRARY_REPORT_DTRANGE_20241213.csv";
/// About this many fines are paid, whatever the size (the stage's time,
/// and so the crash test's, grows with it).
const PAID_FINES: usize = 90;

struct Row {
    emplid: String,
    date: &'static str,
    reference: String,
    charge: String,
    paid: String,
}

impl Row {
    fn paying(fine: &Fine, date: &'static str, cents: i64) -> Row {
        Row {
            emplid: fine.patron_id.to_string(),
            date,
            reference: fine.id.to_string(),
            charge: fine.original_amount.to_string(),
            paid: Money::from_cents(cents).to_string(),
        }
    }
}

/// The payments CSV for the billed fines of `dump`.
pub fn payments_csv(dump: &StoreDump, seed: u64) -> String {
    let billed: BTreeSet<&str> = dump
        .account_lines
        .iter()
        .map(|line| line.reference.as_str())
        .collect();
    let mut fines: Vec<&Fine> = dump
        .fines
        .iter()
        .filter(|fine| billed.contains(fine.id.as_str()))
        .collect();
    fines.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    let (open, closed): (Vec<&Fine>, Vec<&Fine>) = fines
        .into_iter()
        .partition(|fine| !fine.closed && fine.remaining_amount.is_positive());

    let mut rng = Rng::new(seed ^ 0x00B0_25A2);
    let per_mille = u64::try_from(PAID_FINES * 1000 / open.len().max(1))
        .unwrap_or(1000)
        .min(500);
    let mut rows = Vec::new();
    let mut spare = Vec::new();
    for fine in open {
        if !rng.chance(per_mille) {
            spare.push(fine);
            continue;
        }
        let balance = fine.remaining_amount.cents();
        let third = balance / 3;
        match rng.below(10) {
            // Part of the balance.
            5 if third > 0 => rows.push(Row::paying(fine, "2024-12-11", third)),
            // Two partial payments on different days.
            6 if third > 0 => {
                rows.push(Row::paying(fine, "2024-12-11", third));
                rows.push(Row::paying(fine, "2024-12-12", third));
            }
            // More than the balance: capped at it.
            7 => rows.push(Row::paying(fine, "2024-12-11", balance + 500)),
            // Two payments that together exceed it: the second is capped.
            8 if third > 0 => {
                rows.push(Row::paying(fine, "2024-12-11", 2 * third));
                rows.push(Row::paying(fine, "2024-12-12", 2 * third));
            }
            // Two equal payments on one day: two keys, both posted.
            9 if third > 0 => {
                rows.push(Row::paying(fine, "2024-12-12", third));
                rows.push(Row::paying(fine, "2024-12-12", third));
            }
            _ => rows.push(Row::paying(fine, "2024-12-11", balance)),
        }
    }

    // The rows the stage refuses or holds, on fines it otherwise leaves
    // alone, so a wrong decision shows in Alma.
    let mut spare = spare.into_iter();
    if let (Some(fine), Some(other)) = (spare.next(), spare.next()) {
        let mut row = Row::paying(fine, "2024-12-11", fine.remaining_amount.cents());
        row.emplid = if other.patron_id == fine.patron_id {
            "1999999999".to_string()
        } else {
            other.patron_id.to_string()
        };
        rows.push(row);
        let mut row = Row::paying(other, "2024-12-11", 100);
        row.reference = fine_id(999_999_999);
        rows.push(row);
    }
    if let Some(fine) = spare.next() {
        let mut row = Row::paying(fine, "2024-12-11", fine.remaining_amount.cents());
        row.charge = Money::from_cents(0).to_string();
        rows.push(row);
    }
    if let Some(fine) = spare.next() {
        rows.push(Row::paying(fine, "2024-12-11", 0));
    }
    if let Some(fine) = spare.next() {
        rows.push(Row::paying(fine, "2024-12-11", -200));
    }
    if let Some(fine) = spare.next() {
        let mut row = Row::paying(fine, "2024-12-11", 0);
        row.paid = "1O.00".to_string();
        rows.push(row);
    }
    for fine in closed.into_iter().take(2) {
        rows.push(Row::paying(
            fine,
            "2024-12-11",
            fine.original_amount.cents(),
        ));
    }

    // File order mixes them (Fisher-Yates, from the seed).
    for i in (1..rows.len()).rev() {
        let j = usize::try_from(rng.below(i as u64 + 1)).unwrap_or(i);
        rows.swap(i, j);
    }
    let mut csv = String::from(
        "Emplid,Date Paid,Reference Number,Charge Amount,Paid Amount,Item Type,Charge Description\n",
    );
    for row in rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},LIBFINE,Library fine",
            row.emplid, row.date, row.reference, row.charge, row.paid
        );
    }
    csv
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDateTime;
    use sync_core::records::{BursarAccountLine, FeeType, FineId, ItemDetails, PatronId};

    fn dump(fines: u64) -> StoreDump {
        let mut dump = StoreDump::default();
        let created = NaiveDateTime::default();
        for n in 1..=fines {
            let id = fine_id(n);
            let patron = PatronId::new(format!("{}", 1_000_000 + n % 7));
            dump.fines.push(Fine {
                id: FineId::new(&id),
                patron_id: patron.clone(),
                loan_id: None,
                fee_type: FeeType::OverdueFine,
                // Every tenth billed fine was closed in Alma since.
                closed: n % 10 == 0,
                created_at: created,
                status_at: created,
                original_amount: Money::from_cents(1000 + 7 * i64::try_from(n).unwrap_or(0)),
                remaining_amount: Money::from_cents(if n % 10 == 0 { 0 } else { 900 }),
                comment: None,
                item: ItemDetails::default(),
            });
            dump.account_lines.push(BursarAccountLine {
                reference: FineId::new(id),
                patron_id: patron,
                account: "531000000002".to_string(),
                replacement_fee: false,
                billing: None,
            });
        }
        dump
    }

    #[test]
    fn the_file_is_the_same_for_the_same_store_and_seed() {
        let dump = dump(400);
        assert_eq!(payments_csv(&dump, 3), payments_csv(&dump, 3));
        assert_ne!(payments_csv(&dump, 3), payments_csv(&dump, 4));
    }

    #[test]
    fn the_file_has_rows_to_refuse_and_to_cap() {
        let csv = payments_csv(&dump(400), 3);
        let rows: Vec<Vec<&str>> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').collect())
            .collect();
        // About PAID_FINES fines paid, plus the refused rows.
        assert!(
            rows.len() > PAID_FINES / 2 && rows.len() < PAID_FINES * 3,
            "{csv}"
        );
        let has = |pred: &dyn Fn(&Vec<&str>) -> bool| rows.iter().any(pred);
        assert!(has(&|r| r[4] == "-2.00"), "a refund: {csv}");
        assert!(has(&|r| r[4] == "1O.00"), "an unreadable amount: {csv}");
        assert!(has(&|r| r[3] == "0.00"), "a zero-dollar charge: {csv}");
        assert!(has(&|r| r[4] == "0.00"), "a zero-dollar payment: {csv}");
        assert!(has(&|r| r[2] == fine_id(999_999_999)), "not billed: {csv}");
        assert!(
            has(&|r| r[4] == "14.00"),
            "more than the balance of 9.00: {csv}"
        );
    }
}
