//! Typed readers for the three import reports of SPEC section 4.
//!
//! Each reader fetches every page, turns each row into a typed value and
//! returns the whole report only when every page came and every row read:
//! an error anywhere (Alma, XML, or one bad value) returns the error and
//! no rows. Columns are found by heading; the headings are configuration
//! whose `Default` is the spec's.

use chrono::{NaiveDateTime, NaiveTime};
use sync_core::Money;
use sync_core::records::{
    AlmaTxnId, AlmaTxnType, FeeType, Fine, FineId, ItemDetails, LoanId, PatronId,
};
use sync_core::rules::opening::ReportedTransaction;

use crate::datetime::{parse_date, parse_date_time, parse_time};
use crate::error::ReportError;
use crate::fetch::{Analytics, FetchSummary, ReportRequest, Row};
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
        self.read_typed(&request, |cells| fine_row(cells, columns).map(Some))
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
        let request = ReportRequest::new(path)
            .name(TRANSACTIONS_REPORT)
            .filter(since.map(|since| Filter::on_or_after(&columns.since_filter_column, since)))
            .fallback_headings(columns.in_report_order());
        self.read_typed(&request, |cells| transaction_row(cells, columns))
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
        self.read_typed(&request, |cells| {
            Ok(Some(BalanceRow {
                patron_id: PatronId::new(cells.required(&columns.patron_id)?),
                balance: cells.money(&columns.balance)?,
            }))
        })
        .await
    }

    async fn read_typed<T, F>(
        &self,
        request: &ReportRequest,
        mut read: F,
    ) -> Result<Report<T>, ReportError>
    where
        F: FnMut(&Cells<'_>) -> Result<Option<T>, ReportError>,
    {
        let mut rows = Vec::new();
        let mut skipped = 0;
        let fetched = self
            .fetch_report(request, |page| {
                for row in &page.rows {
                    let cells = Cells {
                        report: &request.name,
                        page: page.number,
                        row,
                    };
                    match read(&cells)? {
                        Some(typed) => rows.push(typed),
                        None => skipped += 1,
                    }
                }
                Ok(())
            })
            .await?;
        Ok(Report {
            rows,
            skipped,
            fetched,
        })
    }
}

fn fine_row(cells: &Cells<'_>, columns: &FineColumns) -> Result<FineRow, ReportError> {
    let status = cells.required(&columns.status)?;
    Ok(FineRow {
        fine_id: FineId::new(cells.required(&columns.fine_id)?),
        patron_id: PatronId::new(cells.required(&columns.patron_id)?),
        loan_id: cells.id(&columns.loan_id).map(LoanId::new),
        fee_type: cells.parse(&columns.fee_type, FeeType::from_label)?,
        closed: status.eq_ignore_ascii_case("closed"),
        status,
        created_at: cells.date_time(&columns.created)?,
        status_at: cells.date_time(&columns.status_date)?,
        original_amount: cells.money(&columns.original_amount)?,
        remaining_amount: cells.money(&columns.remaining_amount)?,
        comment: cells.text(&columns.comment),
        item: ItemDetails {
            title: cells.text(&columns.title),
            author: cells.text(&columns.author),
            call_number: cells.text(&columns.call_number),
            barcode: cells.id(&columns.barcode),
            location_code: cells.text(&columns.location_code),
            loaned_at: cells.joined(&columns.loan_date, &columns.loan_time)?,
            due_at: cells.joined(&columns.due_date, &columns.due_time)?,
            returned_at: cells.joined(&columns.return_date, &columns.return_time)?,
        },
    })
}

fn transaction_row(
    cells: &Cells<'_>,
    columns: &TransactionColumns,
) -> Result<Option<TransactionRow>, ReportError> {
    // A row without a transaction id is not a transaction (SPEC 4).
    let Some(transaction_id) = cells.id(&columns.transaction_id) else {
        return Ok(None);
    };
    let kind = cells.parse(&columns.transaction_type, AlmaTxnType::from_label)?;
    Ok(Some(TransactionRow {
        fine_id: FineId::new(cells.required(&columns.fine_id)?),
        transaction_id: AlmaTxnId::new(transaction_id),
        kind,
        amount: kind.signed(cells.money(&columns.amount)?),
        created_at: cells.date_time(&columns.created)?,
        note: cells.text(&columns.note),
        loan_id: cells.id(&columns.loan_id).map(LoanId::new),
        patron_id: PatronId::new(cells.required(&columns.patron_id)?),
    }))
}

/// One row being read, able to say where a bad value is.
struct Cells<'a> {
    report: &'a str,
    page: usize,
    row: &'a Row,
}

impl Cells<'_> {
    fn error(&self, column: &str, reason: impl Into<String>) -> ReportError {
        ReportError::Row {
            report: self.report.to_string(),
            page: self.page,
            row: self.row.number,
            column: column.to_string(),
            value: self.row.get(column).map(str::to_string),
            reason: reason.into(),
        }
    }

    /// Trimmed; `None` when null or blank.
    fn text(&self, column: &str) -> Option<String> {
        self.row
            .get(column)
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_string)
    }

    fn required(&self, column: &str) -> Result<String, ReportError> {
        self.text(column)
            .ok_or_else(|| self.error(column, "the column is empty or missing"))
    }

    /// An id where "-1" means none.
    fn id(&self, column: &str) -> Option<String> {
        self.text(column).filter(|value| value != "-1")
    }

    fn parse<T, E: std::fmt::Display>(
        &self,
        column: &str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Result<T, ReportError> {
        let value = self.required(column)?;
        parse(&value).map_err(|error| self.error(column, error.to_string()))
    }

    fn money(&self, column: &str) -> Result<Money, ReportError> {
        self.parse(column, Money::parse)
    }

    fn date_time(&self, column: &str) -> Result<NaiveDateTime, ReportError> {
        self.parse(column, parse_date_time)
    }

    /// A date column and a time column as one date-time; `None` when the
    /// date is null; midnight when only the time is null.
    fn joined(&self, date: &str, time: &str) -> Result<Option<NaiveDateTime>, ReportError> {
        let Some(date_text) = self.text(date) else {
            return Ok(None);
        };
        let day = parse_date(&date_text).map_err(|reason| self.error(date, reason))?;
        let clock = match self.text(time) {
            Some(time_text) => parse_time(&time_text).map_err(|reason| self.error(time, reason))?,
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
