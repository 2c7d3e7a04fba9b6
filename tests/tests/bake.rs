//! `release build`, `test`, `bake` and `images` against the emulator with the real Packer.

use std::path::Path;

use release_e2e::{AwsView, Emulator, Project};

/// A `packer` that logs each call to `log` and then runs the real one: proves whether Packer ran.
fn counting_packer(dir: &Path) -> (String, std::path::PathBuf) {
    let log = dir.join("packer-calls.log");
    let script = dir.join("packer");
    std::fs::write(&script, format!("#!/bin/sh\necho \"$1\" >> {}\nexec packer \"$@\"\n", log.display())).unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(&script).unwrap().permissions(), 0o755);
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (script.to_string_lossy().into_owned(), log)
}

fn builds(log: &Path) -> usize {
    std::fs::read_to_string(log).unwrap_or_default().lines().filter(|l| *l == "build").count()
}

#[tokio::test]
async fn bake_creates_one_tagged_available_ami_and_a_second_bake_reuses_it() {
    let emu = Emulator::start();
    let project = Project::demo_repo();
    let aws = AwsView::new(&emu).await;
    let tools = tempfile::tempdir().unwrap();
    let (packer, log) = counting_packer(tools.path());
    let sha = project.git(&["rev-parse", "HEAD"]);

    // A short sha expands to the full one.
    let run = project.release_env(&emu, &[("PACKER", &packer)], &["bake", &sha[..8], "--output", "json"]);
    run.assert_ok();
    let doc = run.json();
    assert_eq!(doc["reused"], false);
    assert_eq!(doc["commit"], sha.as_str());
    let key = doc["bake_key"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 64);
    assert_eq!(builds(&log), 1);

    let images = aws.own_images().await;
    assert_eq!(images.len(), 1, "{images:?}");
    let img = &images[0];
    assert_eq!(img.id, doc["ami"].as_str().unwrap());
    assert_eq!(img.state, "available");
    assert_eq!(img.name, format!("hello-{}-{}", &sha[..12], &key[..8]));
    assert_eq!(img.tags.get("release:app").map(String::as_str), Some("hello"));
    assert_eq!(img.tags.get("release:commit"), Some(&sha));
    assert_eq!(img.tags.get("release:bake-key"), Some(&key));
    assert!(!img.snapshots.is_empty(), "the AMI has a snapshot");
    for snap in &img.snapshots {
        let tags = aws.snapshot_tags(snap).await;
        assert_eq!(tags.get("release:bake-key"), Some(&key), "snapshot {snap} tagged too");
    }

    // Again: no Packer run, the same AMI, nothing new in AWS.
    let before = emu.state();
    let again = project.release_env(&emu, &[("PACKER", &packer)], &["bake", &sha, "--output", "json"]);
    again.assert_ok();
    assert_eq!(again.json()["reused"], true);
    assert_eq!(again.json()["ami"], doc["ami"]);
    assert_eq!(builds(&log), 1, "packer ran for a reused bake");
    before.assert_same(&emu.state(), "a reused bake");

    // images lists it.
    let list = project.release(&emu, &["images", "--output", "json"]);
    list.assert_ok();
    let rows = list.json()["images"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["ami"], doc["ami"]);
    assert_eq!(rows[0]["commit"], sha.as_str());

    // --force bakes again beside the good one, which may be deployed.
    let forced = project.release_env(&emu, &[("PACKER", &packer)], &["bake", &sha, "--force", "--output", "json"]);
    forced.assert_ok();
    assert_eq!(forced.json()["reused"], false);
    assert_ne!(forced.json()["ami"], doc["ami"]);
    assert_eq!(builds(&log), 2);
    assert_eq!(aws.own_images().await.len(), 2);
}

#[tokio::test]
async fn every_input_of_the_image_changes_the_bake_key() {
    let emu = Emulator::start();
    let project = Project::demo_repo();
    let aws = AwsView::new(&emu).await;
    let mut keys = Vec::new();
    let mut bake = |what: &str| {
        let sha = project.commit(what);
        let run = project.release(&emu, &["bake", &sha, "--output", "json"]);
        run.assert_ok();
        assert_eq!(run.json()["reused"], false, "{what}: expected a new bake");
        keys.push(run.json()["bake_key"].as_str().unwrap().to_owned());
    };
    bake("initial");
    // The template.
    let template = project.read("packer-templates/app.pkr.hcl");
    project.write("packer-templates/app.pkr.hcl", &format!("{template}\n# changed\n"));
    bake("template");
    // A file beside the template.
    project.write("packer-templates/files/motd", "hello\n");
    bake("file beside the template");
    // The base AMI (an explicit id instead of the filter's newest match).
    let pipeline = project.read("pipelines/hello.toml");
    project.write("pipelines/hello.toml", &pipeline.replace("base_ami = \"al2023-ami-2023.*-x86_64\"", "base_ami = \"ami-03c3da4cfa8e8943a\""));
    bake("base AMI");
    // A bake variable.
    let pipeline = project.read("pipelines/hello.toml");
    project.write("pipelines/hello.toml", &pipeline.replace("server.py\" }", "server.py\", ssh_username = \"admin\" }"));
    bake("bake var");
    let distinct: std::collections::BTreeSet<&String> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "{keys:?}");
    assert_eq!(aws.own_images().await.len(), keys.len());
}

#[tokio::test]
async fn a_failing_build_or_test_bakes_nothing_and_exits_7() {
    let emu = Emulator::start();
    let project = Project::demo_repo();
    let aws = AwsView::new(&emu).await;
    let pipeline = project.read("pipelines/hello.toml");
    project.write("pipelines/hello.toml", &pipeline.replace("make -C pipelines/hello check", "echo checking; exit 3"));
    let sha = project.commit("failing test");
    let run = project.release(&emu, &["bake", &sha]);
    assert_eq!(run.code, 7, "{run:?}");
    assert_eq!(run.error_line(), "error: test command `echo checking; exit 3` failed with exit code 3; its last output is above");
    assert!(run.stderr.contains("[test] checking"), "the stage's output is streamed: {}", run.stderr);
    assert!(aws.own_images().await.is_empty());

    project.write("pipelines/hello.toml", &pipeline.replace("make -C pipelines/hello dist", "false"));
    let sha = project.commit("failing build");
    let run = project.release(&emu, &["bake", &sha]);
    assert_eq!(run.code, 7, "{run:?}");
    assert_eq!(run.error_line(), "error: build command `false` failed with exit code 1; its last output is above");
    assert!(aws.own_images().await.is_empty());

    project.write("pipelines/hello.toml", &pipeline.replace("make -C pipelines/hello dist", "true"));
    let sha = project.commit("no artifact");
    let run = project.release(&emu, &["bake", &sha]);
    assert_eq!(run.code, 7, "{run:?}");
    assert!(run.error_line().contains("did not write the artifact pipelines/hello/dist/hello.tar.gz"), "{}", run.stderr);
    assert!(aws.own_images().await.is_empty());
}

#[tokio::test]
async fn bad_input_to_bake_changes_nothing() {
    let emu = Emulator::start();
    let project = Project::demo_repo();
    let before = emu.state();

    let unknown = project.release(&emu, &["bake", "0123456789abcdef"]);
    assert_eq!(unknown.code, 3, "{unknown:?}");
    assert!(unknown.error_line().starts_with("error: unknown commit `0123456789abcdef` in "), "{}", unknown.stderr);

    let option = project.release(&emu, &["bake", "--", "--upload-pack=x"]);
    assert_eq!(option.code, 2, "{option:?}");

    let no_packer = project.release_env(&emu, &[("PACKER", "/nonexistent/packer")], &["bake", "HEAD"]);
    assert_eq!(no_packer.code, 3, "{no_packer:?}");
    assert!(no_packer.error_line().contains("packer is not installed"), "{}", no_packer.stderr);
    assert!(no_packer.error_line().contains("apt-get install packer"), "{}", no_packer.stderr);

    let pipeline = project.read("pipelines/hello.toml");
    project.write("pipelines/hello.toml", &pipeline.replace("server.py\" }", "server.py\", colour = \"blue\" }"));
    let sha = project.commit("undeclared var");
    let undeclared = project.release(&emu, &["bake", &sha]);
    assert_eq!(undeclared.code, 2, "{undeclared:?}");
    assert!(undeclared.error_line().contains("does not declare variable `colour`"), "{}", undeclared.stderr);

    before.assert_same(&emu.state(), "bad input to bake");
}

#[tokio::test]
async fn an_ami_left_by_a_killed_bake_is_never_a_good_bake_and_is_cleaned_up() {
    let emu = Emulator::start();
    let project = Project::demo_repo();
    let aws = AwsView::new(&emu).await;
    let sha = project.git(&["rev-parse", "HEAD"]);
    // Bake once to learn the key, then simulate a killed bake: same name, no bake-key tag.
    let first = project.release(&emu, &["bake", &sha, "--output", "json"]);
    first.assert_ok();
    let name = first.json()["name"].as_str().unwrap().to_owned();
    let ami = first.json()["ami"].as_str().unwrap().to_owned();
    aws.ec2.delete_tags().resources(&ami).tags(aws_sdk_ec2::types::Tag::builder().key("release:bake-key").build()).send().await.unwrap();

    let images = project.release(&emu, &["images", "--output", "json"]);
    assert_eq!(images.json()["images"].as_array().unwrap().len(), 0, "an untagged AMI is listed as a bake");

    let again = project.release(&emu, &["bake", &sha, "--output", "json"]);
    again.assert_ok();
    let doc = again.json();
    assert_eq!(doc["reused"], false);
    assert_eq!(doc["cleaned"], serde_json::json!([ami]));
    assert_eq!(doc["name"], name.as_str());
    let own = aws.own_images().await;
    assert_eq!(own.len(), 1, "the leftover was deregistered: {own:?}");
    assert!(own[0].tags.contains_key("release:bake-key"));
}

#[test]
fn build_and_test_run_on_a_clean_export_not_the_work_tree() {
    let project = Project::demo_repo();
    // A dirty work tree: the export must not see this change.
    project.write("pipelines/hello/Makefile", "dist:\n\texit 9\n");
    let run = release_e2e::release(project.path(), None, &["build", "HEAD", "--output", "json"]);
    run.assert_ok();
    assert_eq!(run.json()["artifact"], "pipelines/hello/dist/hello.tar.gz");
    assert!(run.json()["artifact_bytes"].as_u64().unwrap() > 100);
    assert!(!project.path().join("pipelines/hello/dist").exists(), "the build ran in the work tree");
    let test = release_e2e::release(project.path(), None, &["test", "HEAD"]);
    test.assert_ok();
    assert!(test.stdout.starts_with("test of "), "{}", test.stdout);
}

/// A `packer` that says it is a current version (1.11): it logs every call and runs Debian's 1.6.6 on the folder's
/// app.pkr.hcl, since 1.6.6 cannot read the folder (its aws.pkr.hcl is for 1.7+).
fn modern_packer(dir: &Path) -> (String, std::path::PathBuf) {
    let log = dir.join("packer-calls.log");
    let script = dir.join("packer");
    std::fs::write(
        &script,
        format!(
            "#!/bin/bash\necho \"$*\" >> {log}\ncase \"$1\" in\n  version) echo 'Packer v1.11.2'; exit 0;;\n  init) test -d \"$2\" || exit 9; exit 0;;\n  build) args=(\"$@\"); last=\"${{args[-1]}}\"; unset 'args[-1]'; test -d \"$last\" || exit 9; exec packer \"${{args[@]}}\" \"$last/app.pkr.hcl\";;\nesac\nexit 3\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (script.to_string_lossy().into_owned(), log)
}

#[tokio::test]
async fn current_packer_is_initialised_first_and_builds_the_template_folder() {
    let emu = Emulator::start();
    let project = Project::demo_repo();
    let aws = AwsView::new(&emu).await;
    let tools = tempfile::tempdir().unwrap();
    let (packer, log) = modern_packer(tools.path());
    let sha = project.git(&["rev-parse", "HEAD"]);
    let run = project.release_env(&emu, &[("PACKER", &packer)], &["bake", &sha, "--output", "json"]);
    run.assert_ok();
    let calls: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(str::to_owned).collect();
    let verbs: Vec<&str> = calls.iter().filter_map(|c| c.split_whitespace().next()).filter(|v| *v != "version").collect();
    assert_eq!(verbs, ["init", "build"], "{calls:?}");
    let init = &calls.iter().find(|c| c.starts_with("init")).unwrap()[5..];
    assert!(init.ends_with("/packer-templates"), "init is given the template's folder: {init}");
    let build = calls.iter().find(|c| c.starts_with("build")).unwrap();
    assert!(build.ends_with(init), "build is given the same folder: {build}");
    assert!(build.contains("-only=amazon-ebs.emulator"), "{build}");
    let images = aws.own_images().await;
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(images[0].id, run.json()["ami"].as_str().unwrap());
    assert_eq!(images[0].tags.get("release:bake-key").map(String::as_str), run.json()["bake_key"].as_str());
}

#[test]
fn the_templates_are_formatted_and_valid() {
    let root = release_e2e::workspace_root();
    let aws = root.join("packer-templates/aws.pkr.hcl");
    let text = std::fs::read_to_string(&aws).unwrap();
    // What the real-AWS source must say; 1.6.6 cannot validate it, so its settings are checked as text.
    for needle in ["required_plugins", "http_tokens                 = \"required\"", "imds_support = \"v2.0\"", "encrypt_boot       = var.encrypt_boot", "kms_key_id         = var.kms_key_id", "region_kms_key_ids = var.region_kms_key_ids", "temporary_security_group_source_public_ip = length(var.ssh_cidrs) == 0", "ami_regions    = var.ami_regions", "ami_users      = var.ami_users"] {
        assert!(text.contains(needle), "aws.pkr.hcl lacks `{needle}`");
    }
    let fmt = std::process::Command::new("packer").args(["fmt", "-check"]).arg(&aws).env("CHECKPOINT_DISABLE", "1").output().unwrap();
    assert!(fmt.status.success(), "packer fmt -check aws.pkr.hcl: {}", String::from_utf8_lossy(&fmt.stdout));
    let template = root.join("packer-templates/app.pkr.hcl");
    let fmt = std::process::Command::new("packer").args(["fmt", "-check"]).arg(&template).env("CHECKPOINT_DISABLE", "1").output().unwrap();
    assert!(fmt.status.success(), "packer fmt -check: {}", String::from_utf8_lossy(&fmt.stdout));
    // The file provisioner checks that the artifact exists.
    let dir = tempfile::tempdir().unwrap();
    let artifact = dir.path().join("hello.tar.gz");
    std::fs::write(&artifact, b"x").unwrap();
    let mut validate = std::process::Command::new("packer");
    validate.arg("validate").env("CHECKPOINT_DISABLE", "1");
    let artifact_var = format!("artifact={}", artifact.display());
    for v in ["app=hello", "commit=abc", &artifact_var, "base_ami=ami-0123", "ami_name=hello-abc-def", "ec2_endpoint=http://127.0.0.1:4566"] {
        validate.args(["-var", v]);
    }
    let out = validate.arg(&template).output().unwrap();
    assert!(out.status.success(), "packer validate: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
