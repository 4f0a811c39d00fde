//! The fixture repository in `formats/testdata/` (written once by
//! `formats/testdata/make-fixture.sh`) still decodes to `expected.txt` with today's coop:
//! repositories written by earlier versions of this format stay readable.

use crate::common;

use common::*;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../formats/testdata");

fn copy_tree(from: &Path, to: &Path) {
    for f in walk_files(from) {
        let dst = to.join(f.strip_prefix(from).unwrap());
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        fs::copy(&f, &dst).unwrap();
    }
}

fn sha256(p: &Path) -> String {
    let o = Command::new("sha256sum")
        .stdin(fs::File::open(p).unwrap())
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap()[..64].to_string()
}

/// The same lines as make-fixture.sh writes: type, mode, size, hex name, content hash.
fn describe(root: &Path) -> Vec<String> {
    let mut paths = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            paths.push(p);
        }
    }
    let rel = |p: &Path| {
        let mut b = b"./".to_vec();
        b.extend_from_slice(p.strip_prefix(root).unwrap().as_os_str().as_bytes());
        b
    };
    paths.sort_by_key(|p| rel(p));
    paths
        .iter()
        .map(|p| {
            let m = fs::symlink_metadata(p).unwrap();
            let mode = format!("{:o}", m.permissions().mode() & 0o7777);
            let name = hex::encode(rel(p));
            if m.file_type().is_symlink() {
                let t = fs::read_link(p).unwrap();
                format!("symlink - - {name} {}", t.display())
            } else if m.is_dir() {
                format!("dir {mode} - {name} -")
            } else {
                format!("file {mode} {} {name} {}", m.len(), sha256(p))
            }
        })
        .collect()
}

#[test]
fn the_fixture_repository_decodes_as_it_did() {
    let env = Env::new();
    let repo = env.p("fixture");
    copy_tree(&Path::new(TESTDATA).join("repo"), &repo);
    let expected = fs::read_to_string(Path::new(TESTDATA).join("expected.txt")).unwrap();
    let mut got = String::new();
    for (tenant, identity) in [("coop", "identity.txt"), ("member/alice", "alice.identity")] {
        let id = Path::new(TESTDATA).join(identity);
        let out = env.p(&format!("out-{}", tenant.replace('/', "-")));
        let mut c = env.cmd();
        c.arg("--identity-file").arg(&id).args([
            "--repo",
            repo.to_str().unwrap(),
            "restore",
            "latest",
            "--tenant",
            tenant,
            "--target",
            out.to_str().unwrap(),
        ]);
        let o = c.output().unwrap();
        assert!(
            o.status.success(),
            "{tenant}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        got.push_str(&format!("tenant {tenant}\n"));
        for l in describe(&out) {
            got.push_str(&l);
            got.push('\n');
        }
        if tenant == "coop" {
            let d = out.join("tmp/coop-fixture-src");
            // The hard link is one inode again, the hole stays a hole, the xattr is back.
            let (a, b) = (
                fs::metadata(d.join("dir/hello.txt")).unwrap(),
                fs::metadata(d.join("dir/hardlink")).unwrap(),
            );
            assert_eq!(a.ino(), b.ino(), "hard link");
            assert!(
                fs::metadata(d.join("sparse")).unwrap().blocks() < 64,
                "sparse file"
            );
            assert_eq!(
                xattr::get(d.join("dir/sub/with-xattr"), "user.coop.note").unwrap(),
                Some(b"fixture".to_vec())
            );
        }
    }
    assert_eq!(got, expected, "the fixture decodes differently");
    // Keyless and keyed checks pass on it too.
    env.ok(&["--repo", repo.to_str().unwrap(), "scrub"]);
    let mut c = env.cmd();
    c.arg("--identity-file")
        .arg(Path::new(TESTDATA).join("identity.txt"))
        .args(["--repo", repo.to_str().unwrap(), "check", "--read-data"]);
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
