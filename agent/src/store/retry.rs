//! Time limits and bounded retries around every store operation, and the shared runtime.

use super::{Store, StoreError};
use std::sync::OnceLock;

/// Whether an error was caused by a full disk (ENOSPC), found by walking its sources.
fn is_no_space(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.raw_os_error())
            == Some(28)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            // Few blocking threads: each one that allocates gets its own malloc arena, and
            // pack-sized buffers freed elsewhere stay cached there (restore grew by 16 MiB
            // per extra thread).
            .max_blocking_threads(2)
            .thread_name("coop-io")
            .enable_all()
            .build()
            .expect("cannot start the I/O runtime")
    })
}

/// Per-operation time limit (`COOP_STORE_TIMEOUT_SECS`, default 120 s): a stalled
/// request is cut off and retried.
pub(super) fn op_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(
        std::env::var("COOP_STORE_TIMEOUT_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(120),
    )
}

/// Attempts per operation for transient errors (5xx, resets, timeouts).
const ATTEMPTS: u32 = 4;

fn is_permanent(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    matches!(
        e,
        E::NotFound { .. }
            | E::AlreadyExists { .. }
            | E::Precondition { .. }
            | E::NotModified { .. }
            | E::NotImplemented { .. }
            | E::InvalidPath { .. }
            | E::PermissionDenied { .. }
            | E::Unauthenticated { .. }
            | E::NotSupported { .. }
    ) || is_no_space(e)
}

impl Store {
    pub(super) fn err(&self, op: &'static str, path: &str, e: object_store::Error) -> StoreError {
        match e {
            object_store::Error::NotFound { .. } => {
                return StoreError::NotFound {
                    url: self.url.clone(),
                    path: path.into(),
                }
            }
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => {
                return StoreError::Exists {
                    url: self.url.clone(),
                    path: path.into(),
                }
            }
            object_store::Error::NotImplemented { .. }
            | object_store::Error::NotSupported { .. } => {
                return StoreError::Unsupported {
                    url: self.url.clone(),
                    op,
                }
            }
            _ => {}
        }
        let no_space = is_no_space(&e);
        StoreError::Op {
            url: self.url.clone(),
            op,
            path: path.into(),
            reason: e.to_string(),
            no_space,
        }
    }

    /// Runs one operation with a time limit and bounded retries of transient errors.
    pub(super) fn run<T, F, Fut>(&self, op: &'static str, path: &str, f: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = object_store::Result<T>>,
    {
        let timeout = op_timeout();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let res = runtime().block_on(async { tokio::time::timeout(timeout, f()).await });
            let last = attempt >= ATTEMPTS;
            match res {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if last || is_permanent(&e) => return Err(self.err(op, path, e)),
                Err(_) if last => {
                    return Err(StoreError::Op {
                        url: self.url.clone(),
                        op,
                        path: path.into(),
                        reason: format!(
                            "no answer within {} s, {ATTEMPTS} attempts (stalled)",
                            timeout.as_secs()
                        ),
                        no_space: false,
                    })
                }
                Ok(Err(e)) => tracing::info!("{op} {path}: {e}; retrying ({attempt}/{ATTEMPTS})"),
                Err(_) => tracing::info!("{op} {path}: timed out; retrying ({attempt}/{ATTEMPTS})"),
            }
            std::thread::sleep(std::time::Duration::from_millis(100 << attempt.min(6)));
        }
    }
}
