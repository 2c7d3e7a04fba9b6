//! Bad input, tried on purpose: each case must exit with its documented code, say what is wrong and how to fix it
//! on one line, and change nothing in AWS (the emulator's state is compared before and after).

use release_e2e::{Emulator, Project};

struct Case {
    name: &'static str,
    /// Edits the demo pipeline (from, to); empty: unchanged.
    edit: (&'static str, &'static str),
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    code: i32,
    says: &'static str,
    /// Under `--output json`: what the one JSON document's error message must say (empty: not checked).
    json: &'static str,
}

const fn case(name: &'static str, edit: (&'static str, &'static str), args: &'static [&'static str], code: i32, says: &'static str) -> Case {
    Case { name, edit, args, env: &[], code, says, json: "" }
}

const NONE: (&str, &str) = ("", "");

/// The staging cluster of the demo pipeline, and edits of it.
const STAGING: &str = "load_balancer = \"hello-staging\"\ncount = 2";
const ASG_MIN_OVER_MAX: &str = "load_balancer = \"hello-staging\"\ncount = 2\nfleet = \"asg\"\nscaling = { min = 5, max = 3 }";
const ASG_COUNT_OUTSIDE: &str = "load_balancer = \"hello-staging\"\ncount = 2\nfleet = \"asg\"\nscaling = { min = 3, max = 6 }";

fn cases() -> Vec<Case> {
    vec![
        // Pipeline files.
        case("malformed TOML", ("count = 2", "count = = 2"), &["provision", "--env", "staging"], 2, "invalid TOML"),
        case("unknown key", ("count = 2", "count = 2\ncolour = \"blue\""), &["provision", "--env", "staging"], 2, "unknown key `colour`"),
        case("misspelt key", ("load_balancer = \"hello-staging\"", "loadbalancer = \"hello-staging\""), &["validate"], 2, "did you mean `load_balancer`?"),
        case("missing app", ("app = \"hello\"\n", ""), &["validate"], 2, "missing key `app`"),
        case("bad app name", ("app = \"hello\"", "app = \"Hello World\""), &["validate"], 2, "app name `Hello World` is invalid"),
        case("negative count", ("count = 2", "count = -2"), &["promote", "HEAD", "--env", "staging"], 2, "count -2 is outside 1..1000"),
        case("zero count", ("count = 2", "count = 0"), &["validate"], 2, "count 0 is outside 1..1000"),
        case("count as a string", ("count = 2", "count = \"2\""), &["validate"], 2, "must be an integer"),
        case("absurd health timeout", ("health_timeout = \"10m\"", "health_timeout = \"30d\""), &["validate"], 2, "is 720h, outside 5s..6h"),
        case("duration in words", ("drain = \"2s\"", "drain = \"10 minutes\""), &["validate"], 2, "write the unit right after the number, as `10m`"),
        case("count over the bound", ("count = 2", "count = 2000"), &["validate"], 2, "count 2000 is outside 1..1000; fix: set how many instances the cluster runs, from 1 to 1000"),
        case("history of an unknown env", NONE, &["history", "--env", "prd"], 3, "no environment `prd` in pipelines/hello.toml nor in its ledger; known: staging, prod"),
        case("history of an unknown outcome", NONE, &["history", "--outcome", "exploded"], 2, "--outcome `exploded` is not an outcome; use one of started, succeeded, failed"),
        case("too long health timeout", ("health_timeout = \"10m\"", "health_timeout = \"100h\""), &["validate"], 2, "outside 5s..6h"),
        case("duration without unit", ("drain = \"2s\"", "drain = \"30\""), &["validate"], 2, "has no unit"),
        case("unknown env in requires", ("[env.prod.clusters.prod1]", "requires = [\"stagin\"]\n[env.prod.clusters.prod1]"), &["validate"], 2, "names `stagin`, which is not an environment of this file; fix: did you mean `staging`?"),
        case("cycle of requires", ("[env.prod.clusters.prod1]", "requires = [\"prod\"]\n[env.prod.clusters.prod1]"), &["promote", "HEAD", "--env", "prod"], 2, "[env.prod] requires itself"),
        case("window in an unknown zone", ("[env.prod.clusters.prod1]", "windows = [\"mon-fri 09:00-16:00 Mars/Olympus\"]\n[env.prod.clusters.prod1]"), &["validate"], 2, "`Mars/Olympus` is not a known time zone"),
        case("negative approvals", ("[env.prod.clusters.prod1]", "approvals = -1\n[env.prod.clusters.prod1]"), &["validate"], 2, "`approvals` in [env.prod] is -1, outside 0..100"),
        case("override without a reason", NONE, &["promote", "HEAD", "--env", "staging", "--override-gates"], 2, "--reason"),
        case("freeze until the past", NONE, &["freeze", "--env", "prod", "--reason", "x", "--until", "2001-01-01T00:00:00Z"], 2, "--until: 2001-01-01T00:00:00Z is already past"),
        case("duplicate cluster", ("[env.prod.clusters.prod2]", "[env.prod.clusters.staging]"), &["validate"], 2, "is already used"),
        case("dns with one cluster", ("[env.prod.clusters.prod2]\nload_balancer = \"hello-prod2\"\ncount = 4\n", ""), &["validate"], 2, "blue/green needs two or more"),
        case("record outside zone", ("record = \"hello.example.com.\"", "record = \"hello.example.org.\""), &["validate"], 2, "is not inside zone"),
        case("zone without dot", ("zone = \"example.com.\"", "zone = \"example.com\""), &["validate"], 2, "with the trailing dot"),
        case("missing template", ("packer-templates/app.pkr.hcl", "packer-templates/nope.pkr.hcl"), &["validate"], 2, "does not exist under"),
        case("name filter without owners", ("base_owners = [\"amazon\"]\n", ""), &["validate"], 2, "has no base_owners"),
        case("bad ssm reference", ("ssm:/hello/staging/database-url", "ssm:hello"), &["validate"], 2, "is not a valid SSM reference"),
        case("bad subnet id", ("subnets = []", "subnets = [\"net-1\"]"), &["validate"], 2, "is not a subnet id"),
        case("bad instance type", ("[deploy]\ninstance_type = \"t3.micro\"", "[deploy]\ninstance_type = \"large\""), &["validate"], 2, "is not an EC2 instance type"),
        case("bad region", ("region = \"us-east-1\"", "region = \"mars\""), &["validate"], 2, "is not an AWS region name"),
        case("both lb and target group", ("load_balancer = \"hello-staging\"", "load_balancer = \"hello-staging\"\ntarget_group = \"tg\""), &["validate"], 2, "names both load_balancer and target_group"),
        // Auto Scaling group fleets (issue 22): refused where written.
        case("fleet misspelt", ("[deploy]\ninstance_type", "[deploy]\nfleet = \"asgs\"\ninstance_type"), &["validate"], 2, "hello.toml:21:9: fleet `asgs` in [deploy] is neither \"asg\" nor \"instances\""),
        case("scaling min over max", (STAGING, ASG_MIN_OVER_MAX), &["validate"], 2, "scaling of [env.staging.clusters.staging]: min 5 is above max 3"),
        case("count outside the scaling bounds", (STAGING, ASG_COUNT_OUTSIDE), &["validate"], 2, "count 2 of [env.staging.clusters.staging] is outside its scaling bounds 3..6"),
        case("scaling on an instances fleet", (STAGING, "load_balancer = \"hello-staging\"\ncount = 2\nscaling = { max = 4 }"), &["validate"], 2, "`scaling` applies to asg fleets only"),
        case("rollback window on an instances fleet", ("[env.prod]\n", "[env.prod]\nrollback_window = \"2h\"\n"), &["validate"], 2, "`rollback_window` applies to asg fleets only, and [env.prod.clusters.prod1] runs"),
        case("scaling cpu over 100", (STAGING, "load_balancer = \"hello-staging\"\ncount = 2\nfleet = \"asg\"\nscaling = { cpu = 101 }"), &["validate"], 2, "scaling cpu 101 in [env.staging.clusters.staging] is outside 1..100"),
        // The command line.
        case("unknown command", NONE, &["deploy"], 2, "unrecognized subcommand"),
        case("missing --env", NONE, &["promote", "HEAD"], 2, "--env <ENV>"),
        case("bad --output", NONE, &["status", "--output", "yaml"], 2, "invalid value 'yaml'"),
        case("unknown env", NONE, &["provision", "--env", "qa"], 3, "no environment `qa`"),
        case("unknown app", NONE, &["status", "--app", "nope"], 3, "no pipeline for app `nope`"),
        case("unknown cluster", NONE, &["switch", "prod3", "--yes"], 3, "no cluster `prod3`"),
        case("unknown sha", NONE, &["promote", "0123456789abc", "--env", "staging"], 3, "unknown commit `0123456789abc`"),
        case("sha that looks like an option", NONE, &["bake", "--", "--exec=x"], 2, "is not a commit"),
        case("no AMI for a sha", NONE, &["promote", "HEAD", "--env", "staging"], 3, "no AMI for"),
        case("switch to an empty cluster", NONE, &["switch", "prod2", "--yes"], 4, "has no instances"),
        case("switch an env without dns", NONE, &["switch", "staging", "--yes"], 2, "has no dns"),
        case("promote to the live cluster", NONE, &["promote", "HEAD", "--env", "prod", "--cluster", "prod1", "--yes"], 3, "no AMI for"),
        case("weight over 100", NONE, &["switch", "prod2", "--weight", "101", "--yes"], 2, "--weight is a percentage"),
        case("batch of zero", NONE, &["promote", "HEAD", "--env", "staging", "--batch", "0"], 2, "--batch must be at least 1"),
        case("rollback with no history", NONE, &["rollback", "--env", "prod", "--yes"], 3, "nothing to roll back to in env prod: no release is live yet"),
        case("rollback plan with no history", NONE, &["rollback", "--env", "staging", "--plan"], 3, "nothing to roll back to in env staging"),
        case("history limit of zero", NONE, &["history", "--limit", "0"], 2, "--limit must be at least 1"),
        case("full sha not in the repository", NONE, &["promote", "0123456789abcdef0123456789abcdef01234567", "--env", "staging"], 3, "is not in this repository and has no AMI"),
        case("ttl on an alias record", ("record = \"hello.example.com.\"", "record = \"hello.example.com.\", ttl = 60"), &["validate"], 2, "`ttl` in [env.prod.dns] has no effect"),
        case("one load balancer for two environments", ("load_balancer = \"hello-prod2\"", "load_balancer = \"hello-staging\""), &["validate"], 2, "is already the load balancer of [env.staging.clusters.staging]"),
        case("live cluster to weight 0", NONE, &["switch", "prod1", "--weight", "0", "--yes"], 4, "every cluster at weight 0"),
        Case { json: "not provided: --env <ENV>, <SHA>; see `release promote --help`", ..case("usage error under json", NONE, &["promote", "--output", "json"], 2, "required arguments were not provided") },
        Case { json: "not provided: --env <ENV>; see `release promote --help`", ..case("missing --env under json", NONE, &["promote", "HEAD", "--output", "json"], 2, "--env <ENV>") },
        Case { name: "packer missing", edit: NONE, args: &["bake", "HEAD"], env: &[("PACKER", "/nonexistent/packer")], code: 3, says: "packer is not installed", json: "" },
        Case { name: "unreachable endpoint", edit: NONE, args: &["status"], env: &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9")], code: 6, says: "cannot reach AWS", json: "" },
        case("pipeline file given does not exist", NONE, &["validate", "--pipeline", "pipelines/none.toml"], 2, "cannot read the pipeline file"),
        case("unknown hook key", ("[env.prod.clusters.prod1]", "hooks = { before_trafic = \"./smoke\" }\n[env.prod.clusters.prod1]"), &["promote", "HEAD", "--env", "prod", "--yes"], 2, "unknown key `before_trafic` in [env.prod.hooks]"),
        // Root volumes RunInstances would refuse (the bounds: release_core's parse::volume_problem).
        case("io1 root volume without iops", ("type = \"gp3\", encrypted", "type = \"io1\", encrypted"), &["provision", "--env", "staging"], 2, "pipelines/hello.toml:27:38: root volume type io1 needs `iops`; fix: add iops = N to root_volume (io1: at least 100)"),
        case("st1 root volume under 125 GiB", ("type = \"gp3\", encrypted", "type = \"st1\", encrypted"), &["promote", "HEAD", "--env", "staging"], 2, "pipelines/hello.toml:27:27: root volume size 16 GiB is outside st1's 125..16384 GiB"),
        case("gp3 throughput over its IOPS", ("encrypted = true }", "encrypted = true, throughput = 1000 }"), &["validate"], 2, "root volume throughput 1000 MiB/s is more than gp3 allows for 3000 IOPS (0.25 MiB/s per IOPS: 750)"),
        case("gp3 iops out of range", ("encrypted = true }", "encrypted = true, iops = 100000 }"), &["validate"], 2, "root volume iops 100000 is outside gp3's 3000..80000"),
        case("classic ELB health check timeout over 60s", ("count = 2", "count = 2\nhealth = { interval = \"2m\", timeout = \"90s\" }"), &["provision", "--env", "staging"], 2, "health check timeout 1m30s of [env.staging.clusters.staging] is over 1m, the most a classic ELB takes; fix: set health.timeout to 60s or less, or use a target_group (up to 120s)"),
        case("shared encrypted AMI without keys", ("instance_type = \"t3.micro\"\n#", "instance_type = \"t3.micro\"\nregions = [\"eu-west-1\"]\naccounts = [\"210987654321\"]\n#"), &["provision", "--env", "staging"], 2, "pipelines/hello.toml:18:12: [bake] accounts shares an encrypted AMI, which needs a customer-managed KMS key in each of its regions; none for us-east-1, eu-west-1"),
        case("hook timeout out of range", ("[env.prod.clusters.prod1]", "hooks = { before_traffic = \"./smoke\", hook_timeout = \"7h\" }\n[env.prod.clusters.prod1]"), &["validate"], 2, "`hook_timeout` in [env.prod.hooks] is 7h, outside 1s..6h"),
    ]
}

// The cases run in four tests of a quarter each, side by side (each on its own emulator): one test of them all was
// the suite's long pole (6 minutes of a 13-minute `make test`, every other test done long before).
#[tokio::test]
async fn every_bad_input_fails_clearly_with_its_code_and_changes_nothing_1_of_4() {
    run_quarter(0).await;
}

#[tokio::test]
async fn every_bad_input_fails_clearly_with_its_code_and_changes_nothing_2_of_4() {
    run_quarter(1).await;
}

#[tokio::test]
async fn every_bad_input_fails_clearly_with_its_code_and_changes_nothing_3_of_4() {
    run_quarter(2).await;
}

#[tokio::test]
async fn every_bad_input_fails_clearly_with_its_code_and_changes_nothing_4_of_4() {
    run_quarter(3).await;
}

/// Every case is in exactly one quarter, and there are enough of them to mean something.
#[test]
fn the_quarters_hold_every_case_once() {
    let all = cases();
    assert!(all.len() >= 30);
    let names: Vec<&str> = (0..4).flat_map(quarter).map(|i| all[i].name).collect();
    assert_eq!(names, all.iter().map(|c| c.name).collect::<Vec<_>>());
}

/// The indices of `cases()` quarter `q` (0..4) runs.
fn quarter(q: usize) -> std::ops::Range<usize> {
    let n = cases().len();
    let size = n.div_ceil(4);
    (q * size).min(n)..((q + 1) * size).min(n)
}

async fn run_quarter(q: usize) {
    let all = cases();
    let cases = &all[quarter(q)];
    let emu = Emulator::start();
    let project = Project::demo_repo();
    for env in ["staging", "prod"] {
        project.release(&emu, &["provision", "--env", env]).assert_ok();
    }
    let pristine = project.read("pipelines/hello.toml");
    let mut changes = 0;
    let mut failures = Vec::new();
    let mut timings = Vec::new();
    // One baseline for all cases (a snapshot costs half a second): any change shows up at the case that made it.
    let before = emu.state();
    for c in cases {
        let (from, to) = c.edit;
        if !from.is_empty() {
            assert!(pristine.contains(from), "{}: {from:?} not in the demo pipeline", c.name);
            project.write("pipelines/hello.toml", &pristine.replacen(from, to, 1));
        }
        // The unreachable-endpoint case brings its own endpoint.
        let endpoint = if c.env.iter().any(|(k, _)| *k == "AWS_ENDPOINT_URL") { None } else { Some(emu.url()) };
        let run = release_e2e::release_with(project.path(), endpoint.as_deref(), c.env, c.args);
        let after = emu.state();
        project.write("pipelines/hello.toml", &pristine);
        let changed = before.changed_models(&after);
        timings.push(format!("{:>6.2}s  {}", run.elapsed.as_secs_f64(), c.name));
        if !changed.is_empty() {
            changes += 1;
        }
        let last = run.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        let one_line = run.stderr.contains(c.says) && (last.starts_with("error: ") || last.starts_with("error:") || last.contains("Usage") || last.contains("--help"));
        if run.code != c.code || !one_line || !changed.is_empty() {
            failures.push(format!("{}: exit {} (want {}), changed {changed:?}, stderr:\n{}", c.name, run.code, c.code, run.stderr));
        }
        if !c.json.is_empty() {
            // Exactly one JSON document on stdout, whose message names what is wrong.
            match serde_json::from_str::<serde_json::Value>(&run.stdout) {
                Ok(doc) if doc["ok"] == false && doc["error"]["message"].as_str().is_some_and(|m| m.contains(c.json)) => {}
                _ => failures.push(format!("{}: stdout is not one JSON document whose message says {:?}:\n{}", c.name, c.json, run.stdout)),
            }
        }
    }
    println!("{}", timings.join("\n"));
    println!("bad inputs tried (quarter {} of 4): {}, failed cases: {}, AWS changes on bad input: {changes}", q + 1, cases.len(), failures.len());
    assert!(!cases.is_empty());
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
    assert_eq!(changes, 0);
}
