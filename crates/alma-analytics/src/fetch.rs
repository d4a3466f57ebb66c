//! Paging through a report and handing it over one page at a time.

use std::collections::{BTreeMap, HashMap};

use alma_api::{Accept, AlmaClient, AlmaError};

use crate::error::ReportError;
use crate::filter::Filter;
use crate::page::{PageError, RawPage, parse_page};

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

/// One row: values by column heading. A null column is absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Row {
    /// 1-based within its page.
    pub number: usize,
    pub values: BTreeMap<String, String>,
}

impl Row {
    /// The value under `heading`, as Alma sent it (not trimmed).
    pub fn get(&self, heading: &str) -> Option<&str> {
        self.values.get(heading).map(String::as_str)
    }
}

/// One page of rows, in the order Alma sent them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// 1-based.
    pub number: usize,
    pub rows: Vec<Row>,
}

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
    /// arrives, so that memory holds one page. Returns only once Alma says
    /// the report is finished. An error from `on_page` stops the fetch.
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
        let limit = PAGE_LIMIT.to_string();
        let retry = &self.client.config().retry;
        let mut token: Option<String> = None;
        let mut headings: Option<HashMap<String, String>> = None;
        let mut summary = FetchSummary::default();
        loop {
            let number = summary.pages + 1;
            if number > self.options.max_pages {
                return Err(ReportError::TooManyPages {
                    report: request.name.clone(),
                    pages: summary.pages,
                });
            }
            let mut tries = 0u32;
            let raw = loop {
                tries += 1;
                let raw = self
                    .request_page(request, token.as_deref(), &limit, number)
                    .await?;
                let preparing = raw.rows.is_empty() && raw.is_finished != Some(true);
                if !preparing {
                    break raw;
                }
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
            if let Some(new_token) = &raw.token {
                token = Some(new_token.clone());
            }
            // Rows came, or IsFinished is true (see the loop above): a
            // missing IsFinished with rows counts as finished.
            let finished = raw.is_finished.unwrap_or(true);
            let page = Page {
                number,
                rows: raw
                    .rows
                    .into_iter()
                    .enumerate()
                    .map(|(index, columns)| Row {
                        number: index + 1,
                        values: columns
                            .into_iter()
                            .map(|(column, value)| {
                                (heading_of(&column, headings.as_ref(), request), value)
                            })
                            .collect(),
                    })
                    .collect(),
            };
            tracing::debug!(report = %request.name, page = number, rows = page.rows.len(), finished, "Analytics page");
            summary.pages = number;
            summary.rows += page.rows.len();
            on_page(&page)?;
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
        }
    }

    async fn request_page(
        &self,
        request: &ReportRequest,
        token: Option<&str>,
        limit: &str,
        page: usize,
    ) -> Result<RawPage, ReportError> {
        let mut query: Vec<(&str, &str)> = Vec::with_capacity(4);
        match token {
            Some(token) => query.push(("token", token)),
            None => {
                query.push(("path", request.path.as_str()));
                if let Some(filter) = &request.filter {
                    query.push(("filter", filter.as_xml()));
                }
            }
        }
        query.push(("limit", limit));
        query.push(("col_names", "true"));
        let response = self
            .client
            .get(REPORTS_PATH, &query, Accept::Xml)
            .await
            .map_err(|error| classify(error, request, page))?;
        parse_page(&response.body).map_err(|error| match error {
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
        })
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
