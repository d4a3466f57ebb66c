//! The run summary, posted to a Slack-compatible webhook (`{"text": ...}`)
//! when one is configured. A webhook that fails is logged and does not
//! change the command's outcome: the work is done either way, and the log
//! file has the same summary.

use std::time::Duration;

/// Why the summary could not be posted.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("posting the run summary to the webhook failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the webhook answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
}

/// Posts `text` as `{"text": text}` to `url`.
pub async fn post_webhook(url: &str, text: &str, timeout: Duration) -> Result<(), NotifyError> {
    let body = serde_json::json!({ "text": text }).to_string();
    let client = reqwest::Client::builder().timeout(timeout).build()?;
    let response = client
        .post(url)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(NotifyError::Status {
            status: status.as_u16(),
            body: body.chars().take(200).collect(),
        });
    }
    Ok(())
}

/// The host name for the summary's first line.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "this host".to_string())
}
