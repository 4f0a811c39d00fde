//! The engine's layers, checked: each module uses only modules of its own layer or the layers
//! below it, and no two modules use each other, directly or through others (issue 23). The
//! test reads the sources (`crate::<module>` paths outside `#[cfg(test)]` and outside test
//! modules in files of their own), so a new upward edge or cycle fails the suite.

/// From the bottom up. A module may use the modules of its own layer and those before it.
pub const LAYERS: &[(&str, &[&str])] = &[
    (
        "base",
        &[
            "layout", "damage", "fault", "progress", "chunker", "fsx", "store", "error", "state",
            "par",
        ],
    ),
    (
        "local",
        &["keys", "patterns", "recipes", "catalog", "history"],
    ),
    (
        "repository",
        &["repo", "control", "lock", "packtable", "index"],
    ),
    ("access log", &["log"]),
    (
        "trust",
        &[
            "registry", "tenant", "writers", "shares", "reshare", "members", "admins", "groups",
            "read", "access",
        ],
    ),
    (
        "data operations",
        &["backup", "restore", "snapshots", "export", "recovery"],
    ),
    (
        "maintenance and audit",
        &["check", "forget", "prune", "usage", "replicate"],
    ),
    ("agent", &["settings", "daemon", "report"]),
];

#[cfg(test)]
mod tests {
    use super::LAYERS;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    fn sources(dir: &Path, out: &mut Vec<(String, String)>, root: &Path) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                sources(&p, out, root);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }

    /// Module → the modules it uses (outside tests), read from the engine's sources.
    fn edges() -> BTreeMap<String, BTreeSet<String>> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&root, &mut files, &root);
        edges_of(&files)
    }

    /// A test module in a file of its own, which is not part of the engine: named `tests.rs`
    /// or `*_tests.rs` in a module's folder, and declared `#[cfg(test)] mod <name>;` by that
    /// module (`x/mod.rs` or `x.rs`), or `#[cfg(test)] #[path = "<file>"] mod …;` by a file
    /// beside it. A file so named but declared otherwise is engine code.
    fn is_test_module(rel: &str, files: &[(String, String)]) -> bool {
        let Some((dir, name)) = rel.rsplit_once('/') else {
            return false;
        };
        let Some(stem) = name.strip_suffix(".rs") else {
            return false;
        };
        if stem != "tests" && !stem.ends_with("_tests") {
            return false;
        }
        let declared = format!("#[cfg(test)]\nmod {stem};");
        let parents = [format!("{dir}/mod.rs"), format!("{dir}.rs")];
        // Or the tests of one file beside it: `#[cfg(test)] #[path = "<name>"] mod tests;`.
        let by_path = format!("#[cfg(test)]\n#[path = \"{name}\"]\nmod ");
        files.iter().any(|(r, text)| {
            (parents.contains(r) && text.contains(&declared))
                || (r.rsplit_once('/').is_some_and(|(d, _)| d == dir) && text.contains(&by_path))
        })
    }

    /// Module → the modules it uses (outside tests), for `files` (path under `src`, text).
    fn edges_of(files: &[(String, String)]) -> BTreeMap<String, BTreeSet<String>> {
        let modules: BTreeSet<String> = files
            .iter()
            .map(|(rel, _)| top(rel))
            .filter(|m| m != "lib")
            .collect();
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (rel, text) in files {
            let from = top(rel);
            if from == "lib" || from == "layering" || is_test_module(rel, files) {
                continue;
            }
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let mut used = BTreeSet::new();
            for (i, _) in code.match_indices("crate::") {
                let name: String = code[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                used.insert(name);
            }
            for (i, _) in code.match_indices("use crate::{") {
                let list = &code[i + 12..];
                let list = &list[..list.find('}').unwrap_or(0)];
                for w in list.split(|c: char| !(c.is_ascii_lowercase() || c == '_')) {
                    used.insert(w.to_string());
                }
            }
            let e = out.entry(from.clone()).or_default();
            e.extend(
                used.into_iter()
                    .filter(|m| modules.contains(m) && *m != from),
            );
        }
        out
    }

    /// Test files are skipped only when declared as test modules, and an upward edge in any
    /// other file of the module still counts.
    #[test]
    fn only_declared_test_modules_are_skipped() {
        let parent = concat!(
            "mod witness;\n#[cfg(test)]\nmod tests;\n",
            "#[cfg(test)]\nmod witness_tests;\nmod audit_tests;\n"
        );
        let up = "use crate::backup::run;\n";
        let files: Vec<(String, String)> = [
            ("log/mod.rs", parent),
            ("log/tests.rs", up),
            ("log/witness_tests.rs", up),
            ("fsx.rs", "#[cfg(test)]\nmod tests;\n"),
            ("fsx/tests.rs", up),
            (
                "log/persons.rs",
                "#[cfg(test)]\n#[path = \"persons_tests.rs\"]\nmod tests;\n",
            ),
            ("log/persons_tests.rs", up),
            ("backup/mod.rs", ""),
        ]
        .iter()
        .map(|(r, t)| (r.to_string(), t.to_string()))
        .collect();
        assert!(is_test_module("log/tests.rs", &files));
        assert!(is_test_module("log/witness_tests.rs", &files));
        assert!(is_test_module("fsx/tests.rs", &files));
        assert!(is_test_module("log/persons_tests.rs", &files));
        assert!(
            !is_test_module("log/slots_tests.rs", &files),
            "declared by no one"
        );
        assert!(!is_test_module("log/mod.rs", &files));
        assert!(!is_test_module("log/witness.rs", &files));
        assert!(!is_test_module("log/contests.rs", &files));
        assert!(
            !is_test_module("log/audit_tests.rs", &files),
            "not under #[cfg(test)]"
        );
        assert!(!is_test_module("tests.rs", &files));
        let uses_backup = |files: &[(String, String)]| {
            edges_of(files)
                .get("log")
                .is_some_and(|to| to.contains("backup"))
        };
        assert!(!uses_backup(&files), "{:?}", edges_of(&files));
        for engine in ["log/witness.rs", "log/audit_tests.rs", "log/slots_tests.rs"] {
            let mut with = files.clone();
            with.push((engine.to_string(), up.to_string()));
            assert!(uses_backup(&with), "{engine}: {:?}", edges_of(&with));
        }
    }

    fn top(rel: &str) -> String {
        let first = rel.split('/').next().unwrap_or(rel);
        first.trim_end_matches(".rs").to_string()
    }

    #[test]
    fn every_module_is_in_a_layer_and_no_edge_points_up() {
        let layer_of: BTreeMap<&str, usize> = LAYERS
            .iter()
            .enumerate()
            .flat_map(|(i, (_, ms))| ms.iter().map(move |m| (*m, i)))
            .collect();
        let mut bad = Vec::new();
        for (from, tos) in edges() {
            if from == "layering" {
                continue;
            }
            let Some(&lf) = layer_of.get(from.as_str()) else {
                bad.push(format!(
                    "{from} is in no layer (add it to layering::LAYERS)"
                ));
                continue;
            };
            for to in tos {
                match layer_of.get(to.as_str()) {
                    Some(&lt) if lt > lf => bad.push(format!(
                        "{from} ({}) uses {to} ({}), a higher layer",
                        LAYERS[lf].0, LAYERS[lt].0
                    )),
                    None if to != "layering" => {
                        bad.push(format!("{to} is in no layer (add it to layering::LAYERS)"))
                    }
                    _ => {}
                }
            }
        }
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }

    #[test]
    fn no_module_uses_itself_through_others() {
        let g = edges();
        // Depth-first search for a back edge.
        fn visit(
            m: &str,
            g: &BTreeMap<String, BTreeSet<String>>,
            state: &mut BTreeMap<String, u8>,
            path: &mut Vec<String>,
        ) -> Option<Vec<String>> {
            match state.get(m) {
                Some(1) => {
                    let i = path.iter().position(|p| p == m).unwrap_or(0);
                    let mut c = path[i..].to_vec();
                    c.push(m.to_string());
                    return Some(c);
                }
                Some(2) => return None,
                _ => {}
            }
            state.insert(m.to_string(), 1);
            path.push(m.to_string());
            for n in g.get(m).into_iter().flatten() {
                if let Some(c) = visit(n, g, state, path) {
                    return Some(c);
                }
            }
            path.pop();
            state.insert(m.to_string(), 2);
            None
        }
        let mut state = BTreeMap::new();
        for m in g.keys() {
            if let Some(cycle) = visit(m, &g, &mut state, &mut Vec::new()) {
                panic!("import cycle: {}", cycle.join(" -> "));
            }
        }
    }
}
