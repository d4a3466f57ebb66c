//! How to reach Alma and how patient to be with it. Built once, then shared
//! read-only by every request of an [`AlmaClient`](crate::AlmaClient).

use std::fmt;
use std::time::Duration;

/// An Alma API key. It can be put into the `Authorization` header and
/// nowhere else: it has no `Display`, and its `Debug` prints `ApiKey(***)`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    /// The secret itself, for the header and for redaction only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// What makes the key unusable, if anything; never shows the key.
    /// [`crate::AlmaClient::new`] refuses such a key, and a configuration
    /// check can say so before anything else runs.
    pub fn problem(&self) -> Option<&'static str> {
        let key = self.0.trim();
        if key.is_empty() {
            return Some("the Alma API key is empty");
        }
        // What an HTTP header may carry (reqwest's HeaderValue rule):
        // visible ASCII, spaces and tabs.
        let fits_a_header = key
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
        (!fits_a_header).then_some(
            "the Alma API key has characters not allowed in an HTTP header (a line break or another control character, or a non-ASCII character: check how it was pasted)",
        )
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// When and how often a request is tried again. Every bound is finite, so
/// no call to Alma loops for ever.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all (first one included) for 5xx answers and network
    /// errors. Applies to reads; a payment is only retried when Alma
    /// cannot have seen it (see [`AlmaClient`](crate::AlmaClient)).
    pub max_attempts: u32,
    /// First backoff; doubled on each retry, capped at `max_delay`, and
    /// jittered down to between half and all of it.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Wait before asking again for an Analytics page that Alma is "still
    /// preparing" (HTTP 200, `IsFinished` false, no rows).
    pub still_preparing_delay: Duration,
    /// Tries in all for one still-preparing page.
    pub still_preparing_attempts: u32,
    /// Wait after a 429 `PER_SECOND_THRESHOLD` (the per-second governance
    /// limit); jittered like the backoff.
    pub per_second_429_delay: Duration,
    /// Tries in all when Alma keeps answering `PER_SECOND_THRESHOLD`.
    pub per_second_429_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            still_preparing_delay: Duration::from_secs(3),
            still_preparing_attempts: 5,
            per_second_429_delay: Duration::from_millis(500),
            per_second_429_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// The un-jittered backoff before retry number `retry` (1 for the
    /// first retry): `base_delay * 2^(retry-1)`, at most `max_delay`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .map_or(self.max_delay, |delay| delay.min(self.max_delay))
    }
}

/// Everything an [`AlmaClient`](crate::AlmaClient) needs.
///
/// `base_url` is the regional host without the `/almaws/v1` prefix, e.g.
/// `https://api-eu.hosted.exlibrisgroup.com` (tests point it at a mock
/// server); the client adds the prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlmaConfig {
    pub base_url: String,
    pub api_key: ApiKey,
    /// Client-side limit shared by every clone of the client. Alma allows
    /// about 25 per second per institution, shared with every other
    /// integration: stay well under.
    pub requests_per_second: u32,
    /// Stop (with [`AlmaError::BelowRemainingFloor`](crate::AlmaError))
    /// before a request when Alma last said fewer calls than this remain
    /// today (`X-Exl-Api-Remaining`).
    pub remaining_floor: Option<u64>,
    pub retry: RetryPolicy,
    /// Whole-request timeout (connect, send, and reading the body).
    pub timeout: Duration,
}

impl AlmaConfig {
    /// A configuration with the defaults: 10 requests per second, no
    /// floor, [`RetryPolicy::default`], a 120 s timeout (large Analytics
    /// pages are slow).
    pub fn new(base_url: impl Into<String>, api_key: ApiKey) -> AlmaConfig {
        AlmaConfig {
            base_url: base_url.into(),
            api_key,
            requests_per_second: 10,
            remaining_floor: None,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(120),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_a_header_cannot_carry_is_named_without_showing_it() {
        assert_eq!(ApiKey::new("  l8xx-abc_123  ").problem(), None);
        assert_eq!(
            ApiKey::new(" \t").problem(),
            Some("the Alma API key is empty")
        );
        // Surrounding whitespace (a pasted line's end) is trimmed, as the
        // client trims it; inside the key it cannot be sent.
        assert_eq!(ApiKey::new("l8xx-abc\r\n").problem(), None);
        for bad in ["l8xx-abc\n123", "l8xx-abc\r1", "l8xx-\u{7f}", "l8xx-é"] {
            let problem = ApiKey::new(bad).problem().unwrap_or_default();
            assert!(
                problem.starts_with("the Alma API key has characters not allowed"),
                "{bad:?}"
            );
            assert!(!problem.contains("l8xx"), "{problem}");
        }
    }
}
