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
        "pipelines/Bad.toml:9:9: count 0 is outside 1..1000; fix: set how many instances the cluster runs, from 1 to 1000",
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
        .args(["iam-policy", "--offline"])
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

#[tokio::test]
async fn validate_warns_when_a_sinks_env_secret_is_unset_here() {
    let emu = Emulator::start();
    let project = Project::demo();
    let text = project.read("pipelines/hello.toml");
    project.write(
        "pipelines/hello.toml",
        &format!("{text}\n[notify]\n[[notify.sinks]]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\nsecret = \"env:RELEASE_TEST_SECRET_NEVER_SET\"\n"),
    );
    let before = emu.state();
    let run = project.release(&emu, &["validate"]);
    assert_eq!(run.code, 0, "valid, only not usable from here: {run:?}");
    assert!(
        run.stderr.contains("warning: sink webhook") && run.stderr.contains("its secret env:RELEASE_TEST_SECRET_NEVER_SET is not set on this machine, so every event to it would fail"),
        "{}",
        run.stderr
    );
    let json = project.release(&emu, &["validate", "--output", "json"]).json();
    assert!(json["files"][0]["warnings"][0].as_str().unwrap().contains("env:RELEASE_TEST_SECRET_NEVER_SET"), "{json}");
    // Set, it is not warned about.
    let set = release_e2e::release_with(project.path(), Some(&emu.url()), &[("RELEASE_TEST_SECRET_NEVER_SET", "k")], &["validate"]);
    assert_eq!(set.code, 0);
    assert!(!set.stderr.contains("warning:"), "{}", set.stderr);
    before.assert_same(&emu.state(), "validate");
}

#[tokio::test]
async fn status_and_history_read_through_a_bad_key_elsewhere_while_changes_are_refused() {
    let emu = Emulator::start();
    let (project, a, _) = Project::baked_demo(&emu);
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    // A typo in [build], which status and history do not read, during an incident.
    let text = project.read("pipelines/hello.toml");
    project.write("pipelines/hello.toml", &text.replacen("[build]", "[build]\ncomand_timeout = \"5m\"", 1));
    let before = emu.state();
    let status = project.release(&emu, &["status", "--env", "staging", "--output", "json"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(status.stderr.contains("warning:") && status.stderr.contains("unknown key `comand_timeout`"), "{}", status.stderr);
    let doc = status.json();
    assert!(doc.to_string().contains(&a[..12]), "status still tells what staging runs: {doc}");
    let history = project.release(&emu, &["history", "--env", "staging"]);
    assert_eq!(history.code, 0, "{history:?}");
    assert!(history.stdout.contains("promote"), "{}", history.stdout);
    // The other commands that only read, and unlock (the way out of a stuck lock), read through it too.
    for args in [&["images"][..], &["queue", "--env", "staging"], &["rollout", "status", "--env", "prod"], &["unlock", "--env", "staging"]] {
        let run = project.release(&emu, args);
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        assert!(run.stderr.contains("unknown key `comand_timeout`"), "{args:?} warns: {}", run.stderr);
    }
    before.assert_same(&emu.state(), "status, history, images, queue, rollout status, unlock");
    // Commands that change AWS still refuse the file.
    let promote = project.release(&emu, &["promote", &a, "--env", "staging"]);
    assert_eq!(promote.code, 2, "{promote:?}");
    assert!(promote.stderr.contains("unknown key `comand_timeout`"), "{}", promote.stderr);
    before.assert_same(&emu.state(), "a refused promote");
    let running: Vec<String> = release_e2e::AwsView::new(&emu).await.running("hello", "staging").await.iter().map(|i| i.tags["release:commit"].clone()).collect();
    assert!(!running.is_empty() && running.iter().all(|c| c == &a));
}

#[tokio::test]
async fn text_history_shows_the_reason_and_filters_by_outcome() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    // A promote that dies after launching; the next promote cleans it up and closes its record with the reason.
    let crashed = project.release_env(&emu, &[("RELEASE_TEST_CRASH_AT", "launched")], &["promote", &b, "--env", "staging"]);
    assert_ne!(crashed.code, 0, "{crashed:?}");
    project.release(&emu, &["unlock", "--env", "staging"]).assert_ok();
    project.release(&emu, &["promote", &a, "--env", "staging", "--force"]).assert_ok();
    let ledger = release_e2e::AwsView::new(&emu).await.ledger("release-ledger").await;
    let abandoned: Vec<_> = ledger.iter().filter(|r| r.get("outcome").map(String::as_str) == Some("abandoned")).collect();
    assert_eq!(abandoned.len(), 1, "{ledger:#?}");
    let detail = abandoned[0]["detail"].clone();
    assert!(detail.starts_with("unfinished; cleaned up by run"), "{detail}");

    let text = project.release(&emu, &["history", "--env", "staging"]).assert_ok().stdout.clone();
    let header = text.lines().next().unwrap();
    assert!(header.contains("OUTCOME") && header.trim_end().ends_with("REASON"), "{text}");
    assert!(text.lines().any(|l| l.contains("abandoned") && l.contains(&detail)), "{text}");
    let only = project.release(&emu, &["history", "--env", "staging", "--outcome", "abandoned"]).assert_ok().stdout.clone();
    assert_eq!(only.lines().count(), 2, "the header and the one abandoned record: {only}");
    assert!(only.contains(&detail), "{only}");
    let json = project.release(&emu, &["history", "--outcome", "succeeded", "--output", "json"]).assert_ok().json();
    let outcomes: Vec<&str> = json["records"].as_array().unwrap().iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert!(outcomes.len() >= 2 && outcomes.iter().all(|o| *o == "succeeded"), "{outcomes:?}");
}

#[tokio::test]
async fn a_waiting_promote_of_a_commit_without_an_ami_is_not_found_before_it_queues() {
    let emu = Emulator::start();
    let (project, _, _) = Project::baked_demo(&emu);
    let aws = release_e2e::AwsView::new(&emu).await;
    // Someone else holds staging's lock: a ticket would be written and wait.
    aws.hold_lock_as_bob("staging").await;
    let project_file = project.read("pipelines/hello.toml");
    project.write("README.unbaked", "a commit nobody baked");
    let unbaked = project.commit("unbaked");
    assert_eq!(project.read("pipelines/hello.toml"), project_file);
    let ledger_before = aws.ledger("release-ledger").await;
    let before = emu.state();
    let run = project.release(&emu, &["promote", &unbaked, "--env", "staging", "--wait", "3s"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.error_line().contains("no AMI for"), "{run:?}");
    before.assert_same(&emu.state(), "a refused --wait promote");
    assert_eq!(aws.ledger("release-ledger").await, ledger_before, "no ticket, no record");
}

/// docs/ci/release-ci.sh, which the GitHub Actions and GitLab CI examples call, run as written: `release` found on
/// PATH, AWS from the environment (the endpoint in AWS_ENDPOINT_URL, as an OIDC role's would be), the commit from
/// git. The world afterwards: staging runs the commit, prod's live name sends everything to the cluster the promote
/// filled, and the ledger has the three deploys; a commit that was never baked fails its job with release's exit
/// code and message, and changes nothing.
#[tokio::test]
async fn the_ci_example_script_bakes_promotes_to_staging_and_flips_prod_as_written() {
    let emu = Emulator::start();
    let project = Project::demo_repo();
    for env in ["staging", "prod"] {
        project.release(&emu, &["provision", "--env", env]).assert_ok();
    }
    let sha = project.git(&["rev-parse", "HEAD"]);
    let bin_dir = release_e2e::release_bin().parent().unwrap().to_path_buf();
    let script = workspace_root().join("docs/ci/release-ci.sh");
    // The two CI examples run exactly these jobs of the script.
    for example in ["github-actions.yml", "gitlab-ci.yml"] {
        let text = std::fs::read_to_string(workspace_root().join("docs/ci").join(example)).unwrap();
        for job in ["bake", "staging", "prod"] {
            assert!(text.contains(&format!("docs/ci/release-ci.sh {job}")), "{example} runs `release-ci.sh {job}`");
        }
    }
    let job = |name: &str, sha: Option<&str>| {
        let mut cmd = std::process::Command::new("bash");
        cmd.arg(&script)
            .arg(name)
            .current_dir(project.path())
            .env("PATH", format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default()))
            .env("AWS_ENDPOINT_URL", emu.url())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RELEASE_POLL_SECONDS", "0.2")
            .env_remove("AWS_PROFILE")
            .env_remove("SHA");
        if let Some(s) = sha {
            cmd.env("SHA", s);
        }
        let out = cmd.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    for name in ["bake", "staging", "prod"] {
        let (code, stdout, stderr) = job(name, None);
        assert_eq!(code, Some(0), "job {name}: {stdout}\n{stderr}");
    }
    let doc = |f: &str| -> serde_json::Value { serde_json::from_str(&project.read(f)).unwrap() };
    assert_eq!(doc("bake.json")["commit"], sha.as_str());
    let cluster = doc("prod-promote.json")["cluster"].as_str().unwrap().to_owned();
    assert_eq!(doc("prod-switch.json")["cluster"], cluster.as_str(), "{}", doc("prod-switch.json"));
    assert_eq!(doc("prod-switch.json")["to"][&cluster], 100);

    let aws = release_e2e::AwsView::new(&emu).await;
    assert!(aws.running("hello", "staging").await.iter().all(|i| i.tags["release:commit"] == sha));
    assert_eq!(aws.running("hello", "staging").await.len(), 2);
    let live: Vec<(String, i64)> = aws.weighted_records("example.com.", "hello.example.com.").await.into_iter().map(|(c, w, _)| (c, w)).collect();
    let other = if cluster == "prod1" { "prod2" } else { "prod1" };
    let mut want = vec![(cluster.clone(), 100), (other.to_owned(), 0)];
    want.sort();
    let mut live = live;
    live.sort();
    assert_eq!(live, want, "prod's live name sends everything to {cluster}");
    assert!(aws.running("hello", &cluster).await.iter().all(|i| i.tags["release:commit"] == sha));
    let rows: Vec<(String, String, String)> = aws
        .ledger("release-ledger")
        .await
        .iter()
        .map(|r| (r["pk"].clone(), r.get("action").cloned().unwrap_or_default(), r.get("outcome").cloned().unwrap_or_default()))
        .filter(|(pk, _, _)| pk.starts_with("hello#"))
        .collect();
    for want in [("hello#staging", "promote"), ("hello#prod", "promote"), ("hello#prod", "switch")] {
        assert!(rows.iter().any(|(pk, a, o)| pk == want.0 && a == want.1 && o == "succeeded"), "{want:?} in {rows:?}");
    }

    // A commit that was never baked: the job fails with release's exit code (3) and its one-line message.
    let before = emu.state();
    let unbaked = "0".repeat(40);
    let (code, _, stderr) = job("staging", Some(&unbaked));
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains(&format!("error: commit {unbaked} is not in this repository and has no AMI")), "{stderr}");
    assert!(stderr.contains(&format!("`release promote {unbaked} --env staging --wait 30m --yes` failed with exit code 3")), "{stderr}");
    assert_eq!(doc("staging.json")["ok"], false);
    before.assert_same(&emu.state(), "a failed job");
}

/// `--pipeline` given from outside the checkout: a short sha and `HEAD` resolve in the pipeline's repository (where
/// bake exports from), not in the current directory, which is no repository at all here.
#[tokio::test]
async fn a_pipeline_given_from_another_directory_resolves_commits_in_its_own_repository() {
    let emu = Emulator::start();
    let (project, _a, b) = Project::baked_demo(&emu);
    let elsewhere = tempfile::tempdir().unwrap();
    let file = project.path().join("pipelines/hello.toml");
    let file = file.to_str().unwrap();
    let before = emu.state();
    for rev in ["HEAD", &b[..12]] {
        let plan = release_e2e::release_with(elsewhere.path(), Some(&emu.url()), &[], &["promote", rev, "--pipeline", file, "--env", "staging", "--plan", "--output", "json"]);
        assert_eq!(plan.code, 0, "{rev}: {}", plan.stderr);
        assert_eq!(plan.json()["commit"].as_str(), Some(b.as_str()), "{rev}: {}", plan.stdout);
    }
    before.assert_same(&emu.state(), "a plan");
}
