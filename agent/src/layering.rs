//! The engine's layers, checked: each module uses only modules of its own layer or the layers
//! below it, and no two modules use each other, directly or through others (issue 23). The
//! test reads the sources (`crate::<module>` paths outside `#[cfg(test)]` and `tests.rs`), so a new upward
//! edge or cycle fails the suite.

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
            "registry", "tenant", "writers", "shares", "members", "admins", "groups", "read",
            "access",
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

    /// Module → the modules it uses (outside tests).
    fn edges() -> BTreeMap<String, BTreeSet<String>> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&root, &mut files, &root);
        let modules: BTreeSet<String> = files
            .iter()
            .map(|(rel, _)| top(rel))
            .filter(|m| m != "lib")
            .collect();
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (rel, text) in &files {
            let from = top(rel);
            // Test modules in files of their own (`mod tests;`) are not part of the engine.
            if from == "lib" || from == "layering" || rel.ends_with("/tests.rs") {
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
