//! What can stop a report. Every variant names the report (its name, or
//! its path when it has none) and, past the first request, the page.

use alma_api::AlmaError;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Alma refused or failed the request (after the client's retries).
    #[error("report {report}, page {page}: {source}")]
    Alma {
        report: String,
        page: usize,
        /// Boxed: Alma's answer is large and errors travel by value.
        #[source]
        source: Box<AlmaError>,
    },
    /// `INTERNAL_SERVER_ERROR` "Path not found (...)": the configured path
    /// names no report.
    #[error(
        "report {report}: Alma has no report at path {path:?} ({message}); check the report path in the configuration"
    )]
    PathNotFound {
        report: String,
        path: String,
        message: String,
    },
    /// 420033 "No more rows to fetch": a finished token was continued, or
    /// a filter was sent to a report whose column has no "is prompted"
    /// filter.
    #[error(
        "report {report}, page {page}: Alma error 420033 {message:?}; if a filter was sent, the report's column needs an \"is prompted\" filter"
    )]
    NoMoreRows {
        report: String,
        page: usize,
        message: String,
    },
    /// Alma was still preparing the page after every try.
    #[error(
        "report {report}, page {page}: Analytics was still preparing the page after {attempts} tries; try again later"
    )]
    NotReady {
        report: String,
        page: usize,
        attempts: u32,
    },
    /// The answer has no `<report>`: Analytics is down.
    #[error(
        "report {report}, page {page}: the answer is not an Analytics report (Analytics may be down; try again later): {excerpt}"
    )]
    NoReport {
        report: String,
        page: usize,
        excerpt: String,
    },
    /// A `<report>` that cannot be read, for example cut off.
    #[error("report {report}, page {page}: unreadable answer: {message}")]
    Malformed {
        report: String,
        page: usize,
        message: String,
    },
    /// More pages are announced but Alma gave no token to ask for them.
    #[error("report {report}, page {page}: IsFinished is false but Alma sent no resumption token")]
    MissingToken { report: String, page: usize },
    /// The configured page limit was reached without IsFinished.
    #[error("report {report}: still not finished after {pages} pages; stopped")]
    TooManyPages { report: String, pages: usize },
    /// A row whose value in one column cannot be read.
    #[error(
        "report {report}, page {page}, row {row}, column {column:?}: {reason} (value {value:?})"
    )]
    Row {
        report: String,
        page: usize,
        /// 1-based within the page.
        row: usize,
        column: String,
        /// `None` when the column is null or absent.
        value: Option<String>,
        reason: String,
    },
}
