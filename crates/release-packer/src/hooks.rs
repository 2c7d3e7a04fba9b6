//! The `HookRunner` port over local processes: `sh -c <command>` in a process group of its own, so that a timeout
//! or a Ctrl-C kills it and everything it started, and so that the terminal's Ctrl-C reaches `release` (which
//! decides) rather than the hook directly. A hook's pid, group and start time go into the record before it is
//! waited on; `alive` tells a re-run on this machine whether that group still runs.

use std::process::Stdio;
use std::sync::Arc;

use async_trait::async_trait;
use release_core::model::hook::HookProcess;
use release_core::ports::{HookCommand, HookExit, HookRunner, ProgressFn, RunningHook};
use release_core::model::error::Internal;
use release_core::{Error, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// Runs hooks on this machine.
pub struct LocalHooks;

#[async_trait]
impl HookRunner for LocalHooks {
    async fn start(&self, cmd: &HookCommand, output: Arc<ProgressFn>) -> Result<Box<dyn RunningHook>> {
        // stdout and stderr share one pipe, so that its lines keep the order the hook wrote them in (the last line
        // is often why it failed).
        let no_pipe = |e: std::io::Error| Error::from(Internal::System { what: format!("cannot make a pipe for hook {}", cmd.name), error: e.to_string() });
        let (read, write) = pipe().map_err(no_pipe)?;
        let write2 = write.try_clone().map_err(no_pipe)?;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&cmd.command)
            .current_dir(&cmd.dir)
            .envs(&cmd.vars)
            .stdin(Stdio::null())
            // Our stdout is the command's result (one JSON document with --output json): the hook's goes to stderr.
            .stdout(Stdio::from(write))
            .stderr(Stdio::from(write2))
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::from(Internal::System { what: format!("cannot run sh for hook {} in {}", cmd.name, cmd.dir.display()), error: e.to_string() }))?;
        let pgid = child.id().and_then(|id| i32::try_from(id).ok());
        let read = tokio::net::unix::pipe::Receiver::from_owned_fd(read).map_err(|e| Error::from(Internal::System { what: format!("reading hook {}'s output", cmd.name), error: e.to_string() }));
        let readers = match read {
            Ok(r) => vec![reader(r, output)],
            Err(e) => {
                let _ = child.start_kill();
                return Err(e);
            }
        };
        Ok(Box::new(Local { child, pgid, readers }))
    }

    fn alive(&self, p: &HookProcess) -> Option<bool> {
        // A pid that names another process now (another start time) was reused: the group it led is gone, since
        // Linux does not hand out a pid that still names a process group.
        if let (Some(want), Some(now)) = (p.start_ticks, stat(p.pid).map(|s| s.start_ticks)) {
            if want != now {
                return Some(false);
            }
        }
        let dir = std::fs::read_dir("/proc").ok()?;
        // The group lives while any member that is not a zombie does (the leader may have exited before its
        // children: `sleep 300 & wait` killed half-way).
        Some(dir.flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()).filter_map(stat).any(|s| s.pgrp == p.pgid && s.state != 'Z'))
    }
}

/// What a hook's check needs from `/proc/PID/stat`.
struct Stat {
    state: char,
    pgrp: u32,
    /// Field 22: when it started, in clock ticks after boot.
    start_ticks: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: the fields that follow start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat { state: fields.first()?.chars().next()?, pgrp: fields.get(2)?.parse().ok()?, start_ticks: fields.get(19)?.parse().ok()? })
}

/// An anonymous pipe, both ends close-on-exec (the child gets its own copies of the write end).
fn pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into the array, which we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nothing else.
    Ok(unsafe { (std::os::fd::OwnedFd::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1])) })
}

fn reader(pipe: impl AsyncRead + Unpin + Send + 'static, output: Arc<ProgressFn>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            output(&line);
        }
    })
}

struct Local {
    child: Child,
    /// Its process group while it may still be running; `None` once reaped by itself.
    pgid: Option<i32>,
    readers: Vec<JoinHandle<()>>,
}

impl Local {
    fn kill_group(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory is involved.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }

    /// The output read so far is in; a background process still holding the pipes is not waited for.
    async fn drain(&mut self) {
        for r in self.readers.drain(..) {
            let abort = r.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_millis(300), r).await.is_err() {
                abort.abort();
            }
        }
    }
}

#[async_trait]
impl RunningHook for Local {
    async fn wait(&mut self) -> Result<HookExit> {
        let status = self.child.wait().await.map_err(|e| Error::from(Internal::System { what: "waiting for a hook".into(), error: e.to_string() }))?;
        // It ended by itself: what it left running in the background is its own business (as for CI steps).
        self.pgid = None;
        self.drain().await;
        Ok(HookExit { code: status.code(), signal: std::os::unix::process::ExitStatusExt::signal(&status) })
    }

    async fn kill(&mut self) {
        self.kill_group();
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        self.drain().await;
    }

    fn process(&self) -> Option<HookProcess> {
        let pid = self.child.id()?;
        // process_group(0): the group's id is the leader's pid.
        Some(HookProcess { pid, pgid: pid, start_ticks: stat(pid).map(|s| s.start_ticks) })
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // Dropped while running (the process is ending): the hook and its children do not outlive it.
        self.kill_group();
    }
}
