//! A simulated Alma on a local HTTP server.
//!
//! Alma is the one external service the project cannot run, so rehearsals
//! (the README's main-job command), the end-to-end tests and the
//! benchmarks talk to this instead: a wiremock server answering the two
//! Alma APIs the sync uses, with the wire shapes of `ALMA-API.md`.
//!
//! - **Analytics reports.** A report is a [`ReportTable`]: headings and rows
//!   of optional text, as a person would write them in a CSV file with the
//!   report's column headings. Pages are rendered on request, with the
//!   schema (headings in `saw-sql:columnHeading`) on the first page, a
//!   resumption token while more pages follow, and a null cell as an
//!   absent element. Rendering on request keeps memory flat for the
//!   benchmark's million-row reports.
//! - **Fees.** [`SimFee`]s live in shared state: a GET answers the fee (or
//!   Alma's "API does not support closed fees" once it is closed), a pay
//!   lowers the balance and closes the fee at zero, and every payment is
//!   kept so a test can see exactly what was posted.
//!
//! The simulation serves every row whatever the since-filter says, which
//! is what an overlapping since-date does anyway: the sync must merge
//! what it has already seen without change.

mod fees;
mod reports;

pub use fees::{SimFee, SimPayment};
pub use reports::{Fault, ReportTable, SimError};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer};

/// The simulated Alma. Dropping it stops the server.
pub struct SimulatedAlma {
    server: MockServer,
    reports: Arc<Mutex<reports::Reports>>,
    fees: Arc<Mutex<BTreeMap<String, SimFee>>>,
    payments: Arc<Mutex<Vec<SimPayment>>>,
}

impl SimulatedAlma {
    /// Starts the server on a free loopback port.
    pub async fn start() -> SimulatedAlma {
        let server = MockServer::start().await;
        let reports = Arc::new(Mutex::new(reports::Reports::default()));
        let fees = Arc::new(Mutex::new(BTreeMap::new()));
        let payments = Arc::new(Mutex::new(Vec::new()));
        Mock::given(method("GET"))
            .and(path("/almaws/v1/analytics/reports"))
            .respond_with(reports::ReportResponder(reports.clone()))
            .mount(&server)
            .await;
        Mock::given(path_regex(r"^/almaws/v1/users/[^/]+/fees/[^/]+$"))
            .respond_with(fees::FeeResponder {
                fees: fees.clone(),
                payments: payments.clone(),
            })
            .mount(&server)
            .await;
        SimulatedAlma {
            server,
            reports,
            fees,
            payments,
        }
    }

    /// The base URL to configure as Alma's (no `/almaws/v1`).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Serves `table` as the report at catalog path `report_path`, in
    /// pages of `page_size` rows.
    pub fn serve_report(&self, report_path: &str, table: ReportTable, page_size: usize) {
        if let Ok(mut reports) = self.reports.lock() {
            reports.insert(report_path, table, page_size.max(1));
        }
    }

    /// Serves the CSV file at `csv_path` (see [`ReportTable::from_csv`]) as
    /// the report at `report_path`.
    pub fn serve_report_csv(
        &self,
        report_path: &str,
        csv_path: &std::path::Path,
        page_size: usize,
    ) -> Result<(), SimError> {
        let name = csv_path.display().to_string();
        let file = std::fs::File::open(csv_path).map_err(|e| SimError::Table {
            source_name: name.clone(),
            message: e.to_string(),
        })?;
        self.serve_report(report_path, ReportTable::from_csv(file, &name)?, page_size);
        Ok(())
    }

    /// Answers the next report requests with these faults, one each,
    /// then serves normally again.
    pub fn inject_report_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        if let Ok(mut reports) = self.reports.lock() {
            reports.faults.extend(faults);
        }
    }

    /// Adds or replaces a fee.
    pub fn put_fee(&self, fee: SimFee) {
        if let Ok(mut fees) = self.fees.lock() {
            fees.insert(fee.id.clone(), fee);
        }
    }

    /// The fee as it stands now.
    pub fn fee(&self, id: &str) -> Option<SimFee> {
        self.fees.lock().ok().and_then(|fees| fees.get(id).cloned())
    }

    /// Every payment posted so far, in order.
    pub fn payments(&self) -> Vec<SimPayment> {
        self.payments
            .lock()
            .map(|payments| payments.clone())
            .unwrap_or_default()
    }

    /// How many requests the server has answered.
    pub async fn request_count(&self) -> usize {
        self.server
            .received_requests()
            .await
            .map_or(0, |requests| requests.len())
    }
}
