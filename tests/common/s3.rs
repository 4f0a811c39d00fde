//! The S3 server the tests use (moto, started by scripts/test.sh) and a hostile proxy in
//! front of it.

use super::Env;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub fn s3() -> Option<String> {
    match std::env::var("COOP_TEST_S3_ENDPOINT") {
        Ok(e) => Some(e),
        Err(_) if std::env::var("COOP_SKIP_SERVERS").is_ok() => {
            eprintln!("COOP_SKIP_SERVERS set: skipping a test that needs the S3 server");
            None
        }
        Err(_) => panic!("COOP_TEST_S3_ENDPOINT is not set: run the tests through scripts/test.sh, which starts moto"),
    }
}

pub fn make_bucket(endpoint: &str, bucket: &str) {
    let url = format!("{endpoint}/{bucket}");
    let o = std::process::Command::new("python3")
        .args(["-c", "import sys,urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1], method='PUT'))", &url])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "creating bucket {bucket}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A fresh bucket per test.
pub fn bucket(endpoint: &str, name: &str) -> String {
    let b = format!("{name}-{}", std::process::id());
    make_bucket(endpoint, &b);
    b
}

pub fn s3_env(cmd: &mut std::process::Command, endpoint: &str) {
    cmd.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1");
}

pub fn set_s3_env_here(endpoint: &str) {
    // For Store::open in this process: every S3 test of the suite sets moto's (the Garage
    // test passes its settings explicitly).
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    std::env::set_var("AWS_ENDPOINT_URL", endpoint);
    std::env::set_var("AWS_ALLOW_HTTP", "true");
    std::env::set_var("AWS_REGION", "us-east-1");
}

pub fn coop_s3(env: &Env, endpoint: &str, args: &[&str]) -> std::process::Output {
    let mut c = env.cmd();
    s3_env(&mut c, endpoint);
    c.args(args).output().unwrap()
}

pub fn ok_s3(env: &Env, endpoint: &str, args: &[&str]) -> String {
    let o = coop_s3(env, endpoint, args);
    assert!(
        o.status.success(),
        "coop {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Like `ok_s3`, accepting the given exit codes too (a status that needs attention, a
/// replica that lacks objects).
pub fn out_s3(env: &Env, endpoint: &str, args: &[&str], codes: &[i32]) -> String {
    let o = coop_s3(env, endpoint, args);
    let c = o.status.code().unwrap_or(-1);
    assert!(
        c == 0 || codes.contains(&c),
        "coop {args:?} ({c}): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A hostile storage site: `tests/tools/hostile_proxy.py` in front of the S3 server. Honest until
/// [`Proxy::set`] switches an attack on; killed when dropped.
pub struct Proxy {
    child: Child,
    pub endpoint: String,
    mode: PathBuf,
}

impl Proxy {
    pub fn start(upstream: &str, dir: &std::path::Path) -> Proxy {
        let mode = dir.join("hostile-mode.json");
        std::fs::write(&mode, "{}").unwrap();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/tools/hostile_proxy.py"
        );
        let mut child = Command::new("python3")
            .arg(script)
            .arg(upstream)
            .arg(&mode)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the hostile proxy");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("the proxy prints its port");
        Proxy {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            mode,
        }
    }

    /// Switches the attack (see tests/tools/hostile_proxy.py); `json!({})` is honest.
    pub fn set(&self, mode: serde_json::Value) {
        let tmp = self.mode.with_extension("tmp");
        std::fs::write(&tmp, mode.to_string()).unwrap();
        std::fs::rename(&tmp, &self.mode).unwrap();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
