//! The binary's own help: it documents every command of the design and the exit codes.
//! (Being an integration test, it also makes cargo build `release` for the end-to-end tests in tests/.)

use std::process::Command;

#[test]
fn help_lists_the_commands_and_exit_codes() {
    let out = Command::new(env!("CARGO_BIN_EXE_release")).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for cmd in ["validate", "provision", "build", "test", "bake", "images", "promote", "switch", "status", "rollback", "history", "unlock", "notify"] {
        assert!(help.lines().any(|l| l.trim_start().starts_with(cmd)), "--help lacks {cmd}:\n{help}");
    }
    assert!(help.contains("5 lock held (or lost), 6 AWS failure"), "{help}");
}

#[test]
fn notify_test_explains_itself() {
    let out = Command::new(env!("CARGO_BIN_EXE_release")).args(["notify", "test", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for want in ["every sink", "whatever its `on` says", "5 s", "--env <ENV>", "6 when any did not", "notify-test"] {
        assert!(help.contains(want), "notify test --help lacks `{want}`:\n{help}");
    }
}

#[test]
fn bad_flags_are_usage_errors_with_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_release")).args(["provision"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--env <ENV>"), "{err}");
}

#[test]
fn dashboard_explains_its_flags_and_safe_defaults() {
    let out = Command::new(env!("CARGO_BIN_EXE_release")).args(["dashboard", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for want in ["--listen <ADDR>", "127.0.0.1:8080", "--interval <DUR>", "--token <T>", "RELEASE_DASHBOARD_TOKEN", "needs --token", "whatever the number of viewers", "/api/status"] {
        assert!(help.contains(want), "dashboard --help lacks `{want}`:\n{help}");
    }
}

fn release(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_release")).args(args).output().unwrap()
}

#[test]
fn version_names_the_commit_the_binary_was_built_from() {
    let out = release(&["--version"]);
    assert!(out.status.success());
    let version = String::from_utf8(out.stdout).unwrap();
    let head = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    let head = String::from_utf8(head.stdout).unwrap();
    assert_eq!(version.trim(), format!("release {} (commit {})", env!("CARGO_PKG_VERSION"), head.trim()));
}

#[test]
fn bash_completion_completes_commands_and_flag_values() {
    let out = release(&["completions", "bash"]);
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    // bash itself loads the script and runs the completion function, as it would at a prompt.
    // bash calls the function with the command, the word being completed and the word before it.
    let complete = |words: &str, cword: usize| {
        let prog = format!(
            "{script}\nCOMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE=\"{words}\"; COMP_POINT=${{#COMP_LINE}}; \
             _release release \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        let out = Command::new("bash").arg("-c").arg(prog).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(complete("release pro", 1).split_whitespace().collect::<Vec<_>>(), ["provision", "promote"]);
    assert_eq!(complete("release status --output ''", 3).split_whitespace().collect::<Vec<_>>(), ["text", "json"]);
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = release(&["completions", shell]);
        assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("promote"), "{shell}");
    }
    let bad = release(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn man_pages_document_release_and_each_command() {
    let page = String::from_utf8(release(&["man"]).stdout).unwrap();
    assert!(page.contains(".TH release 1"), "{page}");
    for cmd in ["promote", "switch", "rollback", "gc", "completions", "man"] {
        assert!(page.contains(&format!("release\\-{cmd}(1)")) || page.contains(&format!("\\fB{cmd}\\fR")), "release(1) lacks {cmd}");
    }
    let promote = String::from_utf8(release(&["man", "promote"]).stdout).unwrap();
    assert!(promote.contains(".TH release-promote 1") && promote.contains("\\-\\-batch"), "{promote}");
    let bad = release(&["man", "nope", "--output", "json"]);
    assert_eq!(bad.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(doc["error"]["kind"], "input");
    assert!(doc["error"]["message"].as_str().unwrap().contains("`nope` is not a command of release; one of: validate"), "{doc}");
}
