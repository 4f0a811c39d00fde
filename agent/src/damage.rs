//! Damaged and forged objects met while reading: each is named, skipped and reported, and
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
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind {
            ProblemKind::Damaged => "damaged",
            ProblemKind::Forged => "forged",
        };
        write!(
            f,
            "{} is {what} and was skipped: {}",
            self.object, self.message
        )
    }
}
