//! Harness for end-to-end tests: run the real `release` binary against a fresh emulator and look at AWS
//! through the SDK.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use release_testkit::emulator::{workspace_root, Emulator};

/// The `release` binary, next to this test in the same target directory. `cargo test -p release-e2e` alone does
/// not rebuild another package's binary, so the first test of each process brings it up to date with
/// `cargo build` (a no-op when it is); `RELEASE_BIN` names a binary to use instead.
pub fn release_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("RELEASE_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("test executable path");
        let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps").to_path_buf();
        let target_dir = dir.parent().expect("target dir");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        // --workspace, not -p: the features of one package alone differ and would rebuild the SDK crates.
        cmd.args(["build", "--quiet", "--workspace", "--bin", "release"])
            .current_dir(workspace_root())
            .env("CARGO_TARGET_DIR", target_dir);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build --workspace --bin release failed");
        let bin = dir.join("release");
        assert!(bin.exists(), "{} is missing after cargo build", bin.display());
        pinned(&dir, &bin)
    })
    .clone()
}

/// A hard link to `bin` for this test process alone (`e2e-pinned/<pid>/release`: the file keeps its name, which
/// clap shows in usage lines). `crates/release-cli/build.rs` re-runs when git refs move (a commit in any worktree of
/// the repository), so another test process's `cargo build` may relink `release` while this one runs it; the link
/// keeps the binary this process started with. Links of processes that are gone are removed.
fn pinned(dir: &Path, bin: &Path) -> PathBuf {
    let links = dir.join("e2e-pinned");
    for entry in std::fs::read_dir(&links).into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().parse::<u32>().ok();
        if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let own = links.join(std::process::id().to_string());
    std::fs::create_dir_all(&own).expect("create the pinned binary's directory");
    let link = own.join("release");
    let _ = std::fs::remove_file(&link);
    for _ in 0..50 {
        if std::fs::hard_link(bin, &link).is_ok() {
            return link;
        }
        // Being relinked by another process's cargo build this very moment.
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("could not link {} to {}", bin.display(), link.display());
}

/// An example program of the `release` library (`crates/release/examples/NAME.rs`), built like [`release_bin`]
/// (`cargo test --workspace` builds them; `cargo test --test X` alone does not, so this brings them up to date).
pub fn example_bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps").to_path_buf();
        let target_dir = dir.parent().expect("target dir");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "--workspace", "--examples"]).current_dir(workspace_root()).env("CARGO_TARGET_DIR", target_dir);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        assert!(cmd.status().expect("run cargo build").success(), "cargo build --workspace --examples failed");
        dir.join("examples")
    });
    let bin = dir.join(name);
    assert!(bin.exists(), "{} is missing after cargo build --examples", bin.display());
    bin
}

/// Runs the library example `name` in `cwd` against `endpoint` through the AWS config chain
/// (`AWS_ENDPOINT_URL`), with the dummy credentials and short polls of [`release_with`].
pub fn run_example(cwd: &Path, endpoint: &str, name: &str, args: &[&str]) -> Run {
    assert!(endpoint.starts_with("http://127.0.0.1:"), "tests talk to loopback only: {endpoint}");
    let mut cmd = Command::new(example_bin(name));
    cmd.current_dir(cwd)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_PROFILE")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RELEASE_POLL_SECONDS", "0.2")
        .args(args);
    let start = Instant::now();
    let Output { status, stdout, stderr } = cmd.output().expect("run the example");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// The result of one `release` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", self.stdout))
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, 0, "release failed:\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    /// The last `error: ...` line of stderr.
    pub fn error_line(&self) -> &str {
        self.stderr.lines().rev().find(|l| l.starts_with("error: ")).unwrap_or("")
    }
}

/// Runs `release` in `cwd` with dummy credentials and, when given, the emulator's endpoint.
pub fn release(cwd: &Path, endpoint: Option<&str>, args: &[&str]) -> Run {
    release_with(cwd, endpoint, &[], args)
}

pub fn release_with(cwd: &Path, endpoint: Option<&str>, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = Command::new(release_bin());
    cmd.current_dir(cwd)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        // Never let a test fall back to real AWS credentials or config files of the machine.
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RELEASE_POLL_SECONDS", "0.2")
        .envs(env.iter().copied());
    // Global flags go first, so that `--` in a test's arguments keeps its meaning.
    if let Some(url) = endpoint {
        cmd.arg("--endpoint-url").arg(url);
    }
    cmd.args(args);
    let start = Instant::now();
    let Output { status, stdout, stderr } = cmd.output().expect("run release");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// A throwaway project: `pipelines/<app>.toml` plus the repository's packer template and demo app.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new(pipeline: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = workspace_root();
        std::fs::create_dir_all(dir.path().join("pipelines")).unwrap();
        std::fs::create_dir_all(dir.path().join("packer-templates")).unwrap();
        std::fs::copy(root.join("packer-templates/app.pkr.hcl"), dir.path().join("packer-templates/app.pkr.hcl")).unwrap();
        let app = pipeline
            .lines()
            .find_map(|l| l.strip_prefix("app = \""))
            .and_then(|l| l.split('"').next())
            .unwrap_or("app");
        std::fs::write(dir.path().join(format!("pipelines/{app}.toml")), pipeline).unwrap();
        Self { dir }
    }

    /// A project holding the repository's own demo pipeline.
    pub fn demo() -> Self {
        let text = std::fs::read_to_string(workspace_root().join("pipelines/hello.toml")).expect("demo pipeline");
        Self::new(&text)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn release(&self, emu: &Emulator, args: &[&str]) -> Run {
        release(self.path(), Some(&emu.url()), args)
    }
}

impl Project {
    /// The demo app (pipeline, service, template) in a fresh git repository with one commit.
    pub fn demo_repo() -> Self {
        let project = Self::demo();
        let root = workspace_root();
        for f in ["pipelines/hello/Makefile", "pipelines/hello/server.py", "pipelines/hello/test_server.py", "pipelines/hello/.gitignore"] {
            let to = project.path().join(f);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(root.join(f), to).unwrap();
        }
        project.git(&["init", "-q", "-b", "main"]);
        project.commit("demo app");
        project
    }

    /// The demo, provisioned (staging and prod) on `emu`, with two baked commits: (project, sha A, sha B).
    pub fn baked_demo(emu: &Emulator) -> (Self, String, String) {
        let project = Self::demo_repo();
        for env in ["staging", "prod"] {
            project.release(emu, &["provision", "--env", env]).assert_ok();
        }
        let a = project.git(&["rev-parse", "HEAD"]);
        project.release(emu, &["bake", &a]).assert_ok();
        let server = project.read("pipelines/hello/server.py");
        project.write("pipelines/hello/server.py", &server.replace("\"app\": \"hello\"", "\"app\": \"hello\", \"v\": 2"));
        let b = project.commit("v2");
        project.release(emu, &["bake", &b]).assert_ok();
        (project, a, b)
    }

    /// Commits a change of the demo service (`label` in its answer) and bakes it; returns the sha.
    pub fn bake_new(&self, emu: &Emulator, label: &str) -> String {
        let server = self.read("pipelines/hello/server.py");
        self.write("pipelines/hello/server.py", &server.replace("\"app\": \"hello\"", &format!("\"app\": \"hello\", \"{label}\": 1")));
        let sha = self.commit(label);
        self.release(emu, &["bake", &sha]).assert_ok();
        sha
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .current_dir(self.path())
            .args(["-c", "user.name=test", "-c", "user.email=test@example.invalid"])
            .args(args)
            .output()
            .expect("run git");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Commits everything and returns the new full sha.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap()
    }

    /// Runs `release` with extra environment variables.
    pub fn release_env(&self, emu: &Emulator, env: &[(&str, &str)], args: &[&str]) -> Run {
        release_with(self.path(), Some(&emu.url()), env, args)
    }
}

/// SDK clients pointed at the emulator: the tests' independent view of AWS.
pub struct AwsView {
    pub elb: aws_sdk_elasticloadbalancing::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub route53: aws_sdk_route53::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

impl AwsView {
    /// Someone else's live lock on `hello`'s `env`, written straight into the ledger table: bob on laptop, release
    /// `r20261122T000000Z-000001`, acquired 2026-11-22T00:00:00Z, its lease running to 2030-01-01T00:00:00Z.
    pub async fn hold_lock_as_bob(&self, env: &str) {
        use aws_sdk_dynamodb::types::AttributeValue::{N, S};
        self.dynamodb
            .put_item()
            .table_name("release-ledger")
            .item("pk", S(format!("hello#{env}")))
            .item("sk", S("lock".into()))
            .item("app", S("hello".into()))
            .item("env", S(env.into()))
            .item("holder", S("bob".into()))
            .item("release_id", S("r20261122T000000Z-000001".into()))
            .item("host", S("laptop".into()))
            .item("acquired", N("1795305600000".into()))
            .item("expires", N("1893456000000".into()))
            .send()
            .await
            .unwrap();
    }

    pub async fn new(emu: &Emulator) -> Self {
        Self::with_keys(emu, "test", "test").await
    }

    /// With an IAM user's keys, for an emulator that enforces IAM.
    pub async fn with_keys(emu: &Emulator, key: &str, secret: &str) -> Self {
        Self::at(&emu.url(), key, secret).await
    }

    /// Clients of another loopback endpoint (a proxy in front of the emulator, to see what `release` sees).
    pub async fn at(url: &str, key: &str, secret: &str) -> Self {
        assert!(url.starts_with("http://127.0.0.1:"), "tests talk to loopback only: {url}");
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(url)
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(key, secret, None, None, "tests"))
            .load()
            .await;
        Self {
            elb: aws_sdk_elasticloadbalancing::Client::new(&config),
            elbv2: aws_sdk_elasticloadbalancingv2::Client::new(&config),
            route53: aws_sdk_route53::Client::new(&config),
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            ec2: aws_sdk_ec2::Client::new(&config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
        }
    }

    /// Sets a CloudWatch alarm's state (`ALARM`, `OK`) as CloudWatch would on a breach.
    pub async fn set_alarm_state(&self, name: &str, state: &str) {
        let value = aws_sdk_cloudwatch::types::StateValue::from(state);
        self.cloudwatch.set_alarm_state().alarm_name(name).state_value(value).state_reason("set by a test").send().await.unwrap();
    }

    /// Weighted records of `name`: (set identifier, weight, alias DNS name), sorted.
    pub async fn weighted_records(&self, zone: &str, name: &str) -> Vec<(String, i64, String)> {
        let zones = self.route53.list_hosted_zones_by_name().dns_name(zone).send().await.unwrap();
        let zone = zones.hosted_zones().iter().find(|z| z.name() == zone).expect("zone exists");
        let rrs = self.route53.list_resource_record_sets().hosted_zone_id(zone.id()).send().await.unwrap();
        let mut out: Vec<(String, i64, String)> = rrs
            .resource_record_sets()
            .iter()
            .filter(|r| r.name() == name)
            .map(|r| {
                (
                    r.set_identifier().unwrap_or("").to_owned(),
                    r.weight().unwrap_or(-1),
                    r.alias_target().map(|a| a.dns_name().to_owned()).unwrap_or_default(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// EvaluateTargetHealth of each weighted alias record of `name`: (set identifier, value), sorted.
    pub async fn evaluate_target_health(&self, zone: &str, name: &str) -> Vec<(String, bool)> {
        let (_, records) = self.alias_records(zone, name).await;
        let mut out: Vec<(String, bool)> =
            records.iter().map(|r| (r.set_identifier().unwrap_or("").to_owned(), r.alias_target().is_some_and(|a| a.evaluate_target_health()))).collect();
        out.sort();
        out
    }

    /// Sets EvaluateTargetHealth on the weighted alias record `set_id` of `name` by hand, as an operator would in
    /// the console (the rest of the record unchanged).
    pub async fn set_evaluate_target_health(&self, zone: &str, name: &str, set_id: &str, value: bool) {
        use aws_sdk_route53::types::{AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecordSet};
        let (zone_id, records) = self.alias_records(zone, name).await;
        let r = records.into_iter().find(|r| r.set_identifier() == Some(set_id)).expect("the record exists");
        let alias = r.alias_target().expect("an alias");
        let alias = AliasTarget::builder().dns_name(alias.dns_name()).hosted_zone_id(alias.hosted_zone_id()).evaluate_target_health(value).build().unwrap();
        let rrs = ResourceRecordSet::builder()
            .name(r.name())
            .r#type(r.r#type().clone())
            .set_identifier(set_id)
            .set_weight(r.weight())
            .alias_target(alias)
            .build()
            .unwrap();
        let change = Change::builder().action(ChangeAction::Upsert).resource_record_set(rrs).build().unwrap();
        let batch = ChangeBatch::builder().changes(change).build().unwrap();
        self.route53.change_resource_record_sets().hosted_zone_id(zone_id).change_batch(batch).send().await.unwrap();
    }

    async fn alias_records(&self, zone: &str, name: &str) -> (String, Vec<aws_sdk_route53::types::ResourceRecordSet>) {
        let zones = self.route53.list_hosted_zones_by_name().dns_name(zone).send().await.unwrap();
        let zone = zones.hosted_zones().iter().find(|z| z.name() == zone).expect("zone exists");
        let rrs = self.route53.list_resource_record_sets().hosted_zone_id(zone.id()).send().await.unwrap();
        let records = rrs.resource_record_sets().iter().filter(|r| r.name() == name && r.alias_target().is_some()).cloned().collect();
        (zone.id().to_owned(), records)
    }

    /// Images owned by this account: (id, name, state, tags sorted, snapshot ids).
    pub async fn own_images(&self) -> Vec<OwnImage> {
        let out = self.ec2.describe_images().owners("self").send().await.unwrap();
        let mut images: Vec<OwnImage> = out
            .images()
            .iter()
            .map(|i| OwnImage {
                id: i.image_id().unwrap().to_owned(),
                name: i.name().unwrap_or("").to_owned(),
                state: i.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                tags: i.tags().iter().map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned())).collect(),
                snapshots: i.block_device_mappings().iter().filter_map(|b| b.ebs()?.snapshot_id().map(String::from)).collect(),
            })
            .collect();
        images.sort_by(|a, b| a.name.cmp(&b.name));
        images
    }

    /// Tags of one snapshot.
    pub async fn snapshot_tags(&self, id: &str) -> std::collections::BTreeMap<String, String> {
        let out = self.ec2.describe_snapshots().snapshot_ids(id).send().await.unwrap();
        out.snapshots()[0].tags().iter().map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned())).collect()
    }

    /// Instances tagged with the app, not terminated: (id, image, state, tags).
    pub async fn app_instances(&self, app: &str) -> Vec<Ec2Instance> {
        let out = self
            .ec2
            .describe_instances()
            .filters(aws_sdk_ec2::types::Filter::builder().name("tag:release:app").values(app).build())
            .send()
            .await
            .unwrap();
        let mut v: Vec<Ec2Instance> = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| Ec2Instance {
                id: i.instance_id().unwrap().to_owned(),
                image: i.image_id().unwrap_or("").to_owned(),
                state: i.state().and_then(|s| s.name()).map(|n| n.as_str().to_owned()).unwrap_or_default(),
                subnet: i.subnet_id().unwrap_or("").to_owned(),
                tags: i.tags().iter().map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned())).collect(),
            })
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    pub async fn running(&self, app: &str, cluster: &str) -> Vec<Ec2Instance> {
        self.app_instances(app).await.into_iter().filter(|i| i.state == "running" && i.tags.get("release:cluster").map(String::as_str) == Some(cluster)).collect()
    }

    /// The instances registered with a classic ELB, sorted.
    pub async fn elb_members(&self, name: &str) -> Vec<String> {
        let out = self.elb.describe_load_balancers().load_balancer_names(name).send().await.unwrap();
        let mut ids: Vec<String> = out.load_balancer_descriptions()[0].instances().iter().filter_map(|i| i.instance_id().map(String::from)).collect();
        ids.sort();
        ids
    }

    /// The decoded user data of an instance.
    pub async fn user_data(&self, id: &str) -> String {
        use base64::Engine;
        let out = self
            .ec2
            .describe_instance_attribute()
            .instance_id(id)
            .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
            .send()
            .await
            .unwrap();
        let raw = out.user_data().and_then(|u| u.value()).unwrap_or("");
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(raw).expect("user data is base64")).unwrap()
    }

    /// Every ledger record of the table, as JSON-ish maps of strings, newest first.
    pub async fn ledger(&self, table: &str) -> Vec<std::collections::BTreeMap<String, String>> {
        let out = self.dynamodb.scan().table_name(table).send().await.unwrap();
        let mut rows: Vec<std::collections::BTreeMap<String, String>> = out
            .items()
            .iter()
            .filter(|i| i.get("sk").and_then(|v| v.as_s().ok()).is_some_and(|s| s.starts_with("rec#")))
            .map(|i| {
                i.iter()
                    .map(|(k, v)| {
                        let text = match v {
                            aws_sdk_dynamodb::types::AttributeValue::S(s) => s.clone(),
                            aws_sdk_dynamodb::types::AttributeValue::N(n) => n.clone(),
                            aws_sdk_dynamodb::types::AttributeValue::Bool(b) => b.to_string(),
                            aws_sdk_dynamodb::types::AttributeValue::L(l) => format!("{} items", l.len()),
                            _ => String::new(),
                        };
                        (k.clone(), text)
                    })
                    .collect()
            })
            .collect();
        rows.sort_by(|a, b| b["sk"].cmp(&a["sk"]));
        rows
    }

    /// Classic ELB names.
    pub async fn classic_elbs(&self) -> Vec<String> {
        let out = self.elb.describe_load_balancers().send().await.unwrap();
        let mut names: Vec<String> = out.load_balancer_descriptions().iter().filter_map(|l| l.load_balancer_name().map(String::from)).collect();
        names.sort();
        names
    }
}

#[derive(Debug, Clone)]
pub struct OwnImage {
    pub id: String,
    pub name: String,
    pub state: String,
    pub tags: std::collections::BTreeMap<String, String>,
    pub snapshots: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Ec2Instance {
    pub id: String,
    pub image: String,
    pub state: String,
    pub subnet: String,
    pub tags: std::collections::BTreeMap<String, String>,
}

/// Runs a Python snippet with boto3 from the emulator's venv (for services the tests have no Rust SDK for:
/// IAM, SSM). `ENDPOINT` is set to the emulator's URL; returns stdout.
pub fn boto3(emu: &Emulator, script: &str) -> String {
    let python = workspace_root().join("localstack/.venv/bin/python");
    let prelude = "import boto3, json, os\nE = os.environ['ENDPOINT']\ndef client(s, key='test', secret='test'):\n    return boto3.client(s, endpoint_url=E, region_name='us-east-1', aws_access_key_id=key, aws_secret_access_key=secret)\n";
    let out = Command::new(python)
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .env("ENDPOINT", emu.url())
        .output()
        .expect("run the venv's python");
    assert!(out.status.success(), "boto3 script failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `release` process running in the background, its stderr captured to a file so a test can wait for a line.
pub struct Background {
    pub child: std::process::Child,
    stderr_path: PathBuf,
    stdout_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Background {
    /// Starts `release` like [`release_with`], without waiting.
    pub fn start(cwd: &Path, endpoint: Option<&str>, env: &[(&str, &str)], args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let stderr_path = dir.path().join("stderr");
        let stdout_path = dir.path().join("stdout");
        let mut cmd = Command::new(release_bin());
        cmd.current_dir(cwd)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RELEASE_POLL_SECONDS", "0.2")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&stdout_path).unwrap())
            .stderr(std::fs::File::create(&stderr_path).unwrap());
        if let Some(url) = endpoint {
            cmd.arg("--endpoint-url").arg(url);
        }
        cmd.args(args);
        let child = cmd.spawn().expect("start release");
        Self { child, stderr_path, stdout_path, _dir: dir }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits until stderr holds `needle` (panics after `timeout`, showing stderr).
    pub fn wait_for(&self, needle: &str, timeout: Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.stderr().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no `{needle}` on stderr within {timeout:?}:\n{}", self.stderr());
    }

    /// Sends a signal (SIGINT, SIGTERM) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().expect("kill");
        assert!(status.success());
    }

    /// Waits for it to end.
    pub fn finish(mut self, timeout: Duration) -> Run {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Run {
                    code: status.code().unwrap_or(-1),
                    stdout: std::fs::read_to_string(&self.stdout_path).unwrap_or_default(),
                    stderr: self.stderr(),
                    elapsed: start.elapsed(),
                };
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                panic!("release did not end within {timeout:?}:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Project {
    /// Starts `release` in the background against `endpoint`.
    pub fn background(&self, endpoint: &str, env: &[(&str, &str)], args: &[&str]) -> Background {
        Background::start(self.path(), Some(endpoint), env, args)
    }
}

/// What the demo's world looks like after [`life`], without the ids that differ from run to run (`a`, `b`: the
/// two commits, shown as A and B).
pub async fn summary(aws: &AwsView, a: &str, b: &str) -> std::collections::BTreeMap<String, String> {
    let label = |c: &str| if c == a { "A" } else if c == b { "B" } else { "?" }.to_owned();
    let mut out = std::collections::BTreeMap::new();
    out.insert("weights".into(), format!("{:?}", aws.weighted_records("example.com.", "hello.example.com.").await.iter().map(|r| (r.0.clone(), r.1)).collect::<Vec<_>>()));
    for cluster in ["staging", "prod1", "prod2"] {
        let mut commits: Vec<String> = aws.running("hello", cluster).await.iter().map(|i| label(&i.tags["release:commit"])).collect();
        commits.sort();
        out.insert(format!("running {cluster}"), commits.join(","));
        let lb = format!("hello-{cluster}");
        out.insert(format!("members {lb}"), aws.elb_members(&lb).await.len().to_string());
    }
    out.insert("images".into(), aws.own_images().await.len().to_string());
    out.insert("not terminated".into(), aws.app_instances("hello").await.iter().filter(|i| i.state != "terminated").count().to_string());
    let ledger: Vec<String> = aws.ledger("release-ledger").await.iter().map(|r| format!("{} {} {}", r["action"], r.get("cluster").map_or("-", String::as_str), r["outcome"])).collect();
    out.insert("ledger".into(), ledger.join("; "));
    out
}

/// The demo's whole life: provision, bake two commits, promote, switch, promote, switch, rollback.
pub fn life(project: &Project, endpoint: &str) -> (String, String) {
    let run = |args: &[&str]| release_with(project.path(), Some(endpoint), &[], args).assert_ok().stdout.clone();
    run(&["provision", "--env", "staging"]);
    run(&["provision", "--env", "prod"]);
    let a = project.git(&["rev-parse", "HEAD"]);
    run(&["bake", &a]);
    let server = project.read("pipelines/hello/server.py");
    project.write("pipelines/hello/server.py", &server.replace("\"app\": \"hello\"", "\"app\": \"hello\", \"v\": 2"));
    let b = project.commit("v2");
    run(&["bake", &b]);
    run(&["promote", &a, "--env", "staging"]);
    run(&["promote", &b, "--env", "staging"]);
    run(&["promote", &a, "--env", "prod", "--yes"]);
    run(&["switch", "prod2", "--yes"]);
    run(&["promote", &b, "--env", "prod", "--yes"]);
    run(&["switch", "prod1", "--yes"]);
    run(&["rollback", "--env", "prod", "--yes"]);
    (a, b)
}

impl Background {
    /// What it printed on stdout so far (a long-running command's first lines: the dashboard's address).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }
}
