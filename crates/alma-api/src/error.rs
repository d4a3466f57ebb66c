//! Alma's error answers, in every shape they come in, and the typed error
//! of this crate.
//!
//! Alma reports a failure as JSON (`{"errorsExist":true,"errorList":...}`,
//! sometimes wrapped in `{"web_service_result":{...}}`, with `error` a list
//! or a single object and `errorCode` a number, a numeric string or a word)
//! or as an XML `<web_service_result>`; sometimes with HTTP 200.
//! [`parse_error_body`] reads all of them into [`ErrorEntry`] values;
//! the client then turns the first entry into an [`AlmaError`].

use quick_xml::events::Event;
use quick_xml::reader::Reader;
use serde_json::Value;

/// One entry of Alma's `errorList`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorEntry {
    /// Kept as a string: codes are numbers (`401665`) or words
    /// (`PER_SECOND_THRESHOLD`).
    pub code: String,
    pub message: String,
    pub tracking_id: Option<String>,
}

/// An error answer from Alma, with the request it answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiFault {
    /// Request path, e.g. `/almaws/v1/users/123/fees/456` (never the
    /// query string, never the key).
    pub path: String,
    pub status: u16,
    pub code: String,
    pub message: String,
    pub tracking_id: Option<String>,
}

impl std::fmt::Display for ApiFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} answered HTTP {} with Alma error {}: {}",
            self.path, self.status, self.code, self.message
        )?;
        if let Some(tracking_id) = &self.tracking_id {
            write!(f, " (tracking id {tracking_id})")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong talking to Alma. Each variant names the
/// request path; none ever contains the API key.
#[derive(Debug, thiserror::Error)]
pub enum AlmaError {
    /// "API does not support closed fees": the fee is closed in Alma (it
    /// can only be listed with `status=CLOSED`).
    #[error("fee is closed in Alma: {0}")]
    FeeClosed(ApiFault),
    /// 401665.
    #[error("fine not found in Alma: {0}")]
    FineNotFound(ApiFault),
    /// 401651.
    #[error("user not found in Alma: {0}")]
    UserNotFound(ApiFault),
    /// 401666, e.g. "amount parameter is not valid.".
    #[error("Alma rejected a parameter: {0}")]
    InvalidParameter(ApiFault),
    /// 60340: the library restricted this fee from API changes.
    #[error("fee is restricted from API changes by the library: {0}")]
    Restricted(ApiFault),
    /// Alma kept answering 429 `PER_SECOND_THRESHOLD` after every retry.
    #[error("Alma's per-second limit held after {attempts} tries: {fault}")]
    RateLimited { fault: ApiFault, attempts: u32 },
    /// A 429 that is not the per-second limit: the daily budget is spent.
    /// Not retried; try again tomorrow.
    #[error("Alma refused the request for the daily API limit (not retried): {0}")]
    DailyLimit(ApiFault),
    /// Alma said fewer calls than the configured floor remain today; the
    /// request was not sent.
    #[error(
        "stopped before {path}: Alma has {remaining} API calls left today, below the configured floor of {floor}"
    )]
    BelowRemainingFloor {
        path: String,
        remaining: u64,
        floor: u64,
    },
    /// Any other error answer from Alma.
    #[error("{0}")]
    Other(ApiFault),
    /// An error status whose body is not one of Alma's error shapes.
    #[error("{path} answered HTTP {status} after {attempts} tries: {excerpt}")]
    Http {
        path: String,
        status: u16,
        attempts: u32,
        excerpt: String,
    },
    /// No answer: connection refused, reset, timed out.
    #[error("no answer from Alma for {path} after {attempts} tries: {source}")]
    Network {
        path: String,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    /// An answer that does not read as what was asked for.
    #[error("cannot read Alma's answer to {path}: {message}")]
    Decode { path: String, message: String },
    /// The configuration or a request argument is unusable; nothing was sent.
    #[error("invalid Alma request: {0}")]
    Invalid(String),
}

impl AlmaError {
    /// Alma's error answer, when there was one.
    pub fn fault(&self) -> Option<&ApiFault> {
        match self {
            AlmaError::FeeClosed(fault)
            | AlmaError::FineNotFound(fault)
            | AlmaError::UserNotFound(fault)
            | AlmaError::InvalidParameter(fault)
            | AlmaError::Restricted(fault)
            | AlmaError::DailyLimit(fault)
            | AlmaError::Other(fault)
            | AlmaError::RateLimited { fault, .. } => Some(fault),
            _ => None,
        }
    }

    /// Alma's error code (`401665`, `PER_SECOND_THRESHOLD`, ...), when
    /// Alma answered with one.
    pub fn code(&self) -> Option<&str> {
        self.fault().map(|fault| fault.code.as_str())
    }

    /// Sorts an error answer into its variant. `status` 429 that is not
    /// the per-second limit is the daily limit.
    pub(crate) fn from_fault(fault: ApiFault) -> AlmaError {
        if fault.message.contains("API does not support closed fees") {
            return AlmaError::FeeClosed(fault);
        }
        match fault.code.as_str() {
            "401665" => AlmaError::FineNotFound(fault),
            "401651" => AlmaError::UserNotFound(fault),
            "401666" => AlmaError::InvalidParameter(fault),
            "60340" => AlmaError::Restricted(fault),
            PER_SECOND_THRESHOLD => AlmaError::RateLimited { fault, attempts: 1 },
            _ if fault.status == 429 => AlmaError::DailyLimit(fault),
            _ => AlmaError::Other(fault),
        }
    }
}

/// Alma's error code for the per-second governance limit.
pub const PER_SECOND_THRESHOLD: &str = "PER_SECOND_THRESHOLD";

/// Reads an Alma error body, JSON or XML. `None` when the body is not an
/// error answer (for example a fee, or an Analytics `<report>`). An error
/// shape with no entries gives one entry with an empty code.
pub fn parse_error_body(body: &[u8]) -> Option<Vec<ErrorEntry>> {
    let text = std::str::from_utf8(body).ok()?;
    let text = text.trim_start_matches('\u{feff}').trim_start();
    if text.starts_with('{') {
        parse_json_error(text)
    } else if text.starts_with('<') {
        parse_xml_error(text)
    } else {
        None
    }
}

fn parse_json_error(text: &str) -> Option<Vec<ErrorEntry>> {
    let value: Value = serde_json::from_str(text).ok()?;
    let result = value.get("web_service_result").unwrap_or(&value);
    let errors_exist = match result.get("errorsExist") {
        Some(Value::Bool(flag)) => *flag,
        Some(Value::String(flag)) => flag.eq_ignore_ascii_case("true"),
        _ => false,
    };
    let list = result.get("errorList").and_then(|list| list.get("error"));
    if !errors_exist && list.is_none() {
        return None;
    }
    let items: Vec<&Value> = match list {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(item @ Value::Object(_)) => vec![item],
        _ => Vec::new(),
    };
    let text_of = |item: &Value, key: &str| match item.get(key) {
        Some(Value::String(text)) => Some(text.trim().to_string()),
        Some(Value::Number(number)) => Some(number.to_string()),
        _ => None,
    };
    let mut entries: Vec<ErrorEntry> = items
        .into_iter()
        .map(|item| ErrorEntry {
            code: text_of(item, "errorCode").unwrap_or_default(),
            message: text_of(item, "errorMessage").unwrap_or_default(),
            tracking_id: text_of(item, "trackingId").filter(|id| !id.is_empty()),
        })
        .collect();
    if entries.is_empty() {
        entries.push(ErrorEntry {
            code: String::new(),
            message: "errorsExist with an empty errorList".to_string(),
            tracking_id: None,
        });
    }
    Some(entries)
}

fn parse_xml_error(text: &str) -> Option<Vec<ErrorEntry>> {
    let mut reader = Reader::from_str(text);
    let mut entries = Vec::new();
    let mut current: Option<ErrorEntry> = None;
    let mut value = String::new();
    let mut root_seen = false;
    let mut errors_exist = false;
    loop {
        match reader.read_event().ok()? {
            Event::Start(start) => {
                let name = start.local_name().into_inner().to_string();
                if !root_seen {
                    if name != "web_service_result" {
                        return None;
                    }
                    root_seen = true;
                } else if name == "error" {
                    current = Some(ErrorEntry {
                        code: String::new(),
                        message: String::new(),
                        tracking_id: None,
                    });
                }
                value.clear();
            }
            // An empty document element: an error answer only if it is
            // an (empty) web_service_result.
            Event::Empty(start) if !root_seen => {
                return (start.local_name().into_inner() == "web_service_result").then(|| {
                    vec![ErrorEntry {
                        code: String::new(),
                        message: "empty web_service_result".to_string(),
                        tracking_id: None,
                    }]
                });
            }
            Event::Text(text) => value.push_str(&text.xml10_content()),
            Event::CData(text) => value.push_str(&text.xml10_content()),
            Event::GeneralRef(reference) => {
                if let Ok(Some(ch)) = reference.resolve_char_ref() {
                    value.push(ch);
                } else if let Some(resolved) =
                    quick_xml::escape::resolve_predefined_entity(&reference)
                {
                    value.push_str(resolved);
                }
            }
            Event::End(end) => {
                let name = end.local_name().into_inner().to_string();
                let text = value.trim().to_string();
                match (name.as_str(), current.as_mut()) {
                    ("errorsExist", _) => errors_exist = text.eq_ignore_ascii_case("true"),
                    ("errorCode", Some(entry)) => entry.code = text,
                    ("errorMessage", Some(entry)) => entry.message = text,
                    ("trackingId", Some(entry)) if !text.is_empty() => {
                        entry.tracking_id = Some(text)
                    }
                    ("error", _) => entries.extend(current.take()),
                    _ => {}
                }
                value.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !root_seen || (!errors_exist && entries.is_empty()) {
        return None;
    }
    if entries.is_empty() {
        entries.push(ErrorEntry {
            code: String::new(),
            message: "errorsExist with an empty errorList".to_string(),
            tracking_id: None,
        });
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(code: &str, message: &str, tracking_id: Option<&str>) -> ErrorEntry {
        ErrorEntry {
            code: code.into(),
            message: message.into(),
            tracking_id: tracking_id.map(Into::into),
        }
    }

    #[test]
    fn reads_every_json_shape() {
        let plain = br#"{"errorsExist":true,"errorList":{"error":[{"errorCode":"401665","errorMessage":"Fine not found.","trackingId":"E01-1"}]},"result":null}"#;
        assert_eq!(
            parse_error_body(plain),
            Some(vec![entry("401665", "Fine not found.", Some("E01-1"))])
        );
        let wrapped_single_numeric = br#"{"web_service_result":{"errorsExist":true,"errorList":{"error":{"errorCode":401651,"errorMessage":"User not found"}}}}"#;
        assert_eq!(
            parse_error_body(wrapped_single_numeric),
            Some(vec![entry("401651", "User not found", None)])
        );
        let word = br#"{"errorsExist":true,"errorList":{"error":[{"errorCode":"PER_SECOND_THRESHOLD","errorMessage":"HTTP requests are more than allowed per second","trackingId":"E02-9"}]}}"#;
        assert_eq!(
            parse_error_body(word).map(|entries| entries[0].code.clone()),
            Some("PER_SECOND_THRESHOLD".to_string())
        );
    }

    #[test]
    fn reads_the_xml_shape_and_ignores_non_errors() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<web_service_result xmlns="http://com/exlibris/urm/general/xmlbeans">
  <errorsExist>true</errorsExist>
  <errorList><error><errorCode>420033</errorCode><errorMessage>No more rows to fetch &amp; stop</errorMessage><trackingId>E01-2</trackingId></error></errorList>
</web_service_result>"#;
        assert_eq!(
            parse_error_body(xml),
            Some(vec![entry(
                "420033",
                "No more rows to fetch & stop",
                Some("E01-2")
            )])
        );
        assert_eq!(parse_error_body(br#"{"id":"1","balance":9.0}"#), None);
        assert_eq!(parse_error_body(b"<report><QueryResult/></report>"), None);
        assert_eq!(parse_error_body(b"Service Unavailable"), None);
        assert_eq!(
            parse_error_body(b"{\"errorsExist\":false,\"result\":{}}"),
            None
        );
    }
}
