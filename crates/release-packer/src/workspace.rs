//! Git and the stage commands. Stages run in an export of the commit, so a dirty work tree never leaks into a
//! build, and a bake is reproducible from the commit alone.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use async_trait::async_trait;
use release_core::model::ids::CommitSha;
use release_core::ports::{Export, Workspace};
use release_core::model::error::{Input, Internal, NotFound, Stage};
use release_core::{Error, Result};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::Tail;

/// A git repository on this machine.
pub struct GitWorkspace {
    root: PathBuf,
}

impl GitWorkspace {
    /// The repository holding `dir` (its top level).
    pub fn discover(dir: &Path) -> Result<Self> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["rev-parse", "--show-toplevel"])
            .output()
            .map_err(|e| Error::from(NotFound::Git { error: e.to_string() }))?;
        if !out.status.success() {
            return Err(Input::NotARepository { dir: dir.to_path_buf() }.into());
        }
        Ok(Self { root: PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()) })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    async fn git(&self, args: &[&str]) -> Result<std::process::Output> {
        Command::new("git")
            .arg("-C")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| Internal::System { what: "cannot run git".into(), error: e.to_string() }.into())
    }
}

#[async_trait]
impl Workspace for GitWorkspace {
    async fn resolve(&self, rev: &str) -> Result<CommitSha> {
        if rev.is_empty() || rev.starts_with('-') || rev.contains(char::is_whitespace) {
            return Err(Input::Revision { given: rev.to_owned() }.into());
        }
        let out = self.git(&["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")]).await?;
        if !out.status.success() {
            return Err(NotFound::Revision { rev: rev.to_owned(), repo: self.root.clone() }.into());
        }
        CommitSha::parse(String::from_utf8_lossy(&out.stdout).trim())
    }

    async fn subject(&self, sha: &CommitSha) -> Result<String> {
        let out = self.git(&["log", "-1", "--format=%s", sha.as_str()]).await?;
        if !out.status.success() {
            return Err(NotFound::Commit { commit: sha.short().to_owned() }.into());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    async fn export(&self, sha: &CommitSha) -> Result<Export> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("release-{}-", sha.short()))
            .tempdir()
            .map_err(|e| Error::from(Internal::System { what: "cannot create a temporary directory".into(), error: e.to_string() }))?;
        let tar = dir.path().join(".export.tar");
        let out = self.git(&["archive", "--format=tar", "-o", &tar.to_string_lossy(), sha.as_str()]).await?;
        if !out.status.success() {
            return Err(Internal::System { what: format!("git archive {sha} failed"), error: String::from_utf8_lossy(&out.stderr).trim().to_owned() }.into());
        }
        let untar = Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(dir.path())
            .output()
            .await
            .map_err(|e| Error::from(Internal::System { what: "cannot run tar".into(), error: e.to_string() }))?;
        if !untar.status.success() {
            return Err(Internal::System { what: "unpacking the export failed".into(), error: String::from_utf8_lossy(&untar.stderr).trim().to_owned() }.into());
        }
        std::fs::remove_file(&tar).ok();
        Ok(Export { dir: dir.path().to_path_buf(), guard: Box::new(dir) })
    }

    async fn run_stage(&self, stage: &str, command: &str, dir: &Path) -> Result<()> {
        tracing::info!("{stage}: {command}");
        let mut child = Command::new("bash")
            .args(["-c", command])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::from(Internal::System { what: format!("cannot run bash for the {stage} stage"), error: e.to_string() }))?;
        let mut out = BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut err = BufReader::new(child.stderr.take().expect("piped")).lines();
        let mut tail = Tail::new(20);
        let (mut out_done, mut err_done) = (false, false);
        // The stage's output goes to our stderr: stdout is reserved for the command's result.
        while !(out_done && err_done) {
            tokio::select! {
                line = out.next_line(), if !out_done => match line {
                    Ok(Some(l)) => { eprintln!("[{stage}] {l}"); tail.push(l); }
                    _ => out_done = true,
                },
                line = err.next_line(), if !err_done => match line {
                    Ok(Some(l)) => { eprintln!("[{stage}] {l}"); tail.push(l); }
                    _ => err_done = true,
                },
            }
        }
        let status = child.wait().await.map_err(|e| Error::from(Internal::System { what: format!("waiting for the {stage} stage"), error: e.to_string() }))?;
        if status.success() {
            return Ok(());
        }
        Err(Error::from(Stage::Command { stage: stage.to_owned(), command: command.to_owned(), code: status.code() })
            .with_details(tail.into_vec().into_iter().map(|l| format!("[{stage}] {l}")).collect()))
    }
}
