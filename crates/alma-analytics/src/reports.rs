//! Typed readers for the three import reports of SPEC section 4.
//!
//! Each reader fetches every page, turns each row into a typed value and
//! returns the whole report only when every page came and every row read:
//! an error anywhere (Alma, XML, or one bad value) returns the error and
//! no rows. Columns are found by heading; the headings are configuration
//! whose `Default` is the spec's. Each configured heading is looked up once
//! per page; a row's values are then read in place, and only those a typed
//! row keeps (ids, texts) are copied into `String`s.

use chrono::{NaiveDateTime, NaiveTime};
use sync_core::Money;
use sync_core::records::{
    AlmaTxnId, AlmaTxnType, FeeType, Fine, FineId, ItemDetails, LoanId, Patron, PatronId,
};
use sync_core::rules::opening::ReportedTransaction;

use crate::datetime::{parse_date, parse_date_time, parse_time};
use crate::error::ReportError;
use crate::fetch::{Analytics, Column, FetchSummary, Page, ReportRequest, Row};
use crate::filter::Filter;

pub const FINES_REPORT: &str = "All Fines";
pub const TRANSACTIONS_REPORT: &str = "All Transactions";
pub const BALANCES_REPORT: &str = "All User Balances";

/// Column headings of the All Fines report, and the column its since-date
/// filter applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FineColumns {
    pub comment: String,
    pub created: String,
    pub fine_id: String,
    pub status: String,
    pub fee_type: String,
    pub status_date: String,
    pub author: String,
    pub barcode: String,
    pub call_number: String,
    pub due_date: String,
    pub due_time: String,
    pub loan_id: String,
    pub loan_date: String,
    pub loan_time: String,
    pub return_date: String,
    pub return_time: String,
    /// "Loan Details" holds the title.
    pub title: String,
    pub patron_id: String,
    pub location_code: String,
    pub original_amount: String,
    pub remaining_amount: String,
    /// SQL expression of the column the since-date filter compares.
    pub since_filter_column: String,
}

impl Default for FineColumns {
    fn default() -> FineColumns {
        FineColumns {
            comment: "Fine Comment".into(),
            created: "Fine Fee Creation Date".into(),
            fine_id: "Fine Fee Id".into(),
            status: "Fine Fee Status".into(),
            fee_type: "Fine Fee Type".into(),
            status_date: "Status Date".into(),
            author: "Author".into(),
            barcode: "Barcode".into(),
            call_number: "Call Number".into(),
            due_date: "Due Date".into(),
            due_time: "Due Time".into(),
            loan_id: "Item Loan Id".into(),
            loan_date: "Loan Date".into(),
            loan_time: "Loan Time".into(),
            return_date: "Return Date".into(),
            return_time: "Return Time".into(),
            title: "Loan Details".into(),
            patron_id: "Primary Identifier".into(),
            location_code: "Location Code".into(),
            original_amount: "Original Amount".into(),
            remaining_amount: "Remaining Amount".into(),
            since_filter_column: r#""Fines and Fees Transactions"."Status Date""#.into(),
        }
    }
}

impl FineColumns {
    /// The headings in the report's column order (SPEC section 4), for
    /// answers whose schema has no headings.
    pub fn in_report_order(&self) -> Vec<String> {
        [
            &self.comment,
            &self.created,
            &self.fine_id,
            &self.status,
            &self.fee_type,
            &self.status_date,
            &self.author,
            &self.barcode,
            &self.call_number,
            &self.due_date,
            &self.due_time,
            &self.loan_id,
            &self.loan_date,
            &self.loan_time,
            &self.return_date,
            &self.return_time,
            &self.title,
            &self.patron_id,
            &self.location_code,
            &self.original_amount,
            &self.remaining_amount,
        ]
        .into_iter()
        .cloned()
        .collect()
    }
}

/// Column headings of the All Transactions report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionColumns {
    pub fine_id: String,
    pub created: String,
    pub transaction_id: String,
    /// Spelled "Fine FeeTransaction Type" in the report.
    pub transaction_type: String,
    pub note: String,
    pub loan_id: String,
    pub patron_id: String,
    pub amount: String,
    /// SQL expression of the column the since-date filter compares.
    pub since_filter_column: String,
}

impl Default for TransactionColumns {
    fn default() -> TransactionColumns {
        TransactionColumns {
            fine_id: "Fine Fee Id".into(),
            created: "Fine Fee Transaction Creation Date".into(),
            transaction_id: "Fine Fee Transaction Id".into(),
            transaction_type: "Fine FeeTransaction Type".into(),
            note: "Transaction Note".into(),
            loan_id: "Item Loan Id".into(),
            patron_id: "Primary Identifier".into(),
            amount: "Transaction Amount".into(),
            since_filter_column:
                r#""Fines and Fees Transactions"."Fine Fee Transaction Creation Date""#.into(),
        }
    }
}

impl TransactionColumns {
    pub fn in_report_order(&self) -> Vec<String> {
        [
            &self.fine_id,
            &self.created,
            &self.transaction_id,
            &self.transaction_type,
            &self.note,
            &self.loan_id,
            &self.patron_id,
            &self.amount,
        ]
        .into_iter()
        .cloned()
        .collect()
    }
}

/// Column headings of the All User Balances report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalanceColumns {
    pub patron_id: String,
    pub balance: String,
}

impl Default for BalanceColumns {
    fn default() -> BalanceColumns {
        BalanceColumns {
            patron_id: "Primary Identifier".into(),
            balance: "Remaining Amount".into(),
        }
    }
}

impl BalanceColumns {
    pub fn in_report_order(&self) -> Vec<String> {
        vec![self.patron_id.clone(), self.balance.clone()]
    }
}

/// The headings of all three reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportColumns {
    pub fines: FineColumns,
    pub transactions: TransactionColumns,
    pub balances: BalanceColumns,
}

/// One row of All Fines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FineRow {
    pub fine_id: FineId,
    pub patron_id: PatronId,
    /// `None` for "-1" or null.
    pub loan_id: Option<LoanId>,
    pub fee_type: FeeType,
    /// "Fine Fee Status" as Analytics labels it (`Active`, `Closed`, ...).
    pub status: String,
    /// The status is `Closed`.
    pub closed: bool,
    pub created_at: NaiveDateTime,
    pub status_at: NaiveDateTime,
    /// Negative for a Credit.
    pub original_amount: Money,
    pub remaining_amount: Money,
    pub comment: Option<String>,
    /// Barcode `None` for "-1"; loan, due and return joined from their
    /// date and time columns.
    pub item: ItemDetails,
}

/// One row of All Transactions that has a transaction id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionRow {
    pub fine_id: FineId,
    pub transaction_id: AlmaTxnId,
    pub kind: AlmaTxnType,
    /// Signed by type (Fine positive; Payment, Waive, Credit negative).
    pub amount: Money,
    pub created_at: NaiveDateTime,
    pub note: Option<String>,
    pub loan_id: Option<LoanId>,
    pub patron_id: PatronId,
}

/// The fine a row of All Fines describes.
impl From<FineRow> for Fine {
    fn from(row: FineRow) -> Fine {
        Fine {
            id: row.fine_id,
            patron_id: row.patron_id,
            loan_id: row.loan_id,
            fee_type: row.fee_type,
            closed: row.closed,
            created_at: row.created_at,
            status_at: row.status_at,
            original_amount: row.original_amount,
            remaining_amount: row.remaining_amount,
            comment: row.comment,
            item: row.item,
        }
    }
}

impl From<TransactionRow> for ReportedTransaction {
    fn from(row: TransactionRow) -> ReportedTransaction {
        ReportedTransaction {
            id: row.transaction_id,
            fine_id: row.fine_id,
            kind: row.kind,
            amount: row.amount,
            created_at: row.created_at,
            note: row.note,
        }
    }
}

/// One row of All User Balances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalanceRow {
    pub patron_id: PatronId,
    pub balance: Money,
}

/// The patron a row of All User Balances describes.
impl From<BalanceRow> for Patron {
    fn from(row: BalanceRow) -> Patron {
        Patron {
            id: row.patron_id,
            balance: row.balance,
        }
    }
}

/// A complete report of typed rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report<T> {
    pub rows: Vec<T>,
    /// Rows that are not records by rule (a transaction row without an
    /// id), left out.
    pub skipped: usize,
    pub fetched: FetchSummary,
}

impl Analytics {
    /// All Fines, with status date on or after `since` when given.
    pub async fn all_fines(
        &self,
        path: &str,
        since: Option<NaiveDateTime>,
        columns: &FineColumns,
    ) -> Result<Report<FineRow>, ReportError> {
        let request = ReportRequest::new(path)
            .name(FINES_REPORT)
            .filter(since.map(|since| Filter::on_or_after(&columns.since_filter_column, since)))
            .fallback_headings(columns.in_report_order());
        self.read_typed(
            &request,
            |page| FineKeys::on(page, columns),
            |cells, keys| fine_row(cells, keys).map(Some),
        )
        .await
    }

    /// All Transactions, created on or after `since` when given. Rows
    /// without a transaction id ("-1" or null) are skipped and counted.
    pub async fn all_transactions(
        &self,
        path: &str,
        since: Option<NaiveDateTime>,
        columns: &TransactionColumns,
    ) -> Result<Report<TransactionRow>, ReportError> {
        self.all_transactions_into(path, since, columns).await
    }

    /// [`Self::all_transactions`], each row converted as it is read: a
    /// caller that keeps less than a whole row (the import keeps a
    /// `ReportedTransaction`, two-thirds the size) holds a million of the
    /// smaller ones, never a million rows.
    pub async fn all_transactions_into<T: From<TransactionRow>>(
        &self,
        path: &str,
        since: Option<NaiveDateTime>,
        columns: &TransactionColumns,
    ) -> Result<Report<T>, ReportError> {
        let request = ReportRequest::new(path)
            .name(TRANSACTIONS_REPORT)
            .filter(since.map(|since| Filter::on_or_after(&columns.since_filter_column, since)))
            .fallback_headings(columns.in_report_order());
        self.read_typed(
            &request,
            |page| TransactionKeys::on(page, columns),
            |cells, keys| transaction_row(cells, keys).map(|row| row.map(T::from)),
        )
        .await
    }

    /// All User Balances (no filter).
    pub async fn all_balances(
        &self,
        path: &str,
        columns: &BalanceColumns,
    ) -> Result<Report<BalanceRow>, ReportError> {
        let request = ReportRequest::new(path)
            .name(BALANCES_REPORT)
            .fallback_headings(columns.in_report_order());
        self.read_typed(
            &request,
            |page| {
                (
                    Key::on(page, &columns.patron_id),
                    Key::on(page, &columns.balance),
                )
            },
            |cells, &(patron_id, balance)| {
                Ok(Some(BalanceRow {
                    patron_id: PatronId::new(cells.required_str(patron_id)?),
                    balance: cells.money(balance)?,
                }))
            },
        )
        .await
    }

    /// Reads every row of every page with `read`, after `resolve` has
    /// found the configured headings among the page's columns (once per
    /// page, so that rows are read without comparing headings).
    async fn read_typed<T, K, R, F>(
        &self,
        request: &ReportRequest,
        resolve: R,
        mut read: F,
    ) -> Result<Report<T>, ReportError>
    where
        R: Fn(&Page) -> K,
        F: FnMut(&Cells<'_>, &K) -> Result<Option<T>, ReportError>,
    {
        let mut rows = Vec::new();
        let mut skipped = 0;
        let fetched = self
            .fetch_report(request, |page| {
                let keys = resolve(page);
                rows.reserve(page.rows.len());
                for row in &page.rows {
                    let cells = Cells {
                        report: &request.name,
                        page: page.number,
                        row,
                    };
                    match read(&cells, &keys)? {
                        Some(typed) => rows.push(typed),
                        None => skipped += 1,
                    }
                }
                Ok(())
            })
            .await?;
        // The report is kept for the whole import: give back what the
        // growth of the vector reserved beyond its rows.
        rows.shrink_to_fit();
        Ok(Report {
            rows,
            skipped,
            fetched,
        })
    }
}

/// A configured heading and the column it names on the page being read.
#[derive(Clone, Copy, Debug)]
struct Key<'c> {
    /// As configured; errors name the column by it.
    heading: &'c str,
    /// `None` when no row of the report so far has the heading: the
    /// column is null in every row.
    column: Option<Column>,
}

impl<'c> Key<'c> {
    fn on(page: &Page, heading: &'c str) -> Key<'c> {
        Key {
            heading,
            column: page.column(heading),
        }
    }
}

/// The columns of All Fines on one page.
struct FineKeys<'c> {
    comment: Key<'c>,
    created: Key<'c>,
    fine_id: Key<'c>,
    status: Key<'c>,
    fee_type: Key<'c>,
    status_date: Key<'c>,
    author: Key<'c>,
    barcode: Key<'c>,
    call_number: Key<'c>,
    due_date: Key<'c>,
    due_time: Key<'c>,
    loan_id: Key<'c>,
    loan_date: Key<'c>,
    loan_time: Key<'c>,
    return_date: Key<'c>,
    return_time: Key<'c>,
    title: Key<'c>,
    patron_id: Key<'c>,
    location_code: Key<'c>,
    original_amount: Key<'c>,
    remaining_amount: Key<'c>,
}

impl<'c> FineKeys<'c> {
    fn on(page: &Page, columns: &'c FineColumns) -> FineKeys<'c> {
        let key = |heading: &'c String| Key::on(page, heading);
        FineKeys {
            comment: key(&columns.comment),
            created: key(&columns.created),
            fine_id: key(&columns.fine_id),
            status: key(&columns.status),
            fee_type: key(&columns.fee_type),
            status_date: key(&columns.status_date),
            author: key(&columns.author),
            barcode: key(&columns.barcode),
            call_number: key(&columns.call_number),
            due_date: key(&columns.due_date),
            due_time: key(&columns.due_time),
            loan_id: key(&columns.loan_id),
            loan_date: key(&columns.loan_date),
            loan_time: key(&columns.loan_time),
            return_date: key(&columns.return_date),
            return_time: key(&columns.return_time),
            title: key(&columns.title),
            patron_id: key(&columns.patron_id),
            location_code: key(&columns.location_code),
            original_amount: key(&columns.original_amount),
            remaining_amount: key(&columns.remaining_amount),
        }
    }
}

/// The columns of All Transactions on one page.
struct TransactionKeys<'c> {
    fine_id: Key<'c>,
    created: Key<'c>,
    transaction_id: Key<'c>,
    transaction_type: Key<'c>,
    note: Key<'c>,
    loan_id: Key<'c>,
    patron_id: Key<'c>,
    amount: Key<'c>,
}

impl<'c> TransactionKeys<'c> {
    fn on(page: &Page, columns: &'c TransactionColumns) -> TransactionKeys<'c> {
        let key = |heading: &'c String| Key::on(page, heading);
        TransactionKeys {
            fine_id: key(&columns.fine_id),
            created: key(&columns.created),
            transaction_id: key(&columns.transaction_id),
            transaction_type: key(&columns.transaction_type),
            note: key(&columns.note),
            loan_id: key(&columns.loan_id),
            patron_id: key(&columns.patron_id),
            amount: key(&columns.amount),
        }
    }
}

fn fine_row(cells: &Cells<'_>, keys: &FineKeys<'_>) -> Result<FineRow, ReportError> {
    let status = cells.required(keys.status)?;
    Ok(FineRow {
        fine_id: FineId::new(cells.required_str(keys.fine_id)?),
        patron_id: PatronId::new(cells.required_str(keys.patron_id)?),
        loan_id: cells.id(keys.loan_id).map(LoanId::new),
        fee_type: cells.parse(keys.fee_type, FeeType::from_label)?,
        closed: status.eq_ignore_ascii_case("closed"),
        status,
        created_at: cells.date_time(keys.created)?,
        status_at: cells.date_time(keys.status_date)?,
        original_amount: cells.money(keys.original_amount)?,
        remaining_amount: cells.money(keys.remaining_amount)?,
        comment: cells.text(keys.comment),
        item: ItemDetails {
            title: cells.text(keys.title),
            author: cells.text(keys.author),
            call_number: cells.text(keys.call_number),
            barcode: cells.id(keys.barcode).map(str::to_string),
            location_code: cells.text(keys.location_code),
            loaned_at: cells.joined(keys.loan_date, keys.loan_time)?,
            due_at: cells.joined(keys.due_date, keys.due_time)?,
            returned_at: cells.joined(keys.return_date, keys.return_time)?,
        },
    })
}

fn transaction_row(
    cells: &Cells<'_>,
    keys: &TransactionKeys<'_>,
) -> Result<Option<TransactionRow>, ReportError> {
    // A row without a transaction id is not a transaction (SPEC 4).
    let Some(transaction_id) = cells.id(keys.transaction_id) else {
        return Ok(None);
    };
    let kind = cells.parse(keys.transaction_type, AlmaTxnType::from_label)?;
    Ok(Some(TransactionRow {
        fine_id: FineId::new(cells.required_str(keys.fine_id)?),
        transaction_id: AlmaTxnId::new(transaction_id),
        kind,
        amount: kind.signed(cells.money(keys.amount)?),
        created_at: cells.date_time(keys.created)?,
        note: cells.text(keys.note),
        loan_id: cells.id(keys.loan_id).map(LoanId::new),
        patron_id: PatronId::new(cells.required_str(keys.patron_id)?),
    }))
}

/// One row being read, able to say where a bad value is. Values are
/// looked at in place; only those a typed row keeps become `String`s.
struct Cells<'a> {
    report: &'a str,
    page: usize,
    row: &'a Row,
}

impl<'a> Cells<'a> {
    /// As Alma sent it; `None` when null or absent.
    fn raw(&self, key: Key<'_>) -> Option<&'a str> {
        key.column.and_then(|column| self.row.value(column))
    }

    fn error(&self, key: Key<'_>, reason: impl Into<String>) -> ReportError {
        ReportError::Row {
            report: self.report.to_string(),
            page: self.page,
            row: self.row.number,
            column: key.heading.to_string(),
            value: self.raw(key).map(str::to_string),
            reason: reason.into(),
        }
    }

    /// Trimmed; `None` when null or blank.
    fn trimmed(&self, key: Key<'_>) -> Option<&'a str> {
        self.raw(key)
            .map(str::trim)
            .filter(|value| !value.is_empty())
    }

    fn text(&self, key: Key<'_>) -> Option<String> {
        self.trimmed(key).map(str::to_string)
    }

    fn required_str(&self, key: Key<'_>) -> Result<&'a str, ReportError> {
        self.trimmed(key)
            .ok_or_else(|| self.error(key, "the column is empty or missing"))
    }

    fn required(&self, key: Key<'_>) -> Result<String, ReportError> {
        self.required_str(key).map(str::to_string)
    }

    /// An id where "-1" means none. Given as `&str`: the id types copy
    /// it themselves, so a `String` here would be one more copy.
    fn id(&self, key: Key<'_>) -> Option<&'a str> {
        self.trimmed(key).filter(|value| *value != "-1")
    }

    /// The trimmed value read by `parse`, which is given a `&str` so that
    /// a value only parsed is never copied.
    fn parse<T, E: std::fmt::Display>(
        &self,
        key: Key<'_>,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Result<T, ReportError> {
        let value = self.required_str(key)?;
        parse(value).map_err(|error| self.error(key, error.to_string()))
    }

    fn money(&self, key: Key<'_>) -> Result<Money, ReportError> {
        self.parse(key, Money::parse)
    }

    fn date_time(&self, key: Key<'_>) -> Result<NaiveDateTime, ReportError> {
        self.parse(key, parse_date_time)
    }

    /// A date column and a time column as one date-time; `None` when the
    /// date is null; midnight when only the time is null.
    fn joined(&self, date: Key<'_>, time: Key<'_>) -> Result<Option<NaiveDateTime>, ReportError> {
        let Some(date_text) = self.trimmed(date) else {
            return Ok(None);
        };
        let day = parse_date(date_text).map_err(|reason| self.error(date, reason))?;
        let clock = match self.trimmed(time) {
            Some(time_text) => parse_time(time_text).map_err(|reason| self.error(time, reason))?,
            None => NaiveTime::MIN,
        };
        Ok(Some(day.and_time(clock)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_date_and_time_shapes_of_analytics() {
        let at = |text| parse_date_time(text).map(|t| t.to_string());
        assert_eq!(at("2024-05-01T10:00:00"), Ok("2024-05-01 10:00:00".into()));
        assert_eq!(
            at("2024-05-01T10:00:00.250"),
            Ok("2024-05-01 10:00:00.250".into())
        );
        assert!(at("2024-05-01").is_err());
        assert!(at("01/05/2024 10:00").is_err());
        assert_eq!(
            parse_date("2024-05-01").map(|d| d.to_string()),
            Ok("2024-05-01".into())
        );
        assert!(parse_date("2024-13-01").is_err());
        assert_eq!(
            parse_time("14:30:05").map(|t| t.to_string()),
            Ok("14:30:05".into())
        );
        assert!(parse_time("25:00:00").is_err());
    }
}
