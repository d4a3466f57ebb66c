//! The fees API: fees in shared state, paid down by POST op=pay.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use sync_core::Money;
use wiremock::{Request, Respond, ResponseTemplate};

/// A fee as the simulated Alma holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimFee {
    pub id: String,
    pub user_id: String,
    /// Alma's code, e.g. `OVERDUEFINE`.
    pub fee_type: String,
    pub original_amount: Money,
    pub balance: Money,
    pub closed: bool,
    /// Payments and other transactions so far (the payments posted here
    /// are added as they come).
    pub payments: Vec<SimPayment>,
}

impl SimFee {
    pub fn active(id: &str, user_id: &str, fee_type: &str, balance: Money) -> SimFee {
        SimFee {
            id: id.to_string(),
            user_id: user_id.to_string(),
            fee_type: fee_type.to_string(),
            original_amount: balance,
            balance,
            closed: false,
            payments: Vec::new(),
        }
    }

    fn to_json(&self) -> String {
        let text = |value: &str| serde_json::to_string(value).unwrap_or_else(|_| "\"\"".into());
        let transactions: Vec<String> = self
            .payments
            .iter()
            .map(|p| {
                format!(
                    "{{\"type\":{{\"value\":\"PAYMENT\",\"desc\":\"Payment\"}},\"amount\":{},\"external_transaction_id\":{},\"payment_method\":{{\"value\":{}}},\"comment\":{}}}",
                    p.amount,
                    text(&p.external_transaction_id),
                    text(&p.method),
                    text(&p.comment)
                )
            })
            .collect();
        let status = if self.closed { "CLOSED" } else { "ACTIVE" };
        format!(
            "{{\"id\":{},\"type\":{{\"value\":{}}},\"status\":{{\"value\":\"{status}\"}},\"user_primary_id\":{{\"value\":{}}},\"balance\":{},\"original_amount\":{},\"creation_time\":\"2024-11-01T10:00:00Z\",\"status_time\":\"2024-11-01T10:00:00Z\",\"transaction\":[{}]}}",
            text(&self.id),
            text(&self.fee_type),
            text(&self.user_id),
            self.balance,
            self.original_amount,
            transactions.join(",")
        )
    }
}

/// A payment posted to the simulated Alma.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimPayment {
    pub fee_id: String,
    pub user_id: String,
    pub amount: Money,
    pub method: String,
    pub comment: String,
    pub external_transaction_id: String,
}

pub(crate) struct FeeResponder {
    pub(crate) fees: Arc<Mutex<BTreeMap<String, SimFee>>>,
    pub(crate) payments: Arc<Mutex<Vec<SimPayment>>>,
}

fn json_response(status: u16, body: String) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("Content-Type", "application/json")
        .set_body_string(body)
}

fn alma_error(code: &str, message: &str) -> ResponseTemplate {
    let message = serde_json::to_string(message).unwrap_or_else(|_| "\"\"".into());
    json_response(
        400,
        format!(
            "{{\"errorsExist\":true,\"errorList\":{{\"error\":[{{\"errorCode\":\"{code}\",\"errorMessage\":{message},\"trackingId\":\"E01-SIMULATED\"}}]}},\"result\":null}}"
        ),
    )
}

impl Respond for FeeResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let segments: Vec<&str> = request.url.path().split('/').collect();
        // ["", "almaws", "v1", "users", user, "fees", fee]
        let (Some(user), Some(fee_id)) = (segments.get(4), segments.get(6)) else {
            return alma_error("402119", "General error.");
        };
        let query: BTreeMap<String, String> = request.url.query_pairs().into_owned().collect();
        let Ok(mut fees) = self.fees.lock() else {
            return json_response(500, String::new());
        };
        let Some(fee) = fees.get_mut(*fee_id) else {
            return alma_error("401665", "Fine not found.");
        };
        if fee.user_id != *user {
            return alma_error("401651", "User with identifier was not found.");
        }
        if fee.closed {
            return alma_error(
                "401652",
                "Request failed: API does not support closed fees.",
            );
        }
        match request.method.as_str() {
            "GET" => json_response(200, fee.to_json()),
            "POST" if query.get("op").map(String::as_str) == Some("pay") => {
                let amount = query.get("amount").and_then(|a| Money::parse(a).ok());
                let Some(amount) = amount.filter(|a| a.is_positive() && *a <= fee.balance) else {
                    return alma_error("401666", "amount parameter is not valid.");
                };
                let payment = SimPayment {
                    fee_id: fee.id.clone(),
                    user_id: fee.user_id.clone(),
                    amount,
                    method: query.get("method").cloned().unwrap_or_default(),
                    comment: query.get("comment").cloned().unwrap_or_default(),
                    external_transaction_id: query
                        .get("external_transaction_id")
                        .cloned()
                        .unwrap_or_default(),
                };
                fee.balance -= amount;
                fee.closed = fee.balance.is_zero();
                fee.payments.push(payment.clone());
                if let Ok(mut payments) = self.payments.lock() {
                    payments.push(payment);
                }
                json_response(200, fee.to_json())
            }
            _ => alma_error("402119", "General error."),
        }
    }
}
