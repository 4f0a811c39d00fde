//! The one pattern language of coop: backup excludes, restore and export includes and
//! excludes, and agent job excludes all use it.
//!
//! Patterns are globs matched against absolute paths (for snapshots: the path inside the
//! snapshot, starting with `/`), as restic users write them:
//!
//! - `*` matches within one path component, `**` across components, `?` one character,
//!   `[abc]` a set; `\` escapes.
//! - A pattern starting with `/` is anchored: `/srv/forgejo/log` matches that path only.
//! - A pattern without a leading `/` matches at any depth: `*.tmp` matches every file ending
//!   in `.tmp`, `repos/alice` matches `/srv/forgejo/repos/alice`, and `*/remote_content`
//!   matches `/var/lib/synapse/media/remote_content`.
//! - A trailing `/` is ignored. A matching directory is matched with everything below it.
//!
//! ```
//! use coop_agent::patterns::Patterns;
//! use std::path::Path;
//! let p = Patterns::new(&["*/url_cache*".into(), "/srv/a/log".into()]).unwrap();
//! assert!(p.is_match(Path::new("/var/lib/synapse/media/url_cache_thumbnails")));
//! assert!(p.is_match(Path::new("/srv/a/log")));
//! assert!(!p.is_match(Path::new("/srv/b/srv/a/log")));
//! ```

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// A compiled set of patterns.
#[derive(Debug, Clone)]
pub struct Patterns {
    set: globset::GlobSet,
    count: usize,
}

impl Default for Patterns {
    fn default() -> Self {
        Self::new(&[]).expect("no patterns compile")
    }
}

impl Patterns {
    /// Compiles patterns; a bad one is a usage error naming it.
    pub fn new(patterns: &[String]) -> Result<Self> {
        let mut b = globset::GlobSetBuilder::new();
        for p in patterns {
            let trimmed = p.trim_end_matches('/');
            if trimmed.is_empty() {
                return Err(Error::invalid(format!("bad pattern {p:?}: it is empty")));
            }
            let full = if trimmed.starts_with('/') {
                trimmed.to_string()
            } else {
                format!("**/{trimmed}")
            };
            let g = globset::GlobBuilder::new(&full)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::invalid(format!("bad pattern {p:?}: {e}")))?;
            b.add(g);
        }
        let set = b
            .build()
            .map_err(|e| Error::invalid(format!("bad patterns: {e}")))?;
        Ok(Self {
            set,
            count: patterns.len(),
        })
    }

    /// Whether `path` (absolute) matches one of the patterns.
    pub fn is_match(&self, path: &Path) -> bool {
        self.count > 0 && self.set.is_match(path)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Reads patterns from files: one per line, `#` comments and blank lines skipped.
pub fn read_files(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?;
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pats: &[&str], path: &str) -> bool {
        Patterns::new(&pats.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap()
            .is_match(Path::new(path))
    }

    #[test]
    fn unanchored_patterns_match_at_any_depth() {
        assert!(m(
            &["*/remote_content"],
            "/var/lib/synapse/media/remote_content"
        ));
        assert!(m(
            &["remote_content"],
            "/var/lib/synapse/media/remote_content"
        ));
        assert!(m(&["*/url_cache*"], "/m/url_cache_thumbnails"));
        assert!(m(&["repos/alice"], "/srv/forgejo/repos/alice"));
        assert!(!m(&["repos/alice"], "/srv/forgejo/repos/alicex"));
        assert!(m(&["*.tmp"], "/a/b/c.tmp"));
        assert!(!m(&["*.tmp"], "/a/b/c.tmp.keep"));
        assert!(m(&["cache/"], "/home/x/cache"));
    }

    #[test]
    fn anchored_patterns_and_double_star() {
        assert!(m(&["/srv/a"], "/srv/a"));
        assert!(!m(&["/srv/a"], "/x/srv/a"));
        assert!(!m(&["/srv/*"], "/srv/a/b"));
        assert!(m(&["/srv/**/b"], "/srv/a/x/b"));
        assert!(!m(&[], "/anything"));
        assert!(Patterns::new(&["[".into()]).is_err());
        assert!(Patterns::new(&["/".into()]).is_err());
    }
}
