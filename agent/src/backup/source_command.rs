//! Sources that are commands: one whose standard output is backed up as one file, streamed
//! without a temp file, and one that writes a directory which is then backed up.

use super::walker::Walker;
use crate::error::{Error, Result};
use coop_formats::tree::{Node, NodeKind};
use std::os::fd::AsFd;
use std::path::Path;

/// A command whose standard output is backed up as one file, without a temp file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceCommand {
    /// Run with `sh -c`.
    pub command: String,
    /// Name of the file in the snapshot (at its root).
    pub filename: String,
    /// Text fed to the command's standard input (e.g. an SQL query for psql).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// Extra environment variables (e.g. COOP_MEMBER).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub env: std::collections::BTreeMap<String, String>,
}

/// A command that writes files into an empty private directory (its path replaces `{dir}`
/// in the command and is in `COOP_OUTPUT_DIR`); the directory is then backed up as
/// `/<dirname>` at the snapshot root and removed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DirCommand {
    /// Run with `sh -c`.
    pub command: String,
    /// Name of the directory in the snapshot (at its root).
    pub dirname: String,
    /// Extra environment variables (e.g. COOP_MEMBER).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub env: std::collections::BTreeMap<String, String>,
}

/// Runs `sh -c command`; its standard output goes to standard error, so that coop's own
/// standard output stays clean for `--json`.
fn run_sh(command: &str, env: &std::collections::BTreeMap<String, String>) -> Result<()> {
    use std::process::{Command, Stdio};
    let stdout: Stdio = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    let status = Command::new("sh")
        .arg("-c")
        .arg(command)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(stdout)
        .status()
        .map_err(|e| Error::SourceFailed {
            command: command.into(),
            status: format!("cannot start: {e}"),
        })?;
    if !status.success() {
        return Err(Error::SourceFailed {
            command: command.into(),
            status: status.to_string(),
        });
    }
    Ok(())
}

impl Walker<'_, '_> {
    /// Runs a directory command and backs up what it wrote as `/<dirname>`.
    pub(super) fn dir_command_node(&mut self, c: &DirCommand) -> Result<Node> {
        let tmp = tempfile::Builder::new()
            .prefix("coop-output-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let dir = tmp.path().to_string_lossy().into_owned();
        let mut env = c.env.clone();
        env.insert("COOP_OUTPUT_DIR".into(), dir.clone());
        run_sh(&c.command.replace("{dir}", &dir), &env)?;
        let fd = crate::fsx::open_absolute(
            tmp.path(),
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
        )
        .map_err(|e| Error::io(tmp.path(), e))?;
        let st = crate::fsx::fstat(fd.as_fd()).map_err(|e| Error::io(tmp.path(), e))?;
        let virtual_path = Path::new("/").join(&c.dirname);
        // The directory is new every run: its entries would only fill the catalog.
        let catalog = self.catalog.take();
        let walked = self.walk_dir(fd, &virtual_path, st.dev);
        self.catalog = catalog;
        let mut node = Node::new(c.dirname.as_bytes().to_vec(), NodeKind::Dir);
        node.mode = 0o700;
        node.uid = st.uid;
        node.gid = st.gid;
        node.user = self.user(st.uid);
        node.group = self.group(st.gid);
        node.mtime_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
        node.subtree = Some(walked?);
        self.summary.dirs += 1;
        Ok(node)
    }

    pub(super) fn stdin_node(&mut self, source: &SourceCommand) -> Result<Node> {
        use std::process::{Command, Stdio};
        let (command, name) = (source.command.as_str(), source.filename.as_str());
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .envs(&source.env)
            .stdin(if source.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Error::SourceFailed {
                command: command.into(),
                status: format!("cannot start: {e}"),
            })?;
        let feeder = match (child.stdin.take(), &source.stdin) {
            (Some(mut input), Some(text)) => {
                let text = text.clone();
                Some(std::thread::spawn(move || {
                    use std::io::Write;
                    let _ = input.write_all(text.as_bytes());
                }))
            }
            _ => None,
        };
        let mut out = child.stdout.take().expect("piped stdout");
        let mut parts = Vec::new();
        self.file_hasher = self.manifest.as_ref().map(|_| blake3::Hasher::new());
        let res = self.chunk_stream(&mut out, &mut parts);
        let hash = self.file_hasher.take().map(|h| *h.finalize().as_bytes());
        drop(out);
        if let Some(f) = feeder {
            let _ = f.join();
        }
        let status = child.wait().map_err(|e| Error::SourceFailed {
            command: command.into(),
            status: e.to_string(),
        })?;
        let n = match res {
            Ok(n) => n,
            Err(super::walker::ChunkError::Read(source)) => {
                return Err(Error::SourceFailed {
                    command: command.into(),
                    status: format!("reading its output failed: {source}"),
                })
            }
            Err(super::walker::ChunkError::Sink(e)) => return Err(e),
        };
        if !status.success() {
            return Err(Error::SourceFailed {
                command: command.into(),
                status: status.to_string(),
            });
        }
        self.summary.bytes_read += n;
        self.summary.total_bytes += n;
        self.summary.total_files += 1;
        self.summary.files_new += 1;
        let mut node = Node::new(name.as_bytes().to_vec(), NodeKind::File);
        node.mode = 0o600;
        node.uid = nix::unistd::getuid().as_raw();
        node.gid = nix::unistd::getgid().as_raw();
        node.user = self.user(node.uid);
        node.group = self.group(node.gid);
        node.mtime_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
        node.size = n;
        node.content = parts;
        self.note_manifest(name.as_bytes(), &node, hash);
        Ok(node)
    }
}
