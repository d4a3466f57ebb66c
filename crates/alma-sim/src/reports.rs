//! Analytics reports, rendered page by page on request.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::sync::{Arc, Mutex};

use wiremock::{Request, Respond, ResponseTemplate};

/// Why a report table cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("report table {source_name}: {message}")]
    Table {
        source_name: String,
        message: String,
    },
}

/// A report as headings and rows; `None` is a null cell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportTable {
    pub headings: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl ReportTable {
    pub fn new(headings: &[&str]) -> ReportTable {
        ReportTable {
            headings: headings.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; an empty string is a null cell.
    pub fn push(&mut self, cells: &[&str]) {
        self.rows.push(
            cells
                .iter()
                .map(|cell| (!cell.is_empty()).then(|| cell.to_string()))
                .collect(),
        );
    }

    /// Reads a CSV file whose header row is the report's headings; an
    /// empty cell is a null.
    pub fn from_csv(reader: impl Read, source_name: &str) -> Result<ReportTable, SimError> {
        let error = |message: String| SimError::Table {
            source_name: source_name.to_string(),
            message,
        };
        let mut csv = csv::Reader::from_reader(reader);
        let headings = csv
            .headers()
            .map_err(|e| error(e.to_string()))?
            .iter()
            .map(str::to_string)
            .collect();
        let mut table = ReportTable {
            headings,
            rows: Vec::new(),
        };
        for record in csv.records() {
            let record = record.map_err(|e| error(e.to_string()))?;
            table.rows.push(
                record
                    .iter()
                    .map(|cell| (!cell.is_empty()).then(|| cell.to_string()))
                    .collect(),
            );
        }
        Ok(table)
    }

    fn page_count(&self, page_size: usize) -> usize {
        self.rows.len().div_ceil(page_size).max(1)
    }

    /// The XML of page `page` (0-based).
    fn render_page(&self, page: usize, page_size: usize, token: &str) -> String {
        let last = page + 1 >= self.page_count(page_size);
        let mut xml = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<report><QueryResult>",
        );
        if page == 0 && !last {
            let _ = write!(xml, "<ResumptionToken>{token}</ResumptionToken>");
        }
        let _ = write!(
            xml,
            "<IsFinished>{last}</IsFinished><ResultXml><rowset xmlns=\"urn:schemas-microsoft-com:xml-analysis:rowset\">"
        );
        if page == 0 {
            xml.push_str(
                "<xsd:schema xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:saw-sql=\"urn:saw-sql\" targetNamespace=\"urn:schemas-microsoft-com:xml-analysis:rowset\"><xsd:complexType name=\"Row\"><xsd:sequence>",
            );
            xml.push_str(
                "<xsd:element name=\"Column0\" type=\"xsd:string\" saw-sql:columnHeading=\"0\"/>",
            );
            for (index, heading) in self.headings.iter().enumerate() {
                let _ = write!(
                    xml,
                    "<xsd:element name=\"Column{}\" type=\"xsd:string\" saw-sql:columnHeading=\"{}\"/>",
                    index + 1,
                    escape(heading)
                );
            }
            xml.push_str("</xsd:sequence></xsd:complexType></xsd:schema>");
        }
        for row in self.rows.iter().skip(page * page_size).take(page_size) {
            xml.push_str("<Row><Column0>0</Column0>");
            for (index, cell) in row.iter().enumerate() {
                if let Some(value) = cell {
                    let column = index + 1;
                    let _ = write!(xml, "<Column{column}>{}</Column{column}>", escape(value));
                }
            }
            xml.push_str("</Row>");
        }
        xml.push_str("</rowset></ResultXml></QueryResult></report>\n");
        xml
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

struct Served {
    table: ReportTable,
    page_size: usize,
}

/// A bad day of Alma's, for the next report requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// An HTTP status with Alma's XML error body (e.g. 500, or 429 with
    /// `PER_SECOND_THRESHOLD` or a daily-limit code).
    Status {
        status: u16,
        code: String,
        message: String,
    },
    /// A page cut off in the middle of its XML.
    Truncated,
    /// HTTP 200 with a whole page whose XML is not well-formed: a row's
    /// end tag closes an element that is not open.
    Malformed,
    /// HTTP 200 with `IsFinished` false and no rows: "still preparing".
    StillPreparing,
    /// HTTP 200 with a body that has no `<report>` (Analytics is down).
    NoReport,
    /// The answer comes after this long (a timeout on the client's side).
    Delay(std::time::Duration),
}

#[derive(Default)]
pub(crate) struct Reports {
    /// Faults to answer with, one per request, before serving normally.
    pub(crate) faults: std::collections::VecDeque<Fault>,
    by_path: BTreeMap<String, usize>,
    served: Vec<Served>,
    /// The next page to serve for each report's token: Alma's token stays
    /// the same on every page, and a client asks for pages in order.
    next_page: BTreeMap<usize, usize>,
}

impl Reports {
    pub(crate) fn insert(&mut self, path: &str, table: ReportTable, page_size: usize) {
        let served = Served { table, page_size };
        match self.by_path.get(path) {
            Some(&index) => self.served[index] = served,
            None => {
                self.by_path.insert(path.to_string(), self.served.len());
                self.served.push(served);
            }
        }
    }
}

pub(crate) struct ReportResponder(pub(crate) Arc<Mutex<Reports>>);

fn token_of(report: usize) -> String {
    format!("SIMULATED-REPORT-{report}")
}

fn xml_response(status: u16, body: String) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("Content-Type", "application/xml")
        .set_body_string(body)
}

fn fault_response(fault: Fault) -> ResponseTemplate {
    match fault {
        Fault::Status {
            status,
            code,
            message,
        } => alma_error_status(status, &code, &message),
        Fault::Truncated => {
            let mut table = ReportTable::new(&["Primary Identifier", "Remaining Amount"]);
            table.push(&["1000001", "1.00"]);
            let page = table.render_page(0, 10, "SIMULATED-CUT");
            xml_response(200, page[..page.len() / 2].to_string())
        }
        Fault::Malformed => {
            let mut table = ReportTable::new(&["Primary Identifier", "Remaining Amount"]);
            table.push(&["1000001", "1.00"]);
            let page = table.render_page(0, 10, "SIMULATED-MALFORMED");
            xml_response(200, page.replacen("</Column1>", "</Column2>", 1))
        }
        Fault::StillPreparing => xml_response(
            200,
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<report><QueryResult><IsFinished>false</IsFinished><ResultXml/></QueryResult></report>\n".to_string(),
        ),
        Fault::NoReport => xml_response(
            200,
            "<html><body>Analytics is unavailable</body></html>".to_string(),
        ),
        Fault::Delay(delay) => xml_response(200, String::new()).set_delay(delay),
    }
}

fn alma_error(code: &str, message: &str) -> ResponseTemplate {
    alma_error_status(400, code, message)
}

fn alma_error_status(status: u16, code: &str, message: &str) -> ResponseTemplate {
    xml_response(
        status,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><web_service_result xmlns=\"http://com/exlibris/urm/general/xmlbeans\"><errorsExist>true</errorsExist><errorList><error><errorCode>{code}</errorCode><errorMessage>{}</errorMessage><trackingId>E01-SIMULATED</trackingId></error></errorList></web_service_result>",
            escape(message)
        ),
    )
}

impl Respond for ReportResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let query: BTreeMap<String, String> = request.url.query_pairs().into_owned().collect();
        let Ok(mut reports) = self.0.lock() else {
            return xml_response(500, String::new());
        };
        if let Some(fault) = reports.faults.pop_front() {
            return fault_response(fault);
        }
        let (report, page) = match (query.get("token"), query.get("path")) {
            (Some(token), _) => {
                let found = (0..reports.served.len()).find(|&i| &token_of(i) == token);
                let Some(report) = found else {
                    return alma_error("420033", "No more rows to fetch");
                };
                let page = reports.next_page.get(&report).copied().unwrap_or(0);
                (report, page)
            }
            (None, Some(path)) => match reports.by_path.get(path) {
                Some(&report) => (report, 0),
                None => {
                    return alma_error(
                        "INTERNAL_SERVER_ERROR",
                        &format!("Path not found ({path})"),
                    );
                }
            },
            (None, None) => return alma_error("INTERNAL_SERVER_ERROR", "path is missing"),
        };
        let served = &reports.served[report];
        if page >= served.table.page_count(served.page_size) {
            return alma_error("420033", "No more rows to fetch");
        }
        let body = served
            .table
            .render_page(page, served.page_size, &token_of(report));
        reports.next_page.insert(report, page + 1);
        xml_response(200, body)
    }
}
