//! Healthchecks-style pings: `/start` when a job starts, then the URL itself on success or
//! `/fail` with the message.

use std::time::Duration;

/// Pings `url` + `suffix` with `body`; a failed ping is logged, never fatal.
pub fn ping(url: Option<&str>, suffix: &str, body: &str) {
    let Some(url) = url else { return };
    let url = format!("{}{suffix}", url.trim_end_matches('/'));
    let body = body.to_string();
    let res = crate::store::runtime().block_on(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        client
            .post(&url)
            .body(body)
            .send()
            .await?
            .error_for_status()
    });
    if let Err(e) = res {
        tracing::warn!("healthcheck ping failed: {e}");
    }
}
