//! Helpers shared by the end-to-end test binaries.
#![allow(dead_code)]

pub mod s3;

use serde_json::Value;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        let e = Env {
            dir: tempfile::tempdir().unwrap(),
        };
        // Created up front so the temp dir's own mtime (recorded as a parent) stays put.
        fs::create_dir_all(e.p("cache")).unwrap();
        fs::create_dir_all(e.p("home")).unwrap();
        let r = e.coop(&["init"]);
        assert!(
            r.status.success(),
            "init: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        e
    }
    pub fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn repo(&self) -> PathBuf {
        self.p("repo")
    }
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_coop"));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.p("home"))
            .env("XDG_CONFIG_HOME", self.p("config"))
            .env("XDG_CACHE_HOME", self.p("cache"))
            .env("COOP_REPO", self.repo());
        c
    }
    pub fn coop(&self, args: &[&str]) -> std::process::Output {
        self.cmd().args(args).output().unwrap()
    }
    /// `coop key export-writer --name NAME` into `NAME.key` in the test directory.
    pub fn writer_key(&self, name: &str) -> PathBuf {
        let key = self.p(&format!("{name}.key"));
        self.ok(&[
            "key",
            "export-writer",
            "--name",
            name,
            "--out",
            key.to_str().unwrap(),
        ]);
        key
    }
    /// Registers the admin persons a recovery split needs (SPEC 24.11): this environment's
    /// identity as `me`, and each other admin's identity file under its name, with the
    /// token its `admin whoami` prints. `via` runs coop as the admin who adds them.
    pub fn add_admin_persons(&self, via: Option<&Path>, me: &str, others: &[(&str, &Path)]) {
        let run = |args: &[&str]| {
            let mut c = self.cmd();
            if let Some(id) = via {
                c.arg("--identity-file").arg(id);
            }
            let o = c.args(args).output().unwrap();
            assert!(
                o.status.success(),
                "coop {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        run(&["admin", "add", me]);
        for (name, id) in others {
            let o = self
                .cmd()
                .arg("--identity-file")
                .arg(id)
                .args(["admin", "whoami"])
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let token = String::from_utf8_lossy(&o.stdout).trim().to_string();
            run(&["admin", "add", name, &token]);
        }
    }
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.coop(args);
        assert!(
            o.status.success(),
            "coop {args:?} failed ({:?}): {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }
    /// Runs coop, which must exit with `code`; returns what it printed on stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let o = self.coop(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(code), "coop {args:?}: {err}");
        err
    }
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }
    pub fn backup(&self, src: &Path) -> Value {
        self.json(&["backup", src.to_str().unwrap()])
    }
    pub fn snapshots(&self) -> Vec<Value> {
        self.json(&["snapshots"]).as_array().unwrap().clone()
    }
    pub fn count(&self, sub: &str) -> usize {
        walk_files(&self.repo().join(sub)).len()
    }
}

pub fn walk_files(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if e.file_type().unwrap().is_dir() {
                out.extend(walk_files(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

pub fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Compares two trees: content byte for byte and metadata.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let ma = fs::symlink_metadata(a).unwrap();
    let mb = fs::symlink_metadata(b).unwrap_or_else(|e| panic!("{}: {e}", b.display()));
    assert_eq!(ma.file_type(), mb.file_type(), "type of {}", b.display());
    assert_eq!(ma.mode(), mb.mode(), "mode of {}", b.display());
    if !ma.file_type().is_symlink() {
        assert_eq!(
            (ma.mtime(), ma.mtime_nsec()),
            (mb.mtime(), mb.mtime_nsec()),
            "mtime of {}",
            b.display()
        );
    }
    assert_eq!(
        (ma.uid(), ma.gid()),
        (mb.uid(), mb.gid()),
        "owner of {}",
        b.display()
    );
    if ma.file_type().is_symlink() {
        assert_eq!(fs::read_link(a).unwrap(), fs::read_link(b).unwrap());
    } else if ma.is_file() {
        assert_eq!(ma.len(), mb.len(), "size of {}", b.display());
        assert!(
            fs::read(a).unwrap() == fs::read(b).unwrap(),
            "content of {}",
            b.display()
        );
        let xa: Vec<_> = xattr::list(a).map(|l| l.collect()).unwrap_or_default();
        let mut xa: Vec<_> = xa
            .into_iter()
            .map(|n| (n.clone(), xattr::get(a, &n).unwrap()))
            .collect();
        let xb: Vec<_> = xattr::list(b).map(|l| l.collect()).unwrap_or_default();
        let mut xb: Vec<_> = xb
            .into_iter()
            .map(|n| (n.clone(), xattr::get(b, &n).unwrap()))
            .collect();
        xa.sort();
        xb.sort();
        assert_eq!(xa, xb, "xattrs of {}", b.display());
    } else if ma.is_dir() {
        let mut na: Vec<_> = fs::read_dir(a)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let mut nb: Vec<_> = fs::read_dir(b)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        na.sort();
        nb.sort();
        assert_eq!(na, nb, "entries of {}", b.display());
        for n in na {
            assert_same_tree(&a.join(&n), &b.join(&n));
        }
    }
}

/// Where a snapshot of `src` lands under a restore target.
pub fn restored(env: &Env, target: &str, src: &Path) -> PathBuf {
    env.p(target).join(src.strip_prefix("/").unwrap())
}

/// A fresh age identity file for `name`; returns its path and recipient.
/// The age public key written in an identity file's `# public key:` line.
pub fn public_of(identity: &Path) -> String {
    fs::read_to_string(identity)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_string))
        .unwrap()
}

pub fn age_identity(env: &Env, name: &str) -> (PathBuf, String) {
    let (text, recipient) = coop_formats::crypt::generate_identity();
    let p = env.p(&format!("{name}.identity"));
    fs::write(&p, text).unwrap();
    (p, recipient)
}

/// A fresh unencrypted OpenSSH ed25519 key; returns its path and public key line.
pub fn ssh_key(env: &Env, name: &str) -> (PathBuf, String) {
    let p = env.p(name);
    let o = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let pubkey = fs::read_to_string(p.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string();
    (p, pubkey)
}
