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
