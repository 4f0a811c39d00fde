//! Progress reporting behind a trait, so the engine knows nothing of terminals.

/// Receives progress from long operations. All methods have empty defaults.
pub trait Progress: Send + Sync {
    /// A new phase starts; `total` is in bytes when known.
    fn phase(&self, _name: &str, _total: Option<u64>) {}
    /// `bytes` more were processed in the current phase.
    fn add_bytes(&self, _bytes: u64) {}
    /// One more file (or item) was processed.
    fn add_file(&self) {}
    /// What happened to one entry (`new`, `changed`, `unchanged`, `restored`), for `-v`.
    fn item(&self, _what: &str, _path: &std::path::Path) {}
    /// A non-fatal problem (a file that could not be read, …).
    fn warn(&self, _message: &str) {}
    /// The phase is over.
    fn finish(&self) {}
}

/// Reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}
