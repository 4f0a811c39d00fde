//! Damaged, forged and unreadable objects met while reading: each is named, skipped and reported, and
//! everything else keeps working. Commands that list report them and exit with the
//! damage code; commands that delete refuse to act on a view with damage in it.

use serde::Serialize;

/// What was wrong with an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// Its bytes do not match its name, or it does not decode: the store damaged or
    /// replaced it. It may have been genuine, so nothing is deleted on its account.
    Damaged,
    /// It decodes but was not made by anyone entitled to (a bad or unknown signature): a
    /// forgery, for example by a stolen writer key. It is ignored.
    Forged,
    /// It is well-formed but encrypted to no key the reader holds (a keyring older than the
    /// object, kept from before a key change): genuine for all anyone knows, so nothing is
    /// deleted on its account, and nothing of it is read.
    Unreadable,
}

/// One damaged or forged object.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The object's store path.
    pub object: String,
    pub kind: ProblemKind,
    pub message: String,
}

impl Problem {
    pub fn damaged(object: &str, why: impl std::fmt::Display) -> Self {
        Self {
            object: object.into(),
            kind: ProblemKind::Damaged,
            message: why.to_string(),
        }
    }

    pub fn forged(object: &str, why: impl std::fmt::Display) -> Self {
        Self {
            object: object.into(),
            kind: ProblemKind::Forged,
            message: why.to_string(),
        }
    }

    pub fn unreadable(object: &str, why: impl std::fmt::Display) -> Self {
        Self {
            object: object.into(),
            kind: ProblemKind::Unreadable,
            message: why.to_string(),
        }
    }

    /// Whether the object may be genuine and needed (damaged, or not readable with these
    /// keys): commands that delete refuse to act while one is in their view.
    pub fn may_be_needed(&self) -> bool {
        self.kind != ProblemKind::Forged
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind {
            ProblemKind::Damaged => "is damaged",
            ProblemKind::Forged => "is forged",
            ProblemKind::Unreadable => "cannot be read with the keys given",
        };
        write!(
            f,
            "{} {what} and was skipped: {}",
            self.object, self.message
        )
    }
}
