//! Paging through a report and handing it over one page at a time.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;

use alma_api::{API_PREFIX, Accept, AlmaClient, AlmaError};
use tokio::task::JoinHandle;

use crate::error::ReportError;
use crate::filter::Filter;
use crate::page::{Cell, PageError, RawPage, Spare, parse_page, scan_head};

/// Rows per request: Alma's maximum.
pub const PAGE_LIMIT: usize = 1000;

/// Which report to fetch, and how to name its columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportRequest {
    /// How errors and logs name the report, e.g. `All Fines`.
    pub name: String,
    /// Catalog path, e.g. `/shared/Example University/Reports/All Fines`.
    pub path: String,
    pub filter: Option<Filter>,
    /// Headings for `Column1`, `Column2`, ... in order, used only when the
    /// schema gives a column no heading (very old answers).
    pub fallback_headings: Vec<String>,
}

impl ReportRequest {
    pub fn new(path: impl Into<String>) -> ReportRequest {
        let path = path.into();
        ReportRequest {
            name: path.clone(),
            path,
            filter: None,
            fallback_headings: Vec::new(),
        }
    }

    pub fn name(mut self, name: impl Into<String>) -> ReportRequest {
        self.name = name.into();
        self
    }

    pub fn filter(mut self, filter: Option<Filter>) -> ReportRequest {
        self.filter = filter;
        self
    }

    pub fn fallback_headings(mut self, headings: Vec<String>) -> ReportRequest {
        self.fallback_headings = headings;
        self
    }
}

/// One row: values by column heading. A null column has no value.
///
/// The values live in their page's text, shared by the page's rows, and
/// each names its column by an index into the report's headings: reading
/// a row allocates nothing per cell.
#[derive(Clone, Default)]
pub struct Row {
    /// 1-based within its page.
    pub number: usize,
    page: Arc<PageCells>,
    /// This row's cells in `page.cells`.
    cells: Range<usize>,
}

/// What the rows of one page share.
#[derive(Debug, Default)]
struct PageCells {
    /// The distinct headings of the report so far; a cell's `column` is an
    /// index here. The same heading keeps its index for the whole report.
    headings: Arc<Vec<String>>,
    /// The page's values one after the other, as the parser wrote them.
    text: String,
    cells: Vec<Cell>,
}

/// A column of a report, resolved from its heading once (see
/// [`Page::column`]) and then read from each row without comparing
/// headings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Column(usize);

impl Row {
    /// The value under `heading`, as Alma sent it (not trimmed). When two
    /// columns of a row have the same heading, the later one's.
    pub fn get(&self, heading: &str) -> Option<&str> {
        self.value(column_of(&self.page.headings, heading)?)
    }

    /// The value in `column` (of this row's page), as Alma sent it.
    pub(crate) fn value(&self, column: Column) -> Option<&str> {
        let cells = self.page.cells.get(self.cells.clone())?;
        // Reversed: the later of two cells with one heading wins, as when
        // a row was a map filled in document order.
        let cell = cells.iter().rev().find(|cell| cell.column == column.0)?;
        self.page.text.get(cell.start..cell.end)
    }

    /// `(heading, value)` of each non-null cell, in the order Alma sent
    /// them.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let cells = self.page.cells.get(self.cells.clone()).unwrap_or(&[]);
        cells.iter().map(|cell| {
            (
                self.page
                    .headings
                    .get(cell.column)
                    .map_or("", String::as_str),
                self.page.text.get(cell.start..cell.end).unwrap_or(""),
            )
        })
    }

    /// The values by heading (the later of two with one heading).
    pub fn values(&self) -> BTreeMap<&str, &str> {
        self.iter().collect()
    }
}

fn column_of(headings: &[String], heading: &str) -> Option<Column> {
    headings
        .iter()
        .position(|known| known == heading)
        .map(Column)
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Row")
            .field("number", &self.number)
            .field("values", &self.values())
            .finish()
    }
}

/// Rows are equal when they have the same number and the same values by
/// heading, whatever page they came from.
impl PartialEq for Row {
    fn eq(&self, other: &Row) -> bool {
        self.number == other.number && self.values() == other.values()
    }
}

impl Eq for Row {}

/// One page of rows, in the order Alma sent them.
#[derive(Clone, Default)]
pub struct Page {
    /// 1-based.
    pub number: usize,
    pub rows: Vec<Row>,
    cells: Arc<PageCells>,
}

impl Page {
    /// The column under `heading` in this page's rows, `None` when no
    /// row of the report so far has one.
    pub(crate) fn column(&self, heading: &str) -> Option<Column> {
        column_of(&self.cells.headings, heading)
    }

    /// The buffers of the page for the next one, unless the caller kept
    /// rows (which share them).
    fn into_spare(self) -> (Spare, Vec<Row>) {
        let Page {
            mut rows, cells, ..
        } = self;
        rows.clear();
        let spare = match Arc::try_unwrap(cells) {
            Ok(cells) => Spare {
                text: cells.text,
                cells: cells.cells,
                rows: Vec::new(),
            },
            Err(_) => Spare::default(),
        };
        (spare, rows)
    }
}

impl std::fmt::Debug for Page {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Page")
            .field("number", &self.number)
            .field("rows", &self.rows)
            .finish()
    }
}

impl PartialEq for Page {
    fn eq(&self, other: &Page) -> bool {
        self.number == other.number && self.rows == other.rows
    }
}

impl Eq for Page {}

/// How a complete fetch went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FetchSummary {
    pub pages: usize,
    pub rows: usize,
}

/// Options of the pager itself; waits and tries come from the client's
/// [`alma_api::RetryPolicy`] (`still_preparing_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnalyticsOptions {
    /// Stop a report that never says it is finished after this many pages
    /// (the default, 10,000 pages, is ten million rows).
    pub max_pages: usize,
}

impl Default for AnalyticsOptions {
    fn default() -> AnalyticsOptions {
        AnalyticsOptions { max_pages: 10_000 }
    }
}

/// Alma Analytics on an [`AlmaClient`].
#[derive(Clone, Debug)]
pub struct Analytics {
    client: AlmaClient,
    options: AnalyticsOptions,
}

const REPORTS_PATH: &str = "/analytics/reports";

impl Analytics {
    pub fn new(client: AlmaClient) -> Analytics {
        Analytics::with_options(client, AnalyticsOptions::default())
    }

    pub fn with_options(client: AlmaClient, options: AnalyticsOptions) -> Analytics {
        Analytics { client, options }
    }

    pub fn client(&self) -> &AlmaClient {
        &self.client
    }

    /// Fetches every page of a report and gives each to `on_page` as it
    /// arrives, so that memory holds one page (and the answer to the next
    /// request). Returns only once Alma says the report is finished. An
    /// error from `on_page` stops the fetch.
    ///
    /// While a page is parsed and handed over, the next one is already
    /// being asked for, when a quick read of the top of the page says for
    /// sure that it has rows and is not the last: parsing a page takes
    /// about as long as Alma takes to answer the next. One
    /// request at most is ever ahead, it goes through the same client
    /// (rate limit, retries), and it is cancelled when the current page
    /// fails or `on_page` returns an error.
    ///
    /// When this returns an error, pages already given to `on_page` are
    /// not a report: a caller that needs all-or-nothing collects pages and
    /// uses them only on `Ok` (as the typed readers do).
    pub async fn fetch_report<F>(
        &self,
        request: &ReportRequest,
        mut on_page: F,
    ) -> Result<FetchSummary, ReportError>
    where
        F: FnMut(&Page) -> Result<(), ReportError>,
    {
        let retry = &self.client.config().retry;
        let mut token: Option<String> = None;
        let mut headings: Option<HashMap<String, String>> = None;
        let mut report_headings: Arc<Vec<String>> = Arc::default();
        let mut summary = FetchSummary::default();
        let mut spare = Spare::default();
        let mut spare_rows: Vec<Row> = Vec::new();
        // The request for page `summary.pages + 1`, sent while the page
        // before it was read.
        let mut ahead: Option<Ahead> = None;
        loop {
            let number = summary.pages + 1;
            if number > self.options.max_pages {
                return Err(ReportError::TooManyPages {
                    report: request.name.clone(),
                    pages: summary.pages,
                });
            }
            let mut tries = 0u32;
            let (mut raw, next) = loop {
                tries += 1;
                let body = match ahead.take() {
                    Some(ahead) => ahead.body().await,
                    None => get_page(&self.client, &page_query(request, token.as_deref())).await,
                }
                .map_err(|error| classify(error, request, number))?;
                // From here on, an early return drops `next`, which
                // cancels its request.
                let next = self.ask_ahead(request, &body, token.as_deref(), number);
                let raw = match &next {
                    // Off this task, so that the request ahead is sent
                    // and answered while the page is parsed.
                    Some(_) => parse_elsewhere(body, spare).await,
                    None => parse_page(&body, spare),
                }
                .map_err(|error| page_error(error, request, number))?;
                if let Some(next) = &next {
                    next.check(&raw, request, number)?;
                }
                // Never true with `next`: it was asked for only when rows
                // came (checked just above).
                let preparing = raw.rows.is_empty() && raw.is_finished != Some(true);
                if !preparing {
                    break (raw, next);
                }
                spare = raw.into_spare();
                if tries >= retry.still_preparing_attempts.max(1) {
                    return Err(ReportError::NotReady {
                        report: request.name.clone(),
                        page: number,
                        attempts: tries,
                    });
                }
                tracing::info!(report = %request.name, page = number, try_number = tries, delay = ?retry.still_preparing_delay, "Analytics is still preparing the page; waiting");
                tokio::time::sleep(retry.still_preparing_delay).await;
            };
            if headings.is_none() && !raw.headings.is_empty() {
                headings = Some(raw.headings.iter().cloned().collect());
            }
            if let Some(new_token) = raw.token.take() {
                token = Some(new_token);
            }
            // Rows came, or IsFinished is true (see the loop above): a
            // missing IsFinished with rows counts as finished. With
            // `next`, IsFinished was checked to be false.
            let finished = raw.is_finished.unwrap_or(true);
            let (page, raw_rows) = to_page(
                raw,
                number,
                headings.as_ref(),
                &mut report_headings,
                request,
                std::mem::take(&mut spare_rows),
            );
            tracing::debug!(report = %request.name, page = number, rows = page.rows.len(), finished, ahead = next.is_some(), "Analytics page");
            summary.pages = number;
            summary.rows += page.rows.len();
            on_page(&page)?;
            (spare, spare_rows) = page.into_spare();
            spare.rows = raw_rows;
            if finished {
                tracing::info!(report = %request.name, pages = summary.pages, rows = summary.rows, "Analytics report fetched");
                return Ok(summary);
            }
            if token.is_none() {
                return Err(ReportError::MissingToken {
                    report: request.name.clone(),
                    page: number,
                });
            }
            ahead = next;
        }
    }

    /// Sends the request for the page after `number` now, when the top of
    /// `body` says for sure that the page has rows and is not the last,
    /// and the next page is within `max_pages`. `token` is the one known
    /// from earlier pages: Alma sends it on the first page only, and it
    /// stays the same for the whole report.
    fn ask_ahead(
        &self,
        request: &ReportRequest,
        body: &[u8],
        token: Option<&str>,
        number: usize,
    ) -> Option<Ahead> {
        if number >= self.options.max_pages {
            return None;
        }
        let head = scan_head(body)?;
        if head.is_finished != Some(false) || !head.has_rows {
            return None;
        }
        let next_token = head.token.as_deref().or(token)?;
        let query = page_query(request, Some(next_token));
        tracing::debug!(report = %request.name, page = number + 1, "asking for the next page while this one is read");
        let client = self.client.clone();
        Some(Ahead {
            task: tokio::spawn(async move { get_page(&client, &query).await }),
            token: head.token,
        })
    }
}

/// The request for the next page, sent before the current page is
/// parsed. Dropping it cancels the request: an error on the current page
/// ends the report, and nobody would read the answer.
struct Ahead {
    task: JoinHandle<Result<Vec<u8>, AlmaError>>,
    /// The token the current page's top was read to carry.
    token: Option<String>,
}

impl Drop for Ahead {
    fn drop(&mut self) {
        // A no-op once the task has finished.
        self.task.abort();
    }
}

impl Ahead {
    /// The answer, as if the request had been sent just now.
    async fn body(mut self) -> Result<Vec<u8>, AlmaError> {
        match (&mut self.task).await {
            Ok(answer) => answer,
            Err(error) => match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // Only the runtime shutting down cancels it while held.
                Err(_) => Err(AlmaError::Decode {
                    path: format!("{API_PREFIX}{REPORTS_PATH}"),
                    message: "the request was cancelled (the runtime is shutting down)".into(),
                }),
            },
        }
    }

    /// The full read of the page it was asked ahead of must say what the
    /// quick read said: rows, not finished, the same token. Otherwise the
    /// next page may have been asked for wrongly, and with Alma's one
    /// token per report it cannot be asked for again: the report fails.
    /// [`scan_head`] is written so that this never happens.
    fn check(
        &self,
        raw: &RawPage,
        request: &ReportRequest,
        number: usize,
    ) -> Result<(), ReportError> {
        if raw.is_finished == Some(false) && !raw.rows.is_empty() && raw.token == self.token {
            return Ok(());
        }
        Err(ReportError::Malformed {
            report: request.name.clone(),
            page: number,
            message: format!(
                "the page's top said IsFinished false, token {:?} and rows, the whole page says IsFinished {:?}, token {:?} and {} rows; the next page was already asked for, so the report is stopped",
                self.token,
                raw.is_finished,
                raw.token,
                raw.rows.len()
            ),
        })
    }
}

/// The query of one page: the report's path (and filter) first, then its
/// token.
fn page_query(request: &ReportRequest, token: Option<&str>) -> Vec<(&'static str, String)> {
    let mut query = Vec::with_capacity(4);
    match token {
        Some(token) => query.push(("token", token.to_string())),
        None => {
            query.push(("path", request.path.clone()));
            if let Some(filter) = &request.filter {
                query.push(("filter", filter.as_xml().to_string()));
            }
        }
    }
    query.push(("limit", PAGE_LIMIT.to_string()));
    query.push(("col_names", "true".to_string()));
    query
}

async fn get_page(
    client: &AlmaClient,
    query: &[(&'static str, String)],
) -> Result<Vec<u8>, AlmaError> {
    let query: Vec<(&str, &str)> = query
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    Ok(client.get(REPORTS_PATH, &query, Accept::Xml).await?.body)
}

/// [`parse_page`] on the blocking pool, leaving the runtime's threads to
/// the request ahead (on a single-threaded runtime, the only thread).
async fn parse_elsewhere(body: Vec<u8>, spare: Spare) -> Result<RawPage, PageError> {
    match tokio::task::spawn_blocking(move || parse_page(&body, spare)).await {
        Ok(parsed) => parsed,
        Err(error) => match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => Err(PageError::Malformed(
                "the page was not read (the runtime is shutting down)".into(),
            )),
        },
    }
}

fn page_error(error: PageError, request: &ReportRequest, page: usize) -> ReportError {
    match error {
        PageError::NoReport(excerpt) => ReportError::NoReport {
            report: request.name.clone(),
            page,
            excerpt,
        },
        PageError::Malformed(message) => ReportError::Malformed {
            report: request.name.clone(),
            page,
            message,
        },
    }
}

fn classify(error: AlmaError, request: &ReportRequest, page: usize) -> ReportError {
    if let Some(fault) = error.fault() {
        if fault.code == "420033" {
            return ReportError::NoMoreRows {
                report: request.name.clone(),
                page,
                message: fault.message.clone(),
            };
        }
        if fault.message.contains("Path not found") {
            return ReportError::PathNotFound {
                report: request.name.clone(),
                path: request.path.clone(),
                message: fault.message.clone(),
            };
        }
    }
    ReportError::Alma {
        report: request.name.clone(),
        page,
        source: Box::new(error),
    }
}

/// A parsed page as rows by heading, in `rows` (empty, kept from an
/// earlier page for its capacity). Each distinct element name of the page
/// is given its heading once; the cells keep their text where the parser
/// put it. Also gives back the emptied row ranges of `raw`.
fn to_page(
    raw: RawPage,
    number: usize,
    headings: Option<&HashMap<String, String>>,
    report_headings: &mut Arc<Vec<String>>,
    request: &ReportRequest,
    mut rows: Vec<Row>,
) -> (Page, Vec<Range<usize>>) {
    let heading_of_slot: Vec<usize> = raw
        .slots
        .iter()
        .map(|name| {
            let heading = heading_of(name, headings, request);
            match report_headings.iter().position(|known| *known == heading) {
                Some(index) => index,
                None => {
                    let known = Arc::make_mut(report_headings);
                    known.push(heading);
                    known.len() - 1
                }
            }
        })
        .collect();
    let mut cells = raw.cells;
    for cell in &mut cells {
        // Every slot the parser gives a cell is one of `raw.slots`.
        cell.column = heading_of_slot[cell.column];
    }
    let shared = Arc::new(PageCells {
        headings: Arc::clone(report_headings),
        text: raw.text,
        cells,
    });
    let mut raw_rows = raw.rows;
    rows.extend(raw_rows.drain(..).enumerate().map(|(index, cells)| Row {
        number: index + 1,
        page: Arc::clone(&shared),
        cells,
    }));
    (
        Page {
            number,
            rows,
            cells: shared,
        },
        raw_rows,
    )
}

/// The schema's heading, else the configured heading at the column's
/// position, else the element name.
fn heading_of(
    column: &str,
    headings: Option<&HashMap<String, String>>,
    request: &ReportRequest,
) -> String {
    if let Some(heading) = headings.and_then(|headings| headings.get(column)) {
        return heading.clone();
    }
    column
        .strip_prefix("Column")
        .and_then(|index| index.parse::<usize>().ok())
        .and_then(|index| index.checked_sub(1))
        .and_then(|index| request.fallback_headings.get(index))
        .cloned()
        .unwrap_or_else(|| column.to_string())
}
