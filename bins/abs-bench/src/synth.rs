//! A large institution, synthesized deterministically from a seed.
//!
//! The same seed and sizes give the same reports, byte for byte, on every
//! machine: the generator is a hand-written splitmix64 stream and never
//! looks at the clock or at a hash map's order. Money is integer cents.
//!
//! The mix, per event (a loan or a patron-level fee):
//! - overdue fines (about 80% of fines), small amounts on a loan;
//! - a lost item as a *pair* on one loan: replacement fee and process fee;
//! - recalled overdue fines and damaged-item fees on a loan;
//! - card renewal, registration and other fees without a loan;
//! - Credit-type fines on the loan of an earlier fine of the same patron
//!   (distributed over that loan's fines), a few standalone, and a few
//!   deliberately larger than the loan can take (reported, not a crash);
//! - locations: about 8% in a law library (`law...` or `..._lw_...`).
//!
//! Transactions: the opening Fine row of most fines (some with Alma's "-1"
//! for no id, some missing so the import makes the synthetic one), then
//! payments (some with the Direction 2 note, the rest desk payments),
//! waives and credits that never take a fine below zero, and rarely a
//! Fine increase (which the export quarantines once billed or when it
//! takes the fine above its original amount).
//!
//! Day 2 adds, on top of day 1: new fines, and waives, credits and payments
//! on fines billed on day 1, so its export has reversals.

use alma_sim::ReportTable;
use chrono::{NaiveDate, NaiveDateTime, TimeDelta};

/// splitmix64: tiny, fast, and the same everywhere.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0; 0 gives 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Multiply-shift: unbiased enough for synthesis, and branch-free.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = hi.abs_diff(lo) + 1;
        lo.saturating_add_unsigned(self.below(span))
    }

    /// True with probability `per_mille` / 1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let index = usize::try_from(self.below(items.len() as u64)).unwrap_or(0);
        &items[index.min(items.len().saturating_sub(1))]
    }
}

/// How big the institution is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    pub seed: u64,
    pub fines: u64,
    pub transactions: u64,
    pub patrons: u64,
}

impl Size {
    /// A smaller institution with the same proportions.
    pub fn scaled(seed: u64, fines: u64) -> Size {
        Size {
            seed,
            fines,
            transactions: fines * 5,
            patrons: (fines / 2).max(1),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnKind {
    Fine,
    Payment,
    Waive,
    Credit,
}

impl TxnKind {
    fn label(self) -> &'static str {
        match self {
            TxnKind::Fine => "Fine",
            TxnKind::Payment => "Payment",
            TxnKind::Waive => "Waive",
            TxnKind::Credit => "Credit",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Txn {
    /// None: the report row says "-1".
    pub id: Option<u64>,
    pub kind: TxnKind,
    /// Magnitude, cents.
    pub cents: i64,
    pub created: NaiveDateTime,
    pub note: Option<&'static str>,
    pub day: u8,
}

#[derive(Clone, Debug)]
pub struct SynthFine {
    pub id: u64,
    pub patron: u64,
    pub loan: Option<u64>,
    pub fee_type: &'static str,
    pub created: NaiveDateTime,
    /// Negative for a Credit-type fine.
    pub original_cents: i64,
    pub location: Option<&'static str>,
    pub title: &'static str,
    pub comment: Option<&'static str>,
    pub day: u8,
    pub txns: Vec<Txn>,
}

impl SynthFine {
    pub fn id_text(&self) -> String {
        fine_id(self.id)
    }

    /// Remaining balance after the transactions of days up to `day`.
    fn remaining(&self, day: u8) -> i64 {
        if self.original_cents < 0 {
            return self.original_cents;
        }
        let mut remaining = self.original_cents;
        let mut opening_seen = false;
        for txn in self.txns.iter().filter(|t| t.day <= day) {
            match txn.kind {
                TxnKind::Fine if !opening_seen && txn.cents == self.original_cents => {
                    opening_seen = true;
                }
                TxnKind::Fine => remaining += txn.cents,
                _ => remaining -= txn.cents,
            }
        }
        remaining
    }

    fn status_date(&self, day: u8) -> NaiveDateTime {
        self.txns
            .iter()
            .filter(|t| t.day <= day)
            .map(|t| t.created)
            .max()
            .unwrap_or(self.created)
            .max(self.created)
    }
}

pub fn fine_id(n: u64) -> String {
    format!("229{n:09}4146")
}

pub fn patron_id(n: u64) -> String {
    format!("{}", 1_000_000_000 + n)
}

fn loan_id(n: u64) -> String {
    format!("241{n:09}4146")
}

fn txn_id(n: u64) -> String {
    format!("233{n:010}4146")
}

pub const DIRECTION2_NOTE: &str =
    "Paid to bursar on 2024-11-29, imported into Alma via alma-bursar-sync on 2024-12-02.";
const DESK_NOTES: [&str; 3] = [
    "Cash at circulation desk",
    "Credit card at circulation desk",
    "Paid at law library desk",
];
const WAIVE_NOTES: [&str; 3] = [
    "Waived by circulation staff",
    "Appeal granted",
    "Item returned in good condition",
];
const CREDIT_NOTES: [&str; 2] = ["Item found", "Adjustment"];
const TITLES: [&str; 8] = [
    "Structure and interpretation of computer programs",
    "The art of computer programming",
    "Gödel, Escher, Bach: an eternal golden braid",
    "Restatement (second) of contracts",
    "Principles of corporate finance & accounting",
    "A history of the English-speaking peoples",
    "Introduction to algorithms <3rd ed.>",
    "Black's law dictionary",
];
const AUTHORS: [&str; 5] = [
    "Abelson, Harold",
    "Knuth, Donald",
    "Hofstadter, Douglas",
    "Garner, Bryan A.",
    "Cormen, Thomas H.",
];
const MAIN_LOCATIONS: [&str; 5] = ["main", "science", "music", "reserve", "main_stacks"];
const LAW_LOCATIONS: [&str; 3] = ["law", "lawres", "north_lw_stacks"];
const COMMENTS: [&str; 3] = [
    "Replacement cost",
    "Billed per circulation policy",
    "Patron notified",
];

/// The synthesized institution.
pub struct Institution {
    pub size: Size,
    pub fines: Vec<SynthFine>,
}

fn at(date: NaiveDate, secs: i64) -> NaiveDateTime {
    date.and_hms_opt(0, 0, 0).unwrap_or_default() + TimeDelta::seconds(secs)
}

/// Splits `total` cents into `parts` positive parts.
fn split(rng: &mut Rng, total: i64, parts: usize) -> Vec<i64> {
    let parts = parts.min(usize::try_from(total.max(0)).unwrap_or(0));
    if parts == 0 {
        return Vec::new();
    }
    let weights: Vec<i64> = (0..parts).map(|_| rng.range(1, 100)).collect();
    let sum: i64 = weights.iter().sum();
    let spare = total - parts as i64;
    let mut out: Vec<i64> = weights.iter().map(|w| 1 + spare * w / sum).collect();
    let given: i64 = out.iter().sum();
    if let Some(last) = out.last_mut() {
        *last += total - given;
    }
    out
}

struct Ids {
    txn: u64,
}

impl Ids {
    fn next(&mut self) -> u64 {
        self.txn += 1;
        self.txn
    }
}

fn reduction(rng: &mut Rng, ids: &mut Ids, cents: i64, created: NaiveDateTime, day: u8) -> Txn {
    let roll = rng.below(100);
    let (kind, note) = if roll < 55 {
        let note = if rng.chance(600) {
            DIRECTION2_NOTE
        } else {
            *rng.pick(&DESK_NOTES)
        };
        (TxnKind::Payment, Some(note))
    } else if roll < 85 {
        (TxnKind::Waive, Some(*rng.pick(&WAIVE_NOTES)))
    } else {
        (TxnKind::Credit, Some(*rng.pick(&CREDIT_NOTES)))
    };
    Txn {
        id: Some(ids.next()),
        kind,
        cents,
        created,
        note,
        day,
    }
}

impl Institution {
    /// The run time of day 1 (2024-12-10 06:00); day 2 is two days on.
    pub fn day1() -> NaiveDateTime {
        at(
            NaiveDate::from_ymd_opt(2024, 12, 10).unwrap_or_default(),
            6 * 3600,
        )
    }

    pub fn generate(size: Size) -> Institution {
        let mut rng = Rng::new(size.seed);
        let first = NaiveDate::from_ymd_opt(2023, 1, 2).unwrap_or_default();
        let day1 = Institution::day1();
        let span_secs = (day1 - at(first, 0)).num_seconds() - 86_400;
        let patrons = size.patrons.max(1);

        let mut fines: Vec<SynthFine> =
            Vec::with_capacity(usize::try_from(size.fines).unwrap_or(0));
        let mut ids = Ids { txn: 0 };
        let mut next_fine = 0u64;
        let mut next_loan = 0u64;
        // Fines on loans, by index, for credits to pick from.
        let mut on_loans: Vec<usize> = Vec::new();

        let new_fine = |id: u64,
                        patron: u64,
                        loan: Option<u64>,
                        fee_type: &'static str,
                        created: NaiveDateTime,
                        cents: i64,
                        rng: &mut Rng,
                        day: u8| {
            let location = loan.map(|_| {
                if rng.chance(80) {
                    *rng.pick(&LAW_LOCATIONS)
                } else {
                    *rng.pick(&MAIN_LOCATIONS)
                }
            });
            SynthFine {
                id,
                patron,
                loan,
                fee_type,
                created,
                original_cents: cents,
                location,
                title: TITLES[usize::try_from(rng.below(TITLES.len() as u64)).unwrap_or(0)],
                comment: rng.chance(100).then(|| *rng.pick(&COMMENTS)),
                day,
                txns: Vec::new(),
            }
        };

        // Day 1 fines, in creation order.
        let mut clock = 0i64;
        let step = (span_secs / i64::try_from(size.fines.max(1)).unwrap_or(1)).max(1);
        while (fines.len() as u64) < size.fines {
            clock += rng.range(1, step * 2 - 1).max(1);
            let created = at(first, clock.min(span_secs));
            let patron = rng.below(patrons);
            let roll = rng.below(1000);
            let room = size.fines - fines.len() as u64;
            if roll < 60 && room >= 2 {
                // Lost item: replacement + process fee on one loan.
                next_loan += 1;
                let loan = Some(next_loan);
                next_fine += 1;
                let replacement = rng.range(25, 150) * 100;
                let mut a = new_fine(
                    next_fine,
                    patron,
                    loan,
                    "Lost item replacement fee",
                    created,
                    replacement,
                    &mut rng,
                    1,
                );
                a.comment = Some("Replacement cost");
                let location = a.location;
                let title = a.title;
                fines.push(a);
                on_loans.push(fines.len() - 1);
                next_fine += 1;
                let mut b = new_fine(
                    next_fine,
                    patron,
                    loan,
                    "Lost item process fee",
                    created + TimeDelta::seconds(5),
                    if rng.chance(500) { 1000 } else { 1500 },
                    &mut rng,
                    1,
                );
                b.location = location;
                b.title = title;
                fines.push(b);
                on_loans.push(fines.len() - 1);
            } else if roll < 85 && !on_loans.is_empty() {
                // A Credit-type fine on the loan of an earlier fine.
                let target = *rng.pick(&on_loans);
                let (patron, loan, original) = {
                    let t = &fines[target];
                    (t.patron, t.loan, t.original_cents)
                };
                let cents = if rng.chance(20) {
                    original * 3 + 100 // more than the loan can take: reported
                } else {
                    rng.range(1, original.max(1))
                };
                next_fine += 1;
                let standalone = rng.chance(150);
                let mut credit = new_fine(
                    next_fine,
                    patron,
                    if standalone { None } else { loan },
                    "Credit",
                    created,
                    -cents,
                    &mut rng,
                    1,
                );
                credit.location = None;
                fines.push(credit);
            } else {
                let (fee_type, loan, cents) = match roll {
                    85..=114 => ("Recalled Overdue fine", true, rng.range(1, 120) * 25),
                    115..=134 => ("Damaged item fee", true, rng.range(5, 60) * 100),
                    135..=144 => ("Card renewal", false, 500),
                    145..=149 => ("Registration fee", false, 2500),
                    150..=159 => ("Other", false, rng.range(1, 40) * 50),
                    _ => ("Overdue fine", true, rng.range(1, 120) * 25),
                };
                let loan = loan.then(|| {
                    next_loan += 1;
                    next_loan
                });
                next_fine += 1;
                fines.push(new_fine(
                    next_fine, patron, loan, fee_type, created, cents, &mut rng, 1,
                ));
                if loan.is_some() {
                    on_loans.push(fines.len() - 1);
                }
            }
        }

        // Opening rows.
        let mut txn_count = 0u64;
        for fine in fines.iter_mut().filter(|f| f.original_cents > 0) {
            let roll = rng.below(100);
            if roll < 97 {
                let id = if roll < 2 { None } else { Some(ids.next()) };
                fine.txns.push(Txn {
                    id,
                    kind: TxnKind::Fine,
                    cents: fine.original_cents,
                    created: fine.created + TimeDelta::seconds(rng.range(0, 50)),
                    note: None,
                    day: 1,
                });
                txn_count += 1;
            }
        }

        // Reductions (and rare increases) until the transactions target.
        let chargeable: Vec<usize> = (0..fines.len())
            .filter(|&i| fines[i].original_cents > 0)
            .collect();
        let mut wanted = size.transactions.saturating_sub(txn_count);
        let mut pass = 0;
        while wanted > 0 && pass < 8 && !chargeable.is_empty() {
            pass += 1;
            let mut left = chargeable.len() as u64;
            for &i in &chargeable {
                if wanted == 0 {
                    break;
                }
                let mean = wanted.div_ceil(left.max(1));
                left = left.saturating_sub(1);
                let fine = &mut fines[i];
                let already: i64 = fine
                    .txns
                    .iter()
                    .filter(|t| t.kind != TxnKind::Fine)
                    .map(|t| t.cents)
                    .sum();
                let room = fine.original_cents - already;
                if room <= 0 {
                    continue;
                }
                let k = rng.below(mean * 2 + 1).min(wanted);
                if k == 0 {
                    continue;
                }
                if rng.chance(1) {
                    // A rare increase (data the export must quarantine).
                    fine.txns.push(Txn {
                        id: Some(ids.next()),
                        kind: TxnKind::Fine,
                        cents: rng.range(25, 500),
                        created: fine.created + TimeDelta::days(rng.range(1, 20)),
                        note: Some("Additional overdue days"),
                        day: 1,
                    });
                    wanted -= 1;
                    continue;
                }
                // Settled in full in one case of two, otherwise partly.
                let total = if pass == 1 && rng.chance(500) {
                    room
                } else {
                    rng.range(1, room)
                };
                let parts = split(&mut rng, total, usize::try_from(k).unwrap_or(0));
                let latest = (day1 - fine.created).num_seconds().max(120);
                let mut times: Vec<i64> = parts.iter().map(|_| rng.range(60, latest - 1)).collect();
                times.sort_unstable();
                for (cents, secs) in parts.into_iter().zip(times) {
                    let created = fine.created + TimeDelta::seconds(secs);
                    fine.txns
                        .push(reduction(&mut rng, &mut ids, cents, created, 1));
                    wanted -= 1;
                }
            }
        }

        // Day 2: new fines, and changes to fines billed on day 1.
        let day2_new = (size.fines / 50).max(1);
        let base = day1 + TimeDelta::hours(1);
        for n in 0..day2_new {
            next_fine += 1;
            next_loan += 1;
            let created = base + TimeDelta::seconds(i64::try_from(n).unwrap_or(0) % 86_000);
            let patron = rng.below(patrons);
            let cents = rng.range(1, 120) * 25;
            let mut fine = new_fine(
                next_fine,
                patron,
                Some(next_loan),
                "Overdue fine",
                created,
                cents,
                &mut rng,
                2,
            );
            fine.txns.push(Txn {
                id: Some(ids.next()),
                kind: TxnKind::Fine,
                cents,
                created: created + TimeDelta::seconds(3),
                note: None,
                day: 2,
            });
            fines.push(fine);
        }
        let day1_count = fines.iter().filter(|f| f.day == 1).count();
        for fine in fines.iter_mut().take(day1_count) {
            if fine.original_cents <= 0 || !rng.chance(40) {
                continue;
            }
            let room = fine.remaining(1);
            if room <= 0 {
                continue;
            }
            let created = base + TimeDelta::seconds(rng.range(0, 80_000));
            let cents = rng.range(1, room);
            let txn = reduction(&mut rng, &mut ids, cents, created, 2);
            fine.txns.push(txn);
        }
        Institution { size, fines }
    }

    #[cfg(test)]
    pub fn transactions(&self, day: u8) -> u64 {
        self.fines
            .iter()
            .filter(|f| f.day <= day)
            .map(|f| f.txns.iter().filter(|t| t.day <= day).count() as u64)
            .sum()
    }

    /// The All Fines report of `day`; with `since`, only the fines whose
    /// status date is on or after it (what Alma answers to the filter).
    pub fn fines_report(&self, day: u8, since: Option<NaiveDateTime>) -> ReportTable {
        let mut table = ReportTable::new(&[
            "Fine Fee Id",
            "Primary Identifier",
            "Item Loan Id",
            "Fine Fee Type",
            "Fine Fee Status",
            "Fine Fee Creation Date",
            "Status Date",
            "Original Amount",
            "Remaining Amount",
            "Fine Comment",
            "Loan Details",
            "Author",
            "Barcode",
            "Call Number",
            "Location Code",
            "Loan Date",
            "Loan Time",
            "Due Date",
            "Due Time",
            "Return Date",
            "Return Time",
        ]);
        for fine in self.fines.iter().filter(|f| f.day <= day) {
            if since.is_some_and(|since| fine.status_date(day) < since) {
                continue;
            }
            let remaining = fine.remaining(day);
            let status = if fine.original_cents > 0 && remaining <= 0 {
                "Closed"
            } else {
                "Active"
            };
            let on_loan = fine.loan.is_some();
            let loaned = fine.created - TimeDelta::days(45);
            let due = fine.created - TimeDelta::days(15);
            let cell = |text: String| Some(text);
            let item = |text: String| on_loan.then_some(text);
            let returned = on_loan && !fine.fee_type.starts_with("Lost");
            table.rows.push(vec![
                cell(fine.id_text()),
                cell(patron_id(fine.patron)),
                Some(fine.loan.map_or_else(|| "-1".to_string(), loan_id)),
                cell(fine.fee_type.to_string()),
                cell(status.to_string()),
                cell(datetime(fine.created)),
                cell(datetime(fine.status_date(day))),
                cell(amount(fine.original_cents)),
                cell(amount(remaining)),
                fine.comment.map(str::to_string),
                item(fine.title.to_string()),
                item(AUTHORS[usize::try_from(fine.id % 5).unwrap_or(0)].to_string()),
                Some(if on_loan {
                    format!("39031{:09}", fine.id)
                } else {
                    "-1".to_string()
                }),
                item(format!(
                    "QA{}.{} .A{}",
                    fine.id % 900,
                    fine.id % 97,
                    fine.id % 10
                )),
                fine.location.map(str::to_string),
                item(loaned.format("%Y-%m-%d").to_string()),
                item(loaned.format("%H:%M:%S").to_string()),
                item(due.format("%Y-%m-%d").to_string()),
                item("23:59:00".to_string()),
                returned.then(|| fine.created.format("%Y-%m-%d").to_string()),
                returned.then(|| fine.created.format("%H:%M:%S").to_string()),
            ]);
        }
        table
    }

    /// The All Transactions report of `day`; with `since`, only the
    /// transactions created on or after it.
    pub fn transactions_report(&self, day: u8, since: Option<NaiveDateTime>) -> ReportTable {
        let mut table = ReportTable::new(&[
            "Fine Fee Id",
            "Fine Fee Transaction Creation Date",
            "Fine Fee Transaction Id",
            "Fine FeeTransaction Type",
            "Transaction Note",
            "Item Loan Id",
            "Primary Identifier",
            "Transaction Amount",
        ]);
        for fine in self.fines.iter().filter(|f| f.day <= day) {
            for txn in fine
                .txns
                .iter()
                .filter(|t| t.day <= day && since.is_none_or(|since| t.created >= since))
            {
                table.rows.push(vec![
                    Some(fine.id_text()),
                    Some(datetime(txn.created)),
                    Some(txn.id.map_or_else(|| "-1".to_string(), txn_id)),
                    Some(txn.kind.label().to_string()),
                    txn.note.map(str::to_string),
                    Some(fine.loan.map_or_else(|| "-1".to_string(), loan_id)),
                    Some(patron_id(fine.patron)),
                    Some(amount(txn.cents)),
                ]);
            }
        }
        table
    }

    /// Every fee with a positive original amount as Alma holds it after
    /// `day`: id, patron, original and remaining cents (0: closed). What
    /// the fees API answers for the fines of the reports (the crash
    /// test's Direction 2 pays some of them).
    pub fn fees(&self, day: u8) -> Vec<(String, String, i64, i64)> {
        self.fines
            .iter()
            .filter(|f| f.day <= day && f.original_cents > 0)
            .map(|f| {
                (
                    f.id_text(),
                    patron_id(f.patron),
                    f.original_cents,
                    f.remaining(day).max(0),
                )
            })
            .collect()
    }

    /// The All User Balances report of `day`: every patron.
    pub fn balances_report(&self, day: u8) -> ReportTable {
        let mut balances = vec![0i64; usize::try_from(self.size.patrons.max(1)).unwrap_or(1)];
        for fine in self.fines.iter().filter(|f| f.day <= day) {
            if let Some(b) = balances.get_mut(usize::try_from(fine.patron).unwrap_or(0)) {
                *b += fine.remaining(day).max(0);
            }
        }
        let mut table = ReportTable::new(&["Primary Identifier", "Remaining Amount"]);
        for (patron, cents) in balances.into_iter().enumerate() {
            table
                .rows
                .push(vec![Some(patron_id(patron as u64)), Some(amount(cents))]);
        }
        table
    }
}

fn datetime(at: NaiveDateTime) -> String {
    at.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Alma's decimal text; sometimes without the trailing zero ("12.5").
pub fn amount(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    let text = format!("{sign}{}.{:02}", abs / 100, abs % 100);
    if !abs.is_multiple_of(100) && abs.is_multiple_of(10) && abs.is_multiple_of(7) {
        text.trim_end_matches('0').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_reports() {
        let a = Institution::generate(Size::scaled(42, 500));
        let b = Institution::generate(Size::scaled(42, 500));
        assert_eq!(
            a.transactions_report(2, None),
            b.transactions_report(2, None)
        );
        assert_eq!(a.fines_report(1, None), b.fines_report(1, None));
        let c = Institution::generate(Size::scaled(43, 500));
        assert_ne!(
            a.transactions_report(1, None),
            c.transactions_report(1, None)
        );
    }

    #[test]
    fn sizes_are_met() {
        let size = Size::scaled(7, 2000);
        let inst = Institution::generate(size);
        assert_eq!(inst.fines.iter().filter(|f| f.day == 1).count(), 2000);
        assert_eq!(inst.transactions(1), size.transactions);
        assert!(inst.transactions(2) > size.transactions);
        // No reduction takes a fine below zero.
        assert!(
            inst.fines
                .iter()
                .filter(|f| f.original_cents > 0)
                .all(|f| f.remaining(2) >= 0)
        );
    }

    #[test]
    fn amounts_are_alma_text() {
        assert_eq!(amount(1500), "15.00");
        assert_eq!(amount(-300), "-3.00");
        assert_eq!(amount(1250), "12.50");
        assert_eq!(amount(5), "0.05");
    }
}
