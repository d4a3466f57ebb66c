//! The connection to Alma's REST APIs, and the fines and fees API on it.
//!
//! One [`AlmaClient`] is the only way this workspace talks to Alma; the
//! Analytics crate sends its requests through it too. The client owns what
//! every Alma call must honour (`ALMA-API.md`):
//!
//! - **The key** goes in the `Authorization: apikey` header and nowhere
//!   else: not in a URL, not in a log line, not in an error. [`ApiKey`]
//!   prints as `***`, and error texts built from answers are scrubbed of it.
//! - **Governance.** A client-side rate limit (10 requests per second by
//!   default) is shared by every clone of a client. Each answer's
//!   `X-Exl-Api-Remaining` is logged; when it falls below a configured
//!   floor, the next request is refused with
//!   [`AlmaError::BelowRemainingFloor`] instead of being sent.
//! - **Retries** are bounded. Reads are retried with jittered exponential
//!   backoff on 5xx answers and network errors; a 429
//!   `PER_SECOND_THRESHOLD` is retried after a short wait; a 429 that is
//!   anything else is the daily limit and stops at once. Business errors
//!   (4xx) are never retried. A payment (`POST`) is retried only when Alma
//!   cannot have acted on it (429, or no connection): a payment answered
//!   by a 5xx or lost on the way back may have been made, and sending it
//!   again could charge a student twice, so the caller settles it.
//! - **Errors** in every shape Alma uses (JSON, JSON wrapped in
//!   `web_service_result`, XML, even with HTTP 200) become one typed
//!   [`AlmaError`] that names the request path.
//!
//! The fees API ([`AlmaClient::get_fee`], [`AlmaClient::list_fees`],
//! [`AlmaClient::pay_fee`]) reads amounts from the JSON text into
//! [`sync_core::Money`], never through a float.
//!
//! Architecture invariant: this crate knows Alma's HTTP APIs, not the
//! store, not the Bursar, and not what a stage does with a fee.

mod client;
mod config;
mod error;
mod fees;
mod limiter;

pub use client::{
    API_PREFIX, Accept, AlmaClient, AlmaResponse, Idempotency, encode_component, encode_query,
};
pub use config::{AlmaConfig, ApiKey, RetryPolicy};
pub use error::{AlmaError, ApiFault, ErrorEntry, PER_SECOND_THRESHOLD, parse_error_body};
pub use fees::{CodeValue, Fee, FeeList, FeeStatus, FeeTransaction, PayRequest, PaymentMethod};
pub use limiter::RateLimiter;
