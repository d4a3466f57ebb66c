//! The one HTTP connection to Alma: key, rate limit, retries, floor.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};

use crate::config::AlmaConfig;
use crate::error::{AlmaError, ApiFault, ErrorEntry, PER_SECOND_THRESHOLD, parse_error_body};
use crate::limiter::RateLimiter;

/// Path prefix of every Alma API.
pub const API_PREFIX: &str = "/almaws/v1";

/// What a request asks Alma to answer in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    Json,
    Xml,
}

impl Accept {
    fn mime(self) -> &'static str {
        match self {
            Accept::Json => "application/json",
            Accept::Xml => "application/xml",
        }
    }
}

/// Whether a request may be sent again after Alma might have acted on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idempotency {
    /// A read: retried on 5xx answers and network errors.
    Idempotent,
    /// A change (a payment): retried only when Alma cannot have acted on
    /// it, i.e. a 429 or a failure to connect. A 5xx or a lost answer is
    /// returned to the caller, who settles it against Alma (SPEC 7.5).
    NotIdempotent,
}

/// A successful answer: HTTP 2xx whose body is not an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlmaResponse {
    pub status: u16,
    /// `X-Exl-Api-Remaining`, when Alma sent it.
    pub remaining: Option<u64>,
    pub body: Vec<u8>,
}

/// Characters left as they are in a query value or a path segment: the
/// unreserved set of RFC 3986. Everything else is `%XX`, so a space is
/// `%20`, never `+`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a query value or a path segment (`%20` for a space).
pub fn encode_component(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// Builds a query string from pairs, each name and value encoded whole.
pub fn encode_query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{}={}", encode_component(name), encode_component(value)))
        .collect::<Vec<_>>()
        .join("&")
}

const UNKNOWN_REMAINING: u64 = u64::MAX;

/// A connection to Alma, cheap to clone; clones share the rate limit and
/// what Alma last said about the calls remaining today.
#[derive(Clone)]
pub struct AlmaClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: AlmaConfig,
    /// `base_url` without a trailing `/` and with [`API_PREFIX`].
    root: String,
    http: reqwest::Client,
    authorization: HeaderValue,
    limiter: RateLimiter,
    remaining: AtomicU64,
}

impl fmt::Debug for AlmaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlmaClient")
            .field("root", &self.inner.root)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl AlmaClient {
    /// Checks the configuration and builds the connection. Nothing is sent.
    pub fn new(config: AlmaConfig) -> Result<AlmaClient, AlmaError> {
        let base = config.base_url.trim().trim_end_matches('/');
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(AlmaError::Invalid(format!(
                "Alma base URL {base:?} must start with https://"
            )));
        }
        let base = base.strip_suffix(API_PREFIX).unwrap_or(base);
        if let Some(problem) = config.api_key.problem() {
            return Err(AlmaError::Invalid(problem.into()));
        }
        let mut authorization =
            HeaderValue::from_str(&format!("apikey {}", config.api_key.expose().trim())).map_err(
                |_| AlmaError::Invalid("the Alma API key cannot be sent in an HTTP header".into()),
            )?;
        authorization.set_sensitive(true);
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(30)))
            .build()
            .map_err(|error| {
                AlmaError::Invalid(format!("cannot build the HTTP client: {error}"))
            })?;
        Ok(AlmaClient {
            inner: Arc::new(Inner {
                root: format!("{base}{API_PREFIX}"),
                limiter: RateLimiter::new(config.requests_per_second),
                config,
                http,
                authorization,
                remaining: AtomicU64::new(UNKNOWN_REMAINING),
            }),
        })
    }

    pub fn config(&self) -> &AlmaConfig {
        &self.inner.config
    }

    /// What the last answer said about API calls left today.
    pub fn last_remaining(&self) -> Option<u64> {
        match self.inner.remaining.load(Ordering::Relaxed) {
            UNKNOWN_REMAINING => None,
            remaining => Some(remaining),
        }
    }

    /// A read. `path` is below [`API_PREFIX`] (e.g. `/analytics/reports`)
    /// with its segments already encoded ([`encode_component`]); `query`
    /// pairs are encoded here.
    pub async fn get(
        &self,
        path: &str,
        query: &[(&str, &str)],
        accept: Accept,
    ) -> Result<AlmaResponse, AlmaError> {
        self.send(
            reqwest::Method::GET,
            path,
            query,
            accept,
            Idempotency::Idempotent,
        )
        .await
    }

    /// A change with no body (Alma's fee operations take all parameters in
    /// the query string). See [`Idempotency::NotIdempotent`].
    pub async fn post(
        &self,
        path: &str,
        query: &[(&str, &str)],
        accept: Accept,
    ) -> Result<AlmaResponse, AlmaError> {
        self.send(
            reqwest::Method::POST,
            path,
            query,
            accept,
            Idempotency::NotIdempotent,
        )
        .await
    }

    /// Sends one request with the rate limit, the floor and the retry
    /// policy of the configuration.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        accept: Accept,
        idempotency: Idempotency,
    ) -> Result<AlmaResponse, AlmaError> {
        let full_path = format!("{API_PREFIX}{path}");
        let query = encode_query(query);
        let url = if query.is_empty() {
            format!("{}{path}", self.inner.root)
        } else {
            format!("{}{path}?{query}", self.inner.root)
        };
        let retry = &self.inner.config.retry;
        let idempotent = idempotency == Idempotency::Idempotent;
        let mut attempts = 0u32;
        let mut failures = 0u32;
        let mut per_second = 0u32;
        loop {
            self.check_floor(&full_path)?;
            self.inner.limiter.acquire().await;
            attempts += 1;
            let sent = self
                .inner
                .http
                .request(method.clone(), &url)
                .header(AUTHORIZATION, self.inner.authorization.clone())
                .header(ACCEPT, accept.mime())
                .send()
                .await;
            let response = match sent {
                Ok(response) => response,
                Err(error) => {
                    failures += 1;
                    let may_retry = idempotent || error.is_connect();
                    if may_retry && failures < retry.max_attempts.max(1) {
                        let delay = jittered(retry.backoff(failures));
                        tracing::warn!(%method, path = %full_path, attempt = attempts, ?delay, error = %error.without_url(), "no answer from Alma; retrying");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(AlmaError::Network {
                        path: full_path,
                        attempts,
                        source: error.without_url(),
                    });
                }
            };
            let status = response.status().as_u16();
            let remaining = response
                .headers()
                .get("X-Exl-Api-Remaining")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok());
            if let Some(remaining) = remaining {
                self.inner.remaining.store(remaining, Ordering::Relaxed);
            }
            tracing::debug!(%method, path = %full_path, status, remaining, attempt = attempts, "Alma answered");
            let body = match response.bytes().await {
                Ok(body) => body.to_vec(),
                Err(error) => {
                    failures += 1;
                    if idempotent && failures < retry.max_attempts.max(1) {
                        let delay = jittered(retry.backoff(failures));
                        tracing::warn!(%method, path = %full_path, attempt = attempts, ?delay, error = %error.without_url(), "Alma's answer was cut off; retrying");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(AlmaError::Network {
                        path: full_path,
                        attempts,
                        source: error.without_url(),
                    });
                }
            };
            let success = (200..300).contains(&status);
            let entries = parse_error_body(&body);
            let Some(entries) = entries else {
                if success {
                    return Ok(AlmaResponse {
                        status,
                        remaining,
                        body,
                    });
                }
                if status == 429 {
                    // Not PER_SECOND_THRESHOLD (we cannot even read a
                    // code): the daily limit. Stop, never loop.
                    return Err(AlmaError::DailyLimit(ApiFault {
                        path: full_path,
                        status,
                        code: String::new(),
                        message: self.excerpt(&body),
                        tracking_id: None,
                    }));
                }
                if status >= 500 && idempotent {
                    failures += 1;
                    if failures < retry.max_attempts.max(1) {
                        let delay = jittered(retry.backoff(failures));
                        tracing::warn!(%method, path = %full_path, status, attempt = attempts, ?delay, "Alma failed; retrying");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                }
                return Err(AlmaError::Http {
                    path: full_path,
                    status,
                    attempts,
                    excerpt: self.excerpt(&body),
                });
            };
            let fault = self.fault(&full_path, status, entries);
            if fault.code == PER_SECOND_THRESHOLD {
                per_second += 1;
                if per_second < retry.per_second_429_attempts.max(1) {
                    let delay = jittered(retry.per_second_429_delay);
                    tracing::warn!(%method, path = %full_path, attempt = attempts, ?delay, "Alma's per-second limit; waiting");
                    tokio::time::sleep(delay).await;
                    continue;
                }
                return Err(AlmaError::RateLimited {
                    fault,
                    attempts: per_second,
                });
            }
            if status >= 500 && idempotent && is_transient(&fault) {
                failures += 1;
                if failures < retry.max_attempts.max(1) {
                    let delay = jittered(retry.backoff(failures));
                    tracing::warn!(%method, path = %full_path, status, code = %fault.code, attempt = attempts, ?delay, "Alma failed; retrying");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            }
            tracing::debug!(%method, path = %full_path, status, code = %fault.code, "Alma answered with an error");
            return Err(AlmaError::from_fault(fault));
        }
    }

    fn check_floor(&self, path: &str) -> Result<(), AlmaError> {
        let (Some(floor), Some(remaining)) =
            (self.inner.config.remaining_floor, self.last_remaining())
        else {
            return Ok(());
        };
        if remaining < floor {
            tracing::warn!(
                path,
                remaining,
                floor,
                "Alma API calls left today are below the floor; stopping"
            );
            return Err(AlmaError::BelowRemainingFloor {
                path: path.to_string(),
                remaining,
                floor,
            });
        }
        Ok(())
    }

    fn fault(&self, path: &str, status: u16, entries: Vec<ErrorEntry>) -> ApiFault {
        let mut entries = entries.into_iter();
        let first = entries.next().unwrap_or(ErrorEntry {
            code: String::new(),
            message: String::new(),
            tracking_id: None,
        });
        let mut message = first.message;
        for other in entries {
            message.push_str("; ");
            message.push_str(&other.code);
            message.push_str(": ");
            message.push_str(&other.message);
        }
        ApiFault {
            path: path.to_string(),
            status,
            code: self.redact(&first.code),
            message: self.redact(&message),
            tracking_id: first.tracking_id,
        }
    }

    /// The start of a body for an error message, with the key removed in
    /// case anything between us and Alma echoed the request headers.
    fn excerpt(&self, body: &[u8]) -> String {
        let text = String::from_utf8_lossy(body);
        let text: String = text.trim().chars().take(300).collect();
        if text.is_empty() {
            "(empty body)".to_string()
        } else {
            self.redact(&text)
        }
    }

    fn redact(&self, text: &str) -> String {
        let key = self.inner.config.api_key.expose().trim();
        if key.is_empty() {
            text.to_string()
        } else {
            text.replace(key, "***")
        }
    }
}

/// A 5xx worth trying again: not a business error (numeric code) and not
/// a wrong Analytics path.
fn is_transient(fault: &ApiFault) -> bool {
    let business = !fault.code.is_empty() && fault.code.bytes().all(|b| b.is_ascii_digit());
    !business && !fault.message.contains("Path not found")
}

/// Between half and all of `delay`, so that clients backing off together
/// do not come back together.
fn jittered(delay: Duration) -> Duration {
    let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
    if nanos < 2 {
        return delay;
    }
    Duration::from_nanos(rand::random_range(nanos / 2..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_spaces_as_percent_20_and_keeps_unreserved() {
        assert_eq!(encode_component("a b+c/d~e_f.g-h"), "a%20b%2Bc%2Fd~e_f.g-h");
        assert_eq!(encode_component("é\"<"), "%C3%A9%22%3C");
        assert_eq!(
            encode_query(&[("path", "/x y"), ("limit", "1000")]),
            "path=%2Fx%20y&limit=1000"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_stays_within_half() {
        let policy = crate::RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            ..crate::RetryPolicy::default()
        };
        let delays: Vec<_> = (1..=4).map(|retry| policy.backoff(retry)).collect();
        let expected = [100, 200, 350, 350].map(Duration::from_millis);
        assert_eq!(delays, expected);
        assert_eq!(policy.backoff(200), Duration::from_millis(350));
        for _ in 0..100 {
            let delay = jittered(Duration::from_millis(200));
            assert!(delay >= Duration::from_millis(100) && delay <= Duration::from_millis(200));
        }
    }
}
