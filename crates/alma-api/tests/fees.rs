#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The fees API against a mock Alma: exact values from the documented
//! shapes, every error shape, retries, governance and the key.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alma_api::{
    AlmaClient, AlmaConfig, AlmaError, ApiKey, FeeStatus, PayRequest, PaymentMethod, RetryPolicy,
};
use sync_core::Money;
use sync_core::records::{FineId, PatronId};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const KEY: &str = "l8xx-TEST-KEY-7f3a9c";
const FEE_PATH: &str = "/almaws/v1/users/1000123456/fees/1234567890001";

fn fixture(name: &str) -> String {
    let path = format!("{}/../../fixtures/alma/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(4),
        still_preparing_delay: Duration::from_millis(1),
        still_preparing_attempts: 3,
        per_second_429_delay: Duration::from_millis(1),
        per_second_429_attempts: 4,
    }
}

fn client(server: &MockServer) -> AlmaClient {
    let mut config = AlmaConfig::new(server.uri(), ApiKey::new(KEY));
    config.requests_per_second = 1000;
    config.retry = fast_retry();
    config.timeout = Duration::from_secs(10);
    AlmaClient::new(config).unwrap()
}

fn patron() -> PatronId {
    PatronId::new("1000123456")
}

fn json(status: u16, body: String) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("Content-Type", "application/json")
        .set_body_string(body)
}

fn xml(status: u16, body: String) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("Content-Type", "application/xml")
        .set_body_string(body)
}

async fn get_fee_answered(
    response: ResponseTemplate,
    times: u64,
) -> Result<alma_api::Fee, AlmaError> {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(FEE_PATH))
        .respond_with(response)
        .expect(times)
        .mount(&server)
        .await;
    client(&server)
        .get_fee(&patron(), &FineId::new("1234567890001"))
        .await
}

#[tokio::test]
async fn reads_an_active_fee_with_the_key_in_the_header_only() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(FEE_PATH))
        .and(query_param("user_id_type", "all_unique"))
        .and(header("Authorization", format!("apikey {KEY}").as_str()))
        .and(header("Accept", "application/json"))
        .respond_with(
            json(200, fixture("fees/fee_active.json"))
                .insert_header("X-Exl-Api-Remaining", "149000"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    let fee = client
        .get_fee(&patron(), &FineId::new("1234567890001"))
        .await
        .unwrap();
    assert_eq!(fee.id, FineId::new("1234567890001"));
    assert_eq!(fee.fee_type.value, "LOSTITEMREPLACEMENTFEE");
    assert_eq!(
        fee.fee_type.desc.as_deref(),
        Some("Lost item replacement fee")
    );
    assert_eq!(fee.status, FeeStatus::Active);
    assert_eq!(fee.balance, Money::from_cents(75000));
    assert_eq!(fee.original_amount, Money::from_cents(75000));
    assert_eq!(
        fee.creation_time.unwrap().to_rfc3339(),
        "2024-04-02T14:21:07.512+00:00"
    );
    assert_eq!(fee.comment.as_deref(), Some("Replacement cost"));
    assert_eq!(fee.owner.unwrap().value, "MAIN");
    assert_eq!(fee.barcode.unwrap().value, "39031031234567");
    assert_eq!(fee.user_primary_id.unwrap().value, "1000123456");
    assert!(fee.transactions.is_empty());
    assert_eq!(client.last_remaining(), Some(149000));
    let requests = server.received_requests().await.unwrap();
    assert!(!requests[0].url.as_str().contains(KEY));
}

#[tokio::test]
async fn reads_a_partially_paid_fee_exactly() {
    let fee = get_fee_answered(json(200, fixture("fees/fee_partially_paid.json")), 1)
        .await
        .unwrap();
    assert_eq!(fee.status, FeeStatus::Active);
    assert!(!fee.is_closed());
    assert_eq!(fee.balance, Money::from_cents(900));
    assert_eq!(fee.original_amount, Money::from_cents(1250));
    assert_eq!(fee.transactions.len(), 1);
    let payment = &fee.transactions[0];
    assert_eq!(payment.kind.value, "PAYMENT");
    assert_eq!(payment.amount, Money::from_cents(350));
    assert_eq!(
        payment.external_transaction_id.as_deref(),
        Some("BURSAR-2024-0001")
    );
    assert_eq!(payment.payment_method.as_ref().unwrap().value, "ONLINE");
    assert_eq!(
        payment.transaction_time.unwrap().to_rfc3339(),
        "2024-05-01T16:45:30+00:00"
    );
}

#[tokio::test]
async fn reads_a_credit_as_negative() {
    let fee = get_fee_answered(json(200, fixture("fees/fee_credit.json")), 1)
        .await
        .unwrap();
    assert_eq!(fee.fee_type.value, "CREDIT");
    assert_eq!(fee.balance, Money::from_cents(-2500));
    assert_eq!(fee.original_amount, Money::from_cents(-2500));
}

#[tokio::test]
async fn an_amount_that_is_not_whole_cents_is_a_decode_error_naming_the_path() {
    let body = fixture("fees/fee_active.json").replace("\"balance\": 750", "\"balance\": 7.505");
    let error = get_fee_answered(json(200, body), 1).await.unwrap_err();
    let AlmaError::Decode { path, message } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(path, FEE_PATH);
    assert!(message.contains("7.505"), "{message}");
}

#[tokio::test]
async fn lists_closed_fees_with_single_object_transactions() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/almaws/v1/users/1000123456/fees"))
        .and(query_param("user_id_type", "all_unique"))
        .and(query_param("status", "CLOSED"))
        .respond_with(json(200, fixture("fees/fees_closed_list.json")))
        .expect(1)
        .mount(&server)
        .await;
    let list = client(&server)
        .list_fees(&patron(), &FeeStatus::Closed)
        .await
        .unwrap();
    assert_eq!(list.total_record_count, 2);
    assert_eq!(list.total_sum, Some(Money::ZERO));
    assert_eq!(list.currency.as_deref(), Some("USD"));
    assert_eq!(list.fees.len(), 2);
    let waived = &list.fees[0];
    assert_eq!(waived.id, FineId::new("1234567890004"));
    assert!(waived.is_closed());
    assert_eq!(waived.original_amount, Money::from_cents(1000));
    assert_eq!(waived.transactions.len(), 1);
    assert_eq!(waived.transactions[0].kind.value, "WAIVE");
    assert_eq!(waived.transactions[0].amount, Money::from_cents(1000));
    let paid = &list.fees[1];
    assert_eq!(paid.transactions[0].amount, Money::from_cents(1250));
    assert_eq!(
        paid.transactions[0].payment_method.as_ref().unwrap().value,
        "ONLINE"
    );
    assert_eq!(paid.creation_time, None);
}

#[tokio::test]
async fn a_patron_without_fees_has_an_empty_list() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/almaws/v1/users/1000123456/fees"))
        .respond_with(json(200, fixture("fees/fees_none.json")))
        .mount(&server)
        .await;
    let list = client(&server)
        .list_fees(&patron(), &FeeStatus::Active)
        .await
        .unwrap();
    assert!(list.fees.is_empty());
    assert_eq!(list.total_record_count, 0);
    assert_eq!(list.currency, None);
}

fn payment() -> PayRequest {
    PayRequest {
        amount: Money::from_cents(900),
        method: PaymentMethod::Online,
        comment:
            "Paid to bursar on 2024-05-01, imported into Alma via alma-bursar-sync on 2024-05-02."
                .into(),
        external_transaction_id: "BURSAR-2024-0002".into(),
    }
}

#[tokio::test]
async fn pays_with_every_parameter_in_the_query_string() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/almaws/v1/users/1000123456/fees/1234567890002"))
        .and(query_param("op", "pay"))
        .and(query_param("amount", "9.00"))
        .and(query_param("method", "ONLINE"))
        .and(query_param("external_transaction_id", "BURSAR-2024-0002"))
        .and(query_param("user_id_type", "all_unique"))
        .and(query_param("comment", payment().comment.as_str()))
        .and(header("Authorization", format!("apikey {KEY}").as_str()))
        .respond_with(json(200, fixture("fees/fee_paid_in_full.json")))
        .expect(1)
        .mount(&server)
        .await;
    let fee = client(&server)
        .pay_fee(&patron(), &FineId::new("1234567890002"), &payment())
        .await
        .unwrap();
    assert!(fee.is_closed());
    assert_eq!(fee.balance, Money::ZERO);
    assert_eq!(fee.transactions[1].amount, Money::from_cents(900));
    let requests = server.received_requests().await.unwrap();
    let query = requests[0].url.query().unwrap();
    assert!(
        query.contains("comment=Paid%20to%20bursar%20on%202024-05-01%2C%20imported"),
        "{query}"
    );
    assert!(requests[0].body.is_empty());
}

#[tokio::test]
async fn refuses_to_pay_a_non_positive_amount_without_calling_alma() {
    let server = MockServer::start().await;
    let mut request = payment();
    request.amount = Money::ZERO;
    let error = client(&server)
        .pay_fee(&patron(), &FineId::new("1"), &request)
        .await
        .unwrap_err();
    assert!(matches!(error, AlmaError::Invalid(_)), "{error:?}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_payment_answered_by_a_5xx_is_never_sent_again() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(json(500, fixture("errors/internal_server_error.json")))
        .expect(1)
        .mount(&server)
        .await;
    let error = client(&server)
        .pay_fee(&patron(), &FineId::new("1234567890002"), &payment())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("INTERNAL_SERVER_ERROR"));
}

#[tokio::test]
async fn a_payment_is_retried_after_a_per_second_429() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(json(429, fixture("errors/per_second_threshold.json")))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(json(200, fixture("fees/fee_paid_in_full.json")))
        .expect(1)
        .mount(&server)
        .await;
    let fee = client(&server)
        .pay_fee(&patron(), &FineId::new("1234567890002"), &payment())
        .await
        .unwrap();
    assert!(fee.is_closed());
}

#[tokio::test]
async fn a_closed_fee_is_recognised_by_its_message() {
    let error = get_fee_answered(json(400, fixture("errors/fee_closed.json")), 1)
        .await
        .unwrap_err();
    let AlmaError::FeeClosed(fault) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(fault.path, FEE_PATH);
    assert_eq!(fault.status, 400);
    assert_eq!(fault.code, "402119");
    assert_eq!(
        fault.message,
        "Request failed: API does not support closed fees."
    );
}

#[tokio::test]
async fn business_errors_are_typed_and_never_retried() {
    let error = get_fee_answered(json(400, fixture("errors/fine_not_found.json")), 1)
        .await
        .unwrap_err();
    let AlmaError::FineNotFound(fault) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(
        fault.tracking_id.as_deref(),
        Some("E01-0105140016-ABCDE-AWAE1234567890")
    );
    assert_eq!(
        error.to_string(),
        "fine not found in Alma: /almaws/v1/users/1000123456/fees/1234567890001 answered HTTP 400 with Alma error 401665: Fine not found. (tracking id E01-0105140016-ABCDE-AWAE1234567890)"
    );

    let error = get_fee_answered(json(400, fixture("errors/user_not_found_wrapped.json")), 1)
        .await
        .unwrap_err();
    let AlmaError::UserNotFound(fault) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(fault.code, "401651");
    assert_eq!(fault.tracking_id, None);

    let error = get_fee_answered(json(400, fixture("errors/invalid_amount.json")), 1)
        .await
        .unwrap_err();
    assert!(matches!(error, AlmaError::InvalidParameter(_)), "{error:?}");

    let error = get_fee_answered(xml(400, fixture("errors/restricted.xml")), 1)
        .await
        .unwrap_err();
    let AlmaError::Restricted(fault) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(fault.code, "60340");
    assert_eq!(
        fault.tracking_id.as_deref(),
        Some("E01-0105140016-PQRST-AWAE1234567893")
    );
}

#[tokio::test]
async fn an_error_body_with_http_200_is_an_error() {
    let error = get_fee_answered(xml(200, fixture("errors/unauthorized.xml")), 1)
        .await
        .unwrap_err();
    let AlmaError::Other(fault) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(fault.status, 200);
    assert_eq!(fault.code, "UNAUTHORIZED");
    assert_eq!(
        fault.message,
        "API-key not defined or not configured to allow this API."
    );
}

#[tokio::test]
async fn a_daily_limit_429_stops_without_looping() {
    let error = get_fee_answered(json(429, fixture("errors/daily_limit.json")), 1)
        .await
        .unwrap_err();
    let AlmaError::DailyLimit(fault) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(fault.code, "DAILY_THRESHOLD");
    let error = get_fee_answered(
        ResponseTemplate::new(429).set_body_string("Too Many Requests"),
        1,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, AlmaError::DailyLimit(_)), "{error:?}");
}

#[tokio::test]
async fn per_second_429s_are_retried_a_bounded_number_of_times() {
    let error = get_fee_answered(json(429, fixture("errors/per_second_threshold.json")), 4)
        .await
        .unwrap_err();
    let AlmaError::RateLimited { attempts, fault } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(*attempts, 4);
    assert_eq!(fault.code, "PER_SECOND_THRESHOLD");
}

#[tokio::test]
async fn a_5xx_read_is_retried_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(503).set_body_string("<html>Service Unavailable</html>"),
        )
        .up_to_n_times(2)
        .with_priority(1)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(json(200, fixture("fees/fee_active.json")))
        .expect(1)
        .mount(&server)
        .await;
    let fee = client(&server)
        .get_fee(&patron(), &FineId::new("1234567890001"))
        .await
        .unwrap();
    assert_eq!(fee.balance, Money::from_cents(75000));
}

#[tokio::test]
async fn a_5xx_that_persists_fails_after_max_attempts() {
    let error = get_fee_answered(json(500, fixture("errors/internal_server_error.json")), 3)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("INTERNAL_SERVER_ERROR"));
    let error = get_fee_answered(ResponseTemplate::new(502).set_body_string("Bad Gateway"), 3)
        .await
        .unwrap_err();
    let AlmaError::Http {
        status,
        attempts,
        excerpt,
        path,
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(
        (*status, *attempts, excerpt.as_str(), path.as_str()),
        (502, 3, "Bad Gateway", FEE_PATH)
    );
}

#[tokio::test]
async fn no_answer_is_a_network_error_after_bounded_tries() {
    // Port 9 on loopback: nothing listens, the connection is refused.
    let mut config = AlmaConfig::new("http://127.0.0.1:9", ApiKey::new(KEY));
    config.retry = fast_retry();
    let client = AlmaClient::new(config).unwrap();
    let error = client
        .get_fee(&patron(), &FineId::new("1"))
        .await
        .unwrap_err();
    let AlmaError::Network { path, attempts, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(path, "/almaws/v1/users/1000123456/fees/1");
    assert_eq!(*attempts, 3);
    assert!(!format!("{error} {error:?}").contains(KEY));
}

#[tokio::test]
async fn stops_before_a_request_when_remaining_calls_fall_below_the_floor() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            json(200, fixture("fees/fee_active.json")).insert_header("X-Exl-Api-Remaining", "5"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let mut config = AlmaConfig::new(server.uri(), ApiKey::new(KEY));
    config.remaining_floor = Some(10);
    config.retry = fast_retry();
    let client = AlmaClient::new(config).unwrap();
    let first = client
        .get_fee(&patron(), &FineId::new("1234567890001"))
        .await;
    assert!(
        first.is_ok(),
        "the answer that reports the low count is still good"
    );
    let error = client
        .clone()
        .get_fee(&patron(), &FineId::new("1234567890001"))
        .await
        .unwrap_err();
    let AlmaError::BelowRemainingFloor {
        remaining,
        floor,
        path,
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!((*remaining, *floor, path.as_str()), (5, 10, FEE_PATH));
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_key_is_in_no_log_line_no_error_and_no_debug_output() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::start().await;
    // An answer that echoes the request headers back, as a broken proxy might.
    Mock::given(method("GET"))
        .respond_with(|request: &Request| {
            let echoed = format!("{:?}", request.headers);
            ResponseTemplate::new(502).set_body_string(echoed)
        })
        .expect(3)
        .mount(&server)
        .await;
    let client = client(&server);
    let error = client
        .get_fee(&patron(), &FineId::new("1234567890001"))
        .await
        .unwrap_err();

    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        requests[0]
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap(),
        format!("apikey {KEY}")
    );
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("Alma failed; retrying"),
        "logs were not captured: {logs}"
    );
    assert!(
        logs.contains("/almaws/v1/users/1000123456/fees/1234567890001"),
        "{logs}"
    );
    for text in [
        logs,
        error.to_string(),
        format!("{error:?}"),
        format!("{client:?}"),
    ] {
        assert!(!text.contains(KEY), "the key leaked: {text}");
        assert!(!text.contains("7f3a9c"), "part of the key leaked: {text}");
    }
    assert!(format!("{client:?}").contains("ApiKey(***)"));
}
