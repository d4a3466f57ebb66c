#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Analytics reports against a mock Alma: paging, headings, typed rows and
//! every bad day of ALMA-API.md.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use alma_analytics::{
    Analytics, AnalyticsOptions, BalanceColumns, BalanceRow, FineColumns, Page, ReportError,
    ReportRequest, TransactionColumns,
};
use alma_api::{AlmaClient, AlmaConfig, AlmaError, ApiKey, RetryPolicy};
use chrono::{NaiveDate, NaiveDateTime};
use sync_core::Money;
use sync_core::records::{AlmaTxnId, AlmaTxnType, FeeType, FineId, LoanId, PatronId};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const KEY: &str = "l8xx-ANALYTICS-KEY-51c2";
const REPORTS: &str = "/almaws/v1/analytics/reports";
const FINES_PATH: &str = "/shared/Example University/Reports/Bursar/All Fines";
const TX_PATH: &str = "/shared/Example University/Reports/Bursar/All Transactions";
const BAL_PATH: &str = "/shared/Example University/Reports/Bursar/All User Balances";
const FINES_TOKEN: &str = "9672D715A8E2EB6BBA4C8B57B5C6EBC1AA40C0EB02D8D7F37C7D5C11D4C5E5C3";
const TX_TOKEN: &str = "E5A9B7C3D1F0A2B4C6D8E0F1A3B5C7D9";

fn fixture(name: &str) -> String {
    let path = format!("{}/../../fixtures/alma/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// The report, page, HTTP status and Alma code of an Alma fault that
/// failed a report (`ReportError::Alma` with `AlmaError::Other`).
fn other_fault(error: &ReportError) -> (&str, usize, u16, &str) {
    let ReportError::Alma {
        report,
        page,
        source,
    } = error
    else {
        panic!("{error:?}")
    };
    let AlmaError::Other(fault) = source.as_ref() else {
        panic!("{source:?}")
    };
    (report.as_str(), *page, fault.status, fault.code.as_str())
}

fn analytics(server: &MockServer) -> Analytics {
    let mut config = AlmaConfig::new(server.uri(), ApiKey::new(KEY));
    config.requests_per_second = 1000;
    config.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(4),
        still_preparing_delay: Duration::from_millis(1),
        still_preparing_attempts: 3,
        per_second_429_delay: Duration::from_millis(1),
        per_second_429_attempts: 3,
    };
    Analytics::new(AlmaClient::new(config).unwrap())
}

fn xml(status: u16, body: String) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("Content-Type", "application/xml")
        .set_body_string(body)
}

fn at(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").unwrap()
}

/// Mounts the answer to the first request of the report at `report_path`.
async fn first_page(
    server: &MockServer,
    report_path: &str,
    response: ResponseTemplate,
    times: u64,
) {
    Mock::given(method("GET"))
        .and(path(REPORTS))
        .and(query_param("path", report_path))
        .and(query_param_is_missing("token"))
        .and(query_param("limit", "1000"))
        .and(query_param("col_names", "true"))
        .and(header("Accept", "application/xml"))
        .and(header("Authorization", format!("apikey {KEY}").as_str()))
        .respond_with(response)
        .expect(times)
        .mount(server)
        .await;
}

/// Mounts the answer to a request that continues with `token`.
async fn next_page(
    server: &MockServer,
    token: &str,
    response: ResponseTemplate,
    times: impl Into<wiremock::Times>,
) {
    Mock::given(method("GET"))
        .and(path(REPORTS))
        .and(query_param("token", token))
        .and(query_param_is_missing("path"))
        .and(query_param_is_missing("filter"))
        .and(query_param("limit", "1000"))
        .and(query_param("col_names", "true"))
        .respond_with(response)
        .expect(times)
        .mount(server)
        .await;
}

async fn fines_server(page2: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    first_page(
        &server,
        FINES_PATH,
        xml(200, fixture("analytics/fines_page1.xml")),
        1,
    )
    .await;
    next_page(&server, FINES_TOKEN, page2, 1).await;
    server
}

#[tokio::test]
async fn reads_all_fines_over_two_pages_with_the_filter_encoded_whole() {
    let server = fines_server(xml(200, fixture("analytics/fines_page2.xml"))).await;
    let since = at("2024-05-01T00:00:00");
    let report = analytics(&server)
        .all_fines(FINES_PATH, Some(since), &FineColumns::default())
        .await
        .unwrap();
    assert_eq!(
        (report.fetched.pages, report.fetched.rows, report.skipped),
        (2, 4, 0)
    );

    let requests = server.received_requests().await.unwrap();
    let query = requests[0].url.query().unwrap();
    assert!(query.starts_with("path=%2Fshared%2FExample%20University%2FReports%2FBursar%2FAll%20Fines&filter=%3Csawx%3Aexpr%20xsi%3Atype%3D%22sawx%3Acomparison%22%20op%3D%22greaterOrEqual%22%20"), "{query}");
    assert!(query.contains("%3Csawx%3Aexpr%20xsi%3Atype%3D%22sawx%3AsqlExpression%22%3E%22Fines%20and%20Fees%20Transactions%22.%22Status%20Date%22%3C%2Fsawx%3Aexpr%3E%3Csawx%3Aexpr%20xsi%3Atype%3D%22xsd%3AdateTime%22%3E2024-05-01T00%3A00%3A00%3C%2Fsawx%3Aexpr%3E"), "{query}");
    assert!(!query.contains('+'), "{query}");
    assert_eq!(
        requests[1].url.query().unwrap(),
        format!("token={FINES_TOKEN}&limit=1000&col_names=true")
    );

    let lost = &report.rows[0];
    assert_eq!(lost.fine_id, FineId::new("1234567890001"));
    assert_eq!(lost.patron_id, PatronId::new("1000123456"));
    assert_eq!(lost.loan_id, Some(LoanId::new("2234567890001")));
    assert_eq!(lost.fee_type, FeeType::LostItemReplacementFee);
    assert_eq!((lost.status.as_str(), lost.closed), ("Active", false));
    assert_eq!(lost.created_at, at("2024-04-02T14:21:07"));
    assert_eq!(lost.status_at, at("2024-04-02T14:21:07"));
    assert_eq!(lost.original_amount, Money::from_cents(75000));
    assert_eq!(
        lost.remaining_amount,
        Money::from_cents(75000),
        "computed heading ' Remaining Amount' is trimmed"
    );
    assert_eq!(lost.comment.as_deref(), Some("Replacement cost"));
    assert_eq!(
        lost.item.title.as_deref(),
        Some("Structure and interpretation of computer programs /")
    );
    assert_eq!(lost.item.author.as_deref(), Some("Abelson, Harold"));
    assert_eq!(lost.item.call_number.as_deref(), Some("QA76.6 .A255 1996"));
    assert_eq!(lost.item.barcode.as_deref(), Some("39031031234567"));
    assert_eq!(lost.item.location_code.as_deref(), Some("main_stacks"));
    assert_eq!(lost.item.loaned_at, Some(at("2024-01-15T10:12:44")));
    assert_eq!(lost.item.due_at, Some(at("2024-03-01T23:59:00")));
    assert_eq!(lost.item.returned_at, None);

    let overdue = &report.rows[1];
    assert_eq!(overdue.fee_type, FeeType::OverdueFine);
    assert_eq!(overdue.comment, None, "an empty element is null");
    assert_eq!(overdue.original_amount, Money::from_cents(1250));
    assert_eq!(overdue.remaining_amount, Money::from_cents(900));
    assert_eq!(overdue.item.returned_at, Some(at("2024-03-09T17:30:15")));
    assert_eq!(
        overdue.item.title.as_deref(),
        Some("Concrete mathematics : a foundation for computer science & engineering <2nd ed.>")
    );
    assert_eq!(overdue.item.location_code.as_deref(), Some("law_reserve"));

    let renewal = &report.rows[2];
    assert_eq!(renewal.fee_type, FeeType::CardRenewal);
    assert_eq!((renewal.status.as_str(), renewal.closed), ("Closed", true));
    assert_eq!(renewal.loan_id, None, "-1 is no loan");
    assert_eq!(
        renewal.item,
        Default::default(),
        "-1 barcode and absent columns are none"
    );
    assert_eq!(renewal.remaining_amount, Money::ZERO);

    let credit = &report.rows[3];
    assert_eq!(credit.fee_type, FeeType::Credit);
    assert_eq!(credit.original_amount, Money::from_cents(-2500));
    assert_eq!(credit.remaining_amount, Money::from_cents(-2500));
}

#[tokio::test]
async fn reads_transactions_when_the_last_page_repeats_token_and_schema() {
    let server = MockServer::start().await;
    first_page(
        &server,
        TX_PATH,
        xml(200, fixture("analytics/transactions_page1.xml")),
        1,
    )
    .await;
    next_page(
        &server,
        TX_TOKEN,
        xml(
            200,
            fixture("analytics/transactions_page2_repeats_token_and_schema.xml"),
        ),
        1,
    )
    .await;
    let report = analytics(&server)
        .all_transactions(TX_PATH, None, &TransactionColumns::default())
        .await
        .unwrap();
    assert_eq!(
        report.skipped, 1,
        "the row with transaction id -1 is not a transaction"
    );
    assert_eq!((report.fetched.pages, report.fetched.rows), (2, 6));
    let summary: Vec<(&str, &str, AlmaTxnType, i64)> = report
        .rows
        .iter()
        .map(|row| {
            (
                row.fine_id.as_str(),
                row.transaction_id.as_str(),
                row.kind,
                row.amount.cents(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("1234567890001", "3234567890001", AlmaTxnType::Fine, 75000),
            ("1234567890002", "3234567890002", AlmaTxnType::Fine, 1250),
            ("1234567890002", "3234567890003", AlmaTxnType::Payment, -350),
            ("1234567890004", "3234567890004", AlmaTxnType::Waive, -1000),
            ("1234567890003", "3234567890006", AlmaTxnType::Credit, -2500),
        ]
    );
    let payment = &report.rows[2];
    assert_eq!(payment.transaction_id, AlmaTxnId::new("3234567890003"));
    assert_eq!(payment.created_at, at("2024-05-01T16:45:30"));
    assert_eq!(
        payment.note.as_deref(),
        Some(
            "Paid to bursar on 2024-04-30, imported into Alma via alma-bursar-sync on 2024-05-01."
        )
    );
    assert_eq!(payment.loan_id, Some(LoanId::new("2234567890002")));
    assert_eq!(payment.patron_id, PatronId::new("1000123456"));
    assert_eq!(report.rows[1].note, None);
    assert_eq!(report.rows[3].loan_id, None);
    let query = server.received_requests().await.unwrap()[0]
        .url
        .query()
        .unwrap()
        .to_string();
    assert!(
        !query.contains("filter="),
        "no since-date, no filter: {query}"
    );
}

fn balances() -> Vec<BalanceRow> {
    [
        ("1000123456", 73450),
        ("1000765432", 0),
        ("1000999999", -2500),
    ]
    .into_iter()
    .map(|(id, cents)| BalanceRow {
        patron_id: PatronId::new(id),
        balance: Money::from_cents(cents),
    })
    .collect()
}

#[tokio::test]
async fn reads_balances_from_a_prefixed_rowset_in_one_page() {
    let server = MockServer::start().await;
    first_page(
        &server,
        BAL_PATH,
        xml(200, fixture("analytics/balances_single_page_prefixed.xml")),
        1,
    )
    .await;
    let report = analytics(&server)
        .all_balances(BAL_PATH, &BalanceColumns::default())
        .await
        .unwrap();
    assert_eq!(report.rows, balances());
    assert_eq!(report.fetched.pages, 1);
}

#[tokio::test]
async fn falls_back_to_configured_positions_when_the_schema_has_no_headings() {
    let server = MockServer::start().await;
    first_page(
        &server,
        BAL_PATH,
        xml(200, fixture("analytics/balances_no_headings.xml")),
        1,
    )
    .await;
    let report = analytics(&server)
        .all_balances(BAL_PATH, &BalanceColumns::default())
        .await
        .unwrap();
    assert_eq!(report.rows, balances());
}

#[tokio::test]
async fn columns_follow_their_heading_not_their_position() {
    // The report was edited in Alma: the two columns swapped places.
    let body = fixture("analytics/balances_single_page_prefixed.xml")
        .replace(
            "saw-sql:columnHeading=\"Primary Identifier\"",
            "saw-sql:columnHeading=\"X\"",
        )
        .replace(
            "saw-sql:columnHeading=\" Remaining Amount\"",
            "saw-sql:columnHeading=\"Primary Identifier\"",
        )
        .replace(
            "saw-sql:columnHeading=\"X\"",
            "saw-sql:columnHeading=\"Remaining Amount\"",
        )
        .replace(
            "<rs:Column1>1000123456</rs:Column1><rs:Column2>734.50</rs:Column2>",
            "<rs:Column1>734.50</rs:Column1><rs:Column2>1000123456</rs:Column2>",
        )
        .replace(
            "<rs:Column1>1000765432</rs:Column1><rs:Column2>0</rs:Column2>",
            "<rs:Column1>0</rs:Column1><rs:Column2>1000765432</rs:Column2>",
        )
        .replace(
            "<rs:Column1>1000999999</rs:Column1><rs:Column2>-25.00</rs:Column2>",
            "<rs:Column1>-25.00</rs:Column1><rs:Column2>1000999999</rs:Column2>",
        );
    let server = MockServer::start().await;
    first_page(&server, BAL_PATH, xml(200, body), 1).await;
    let report = analytics(&server)
        .all_balances(BAL_PATH, &BalanceColumns::default())
        .await
        .unwrap();
    assert_eq!(report.rows, balances());
}

#[tokio::test]
async fn a_missing_is_finished_with_rows_is_finished() {
    let server = MockServer::start().await;
    first_page(
        &server,
        BAL_PATH,
        xml(200, fixture("analytics/balances_missing_is_finished.xml")),
        1,
    )
    .await;
    let report = analytics(&server)
        .all_balances(BAL_PATH, &BalanceColumns::default())
        .await
        .unwrap();
    assert_eq!(report.rows.len(), 3);
}

#[tokio::test]
async fn an_empty_report_has_no_rows() {
    let server = MockServer::start().await;
    first_page(
        &server,
        BAL_PATH,
        xml(200, fixture("analytics/empty_report.xml")),
        1,
    )
    .await;
    let report = analytics(&server)
        .all_balances(BAL_PATH, &BalanceColumns::default())
        .await
        .unwrap();
    assert!(report.rows.is_empty());
    assert_eq!((report.fetched.pages, report.fetched.rows), (1, 0));
}

#[tokio::test]
async fn streams_pages_of_rows_by_heading_with_nulls_absent() {
    let server = fines_server(xml(200, fixture("analytics/fines_page2.xml"))).await;
    let mut pages: Vec<Page> = Vec::new();
    let request = ReportRequest::new(FINES_PATH).name("All Fines");
    let summary = analytics(&server)
        .fetch_report(&request, |page| {
            pages.push(page.clone());
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!((summary.pages, summary.rows), (2, 4));
    assert_eq!(
        pages
            .iter()
            .map(|page| (page.number, page.rows.len()))
            .collect::<Vec<_>>(),
        vec![(1, 2), (2, 2)]
    );
    let renewal = &pages[1].rows[0];
    assert_eq!(renewal.number, 1);
    let headings: Vec<&str> = renewal.values().into_keys().collect();
    assert_eq!(
        headings,
        vec![
            "Barcode",
            "Fine Comment",
            "Fine Fee Creation Date",
            "Fine Fee Id",
            "Fine Fee Status",
            "Fine Fee Type",
            "Item Loan Id",
            "Original Amount",
            "Primary Identifier",
            "Remaining Amount",
            "Status Date",
        ]
    );
    assert_eq!(renewal.get("Remaining Amount"), Some("0"));
    assert_eq!(renewal.get("Author"), None);
    assert_eq!(pages[0].rows[1].get("Fine Comment"), None, "empty element");
}

#[tokio::test]
async fn an_error_from_the_page_callback_stops_the_fetch() {
    let server = MockServer::start().await;
    first_page(
        &server,
        FINES_PATH,
        xml(200, fixture("analytics/fines_page1.xml")),
        1,
    )
    .await;
    // Page 2 may have been asked for ahead while page 1 was handled (and
    // is then cancelled), never anything after it.
    next_page(
        &server,
        FINES_TOKEN,
        xml(200, fixture("analytics/fines_page2.xml")),
        0..=1,
    )
    .await;
    let request = ReportRequest::new(FINES_PATH);
    let error = analytics(&server)
        .fetch_report(&request, |page| {
            Err(ReportError::TooManyPages {
                report: "stop".into(),
                pages: page.number,
            })
        })
        .await
        .unwrap_err();
    assert!(
        matches!(error, ReportError::TooManyPages { pages: 1, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_still_preparing_page_is_asked_for_again_then_completes() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(query_param("path", BAL_PATH))
        .respond_with(xml(200, fixture("analytics/still_preparing.xml")))
        .up_to_n_times(2)
        .with_priority(1)
        .expect(2)
        .mount(&server)
        .await;
    first_page(
        &server,
        BAL_PATH,
        xml(200, fixture("analytics/balances_single_page_prefixed.xml")),
        1,
    )
    .await;
    let report = analytics(&server)
        .all_balances(BAL_PATH, &BalanceColumns::default())
        .await
        .unwrap();
    assert_eq!(report.rows, balances());
}

#[tokio::test]
async fn a_page_still_preparing_after_every_try_fails_the_report() {
    let server = MockServer::start().await;
    first_page(
        &server,
        FINES_PATH,
        xml(200, fixture("analytics/fines_page1.xml")),
        1,
    )
    .await;
    next_page(
        &server,
        FINES_TOKEN,
        xml(200, fixture("analytics/still_preparing.xml")),
        3,
    )
    .await;
    let error = analytics(&server)
        .all_fines(FINES_PATH, None, &FineColumns::default())
        .await
        .unwrap_err();
    let ReportError::NotReady {
        report,
        page,
        attempts,
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!((report.as_str(), *page, *attempts), ("All Fines", 2, 3));
}

#[tokio::test]
async fn error_420033_part_way_fails_the_whole_report() {
    let server = fines_server(xml(400, fixture("errors/no_more_rows.xml"))).await;
    let error = analytics(&server)
        .all_fines(FINES_PATH, None, &FineColumns::default())
        .await
        .unwrap_err();
    let ReportError::NoMoreRows {
        report,
        page,
        message,
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(
        (report.as_str(), *page, message.as_str()),
        ("All Fines", 2, "No more rows to fetch")
    );
    assert!(error.to_string().contains("is prompted"), "{error}");
}

#[tokio::test]
async fn a_wrong_path_is_named_and_not_retried() {
    let server = MockServer::start().await;
    first_page(
        &server,
        FINES_PATH,
        xml(500, fixture("errors/path_not_found.xml")),
        1,
    )
    .await;
    let error = analytics(&server)
        .all_fines(FINES_PATH, None, &FineColumns::default())
        .await
        .unwrap_err();
    let ReportError::PathNotFound {
        report,
        path,
        message,
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(report, "All Fines");
    assert_eq!(path, FINES_PATH);
    assert_eq!(
        message,
        "Path not found (/shared/Example University/Reports/Bursar/All Fines)"
    );
}

#[tokio::test]
async fn an_error_body_with_http_200_fails_the_report() {
    let server = MockServer::start().await;
    first_page(
        &server,
        BAL_PATH,
        xml(200, fixture("errors/unauthorized.xml")),
        1,
    )
    .await;
    let error = analytics(&server)
        .all_balances(BAL_PATH, &BalanceColumns::default())
        .await
        .unwrap_err();
    assert_eq!(
        other_fault(&error),
        ("All User Balances", 1, 200, "UNAUTHORIZED")
    );
}

#[tokio::test]
async fn a_body_without_a_report_means_analytics_is_down() {
    let server = MockServer::start().await;
    first_page(
        &server,
        BAL_PATH,
        ResponseTemplate::new(200)
            .set_body_string("<html><body><h1>Analytics is under maintenance</h1></body></html>"),
        1,
    )
    .await;
    let error = analytics(&server)
        .all_balances(BAL_PATH, &BalanceColumns::default())
        .await
        .unwrap_err();
    let ReportError::NoReport { page, excerpt, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(*page, 1);
    assert!(excerpt.contains("under maintenance"), "{excerpt}");
}

#[tokio::test]
async fn a_page_cut_off_mid_xml_fails_the_whole_report() {
    let page2 = fixture("analytics/fines_page2.xml");
    let cut = page2[..page2.find("<Column18>").unwrap() + 14].to_string();
    let server = fines_server(xml(200, cut)).await;
    let error = analytics(&server)
        .all_fines(FINES_PATH, None, &FineColumns::default())
        .await
        .unwrap_err();
    let ReportError::Malformed {
        report,
        page,
        message,
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!((report.as_str(), *page), ("All Fines", 2));
    assert!(message.contains("cut off"), "{message}");
}

#[tokio::test]
async fn a_per_second_429_is_waited_out() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(xml(429, fixture("errors/per_second_threshold.json")))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    first_page(
        &server,
        BAL_PATH,
        xml(200, fixture("analytics/balances_single_page_prefixed.xml")),
        1,
    )
    .await;
    let report = analytics(&server)
        .all_balances(BAL_PATH, &BalanceColumns::default())
        .await
        .unwrap();
    assert_eq!(report.rows, balances());
}

#[tokio::test]
async fn a_500_is_retried_then_the_report_completes() {
    let server = MockServer::start().await;
    first_page(
        &server,
        FINES_PATH,
        xml(200, fixture("analytics/fines_page1.xml")),
        1,
    )
    .await;
    Mock::given(method("GET"))
        .and(query_param("token", FINES_TOKEN))
        .respond_with(xml(500, fixture("errors/internal_server_error.json")))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    next_page(
        &server,
        FINES_TOKEN,
        xml(200, fixture("analytics/fines_page2.xml")),
        1,
    )
    .await;
    let report = analytics(&server)
        .all_fines(FINES_PATH, None, &FineColumns::default())
        .await
        .unwrap();
    assert_eq!(report.rows.len(), 4);
}

#[tokio::test]
async fn a_daily_limit_429_stops_without_looping() {
    let server = fines_server(xml(429, fixture("errors/daily_limit.json"))).await;
    let error = analytics(&server)
        .all_fines(FINES_PATH, None, &FineColumns::default())
        .await
        .unwrap_err();
    let ReportError::Alma { page, source, .. } = &error else {
        panic!("{error:?}")
    };
    let AlmaError::DailyLimit(fault) = source.as_ref() else {
        panic!("{source:?}")
    };
    assert_eq!((*page, fault.code.as_str()), (2, "DAILY_THRESHOLD"));
}

#[tokio::test]
async fn more_pages_without_a_token_is_an_error() {
    let body = fixture("analytics/balances_single_page_prefixed.xml").replace(
        "<IsFinished>true</IsFinished>",
        "<IsFinished>false</IsFinished>",
    );
    let server = MockServer::start().await;
    first_page(&server, BAL_PATH, xml(200, body), 1).await;
    let error = analytics(&server)
        .all_balances(BAL_PATH, &BalanceColumns::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ReportError::MissingToken { page: 1, .. }),
        "{error:?}"
    );
}

/// Runs All Fines with one value of page 2, row `row`, replaced.
async fn fines_with_bad_page2(old: &str, new: &str) -> ReportError {
    let page2 = fixture("analytics/fines_page2.xml");
    assert!(page2.contains(old), "{old}");
    let server = fines_server(xml(200, page2.replacen(old, new, 1))).await;
    analytics(&server)
        .all_fines(FINES_PATH, None, &FineColumns::default())
        .await
        .unwrap_err()
}

fn row_error(error: &ReportError) -> (&str, usize, usize, &str, Option<&str>) {
    let ReportError::Row {
        report,
        page,
        row,
        column,
        value,
        ..
    } = error
    else {
        panic!("{error:?}")
    };
    (report, *page, *row, column, value.as_deref())
}

#[tokio::test]
async fn a_malformed_amount_names_report_page_row_and_column() {
    let error =
        fines_with_bad_page2("<Column20>-25.00</Column20>", "<Column20>-25,00</Column20>").await;
    assert_eq!(
        row_error(&error),
        ("All Fines", 2, 2, "Original Amount", Some("-25,00"))
    );
    assert_eq!(
        error.to_string(),
        "report All Fines, page 2, row 2, column \"Original Amount\": amount \"-25,00\" is not a decimal number like 12.50 (digits, one optional '.', optional leading '-') (value Some(\"-25,00\"))"
    );
}

#[tokio::test]
async fn a_malformed_date_names_its_column() {
    let error = fines_with_bad_page2(
        "<Column6>2024-01-05T12:00:00</Column6>",
        "<Column6>05/01/2024</Column6>",
    )
    .await;
    assert_eq!(
        row_error(&error),
        ("All Fines", 2, 1, "Status Date", Some("05/01/2024"))
    );
}

#[tokio::test]
async fn an_unknown_fee_type_names_its_column() {
    let error = fines_with_bad_page2(
        "<Column5>Card renewal</Column5>",
        "<Column5>Parking ticket</Column5>",
    )
    .await;
    assert_eq!(
        row_error(&error),
        ("All Fines", 2, 1, "Fine Fee Type", Some("Parking ticket"))
    );
}

#[tokio::test]
async fn a_missing_required_value_names_its_column() {
    let error = fines_with_bad_page2("<Column18>1000765432</Column18>", "").await;
    assert_eq!(
        row_error(&error),
        ("All Fines", 2, 1, "Primary Identifier", None)
    );
}

#[tokio::test]
async fn an_unknown_transaction_type_names_its_column() {
    let server = MockServer::start().await;
    let page1 = fixture("analytics/transactions_page1.xml").replacen(
        "<Column4>Payment</Column4>",
        "<Column4>Refund</Column4>",
        1,
    );
    first_page(&server, TX_PATH, xml(200, page1), 1).await;
    next_page(
        &server,
        TX_TOKEN,
        xml(
            200,
            fixture("analytics/transactions_page2_repeats_token_and_schema.xml"),
        ),
        // Asked for ahead while page 1 was read, at most.
        0..=1,
    )
    .await;
    let error = analytics(&server)
        .all_transactions(TX_PATH, None, &TransactionColumns::default())
        .await
        .unwrap_err();
    assert_eq!(
        row_error(&error),
        (
            "All Transactions",
            1,
            3,
            "Fine FeeTransaction Type",
            Some("Refund")
        )
    );
}

#[tokio::test]
async fn the_since_filter_of_transactions_uses_its_configured_column() {
    let server = MockServer::start().await;
    first_page(
        &server,
        TX_PATH,
        xml(200, fixture("analytics/transactions_page1.xml")),
        1,
    )
    .await;
    next_page(
        &server,
        TX_TOKEN,
        xml(
            200,
            fixture("analytics/transactions_page2_repeats_token_and_schema.xml"),
        ),
        1,
    )
    .await;
    let since = NaiveDate::from_ymd_opt(2017, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    analytics(&server)
        .all_transactions(TX_PATH, Some(since), &TransactionColumns::default())
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    let filter: String = requests[0]
        .url
        .query_pairs()
        .find(|(name, _)| name == "filter")
        .map(|(_, value)| value.into_owned())
        .unwrap();
    assert!(filter.contains(r#"<sawx:expr xsi:type="sawx:sqlExpression">"Fines and Fees Transactions"."Fine Fee Transaction Creation Date"</sawx:expr><sawx:expr xsi:type="xsd:dateTime">2017-01-01T00:00:00</sawx:expr>"#), "{filter}");
}

#[tokio::test]
async fn a_missing_is_finished_without_rows_is_not_finished() {
    let body =
        fixture("analytics/empty_report.xml").replace("    <IsFinished>true</IsFinished>\n", "");
    let server = MockServer::start().await;
    first_page(&server, BAL_PATH, xml(200, body), 3).await;
    let error = analytics(&server)
        .all_balances(BAL_PATH, &BalanceColumns::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ReportError::NotReady {
                page: 1,
                attempts: 3,
                ..
            }
        ),
        "{error:?}"
    );
}

// ---------------------------------------------------------------------
// Asking for the next page while the current one is read: exact request
// counts and order against a scripted Alma whose token, like Alma's, is
// the same on every page (so only the order of requests tells pages
// apart).

const TOKEN: &str = "0F1E2D3C4B5A69788796A5B4C3D2E1F0";

/// What happened, in order: requests as the mock received them (1-based)
/// and the page callback's start and end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Asked(usize),
    PageStart(usize),
    PageEnd(usize),
}

#[derive(Clone, Default)]
struct Log(Arc<(Mutex<Vec<Step>>, Condvar)>);

impl Log {
    fn push(&self, step: Step) {
        self.0.0.lock().unwrap().push(step);
        self.0.1.notify_all();
    }

    /// Records a request; its number.
    fn ask(&self) -> usize {
        let mut steps = self.0.0.lock().unwrap();
        let number = 1 + steps
            .iter()
            .filter(|step| matches!(step, Step::Asked(_)))
            .count();
        steps.push(Step::Asked(number));
        self.0.1.notify_all();
        number
    }

    fn steps(&self) -> Vec<Step> {
        self.0.0.lock().unwrap().clone()
    }

    fn asked(&self) -> usize {
        self.steps()
            .iter()
            .filter(|step| matches!(step, Step::Asked(_)))
            .count()
    }

    /// Waits until more than `than` requests were received, at most
    /// `within`. Blocks the thread: the page callback is synchronous.
    fn wait_for_asks(&self, than: usize, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        let mut steps = self.0.0.lock().unwrap();
        loop {
            let asked = steps
                .iter()
                .filter(|step| matches!(step, Step::Asked(_)))
                .count();
            if asked > than {
                return true;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return false;
            }
            steps = self.0.1.wait_timeout(steps, deadline - now).unwrap().0;
        }
    }

    fn index(&self, step: Step) -> usize {
        self.steps()
            .iter()
            .position(|seen| *seen == step)
            .unwrap_or_else(|| panic!("{step:?} never happened: {:?}", self.steps()))
    }
}

/// Alma answering one report: the n-th request gets the n-th answer;
/// past the script, 420033 as Alma answers a finished token.
struct Script {
    answers: Vec<ResponseTemplate>,
    log: Log,
    /// Held by the test to keep the server from answering one request
    /// (by its number) until released.
    gate: Option<(usize, Gate)>,
}

/// Shut until opened by the test.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn open(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }

    /// Blocks the mock's thread until opened (at most 20 s, so that a
    /// failing test still ends).
    fn pass(&self) {
        let open = self.0.0.lock().unwrap();
        let _ = self
            .0
            .1
            .wait_timeout_while(open, Duration::from_secs(20), |open| !*open)
            .unwrap();
    }
}

impl Respond for Script {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let number = self.log.ask();
        if let Some((gated, gate)) = &self.gate
            && *gated == number
        {
            gate.pass();
        }
        self.answers
            .get(number - 1)
            .cloned()
            .unwrap_or_else(|| xml(400, fixture("errors/no_more_rows.xml")))
    }
}

async fn scripted(answers: Vec<ResponseTemplate>, log: &Log) -> MockServer {
    scripted_with_gate(answers, log, None).await
}

async fn scripted_with_gate(
    answers: Vec<ResponseTemplate>,
    log: &Log,
    gate: Option<(usize, Gate)>,
) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(REPORTS))
        .respond_with(Script {
            answers,
            log: log.clone(),
            gate,
        })
        .mount(&server)
        .await;
    server
}

/// A page of All User Balances: the schema on the first page only, the
/// token where given, `IsFinished` where given.
fn balance_page(
    first: bool,
    token: Option<&str>,
    finished: Option<bool>,
    rows: &[(&str, &str)],
) -> ResponseTemplate {
    let mut body =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<report><QueryResult>");
    if let Some(token) = token {
        body.push_str(&format!("<ResumptionToken>{token}</ResumptionToken>"));
    }
    if let Some(finished) = finished {
        body.push_str(&format!("<IsFinished>{finished}</IsFinished>"));
    }
    body.push_str("<ResultXml><rowset xmlns=\"urn:schemas-microsoft-com:xml-analysis:rowset\">");
    if first {
        body.push_str("<xsd:schema xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:saw-sql=\"urn:saw-sql\"><xsd:complexType name=\"Row\"><xsd:sequence><xsd:element name=\"Column0\" saw-sql:columnHeading=\"0\"/><xsd:element name=\"Column1\" saw-sql:columnHeading=\"Primary Identifier\"/><xsd:element name=\"Column2\" saw-sql:columnHeading=\" Remaining Amount\"/></xsd:sequence></xsd:complexType></xsd:schema>");
    }
    for (patron, amount) in rows {
        body.push_str(&format!(
            "<Row><Column0>0</Column0><Column1>{patron}</Column1><Column2>{amount}</Column2></Row>"
        ));
    }
    body.push_str("</rowset></ResultXml></QueryResult></report>\n");
    xml(200, body)
}

fn still_preparing() -> ResponseTemplate {
    xml(200, fixture("analytics/still_preparing.xml"))
}

/// The query of each request received, in order: `path` for the first
/// request of the report, `token` for the others.
async fn asked(server: &MockServer) -> Vec<&'static str> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|request| {
            let pairs: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
            match pairs.iter().find(|(name, _)| name == "token") {
                Some((_, token)) if token == TOKEN => "token",
                Some(_) => "another token",
                None if pairs
                    .iter()
                    .any(|(name, value)| name == "path" && value == BAL_PATH) =>
                {
                    "path"
                }
                None => "neither",
            }
        })
        .collect()
}

/// Fetches the balances report, recording each page in `log`. Each page
/// callback lingers until one more request came (the one asked ahead),
/// at most `linger`: a request wrongly asked ahead of the last page has
/// time to reach the mock before the fetch returns and cancels it.
async fn fetch_logged(
    analytics: &Analytics,
    log: &Log,
    linger: Duration,
) -> (
    Result<(usize, usize), ReportError>,
    Vec<(usize, Vec<String>)>,
) {
    let request = ReportRequest::new(BAL_PATH).name("All User Balances");
    let mut pages = Vec::new();
    let fetched = analytics
        .fetch_report(&request, |page| {
            log.push(Step::PageStart(page.number));
            let patrons = page
                .rows
                .iter()
                .map(|row| row.get("Primary Identifier").unwrap_or("-").to_string())
                .collect();
            pages.push((page.number, patrons));
            log.wait_for_asks(log.asked(), linger);
            log.push(Step::PageEnd(page.number));
            Ok(())
        })
        .await
        .map(|summary| (summary.pages, summary.rows));
    (fetched, pages)
}

const LINGER: Duration = Duration::from_millis(300);

fn patrons(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_page_report_makes_exactly_three_requests() {
    let log = Log::default();
    let server = scripted(
        vec![
            balance_page(
                true,
                Some(TOKEN),
                Some(false),
                &[("p1", "1.00"), ("p2", "2.00")],
            ),
            balance_page(false, None, Some(false), &[("p3", "3.00"), ("p4", "4.00")]),
            balance_page(false, None, Some(true), &[("p5", "5.00")]),
        ],
        &log,
    )
    .await;
    let (fetched, pages) = fetch_logged(&analytics(&server), &log, LINGER).await;
    assert_eq!(fetched.unwrap(), (3, 5));
    assert_eq!(
        pages,
        vec![
            (1, patrons(&["p1", "p2"])),
            (2, patrons(&["p3", "p4"])),
            (3, patrons(&["p5"])),
        ]
    );
    assert_eq!(asked(&server).await, vec!["path", "token", "token"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_page_that_repeats_the_token_gets_no_request_after_it() {
    let log = Log::default();
    let server = scripted(
        vec![
            balance_page(true, Some(TOKEN), Some(false), &[("p1", "1.00")]),
            balance_page(true, Some(TOKEN), Some(true), &[("p2", "2.00")]),
        ],
        &log,
    )
    .await;
    let (fetched, _) = fetch_logged(&analytics(&server), &log, LINGER).await;
    assert_eq!(fetched.unwrap(), (2, 2));
    assert_eq!(asked(&server).await, vec!["path", "token"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_with_rows_and_no_is_finished_is_the_last_even_with_a_token() {
    let log = Log::default();
    let server = scripted(
        vec![balance_page(true, Some(TOKEN), None, &[("p1", "1.00")])],
        &log,
    )
    .await;
    let (fetched, _) = fetch_logged(&analytics(&server), &log, LINGER).await;
    assert_eq!(fetched.unwrap(), (1, 1));
    assert_eq!(asked(&server).await, vec!["path"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_still_preparing_first_page_is_asked_again_and_not_passed() {
    let log = Log::default();
    let server = scripted(
        vec![
            still_preparing(),
            still_preparing(),
            balance_page(true, Some(TOKEN), Some(false), &[("p1", "1.00")]),
            balance_page(false, None, Some(true), &[("p2", "2.00")]),
        ],
        &log,
    )
    .await;
    let (fetched, pages) = fetch_logged(&analytics(&server), &log, LINGER).await;
    assert_eq!(fetched.unwrap(), (2, 2));
    assert_eq!(pages, vec![(1, patrons(&["p1"])), (2, patrons(&["p2"]))]);
    assert_eq!(asked(&server).await, vec!["path", "path", "path", "token"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_still_preparing_middle_page_is_asked_again_and_not_passed() {
    let log = Log::default();
    let server = scripted(
        vec![
            balance_page(true, Some(TOKEN), Some(false), &[("p1", "1.00")]),
            // The answer to the request asked ahead of page 1's reading.
            still_preparing(),
            still_preparing(),
            balance_page(false, None, Some(false), &[("p2", "2.00")]),
            balance_page(false, None, Some(true), &[("p3", "3.00")]),
        ],
        &log,
    )
    .await;
    let (fetched, pages) = fetch_logged(&analytics(&server), &log, LINGER).await;
    assert_eq!(fetched.unwrap(), (3, 3));
    assert_eq!(
        pages,
        vec![
            (1, patrons(&["p1"])),
            (2, patrons(&["p2"])),
            (3, patrons(&["p3"]))
        ]
    );
    assert_eq!(
        asked(&server).await,
        vec!["path", "token", "token", "token", "token"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_still_preparing_after_every_try_is_not_asked_past() {
    let log = Log::default();
    let server = scripted(
        vec![
            balance_page(true, Some(TOKEN), Some(false), &[("p1", "1.00")]),
            still_preparing(),
            still_preparing(),
            still_preparing(),
            balance_page(false, None, Some(true), &[("p2", "2.00")]),
        ],
        &log,
    )
    .await;
    let (fetched, _) = fetch_logged(&analytics(&server), &log, LINGER).await;
    assert!(
        matches!(
            fetched,
            Err(ReportError::NotReady {
                page: 2,
                attempts: 3,
                ..
            })
        ),
        "{fetched:?}"
    );
    assert_eq!(
        asked(&server).await,
        vec!["path", "token", "token", "token"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_on_page_3_fails_the_report_as_page_3_and_gives_no_rows() {
    let log = Log::default();
    let failure = || xml(500, fixture("errors/internal_server_error.json"));
    let server = scripted(
        vec![
            balance_page(true, Some(TOKEN), Some(false), &[("1000123456", "1.00")]),
            balance_page(false, None, Some(false), &[("1000765432", "2.00")]),
            // The client's three tries.
            failure(),
            failure(),
            failure(),
            balance_page(false, None, Some(true), &[("1000999999", "3.00")]),
        ],
        &log,
    )
    .await;
    let error = analytics(&server)
        .all_balances(BAL_PATH, &BalanceColumns::default())
        .await
        .unwrap_err();
    assert_eq!(
        other_fault(&error),
        ("All User Balances", 3, 500, "INTERNAL_SERVER_ERROR")
    );
    // Nothing is asked after the failed page, even later.
    tokio::time::sleep(LINGER).await;
    assert_eq!(
        asked(&server).await,
        vec!["path", "token", "token", "token", "token"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_pages_also_bounds_the_request_ahead() {
    let log = Log::default();
    let server = scripted(
        vec![
            balance_page(true, Some(TOKEN), Some(false), &[("p1", "1.00")]),
            balance_page(false, None, Some(false), &[("p2", "2.00")]),
            balance_page(false, None, Some(true), &[("p3", "3.00")]),
        ],
        &log,
    )
    .await;
    let mut analytics = analytics(&server);
    analytics = Analytics::with_options(
        analytics.client().clone(),
        AnalyticsOptions { max_pages: 2 },
    );
    let (fetched, _) = fetch_logged(&analytics, &log, LINGER).await;
    assert!(
        matches!(fetched, Err(ReportError::TooManyPages { pages: 2, .. })),
        "{fetched:?}"
    );
    assert_eq!(asked(&server).await, vec!["path", "token"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_page_is_asked_for_while_the_current_one_is_handled() {
    let log = Log::default();
    let server = scripted(
        vec![
            balance_page(true, Some(TOKEN), Some(false), &[("p1", "1.00")]),
            balance_page(false, None, Some(false), &[("p2", "2.00")]),
            balance_page(false, None, Some(false), &[("p3", "3.00")]),
            balance_page(false, None, Some(true), &[("p4", "4.00")]),
        ],
        &log,
    )
    .await;
    let request = ReportRequest::new(BAL_PATH);
    let summary = analytics(&server)
        .fetch_report(&request, |page| {
            log.push(Step::PageStart(page.number));
            // Pages 1 to 3 are not the last: the request for the next one
            // must arrive while this one is still being handled. Without
            // the request ahead, this gives up after the bound and the
            // order below is wrong.
            if page.number < 4 {
                log.wait_for_asks(page.number, Duration::from_secs(10));
            }
            log.push(Step::PageEnd(page.number));
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!((summary.pages, summary.rows), (4, 4));
    for number in 1..4 {
        assert!(
            log.index(Step::Asked(number + 1)) < log.index(Step::PageEnd(number)),
            "page {} was not asked for while page {number} was handled: {:?}",
            number + 1,
            log.steps()
        );
    }
    // One request ahead at most: page N + 2 only after page N is done.
    for number in 1..3 {
        assert!(
            log.index(Step::PageEnd(number)) < log.index(Step::Asked(number + 2)),
            "two requests ahead of page {number}: {:?}",
            log.steps()
        );
    }
    assert_eq!(
        asked(&server).await,
        vec!["path", "token", "token", "token"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_from_the_page_callback_cancels_the_request_ahead_without_waiting() {
    let log = Log::default();
    // The mock holds its answer to request 2 (page 2, asked ahead) until
    // released: the fetch must return while that request is unanswered.
    let gate = Gate::default();
    let server = scripted_with_gate(
        vec![
            balance_page(true, Some(TOKEN), Some(false), &[("p1", "1.00")]),
            // A 500 would be retried by a request still running.
            xml(500, fixture("errors/internal_server_error.json")),
            xml(500, fixture("errors/internal_server_error.json")),
            balance_page(false, None, Some(true), &[("p2", "2.00")]),
        ],
        &log,
        Some((2, gate.clone())),
    )
    .await;
    let request = ReportRequest::new(BAL_PATH);
    let error = analytics(&server)
        .fetch_report(&request, |page| {
            log.push(Step::PageStart(page.number));
            assert!(
                log.wait_for_asks(1, Duration::from_secs(10)),
                "page 2 was not asked for ahead"
            );
            Err(ReportError::TooManyPages {
                report: "stop".into(),
                pages: page.number,
            })
        })
        .await
        .unwrap_err();
    assert!(
        matches!(error, ReportError::TooManyPages { pages: 1, .. }),
        "{error:?}"
    );
    gate.open();
    // A request left running would now get its 500 and try again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(asked(&server).await, vec!["path", "token"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_fails_to_parse_cancels_the_request_ahead() {
    let log = Log::default();
    // Page 1 says, at its top, that rows and more pages follow, and is
    // then cut off inside a row.
    let page1 = format!(
        "<report><QueryResult><ResumptionToken>{TOKEN}</ResumptionToken><IsFinished>false</IsFinished><ResultXml><rowset><Row><Column1>p1</Column1><Column2>1.0"
    );
    let server = scripted(
        vec![
            xml(200, page1),
            // Slow, so that the request is cancelled before its answer,
            // which a request left running would retry.
            xml(500, fixture("errors/internal_server_error.json"))
                .set_delay(Duration::from_millis(200)),
            xml(500, fixture("errors/internal_server_error.json")),
            balance_page(false, None, Some(true), &[("p2", "2.00")]),
        ],
        &log,
    )
    .await;
    let (fetched, pages) = fetch_logged(&analytics(&server), &log, LINGER).await;
    assert!(
        matches!(fetched, Err(ReportError::Malformed { page: 1, .. })),
        "{fetched:?}"
    );
    assert!(pages.is_empty());
    tokio::time::sleep(Duration::from_millis(800)).await;
    let asked = asked(&server).await;
    assert!(
        asked == vec!["path"] || asked == vec!["path", "token"],
        "{asked:?}"
    );
}
