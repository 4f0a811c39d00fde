//! `coop key …`

use crate::global::Global;
use crate::util;
use anyhow::Result;
use clap::{Args, Subcommand};
use coop_agent::keys::{self, Access};
use coop_agent::Error;
use coop_formats::keyring::Writer;
use coop_formats::writerkey::{WriterKey, FORMAT};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a writer key file: it can back up into the tenant but not read anything.
    ExportWriter(ExportWriterArgs),
}

#[derive(Args)]
pub struct ExportWriterArgs {
    /// Where to write the key file (must not exist; written with mode 0600).
    #[arg(long, short = 'o', env = "COOP_KEY_OUT")]
    out: PathBuf,
    /// A name for this writer (e.g. the site), recorded in snapshots it signs.
    #[arg(long, default_value = "agent", env = "COOP_KEY_NAME")]
    name: String,
}

pub fn run(g: &Global, k: KeyCommand) -> Result<i32> {
    match k {
        KeyCommand::ExportWriter(a) => export_writer(g, a),
    }
}

fn export_writer(g: &Global, a: ExportWriterArgs) -> Result<i32> {
    let repo = util::open_repo(g)?;
    let Access::Identity(ids) = util::identity_access(g)? else {
        unreachable!("identity access")
    };
    let rings = repo.keyrings(&ids)?;
    let Some(mut ring) = rings.into_iter().find(|k| k.tenant == g.tenant) else {
        return Err(Error::AccessDenied {
            what: format!("your identity is not a recipient of tenant {:?}", g.tenant),
        }
        .into());
    };
    if a.out.exists() {
        return Err(Error::Usage {
            what: format!("{} exists already; choose another --out", a.out.display()),
        }
        .into());
    }
    let seed: [u8; 32] = coop_formats::random_bytes();
    let public = ed25519_public(&seed);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    ring.writers.push(Writer {
        name: a.name.clone(),
        public_key: public,
        added: now,
    });
    ring.generation += 1;
    repo.write_keyring(&ring)?;
    let wk = WriterKey {
        format: FORMAT.into(),
        version: 1,
        name: a.name.clone(),
        repo_id: repo.config.repo_id,
        tenant: ring.tenant.clone(),
        tenant_tag: ring.tenant_tag,
        config_hash: repo.config_hash,
        id_key: ring.id_key,
        index_key: ring.index_key,
        recipients: vec![ring.data_recipient().map_err(|e| Error::Usage {
            what: e.to_string(),
        })?],
        signing_key: seed,
    };
    keys::write_secret_file(&a.out, &wk.encode())?;
    if g.json {
        util::print_json(
            &serde_json::json!({"out": a.out, "tenant": ring.tenant, "name": a.name, "public_key": hex::encode(public)}),
        )?;
    } else {
        println!(
            "Wrote writer key {} for tenant {:?} (writer {:?}, public key {}).\n\
             An agent can back up with `coop backup --writer-key {}`; it cannot read or restore anything.",
            a.out.display(),
            ring.tenant,
            a.name,
            &hex::encode(public)[..16],
            a.out.display()
        );
    }
    Ok(crate::exit::OK)
}

fn ed25519_public(seed: &[u8; 32]) -> [u8; 32] {
    coop_formats::keyring::public_key_of(seed)
}
