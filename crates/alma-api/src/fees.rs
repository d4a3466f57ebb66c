//! Alma's fines and fees API (`/users/{user_id}/fees`), typed.
//!
//! Amounts are read from the text of the JSON number (`750`, `9.0`,
//! `"12.50"`) straight into [`Money`]; they never pass through an `f64`.

use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use sync_core::Money;
use sync_core::records::{FineId, PatronId};

use crate::client::{Accept, AlmaClient, encode_component};
use crate::error::AlmaError;

/// A coded value as Alma gives it: `{"value":"OVERDUEFINE","desc":"Overdue fine"}`.
/// A plain string is read as a value without description.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodeValue {
    pub value: String,
    pub desc: Option<String>,
}

impl<'de> Deserialize<'de> for CodeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<CodeValue, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Text(String),
            Object {
                #[serde(default)]
                value: Option<String>,
                #[serde(default)]
                desc: Option<String>,
            },
        }
        Ok(match Wire::deserialize(deserializer)? {
            Wire::Text(value) => CodeValue { value, desc: None },
            Wire::Object { value, desc } => CodeValue {
                value: value.unwrap_or_default(),
                desc,
            },
        })
    }
}

/// A fee's status in Alma.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FeeStatus {
    Active,
    Closed,
    /// Under a native Bursar profile.
    Exported,
    Transferred,
    Other(String),
}

impl FeeStatus {
    pub fn as_str(&self) -> &str {
        match self {
            FeeStatus::Active => "ACTIVE",
            FeeStatus::Closed => "CLOSED",
            FeeStatus::Exported => "EXPORTED",
            FeeStatus::Transferred => "TRANSFERRED",
            FeeStatus::Other(code) => code,
        }
    }

    pub fn from_code(code: &str) -> FeeStatus {
        match code.trim().to_ascii_uppercase().as_str() {
            "ACTIVE" => FeeStatus::Active,
            "CLOSED" => FeeStatus::Closed,
            "EXPORTED" => FeeStatus::Exported,
            "TRANSFERRED" => FeeStatus::Transferred,
            _ => FeeStatus::Other(code.trim().to_string()),
        }
    }
}

impl fmt::Display for FeeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FeeStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<FeeStatus, D::Error> {
        let code = CodeValue::deserialize(deserializer)?;
        Ok(FeeStatus::from_code(&code.value))
    }
}

/// One fee (fine) of a patron, as `GET .../fees/{fee_id}` gives it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Fee {
    #[serde(deserialize_with = "fine_id")]
    pub id: FineId,
    /// OVERDUEFINE, LOSTITEMREPLACEMENTFEE, CREDIT, ...
    #[serde(rename = "type")]
    pub fee_type: CodeValue,
    pub status: FeeStatus,
    #[serde(deserialize_with = "money")]
    pub balance: Money,
    /// Negative for a CREDIT.
    #[serde(deserialize_with = "money")]
    pub original_amount: Money,
    #[serde(default, deserialize_with = "lenient_time")]
    pub creation_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub status_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub owner: Option<CodeValue>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub barcode: Option<CodeValue>,
    #[serde(default)]
    pub user_primary_id: Option<CodeValue>,
    #[serde(default, rename = "transaction", deserialize_with = "one_or_many")]
    pub transactions: Vec<FeeTransaction>,
}

impl Fee {
    pub fn is_closed(&self) -> bool {
        self.status == FeeStatus::Closed
    }
}

/// One transaction on a fee (a payment, a waive, ...).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct FeeTransaction {
    /// PAYMENT, WAIVE, ...
    #[serde(rename = "type")]
    pub kind: CodeValue,
    #[serde(deserialize_with = "money")]
    pub amount: Money,
    #[serde(default)]
    pub external_transaction_id: Option<String>,
    #[serde(default)]
    pub payment_method: Option<CodeValue>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub transaction_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// A patron's fees, as `GET .../fees?status=...` gives them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct FeeList {
    /// Absent in Alma's answer when the patron has no fees.
    #[serde(default, rename = "fee", deserialize_with = "one_or_many")]
    pub fees: Vec<Fee>,
    #[serde(default)]
    pub total_record_count: u64,
    #[serde(default, deserialize_with = "optional_money")]
    pub total_sum: Option<Money>,
    #[serde(default)]
    pub currency: Option<String>,
}

/// How a payment was made, Alma's `method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PaymentMethod {
    Cash,
    CreditCard,
    Online,
}

impl PaymentMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::Cash => "CASH",
            PaymentMethod::CreditCard => "CREDIT_CARD",
            PaymentMethod::Online => "ONLINE",
        }
    }
}

/// A payment to post on a fee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayRequest {
    /// Positive; sent with two decimals (`9.00`).
    pub amount: Money,
    pub method: PaymentMethod,
    pub comment: String,
    /// Stored by Alma but **not** an idempotency key: Alma accepts two
    /// payments with the same id. Preventing a double payment is the
    /// caller's ledger's job.
    pub external_transaction_id: String,
}

const USER_ID_TYPE: (&str, &str) = ("user_id_type", "all_unique");

fn fee_path(user_id: &PatronId, fee_id: &FineId) -> String {
    format!(
        "/users/{}/fees/{}",
        encode_component(user_id.as_str()),
        encode_component(fee_id.as_str())
    )
}

impl AlmaClient {
    /// Reads one fee. A closed fee cannot be read by id: Alma answers
    /// [`AlmaError::FeeClosed`].
    pub async fn get_fee(&self, user_id: &PatronId, fee_id: &FineId) -> Result<Fee, AlmaError> {
        let path = fee_path(user_id, fee_id);
        let response = self.get(&path, &[USER_ID_TYPE], Accept::Json).await?;
        decode(&path, &response.body)
    }

    /// Lists a patron's fees with one status (`ACTIVE`, `CLOSED`, ...).
    pub async fn list_fees(
        &self,
        user_id: &PatronId,
        status: &FeeStatus,
    ) -> Result<FeeList, AlmaError> {
        let path = format!("/users/{}/fees", encode_component(user_id.as_str()));
        let query = [USER_ID_TYPE, ("status", status.as_str())];
        let response = self.get(&path, &query, Accept::Json).await?;
        decode(&path, &response.body)
    }

    /// Pays `request.amount` on a fee and returns the fee after it: still
    /// ACTIVE with a lower balance after a partial payment, CLOSED with
    /// balance 0 after a full one. Sent once: a 5xx or lost answer is
    /// returned as an error, never retried (the payment may have been
    /// made), so the caller must settle it against Alma.
    pub async fn pay_fee(
        &self,
        user_id: &PatronId,
        fee_id: &FineId,
        request: &PayRequest,
    ) -> Result<Fee, AlmaError> {
        if !request.amount.is_positive() {
            return Err(AlmaError::Invalid(format!(
                "payment of {} on fee {fee_id}: the amount must be positive",
                request.amount
            )));
        }
        let path = fee_path(user_id, fee_id);
        let amount = request.amount.to_string();
        let query = [
            ("op", "pay"),
            ("amount", amount.as_str()),
            ("method", request.method.as_str()),
            ("comment", request.comment.as_str()),
            (
                "external_transaction_id",
                request.external_transaction_id.as_str(),
            ),
            USER_ID_TYPE,
        ];
        let response = self.post(&path, &query, Accept::Json).await?;
        decode(&path, &response.body)
    }
}

fn decode<T: for<'de> Deserialize<'de>>(path: &str, body: &[u8]) -> Result<T, AlmaError> {
    serde_json::from_slice(body).map_err(|error| AlmaError::Decode {
        path: format!("{}{path}", crate::client::API_PREFIX),
        message: error.to_string(),
    })
}

/// Reads an amount from the JSON text of a number or a string.
fn money_from_json_text(text: &str) -> Result<Option<Money>, String> {
    let text = text.trim();
    if text == "null" {
        return Ok(None);
    }
    let decimal = if text.starts_with('"') {
        serde_json::from_str::<String>(text).map_err(|error| error.to_string())?
    } else {
        text.to_string()
    };
    Money::parse(&decimal)
        .map(Some)
        .map_err(|error| error.to_string())
}

fn money<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Money, D::Error> {
    let raw = Box::<RawValue>::deserialize(deserializer)?;
    money_from_json_text(raw.get())
        .map_err(de::Error::custom)?
        .ok_or_else(|| de::Error::custom("amount is null"))
}

fn optional_money<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Money>, D::Error> {
    let raw = Box::<RawValue>::deserialize(deserializer)?;
    money_from_json_text(raw.get()).map_err(de::Error::custom)
}

fn fine_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<FineId, D::Error> {
    let raw = Box::<RawValue>::deserialize(deserializer)?;
    let text = raw.get().trim();
    let id = if text.starts_with('"') {
        serde_json::from_str::<String>(text).map_err(de::Error::custom)?
    } else if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() {
        text.to_string()
    } else {
        return Err(de::Error::custom(format!("fee id {text} is not a string")));
    };
    Ok(FineId::new(id))
}

/// Times are informative here: one Alma cannot read is logged and left
/// out rather than failing the fee (and a payment with it).
fn lenient_time<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?;
    Ok(text.and_then(|text| match text.parse::<DateTime<Utc>>() {
        Ok(time) => Some(time),
        Err(error) => {
            tracing::warn!(time = %text, %error, "unreadable time in an Alma fee; ignored");
            None
        }
    }))
}

/// A list, or a single object where Alma flattened a one-element list.
/// Hand-written rather than `#[serde(untagged)]`, which would buffer the
/// value and lose the raw number text that amounts are read from.
fn one_or_many<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct OneOrMany<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrMany<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list or a single object")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }

        fn visit_none<E: de::Error>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            Ok(items)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Vec<T>, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map)).map(|item| vec![item])
        }
    }

    deserializer.deserialize_any(OneOrMany(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_from_their_text() {
        let cases = [
            ("750", Some(75000)),
            ("9.0", Some(900)),
            ("0.1", Some(10)),
            ("-3.00", Some(-300)),
            ("\"12.50\"", Some(1250)),
            ("null", None),
        ];
        for (text, cents) in cases {
            assert_eq!(
                money_from_json_text(text),
                Ok(cents.map(Money::from_cents)),
                "{text}"
            );
        }
        assert!(money_from_json_text("1e3").is_err());
        assert!(money_from_json_text("12.345").is_err());
    }
}
