//! The command line itself: validate's report, bad input, exit codes, the crate boundary.

use release_e2e::{release, workspace_root, Emulator, Project};

#[test]
fn validate_accepts_the_demo_pipeline() {
    let run = release(&workspace_root(), None, &["validate"]);
    run.assert_ok();
    assert!(run.stdout.starts_with("ok pipelines/hello.toml (app hello: environments staging, prod; clusters staging, prod1, prod2)"), "{}", run.stdout);
}

#[test]
fn validate_reports_every_problem_with_position_and_exit_code_2() {
    let project = Project::new(
        "app = \"Bad\"\n[build]\ncommand = \"make\"\n[bake]\ntemplate = \"packer-templates/app.pkr.hcl\"\nbase_ami = \"ami-0abc\"\n\
         [env.staging.clusters.staging]\nload_balancer = \"x\"\ncount = 0\n",
    );
    let run = release(project.path(), None, &["validate"]);
    assert_eq!(run.code, 2, "{run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines, [
        "pipelines/Bad.toml:1:7: app name `Bad` is invalid; fix: use 1-32 characters of a-z, 0-9 and `-`, not starting or ending with `-`",
        "pipelines/Bad.toml:2:1: missing key `artifact` in [build]; fix: add artifact = \"<path the build writes>\"",
        "pipelines/Bad.toml:9:9: count 0 is outside 1..1000; fix: set how many instances the cluster runs, at least 1",
        "error: 3 problems in 1 pipeline file",
    ]);
    assert_eq!(run.stdout, "", "problems go to stderr in text mode");

    let json = release(project.path(), None, &["validate", "--output", "json"]);
    assert_eq!(json.code, 2);
    let doc = json.json();
    assert_eq!(doc["ok"], false);
    let problems = doc["files"][0]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 3);
    assert_eq!((problems[2]["line"].as_u64(), problems[2]["col"].as_u64()), (Some(9), Some(9)));
}

#[test]
fn a_reader_that_stops_early_is_not_a_panic() {
    // `release iam-policy | head -1`: the pipe's reader is gone before the result is written.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = std::process::Command::new(release_e2e::release_bin())
        .args(["iam-policy"])
        .current_dir(workspace_root())
        .stdout(writer)
        .output()
        .expect("run release");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn global_flags_are_accepted_after_the_command() {
    let run = release(&workspace_root(), None, &["validate", "--output", "json", "-v", "--app", "hello"]);
    run.assert_ok();
    assert_eq!(run.json()["files"][0]["app"], "hello");
}

#[test]
fn unknown_app_is_not_found_with_the_known_ones() {
    let run = release(&workspace_root(), None, &["validate", "--app", "nope"]);
    assert_eq!(run.code, 3);
    assert_eq!(run.error_line(), "error: no pipeline for app `nope` (pipelines/nope.toml does not exist); known apps: hello");
}

#[tokio::test]
async fn unknown_environment_changes_nothing_and_exits_3() {
    let emu = Emulator::start();
    let project = Project::demo();
    let before = emu.state();
    let run = project.release(&emu, &["provision", "--env", "qa"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.error_line(), "error: no environment `qa` in pipelines/hello.toml; known: staging, prod");
    before.assert_same(&emu.state(), "a failed command");
}

#[test]
fn unreachable_endpoint_fails_within_seconds_with_exit_6() {
    // Port 9 on loopback: nothing listens, the connection is refused at once.
    let run = release(&workspace_root(), Some("http://127.0.0.1:9"), &["provision", "--env", "staging"]);
    assert_eq!(run.code, 6, "{run:?}");
    // The first call of a command that writes the ledger asks who the caller is.
    assert!(run.error_line().starts_with("error: sts GetCallerIdentity: cannot reach AWS"), "{}", run.stderr);
    let status = release(&workspace_root(), Some("http://127.0.0.1:9"), &["status"]);
    assert_eq!(status.code, 6, "{status:?}");
    assert!(status.error_line().contains("cannot reach AWS"), "{}", status.stderr);
    assert!(run.elapsed.as_secs() < 30, "took {:?}", run.elapsed);
}

#[test]
fn release_core_never_depends_on_the_aws_sdk() {
    // Walk Cargo.lock from release-core through its dependencies (normal, build and dev alike).
    let lock = std::fs::read_to_string(workspace_root().join("Cargo.lock")).expect("Cargo.lock is committed");
    let mut deps: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for pkg in lock.split("[[package]]").skip(1) {
        let name = pkg.lines().find_map(|l| l.strip_prefix("name = \"")).map(|n| n.trim_end_matches('"').to_owned()).unwrap();
        let list = pkg
            .split_once("dependencies = [")
            .map(|(_, rest)| rest.split(']').next().unwrap_or(""))
            .unwrap_or("")
            .split(',')
            .filter_map(|d| d.trim().trim_matches('"').split(' ').next().map(String::from))
            .filter(|d| !d.is_empty())
            .collect();
        deps.insert(name, list);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut stack = vec!["release-core".to_owned()];
    while let Some(p) = stack.pop() {
        if seen.insert(p.clone()) {
            stack.extend(deps.get(&p).cloned().unwrap_or_default());
        }
    }
    assert!(seen.len() > 5, "walked the graph: {seen:?}");
    let aws: Vec<&String> = seen.iter().filter(|p| p.starts_with("aws-")).collect();
    assert!(aws.is_empty(), "release-core depends on {aws:?}");
}
