#![allow(clippy::unwrap_used, clippy::expect_used)]
use alma_sim::{Fault, ReportTable, SimulatedAlma};

#[tokio::test]
async fn a_fault_is_served_once_then_the_report() {
    let sim = SimulatedAlma::start().await;
    let mut table = ReportTable::new(&["Primary Identifier", "Remaining Amount"]);
    table.push(&["1000001", "1.00"]);
    sim.serve_report("/r", table, 10);
    sim.inject_report_faults([Fault::Truncated]);
    let url = format!("{}/almaws/v1/analytics/reports?path=%2Fr", sim.uri());
    let first = reqwest::get(&url).await.unwrap().text().await.unwrap();
    let second = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(!first.ends_with("</report>\n"));
    assert!(second.ends_with("</report>\n"), "{second}");
}
