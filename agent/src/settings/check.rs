//! What `coop config check` checks beyond parsing: key files, backup paths, and (when asked)
//! the stores and whether the key opens this site's repository. A peer that cannot be
//! reached is a warning: peers come and go, and a peer that is down never blocks backups.

use super::{raw, ConfigProblem, KeySource, Settings};
use crate::store::Store;

/// The result of a check.
#[derive(Debug, Default)]
pub struct Checked {
    pub settings: Option<Settings>,
    pub problems: Vec<ConfigProblem>,
    /// What each S3 server supports, and other things worth knowing.
    pub notes: Vec<String>,
}

impl Checked {
    /// Whether the agent may start with this config (warnings do not stop it).
    pub fn ok(&self) -> bool {
        self.settings.is_some() && self.problems.iter().all(|p| p.warning)
    }
}

/// As `coop config check --json` shows it: `ok`, the problems and the notes (not the
/// settings).
impl serde::Serialize for Checked {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = ser.serialize_struct("Checked", 3)?;
        st.serialize_field("ok", &self.ok())?;
        st.serialize_field("problems", &self.problems)?;
        st.serialize_field("notes", &self.notes)?;
        st.end()
    }
}

fn has_glob(p: &std::path::Path) -> bool {
    p.to_string_lossy().contains(['*', '?', '['])
}

/// Checks a config; with `reach`, also contacts every store and opens the site's repository
/// with the configured key.
pub fn check(text: &str, reach: bool) -> Checked {
    let settings = match Settings::resolve(text) {
        Ok(s) => s,
        Err(problems) => {
            return Checked {
                problems,
                ..Default::default()
            }
        }
    };
    let cfg = raw::parse(text).expect("resolved above");
    let line = |span: std::ops::Range<usize>| Some(super::line_of(text, span.start));
    let mut out = Checked::default();
    let mut err = |line: Option<usize>, message: String| {
        out.problems.push(ConfigProblem {
            line,
            message,
            warning: false,
        })
    };
    for f in [&cfg.site.identity_file, &cfg.site.writer_key]
        .into_iter()
        .flatten()
    {
        if !f.get_ref().exists() {
            err(
                line(f.span()),
                format!("{} does not exist", f.get_ref().display()),
            );
        }
    }
    for j in &cfg.jobs {
        if j.members.is_some() {
            continue; // paths with {member} are checked per member when the job runs
        }
        for p in j.paths.iter().filter(|p| !has_glob(p)) {
            if std::fs::symlink_metadata(p).is_err() {
                err(
                    line(j.name.span()),
                    format!(
                        "job {:?}: the path {} does not exist",
                        j.name.get_ref(),
                        p.display()
                    ),
                );
            }
        }
    }
    // The report's energy estimate and this site's facts need its [[cooperative.site]].
    if let (Some(c), Some(raw)) = (&settings.cooperative, &cfg.cooperative) {
        if !c.sites.iter().any(|f| f.name == settings.site.name) {
            out.problems.push(ConfigProblem {
                line: line(raw.name.span()),
                message: format!(
                    "[cooperative] has no [[cooperative.site]] named {:?} (this site): the report shows no provider, energy source or costs for it, and estimates no energy",
                    settings.site.name
                ),
                warning: true,
            });
        }
    }
    // A writer key cannot read snapshots, so the agent skips retention (a note, not a failure).
    if let super::KeySource::Writer(_) = &settings.site.key {
        for (j, r) in settings.jobs.iter().zip(&cfg.jobs) {
            if j.retention.is_some() {
                out.problems.push(ConfigProblem {
                    line: line(r.name.span()),
                    message: format!(
                        "job {:?}: its retention is skipped with a writer key (it cannot read snapshots); \
                         run `coop forget` where an admin identity is, or remove retention here",
                        j.name
                    ),
                    warning: true,
                });
            }
            if let super::JobAction::Drill { .. } = j.action {
                out.problems.push(ConfigProblem {
                    line: line(r.name.span()),
                    message: format!(
                        "job {:?}: a restore drill reads backups, which a writer key cannot: it \
                         will fail here; run it on a site whose agent has an identity_file",
                        j.name
                    ),
                    warning: false,
                });
            }
        }
    }
    if reach {
        reach_stores(&settings, &cfg, text, &mut out);
    }
    out.settings = Some(settings);
    out
}

fn reach_stores(s: &Settings, cfg: &raw::AgentConfig, text: &str, out: &mut Checked) {
    let line = |span: std::ops::Range<usize>| Some(super::line_of(text, span.start));
    let site_line = line(cfg.site.repo.span());
    match Store::open_with(&s.site.repo, false, &s.site.s3) {
        Err(e) if e.is_not_found() => out.problems.push(ConfigProblem {
            line: site_line,
            message: format!(
                "site repository {} does not exist yet (create it with init first)",
                s.site.repo
            ),
            warning: false,
        }),
        Err(e) => out.problems.push(ConfigProblem {
            line: site_line,
            message: format!(
                "site store {} cannot be opened: {}",
                s.site.repo,
                crate::error::chain(&e)
            ),
            warning: false,
        }),
        Ok(store) => {
            if s.site.repo.starts_with("s3://") {
                match store.probe() {
                    Ok(n) => out
                        .notes
                        .extend(n.into_iter().map(|n| format!("{}: {n}", s.site.repo))),
                    Err(e) => out
                        .notes
                        .push(format!("{}: could not probe: {e}", s.site.repo)),
                }
            }
            if let Err(message) = open_with_key(s, store) {
                out.problems.push(ConfigProblem {
                    line: site_line,
                    message,
                    warning: false,
                });
            }
        }
    }
    for (p, raw_peer) in s.peers.iter().zip(&cfg.peers) {
        let res = Store::open_with(&p.repo, false, &p.s3).and_then(|st| {
            if p.repo.starts_with("s3://") {
                match st.probe() {
                    Ok(n) => out
                        .notes
                        .extend(n.into_iter().map(|n| format!("{}: {n}", p.repo))),
                    Err(e) => out.notes.push(format!("{}: could not probe: {e}", p.repo)),
                }
            }
            st.exists(crate::layout::CONFIG)
        });
        match res {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {} // replication creates it
            Err(e) => out.problems.push(ConfigProblem {
                line: line(raw_peer.repo.span()),
                message: format!(
                    "peer {:?} ({}) cannot be reached now: {}; the agent starts anyway and retries it",
                    p.name,
                    p.repo,
                    crate::error::chain(&e)
                ),
                warning: true,
            }),
        }
    }
}

/// Opens the site's repository with the configured key and the coop tenant.
fn open_with_key(s: &Settings, store: Store) -> Result<(), String> {
    let repo = crate::repo::Repo::open_store(store).map_err(|e| match e {
        crate::Error::RepoNotFound { .. } => format!(
            "site store {} holds no coop repository yet (create it with init first)",
            s.site.repo
        ),
        e => crate::error::chain(&e),
    })?;
    let access = crate::keys::Access::load(&s.site.key).map_err(|e| crate::error::chain(&e))?;
    crate::tenant::keys(&repo, &access, "coop").map_err(|e| match (&s.site.key, &e) {
        (KeySource::Identity(p), crate::Error::NotRecipient { .. }) => format!(
            "{} is not a recipient of tenant coop in {}: the agent could not read or back up with it",
            p.display(),
            s.site.repo
        ),
        _ => crate::error::chain(&e),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `coop config check --json`: ok, the problems and the notes, not the settings.
    #[test]
    fn serialised_as_ok_problems_and_notes() {
        let c = Checked {
            settings: None,
            problems: vec![],
            notes: vec!["a note".into()],
        };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::json!({"ok": false, "problems": [], "notes": ["a note"]})
        );
    }
}
