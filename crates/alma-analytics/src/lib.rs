//! Alma Analytics reports: paging, rows by column heading, typed readers.
//!
//! A report is fetched with `GET /analytics/reports` through the shared
//! [`alma_api::AlmaClient`] (key, rate limit, retries and error shapes live
//! there). The first request names the report's path (and an optional
//! sawx [`Filter`], percent-encoded whole); Alma answers one page of at
//! most 1000 rows and, when more exist, a resumption token that every
//! later request sends until `IsFinished` is true.
//!
//! Pages are read with a streaming XML parser and handed to the caller one
//! at a time ([`Analytics::fetch_report`] takes a page callback), so memory
//! holds one page, and the answer to the one request sent ahead: while a
//! page is parsed, the next is already asked for, when the page's top
//! (`IsFinished`, the token, a first row) says for sure that one follows. [`Row::get`] reads a value by column *heading*: the
//! headings come from the first page's `xsd:schema`
//! (`saw-sql:columnHeading`, trimmed, since computed columns start with a
//! space), never from a column's position, so a report edited in Alma
//! keeps working; only an answer with no headings at all falls back to
//! configured positions. A null value is absent. Elements are matched by
//! local name, whatever their namespace. A page's values are kept in one
//! buffer that its rows share, and the typed readers find their columns
//! once per page, so reading a cell allocates nothing but the `String`s a
//! typed row keeps.
//!
//! Bad days are part of the model: a page still being prepared (HTTP 200,
//! `IsFinished` false, no rows) is asked for again after a wait; error
//! 420033, a wrong path, a body that is not a report, or a page cut off
//! are typed [`ReportError`]s naming the report and the page.
//!
//! On top, [`Analytics::all_fines`], [`Analytics::all_transactions`] and
//! [`Analytics::all_balances`] read SPEC section 4's reports into typed
//! rows ([`FineRow`], [`TransactionRow`], [`BalanceRow`]) with money in
//! [`sync_core::Money`]. They are all-or-nothing: a report that fails on
//! any page, or has one row with a bad amount, date, fee type or
//! transaction type, is an error naming the report, page, row and column,
//! and gives no rows.
//!
//! Architecture invariant: this crate knows Analytics XML and the report
//! columns, not the store and not the merge rules (SPEC 4.1-4.7).

mod datetime;
mod error;
mod fetch;
mod filter;
mod page;
mod reports;

pub use error::ReportError;
pub use fetch::{Analytics, AnalyticsOptions, FetchSummary, PAGE_LIMIT, Page, ReportRequest, Row};
pub use filter::Filter;
pub use reports::{
    BALANCES_REPORT, BalanceColumns, BalanceRow, FINES_REPORT, FineColumns, FineRow, Report,
    ReportColumns, TRANSACTIONS_REPORT, TransactionColumns, TransactionRow,
};
