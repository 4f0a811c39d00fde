//! What a job backs up, resolved when it runs: globs expanded (keeping the export root a
//! member job marks, SPEC 16.2) and the paths `paths_from_command` scripts print.

use crate::error::{Error, Result};
use std::path::PathBuf;

/// Runs each `paths_from_command` script with `sh -c` and the given environment; every
/// non-empty line of its output is a path to back up (absolute; globs expanded, and paths
/// that do not exist left out, as for `paths`). A script that fails, or a line that is not an
/// absolute path, fails the job before anything is backed up.
pub fn paths_from_commands(
    scripts: &[String],
    env: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<PathBuf>> {
    use std::os::fd::AsFd;
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    for script in scripts {
        let stderr = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map(std::process::Stdio::from)
            .unwrap_or_else(|_| std::process::Stdio::null());
        let failed = |status: String| Error::SourceFailed {
            command: script.clone(),
            status,
        };
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .envs(env)
            .stdin(std::process::Stdio::null())
            .stderr(stderr)
            .output()
            .map_err(|e| failed(format!("could not start: {e}")))?;
        if !o.status.success() {
            return Err(failed(o.status.to_string()));
        }
        for (n, line) in o.stdout.split(|b| *b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let p = std::path::Path::new(std::ffi::OsStr::from_bytes(line));
            if !p.is_absolute() {
                return Err(Error::Invalid {
                    what: format!(
                        "paths_from_command `{script}`: line {} ({:?}) is not an absolute path",
                        n + 1,
                        p
                    ),
                });
            }
            out.extend(expand(p));
        }
    }
    Ok(out)
}

/// Expands globs (`*`, `?`, `[…]`) in a path; a path without any is returned as is.
///
/// Each path found keeps the export root the pattern marks with a `.` component
/// (`/var/lib/prosody/*/./*/alice.*` → `/var/lib/prosody/example%2ecoop/./accounts/alice.dat`);
/// a pattern without a mark is marked where its first glob is
/// (`/srv/git/alice/*.git` → `/srv/git/alice/./site.git`), so that a member's export keeps
/// every file's path below the job's root (SPEC 16.2).
pub fn expand(path: &std::path::Path) -> Vec<PathBuf> {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let s = path.to_string_lossy();
    if !s.contains(['*', '?', '[']) {
        return vec![path.to_path_buf()];
    }
    let raw: Vec<&[u8]> = path.as_os_str().as_bytes().split(|b| *b == b'/').collect();
    // The mark's place, counted in components after the root ("" before the leading /).
    let is_glob = |c: &[u8]| c.iter().any(|b| matches!(b, b'*' | b'?' | b'['));
    let parts: Vec<&[u8]> = raw
        .iter()
        .skip(1)
        .copied()
        .filter(|c| !c.is_empty())
        .collect();
    let mark = match parts.iter().position(|c| *c == b".") {
        // Components before the mark, not counting the mark itself.
        Some(i) => Some(i),
        None => parts.iter().position(|c| is_glob(c)),
    };
    let parts: Vec<&[u8]> = parts.into_iter().filter(|c| *c != b".").collect();
    let mut found = vec![PathBuf::from("/")];
    for comp in &parts {
        let c = String::from_utf8_lossy(comp);
        let comp = std::ffi::OsStr::from_bytes(comp);
        let mut next = Vec::new();
        if !is_glob(comp.as_bytes()) {
            next.extend(found.iter().map(|f| f.join(comp)));
        } else if let Ok(g) = globset::GlobBuilder::new(&c)
            .literal_separator(true)
            .build()
        {
            let m = g.compile_matcher();
            for f in &found {
                let Ok(rd) = std::fs::read_dir(f) else {
                    continue;
                };
                let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
                names.sort();
                next.extend(
                    names
                        .into_iter()
                        .filter(|n| m.is_match(n))
                        .map(|n| f.join(n)),
                );
            }
        }
        found = next;
    }
    found.retain(|p| std::fs::symlink_metadata(p).is_ok());
    let Some(at) = mark.filter(|at| *at < parts.len()) else {
        return found;
    };
    found
        .into_iter()
        .map(|p| {
            let comps: Vec<&std::ffi::OsStr> = p.iter().skip(1).collect();
            let mut out = b"/".to_vec();
            for (i, c) in comps.iter().enumerate() {
                if i == at {
                    out.extend_from_slice(b"./");
                }
                out.extend_from_slice(c.as_bytes());
                if i + 1 < comps.len() {
                    out.push(b'/');
                }
            }
            PathBuf::from(std::ffi::OsString::from_vec(out))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::expand;
    use std::path::PathBuf;

    #[test]
    fn globs_keep_the_marked_or_first_glob_export_root() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for f in [
            "example%2ecoop/accounts/alice.dat",
            "example%2ecoop/roster/alice.dat",
            "example%2ecoop/accounts/bob.dat",
        ] {
            std::fs::create_dir_all(r.join(f).parent().unwrap()).unwrap();
            std::fs::write(r.join(f), b"x").unwrap();
        }
        let shown = |v: Vec<PathBuf>| -> Vec<String> {
            v.iter()
                .map(|p| p.to_string_lossy().replace(&*r.to_string_lossy(), "R"))
                .collect()
        };
        assert_eq!(
            shown(expand(&r.join("*/./*/alice.*"))),
            [
                "R/example%2ecoop/./accounts/alice.dat",
                "R/example%2ecoop/./roster/alice.dat"
            ]
        );
        assert_eq!(
            shown(expand(&r.join("*/*/alice.*"))),
            [
                "R/./example%2ecoop/accounts/alice.dat",
                "R/./example%2ecoop/roster/alice.dat"
            ]
        );
        assert_eq!(
            shown(expand(&r.join("example%2ecoop/accounts/*.dat"))),
            [
                "R/example%2ecoop/accounts/./alice.dat",
                "R/example%2ecoop/accounts/./bob.dat"
            ]
        );
        // No glob: as given, mark or not.
        assert_eq!(
            expand(&r.join("example%2ecoop/./accounts")),
            [r.join("example%2ecoop/./accounts")]
        );
    }
}
