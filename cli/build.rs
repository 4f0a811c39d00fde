//! Embeds the service recipes (`packaging/recipes/*.toml`) into the binary, so that
//! `coop recipe` works wherever coop is installed.

use std::fmt::Write;

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/recipes");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .map(|p| {
                    println!("cargo:rerun-if-changed={}", p.display());
                    p.display().to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out = String::from(
        "/// Every shipped recipe: (file name, text).\npub const RECIPES: &[(&str, &str)] = &[\n",
    );
    for n in &names {
        let file = std::path::Path::new(n)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        writeln!(out, "    ({file:?}, include_str!({n:?})),").unwrap();
    }
    out.push_str("];\n");
    let dest = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("recipes.rs");
    std::fs::write(dest, out).unwrap();
}
