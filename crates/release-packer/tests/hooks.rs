//! `LocalHooks`, the HookRunner the CLI uses, held to what the engine relies on (the scripted runner of the
//! testkit behaves the same way): the exit status, every output line in order, the variables and the directory,
//! a `wait` that can be dropped and called again, and a `kill` that takes everything the hook started with it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use release_core::model::hook::HookName;
use release_core::ports::{HookCommand, HookExit, HookRunner, ProgressFn};
use release_packer::LocalHooks;

fn cmd(dir: &std::path::Path, command: &str) -> HookCommand {
    let vars: BTreeMap<String, String> = [("RELEASE_COMMIT".to_owned(), "c0ffee".to_owned()), ("RELEASE_INSTANCE_IDS".to_owned(), "i-1 i-2".to_owned())].into_iter().collect();
    HookCommand { name: HookName::BeforeTraffic, command: command.to_owned(), dir: dir.to_path_buf(), vars }
}

fn sink() -> (Arc<ProgressFn>, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    (Arc::new(move |s: &str| l.lock().unwrap().push(s.to_owned())), lines)
}

fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[tokio::test]
async fn a_hook_exits_with_its_status_and_its_lines_in_order_with_the_variables_in_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("marker"), "here").unwrap();
    let (out, lines) = sink();
    let script = "echo one; echo two >&2; echo \"$RELEASE_COMMIT [$RELEASE_INSTANCE_IDS]\"; cat marker; echo; exit 3";
    let mut h = LocalHooks.start(&cmd(dir.path(), script), out).await.unwrap();
    assert_eq!(h.wait().await.unwrap(), HookExit { code: Some(3), signal: None });
    assert_eq!(*lines.lock().unwrap(), vec!["one", "two", "c0ffee [i-1 i-2]", "here"]);
}

#[tokio::test]
async fn a_dropped_wait_can_be_called_again_and_kill_takes_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let (out, lines) = sink();
    let mut h = LocalHooks.start(&cmd(dir.path(), "sleep 300 & echo $! > child.pid; echo started; wait"), out).await.unwrap();
    // The engine drops `wait` to look at its clock and signals, then waits again.
    for _ in 0..3 {
        assert!(tokio::time::timeout(Duration::from_millis(200), h.wait()).await.is_err(), "it is still running");
    }
    assert_eq!(*lines.lock().unwrap(), vec!["started"]);
    let pid = std::fs::read_to_string(dir.path().join("child.pid")).unwrap().trim().to_owned();
    assert!(alive(&pid));
    tokio::time::timeout(Duration::from_secs(10), h.kill()).await.expect("kill returns once it is reaped");
    std::thread::sleep(Duration::from_millis(100));
    assert!(!alive(&pid), "the hook's child {pid} outlived the kill");
}

#[tokio::test]
async fn a_hook_that_leaves_a_child_holding_its_output_still_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (out, lines) = sink();
    let mut h = LocalHooks.start(&cmd(dir.path(), "(sleep 30; echo late) & echo $! > bg.pid; echo done"), out).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), h.wait()).await.expect("a background child holding the pipe does not hold the hook");
    assert_eq!(exit.unwrap().code, Some(0));
    assert_eq!(*lines.lock().unwrap(), vec!["done"]);
    // Ours to clean up here: in a deploy, what a hook leaves running in the background is its own business.
    let pid = std::fs::read_to_string(dir.path().join("bg.pid")).unwrap().trim().to_owned();
    let _ = std::process::Command::new("kill").arg(&pid).status();
    drop(h);
}

#[tokio::test]
async fn a_hook_in_a_missing_directory_is_an_error_not_a_hang() {
    let (out, _) = sink();
    let e = LocalHooks.start(&cmd(std::path::Path::new("/nonexistent/dir"), "true"), out).await.err().expect("an error");
    assert!(e.message().contains("cannot run sh for hook before_traffic in /nonexistent/dir"), "{e}");
}
