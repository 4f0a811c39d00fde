//! Service recipes: the agent jobs, per-member selectors and restore guides for the services
//! community hosters run, shipped as data (`packaging/recipes/<service>.toml`).
//!
//! A recipe names variables (`[vars.NAME]` with a `default` and a `help`), and its `[[job]]`
//! tables are agent.toml jobs in which `${NAME}` is replaced. [`Recipe::render`] gives the
//! blocks to paste into agent.toml; a variable with neither a value nor a default is written
//! as `<FILL IN: NAME: help>`, which `coop config check` refuses until it is filled in.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Var {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub help: String,
}

/// A recipe as shipped. Serialised (`coop recipe list --json`) without its jobs, its
/// variables as a list of `{name, default, help}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Recipe {
    pub name: String,
    pub title: String,
    /// Whether the recipe is tested against the real service in coop's test suite.
    pub tested: bool,
    #[serde(default)]
    pub upstream: Vec<String>,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub restore_guide: String,
    #[serde(default, serialize_with = "vars_list")]
    pub vars: BTreeMap<String, Var>,
    #[serde(default, rename = "job", skip_serializing)]
    pub jobs: Vec<toml::Table>,
}

/// The variables as a list, each with its name.
fn vars_list<S: serde::Serializer>(
    vars: &BTreeMap<String, Var>,
    ser: S,
) -> std::result::Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Named<'a> {
        name: &'a str,
        #[serde(flatten)]
        var: &'a Var,
    }
    ser.collect_seq(vars.iter().map(|(name, var)| Named { name, var }))
}

impl Recipe {
    pub fn parse(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::invalid(format!("bad recipe: {e}")))
    }

    /// The `[[job]]` blocks with every `${VAR}` replaced (by `values`, else the default, else
    /// a `<FILL IN: …>` marker). An unknown variable in `values` is refused.
    pub fn render(&self, values: &BTreeMap<String, String>) -> Result<String> {
        if let Some(k) = values.keys().find(|k| !self.vars.contains_key(*k)) {
            return Err(Error::invalid(format!(
                "recipe {} has no variable {k:?} (it has: {})",
                self.name,
                self.vars.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let subst = |s: &str| -> String {
            let mut out = s.to_string();
            for (k, v) in &self.vars {
                let value = values
                    .get(k)
                    .cloned()
                    .or_else(|| v.default.clone())
                    .unwrap_or_else(|| format!("<FILL IN: {k}: {}>", v.help));
                out = out.replace(&format!("${{{k}}}"), &value);
            }
            out
        };
        fn walk(v: &mut toml::Value, f: &dyn Fn(&str) -> String) {
            match v {
                toml::Value::String(s) => *s = f(s),
                toml::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, f)),
                toml::Value::Table(t) => t.iter_mut().for_each(|(_, x)| walk(x, f)),
                _ => {}
            }
        }
        let mut jobs = self.jobs.clone();
        for j in &mut jobs {
            for (_, v) in j.iter_mut() {
                walk(v, &subst);
            }
        }
        #[derive(serde::Serialize)]
        struct Doc {
            job: Vec<toml::Table>,
        }
        let mut out = format!(
            "# coop recipe {}: {}{}\n",
            self.name,
            self.title,
            if self.tested {
                ""
            } else {
                " (documented, not tested by coop's suite)"
            }
        );
        if !self.restore_guide.is_empty() {
            out.push_str(&format!("# restore guide: {}\n", self.restore_guide));
        }
        out.push('\n');
        out.push_str(
            &toml::to_string(&Doc { job: jobs })
                .map_err(|e| Error::internal(format!("recipe does not serialize: {e}")))?,
        );
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = r#"
name = "demo"
title = "Demo"
tested = false
[vars.DIR]
default = "/srv/demo"
help = "data directory"
[vars.DB]
help = "database name"
[[job]]
name = "demo"
schedule = "0 3 * * *"
paths = ["${DIR}/data"]
commands = [{ command = "pg_dump -Fc ${DB}", filename = "demo.dump" }]
"#;

    #[test]
    fn render_fills_defaults_values_and_marks_the_rest() {
        let r = Recipe::parse(R).unwrap();
        let out = r.render(&BTreeMap::new()).unwrap();
        assert!(out.contains("/srv/demo/data"), "{out}");
        assert!(out.contains("<FILL IN: DB: database name>"), "{out}");
        let v: BTreeMap<_, _> = [("DB".to_string(), "demo".to_string())].into();
        let out = r.render(&v).unwrap();
        assert!(out.contains("pg_dump -Fc demo"), "{out}");
        assert!(crate::settings::raw::parse(&format!(
            "[site]\nname='a'\nrepo='/r'\nidentity_file='/i'\n{out}"
        ))
        .is_ok());
        let bad: BTreeMap<_, _> = [("NOPE".to_string(), "x".to_string())].into();
        assert!(r.render(&bad).is_err());
    }

    /// `coop recipe list --json`: no jobs, the variables as a list with their names.
    #[test]
    fn serialised_without_jobs_and_with_named_vars() {
        let v = serde_json::to_value(Recipe::parse(R).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "name": "demo", "title": "Demo", "tested": false, "upstream": [],
                "summary": "", "restore_guide": "",
                "vars": [
                    {"name": "DB", "default": null, "help": "database name"},
                    {"name": "DIR", "default": "/srv/demo", "help": "data directory"},
                ],
            })
        );
    }
}
