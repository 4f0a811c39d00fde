//! `coop recipe`: the service recipes shipped with coop.

use crate::global::Global;
use anyhow::Result;
use clap::{Args, Subcommand};
use coop_agent::recipes::Recipe;
use coop_agent::Error;
use serde::Serialize;
use std::collections::BTreeMap;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/recipes.rs"));
}

#[derive(Subcommand)]
pub enum RecipeCommand {
    /// List the recipes (which are tested against the real service in coop's suite).
    List,
    /// Print a recipe's agent jobs, ready to paste into agent.toml.
    Show(ShowArgs),
}

#[derive(Args)]
pub struct ShowArgs {
    /// The recipe's name (see `coop recipe list`).
    name: String,
    /// Fill in a variable: VAR=VALUE (repeatable). Unfilled variables without a default are marked.
    #[arg(long = "set", value_name = "VAR=VALUE")]
    set: Vec<String>,
}

/// `recipe show --json`: the recipe's jobs as TOML.
#[derive(Serialize)]
struct Shown<'a> {
    name: &'a str,
    toml: &'a str,
}

pub(crate) fn all() -> Result<Vec<Recipe>> {
    embedded::RECIPES
        .iter()
        .map(|(file, text)| {
            Recipe::parse(text).map_err(|e| anyhow::Error::new(e).context(format!("recipe {file}")))
        })
        .collect()
}

pub fn run(g: &Global, c: RecipeCommand) -> Result<i32> {
    let p = g.printer();
    let recipes = all()?;
    match c {
        RecipeCommand::List => {
            if g.json {
                p.json_sorted(&recipes)?;
            } else {
                for r in &recipes {
                    p.data(format!(
                        "{:<14} {:<28} {}",
                        r.name,
                        r.title,
                        if r.tested {
                            "tested"
                        } else {
                            "documented, untested here"
                        }
                    ))?;
                }
                p.summary(
                    "show one with `coop recipe show NAME`; restore guides are in docs/recipes/",
                )?;
            }
        }
        RecipeCommand::Show(a) => {
            let r = recipes
                .iter()
                .find(|r| r.name == a.name)
                .ok_or_else(|| Error::NotFound {
                    what: format!(
                        "recipe {:?} (there are: {})",
                        a.name,
                        recipes
                            .iter()
                            .map(|r| r.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })?;
            let mut values = BTreeMap::new();
            for s in &a.set {
                let (k, v) = s.split_once('=').ok_or_else(|| Error::Invalid {
                    what: format!("--set {s:?}: write VAR=VALUE"),
                })?;
                values.insert(k.to_string(), v.to_string());
            }
            let text = r.render(&values)?;
            if g.json {
                p.json_sorted(&Shown {
                    name: &r.name,
                    toml: &text,
                })?;
            } else {
                p.data(text.trim_end())?;
            }
        }
    }
    Ok(crate::exit::OK)
}
