//! One test per kind of pipeline problem, asserting the exact position and message a user sees.

use std::path::Path;

use release_core::model::pipeline::{parse, Diagnostic, LbTarget, Pipeline};

const GOOD: &str = r#"app = "hello"
region = "us-east-1"

[build]
command = "make dist"
artifact = "dist/hello.tar.gz"

[test]
command = "make check"

[bake]
template = "packer-templates/app.pkr.hcl"
base_ami = "al2023-ami-2023.*-x86_64"
base_owners = ["amazon"]
instance_type = "t3.micro"
vars = { }

[deploy]
instance_type = "t3.micro"
health_timeout = "10m"
drain = "30s"
security_groups = []
instance_profile = "hello-app"

[env.staging]
vars = { APP_ENV = "staging", DATABASE_URL = "ssm:/hello/staging/database-url" }
[env.staging.clusters.staging]
load_balancer = "hello-staging"
count = 2

[env.prod]
vars = { APP_ENV = "production" }
dns = { zone = "example.com.", record = "hello.example.com." }
[env.prod.clusters.prod1]
load_balancer = "hello-prod1"
count = 4
[env.prod.clusters.prod2]
target_group = "hello-prod2"
count = 4
"#;

struct Project(tempfile::TempDir);

impl Project {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("packer-templates")).unwrap();
        std::fs::write(dir.path().join("packer-templates/app.pkr.hcl"), "# template\n").unwrap();
        Self(dir)
    }

    fn parse(&self, src: &str) -> Result<Pipeline, Vec<Diagnostic>> {
        parse(Path::new("pipelines/hello.toml"), self.0.path(), src, true)
    }

    /// The diagnostics of `src`, rendered as the CLI prints them, without the file name.
    fn problems(&self, src: &str) -> Vec<String> {
        match self.parse(src) {
            Ok(_) => panic!("expected problems in:\n{src}"),
            Err(d) => d.iter().map(|d| d.to_string().trim_start_matches("pipelines/hello.toml:").to_owned()).collect(),
        }
    }
}

fn replace(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from:?} is not in the good file");
    GOOD.replacen(from, to, 1)
}

#[test]
fn the_design_example_parses_into_typed_values() {
    let p = Project::new().parse(GOOD).expect("valid");
    assert_eq!(p.app.as_str(), "hello");
    assert_eq!(p.envs.len(), 2);
    let (env, prod2) = p.cluster("prod2").unwrap();
    assert_eq!(env.name.as_str(), "prod");
    assert_eq!(prod2.target, LbTarget::TargetGroup("hello-prod2".into()));
    assert_eq!(prod2.count, 4);
    assert_eq!(prod2.deploy.health_timeout.as_secs(), 600);
    assert_eq!(p.env("staging").unwrap().vars["DATABASE_URL"], "ssm:/hello/staging/database-url");
    assert_eq!(p.env("prod").unwrap().dns().unwrap().record, "hello.example.com.");
    assert_eq!(p.ledger_table, "release-ledger");
}

#[test]
fn toml_syntax_error_points_at_the_position() {
    let src = replace("count = 2", "count = = 2");
    assert_eq!(Project::new().problems(&src), vec![
        "29:9: invalid TOML: invalid string; expected `\"`, `'`; fix: fix the TOML syntax at this position"
    ]);
}

#[test]
fn unknown_key_suggests_the_closest_known_one() {
    let src = replace("load_balancer = \"hello-staging\"", "lod_balancer = \"hello-staging\"");
    let p = Project::new().problems(&src);
    assert_eq!(p, vec![
        "27:1: missing key `load_balancer` in [env.staging.clusters.staging]; fix: add load_balancer = \"<classic ELB name>\" or target_group = \"<target group name>\"",
        "28:1: unknown key `lod_balancer` in [env.staging.clusters.staging]; fix: did you mean `load_balancer`?",
    ]);
}

#[test]
fn unknown_top_level_key_lists_the_allowed_ones() {
    let src = format!("colour = \"blue\"\n{GOOD}");
    assert_eq!(Project::new().problems(&src), vec![
        "1:1: unknown key `colour` in [top level]; fix: remove it; allowed keys here: app, region, ledger_table, build, test, bake, deploy, env, notify",
    ]);
}

#[test]
fn missing_key_names_the_table() {
    let src = replace("artifact = \"dist/hello.tar.gz\"\n", "");
    assert_eq!(Project::new().problems(&src), vec![
        "4:1: missing key `artifact` in [build]; fix: add artifact = \"<path the build writes>\"",
    ]);
}

#[test]
fn missing_app() {
    let src = replace("app = \"hello\"\n", "");
    assert_eq!(Project::new().problems(&src), vec!["1:1: missing key `app` in [top level]; fix: add app = \"<name>\" at the top"]);
}

#[test]
fn bad_app_name() {
    let src = replace("app = \"hello\"", "app = \"Hello_World\"");
    assert_eq!(Project::new().problems(&src), vec![
        "1:7: app name `Hello_World` is invalid; fix: use 1-32 characters of a-z, 0-9 and `-`, not starting or ending with `-`",
    ]);
}

#[test]
fn duplicate_cluster_names_across_environments() {
    let src = replace("[env.prod.clusters.prod2]", "[env.prod.clusters.staging]");
    assert_eq!(Project::new().problems(&src), vec![
        "37:20: cluster name `staging` is already used in [env.staging.clusters.staging]; fix: cluster names must be unique within an app; rename one",
    ]);
}

#[test]
fn dns_environment_needs_two_clusters() {
    let src = replace("[env.prod.clusters.prod2]\ntarget_group = \"hello-prod2\"\ncount = 4\n", "");
    assert_eq!(Project::new().problems(&src), vec![
        "34:11: [env.prod] has dns but only one cluster; blue/green needs two or more; fix: add a second cluster under [env.prod.clusters], or remove dns to replace in place",
    ]);
}

#[test]
fn environment_without_dns_has_one_cluster() {
    let src = replace("count = 2\n", "count = 2\n[env.staging.clusters.staging2]\nload_balancer = \"hello-staging2\"\ncount = 1\n");
    assert_eq!(Project::new().problems(&src), vec![
        "27:14: [env.staging] has 2 clusters but no dns; without dns there is one cluster, replaced in place; fix: add dns = { zone = ..., record = ... } to [env.staging], or keep one cluster",
    ]);
}

#[test]
fn bad_durations() {
    let src = replace("health_timeout = \"10m\"", "health_timeout = \"ten minutes\"").replace("drain = \"30s\"", "drain = \"2h\"");
    assert_eq!(Project::new().problems(&src), vec![
        "20:18: `health_timeout` in [deploy]: `ten minutes` is not a duration; fix: write a duration like \"30s\", \"10m\", \"1h\" or \"1m30s\"",
        "21:9: `drain` in [deploy] is 2h, outside 0s..1h; fix: pick a duration inside that range",
    ]);
}

#[test]
fn absurd_health_timeout() {
    let src = replace("health_timeout = \"10m\"", "health_timeout = \"1s\"");
    assert_eq!(Project::new().problems(&src), vec![
        "20:18: `health_timeout` in [deploy] is 1s, outside 5s..6h; fix: pick a duration inside that range",
    ]);
}

#[test]
fn bad_counts() {
    let src = replace("count = 2", "count = -1").replace("count = 4", "count = \"4\"");
    assert_eq!(Project::new().problems(&src), vec![
        "29:9: count -1 is outside 1..1000; fix: set how many instances the cluster runs, from 1 to 1000",
        "36:9: `count` in [env.prod.clusters.prod1] must be an integer, not string; fix: write a whole number without quotes",
        "39:9: `count` in [env.prod.clusters.prod2] must be an integer, not string; fix: write a whole number without quotes",
    ]);
}

#[test]
fn template_that_does_not_exist() {
    let project = Project::new();
    let src = replace("packer-templates/app.pkr.hcl", "packer-templates/missing.pkr.hcl");
    let problems = project.problems(&src);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("12:12: template `packer-templates/missing.pkr.hcl` does not exist under "), "{problems:?}");
    assert!(problems[0].ends_with("; fix: give a path relative to the directory that holds pipelines/"), "{problems:?}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let src = replace("app = \"hello\"", "app = \"-bad\"")
        .replace("count = 2", "count = 0")
        .replace("drain = \"30s\"", "drain = \"30\"")
        .replace("load_balancer = \"hello-prod1\"", "load_balancer = \"hello-prod1\"\nloadbalancer = \"x\"");
    let problems = Project::new().problems(&src);
    assert_eq!(problems.len(), 4, "{problems:#?}");
}

#[test]
fn ssm_references_must_be_paths_and_names_must_be_env_vars() {
    let src = replace("DATABASE_URL = \"ssm:/hello/staging/database-url\"", "DATABASE_URL = \"ssm:hello\", 1BAD = \"x\"");
    assert_eq!(Project::new().problems(&src), vec![
        "26:46: `DATABASE_URL` in [env.staging.vars] is not a valid SSM reference: `ssm:hello`; fix: write ssm:/path/to/parameter",
        "26:59: `1BAD` in [env.staging.vars] is not a valid environment variable name; fix: use letters, digits and `_`, not starting with a digit",
    ]);
}

#[test]
fn name_filter_needs_owners() {
    let src = replace("base_owners = [\"amazon\"]\n", "");
    assert_eq!(Project::new().problems(&src), vec![
        "13:12: base_ami `al2023-ami-2023.*-x86_64` is a name filter but [bake] has no base_owners; fix: add base_owners = [\"amazon\"] (or the account id you trust) so no stranger's image can match",
    ]);
}

#[test]
fn both_load_balancer_and_target_group() {
    let src = replace("load_balancer = \"hello-prod1\"", "load_balancer = \"hello-prod1\"\ntarget_group = \"tg\"");
    assert_eq!(Project::new().problems(&src), vec![
        "36:16: [env.prod.clusters.prod1] names both load_balancer and target_group; fix: keep one of them",
    ]);
}

#[test]
fn record_outside_zone() {
    let src = replace("record = \"hello.example.com.\"", "record = \"hello.example.org.\"");
    assert_eq!(Project::new().problems(&src), vec![
        "33:41: record `hello.example.org.` is not inside zone `example.com.`; fix: use a name that ends with the zone",
    ]);
}

const SINKS: &str = r#"
[notify]
link = "http://deploys.internal:8080"
[[notify.sinks]]
kind = "webhook"
url = "https://hooks.example.com/release"
secret = "env:RELEASE_WEBHOOK_SECRET"
on = ["started", "succeeded", "failed", "rolled-back"]
[[notify.sinks]]
kind = "sns"
topic = "arn:aws:sns:us-east-1:123456789012:deploys"
[[notify.sinks]]
kind = "slack"
url = "https://hooks.slack.com/services/T000/B000/XXXX"
[[notify.sinks]]
kind = "command"
command = "./change-ticket"
on = ["failed"]
"#;

#[test]
fn notify_sinks_parse_with_their_filters_and_labels_that_hide_secrets() {
    use release_core::model::event::EventKind;
    use release_core::model::pipeline::{SecretRef, SinkKind};
    let p = Project::new().parse(&format!("{GOOD}{SINKS}")).expect("valid");
    assert_eq!(p.notify.link.as_deref(), Some("http://deploys.internal:8080"));
    let labels: Vec<&str> = p.notify.sinks.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["webhook https://hooks.example.com/release", "sns arn:aws:sns:us-east-1:123456789012:deploys", "slack https://hooks.slack.com/services/…", "command `./change-ticket`"]);
    assert_eq!(p.notify.sinks[0].kind, SinkKind::Webhook { url: "https://hooks.example.com/release".into(), secret: Some(SecretRef::Env("RELEASE_WEBHOOK_SECRET".into())) });
    assert_eq!(p.notify.sinks[1].on, EventKind::DEFAULT.into_iter().collect(), "default filter");
    assert_eq!(p.notify.sinks[3].on, [EventKind::Failed].into_iter().collect());
}

#[test]
fn bad_notify_sinks_say_what_is_wrong() {
    let bad = SINKS
        .replace("secret = \"env:RELEASE_WEBHOOK_SECRET\"", "secret = \"hunter2\"")
        .replace("topic = \"arn:aws:sns:us-east-1:123456789012:deploys\"", "topic = \"deploys\"")
        .replace("on = [\"failed\"]", "on = [\"exploded\"]")
        .replace("kind = \"slack\"", "kind = \"pager\"");
    let problems = Project::new().problems(&format!("{GOOD}{bad}"));
    let text = problems.join("\n");
    for want in [
        "`secret` of a webhook sink must be a reference, env:NAME or ssm:/path; fix: never write the secret itself in the pipeline file",
        "topic `deploys` is not an SNS topic ARN; fix: write arn:aws:sns:<region>:<account>:<name>",
        "sink kind `pager` is unknown; fix: use webhook, slack, sns or command",
        "event `exploded` is unknown; fix: use some of: queued, started, step, succeeded, failed, rolled-back, lost-lock, superseded, cancelled, interrupted, refused",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(!text.contains("hunter2"), "the secret is not repeated: {text}");
    assert_eq!(problems.len(), 4, "{text}");
    assert!(problems.iter().all(|p| p.split(':').next().unwrap().parse::<u32>().unwrap() > 40), "each at its line: {text}");
}

#[test]
fn sink_labels_never_carry_credentials_tokens_or_queries() {
    let src = format!("{GOOD}\n[notify]\n[[notify.sinks]]\nkind = \"webhook\"\nurl = \"https://bot:pw@hooks.example.com/hook?token=s3cr3t#x\"\n[[notify.sinks]]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/T0/B0/XyZ\"\n");
    let p = Project::new().parse(&src).expect("valid");
    let labels: Vec<&str> = p.notify.sinks.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["webhook https://hooks.example.com/hook", "slack https://hooks.slack.com/services/…"]);
}

#[test]
fn a_rollout_parses_inline_or_as_a_table_and_in_place_takes_pause_and_alarms_only() {
    use release_core::model::pipeline::RolloutStep::{Hold, Percent};
    let src = replace(
        "dns = { zone = \"example.com.\", record = \"hello.example.com.\" }",
        "dns = { zone = \"example.com.\", record = \"hello.example.com.\" }\nrollout = { steps = [10, \"hold\", 50, 100], pause = \"2m\", alarms = [\"hello-5xx\", \"hello-p99\"] }",
    );
    let p = Project::new().parse(&src).expect("valid");
    let r = p.env("prod").unwrap().rollout.clone().unwrap();
    assert_eq!(r.steps, vec![Percent(10), Hold, Percent(50), Percent(100)]);
    assert_eq!((r.pause.as_secs(), r.alarms.len()), (120, 2));
    let src = format!("{GOOD}[env.staging.rollout]\npause = \"30s\"\nalarms = [\"hello-staging-5xx\"]\n");
    let p = Project::new().parse(&src).expect("valid");
    let r = p.env("staging").unwrap().rollout.clone().unwrap();
    assert!(r.steps.is_empty());
    assert_eq!((r.pause.as_secs(), r.alarms.clone()), (30, vec!["hello-staging-5xx".to_owned()]));
    assert!(p.env("prod").unwrap().rollout.is_none());
}

#[test]
fn bad_rollouts_are_reported_at_the_step_with_a_fix() {
    let src = format!(
        "{GOOD}[env.prod.rollout]\nsteps = [10, 5, 100]\npause = \"25h\"\nalarms = [\"a\", \"a\"]\ncolour = 1\n[env.staging.rollout]\nsteps = [50, 100]\n"
    );
    assert_eq!(Project::new().problems(&src), vec![
        "41:14: step 5% does not increase on the step before it (10%) in [env.prod.rollout]; fix: list the shares in increasing order, e.g. [10, 50, 100]",
        "42:9: `pause` in [env.prod.rollout] is 25h, outside 0s..24h; fix: pick a duration inside that range",
        "43:16: alarm `a` is listed twice in [env.prod.rollout]; fix: list each alarm once",
        "44:1: unknown key `colour` in [env.prod.rollout]; fix: remove it; allowed keys here: steps, pause, alarms",
        "45:14: [env.staging.rollout] has steps (2), but env.staging has no dns: traffic cannot be shifted in steps; fix: remove `steps`; in place, `pause` and `alarms` apply between the batches of `release promote --batch N`",
    ]);
    for (steps, want) in [
        ("[10, 50]", "the last step of a rollout must be 100"),
        ("[\"hold\", 100]", "a rollout cannot begin with \"hold\""),
        ("[10, \"hold\", \"hold\", 100]", "two \"hold\" steps in a row"),
        ("[0, 100]", "step 0 in [env.prod.rollout] is not a share of 1 to 100 percent"),
        ("[10, \"later\", 100]", "step `\"later\"` in [env.prod.rollout] is neither a percentage nor \"hold\""),
        ("[]", "a rollout needs at least one step"),
        ("\"10,100\"", "`steps` in [env.prod.rollout] must be an array, not string"),
    ] {
        let src = format!("{GOOD}[env.prod.rollout]\nsteps = {steps}\n");
        let got = Project::new().problems(&src);
        assert!(got.len() == 1 && got[0].contains(want), "{steps}: {got:?}");
    }
}

#[test]
fn hooks_parse_as_a_section_or_inline_with_their_defaults() {
    use release_core::model::hook::HookName;
    let src = replace(
        "[env.staging.clusters.staging]",
        "hooks = { before_promote = \"\", before_traffic = \"./smoke $RELEASE_LB_DNS\" }\n[env.staging.clusters.staging]",
    );
    let src = format!("{src}[env.prod.hooks]\nafter_traffic = \"./smoke https://$RELEASE_LIVE_NAME\"\nhook_timeout = \"90s\"\n");
    let p = Project::new().parse(&src).expect("valid");
    let staging = &p.env("staging").unwrap().hooks;
    assert_eq!(staging.command(HookName::BeforePromote), None, "an empty command is no hook");
    assert_eq!(staging.command(HookName::BeforeTraffic), Some("./smoke $RELEASE_LB_DNS"));
    assert_eq!(staging.timeout.as_secs(), 600, "hook_timeout defaults to 10m");
    assert!(!staging.rollback_on_failure(false), "in place: no automatic rollback by default");
    let prod = &p.env("prod").unwrap().hooks;
    assert_eq!(prod.command(HookName::AfterTraffic), Some("./smoke https://$RELEASE_LIVE_NAME"));
    assert_eq!(prod.timeout.as_secs(), 90);
    assert!(prod.rollback_on_failure(true), "blue/green: rollback by default");
    assert!(!Project::new().parse(GOOD).unwrap().env("prod").unwrap().hooks.any());
}

#[test]
fn bad_hooks_say_what_is_wrong_each_at_its_position() {
    let src = format!(
        "{GOOD}[env.prod.hooks]\nbefore_trafic = \"./smoke\"\nafter_traffic = 3\nhook_timeout = \"0s\"\nrollback_on_hook_failure = \"yes\"\n"
    );
    assert_eq!(Project::new().problems(&src), vec![
        "41:1: unknown key `before_trafic` in [env.prod.hooks]; fix: did you mean `before_traffic`?",
        "42:17: `after_traffic` in [env.prod.hooks] must be a string, not integer; fix: quote the value",
        "43:16: `hook_timeout` in [env.prod.hooks] is 0s, outside 1s..6h; fix: pick a duration inside that range",
        "44:28: `rollback_on_hook_failure` in [env.prod.hooks] must be true or false, not string; fix: write true or false without quotes",
    ]);
    let src = replace("[env.staging.clusters.staging]", "hooks = \"./smoke\"\n[env.staging.clusters.staging]");
    assert_eq!(Project::new().problems(&src), vec![
        "27:9: `hooks` in [env.staging] must be a table, not string; fix: write it as a [env.staging.hooks] section or an inline table { ... }",
    ]);
}

#[test]
fn steps_on_the_command_line_are_checked_as_in_the_file() {
    use release_core::model::pipeline::{parse_steps, RolloutStep::{Hold, Percent}};
    assert_eq!(parse_steps("10, hold,50%,100").unwrap(), vec![Percent(10), Hold, Percent(50), Percent(100)]);
    assert_eq!(parse_steps("100").unwrap(), vec![Percent(100)]);
    for (bad, want) in [("10,50", "must be 100"), ("50,10,100", "does not increase"), ("0,100", "1 to 100"), ("10,,100", "neither a percentage"), ("300", "neither a percentage")] {
        let e = parse_steps(bad).unwrap_err();
        assert_eq!(e.kind(), release_core::ErrorKind::Input);
        assert!(e.message().contains(want), "{bad}: {e}");
    }
}

/// `[deploy] root_volume` set to `rv` (on line 25).
fn with_root_volume(rv: &str) -> String {
    replace("instance_profile = \"hello-app\"", &format!("instance_profile = \"hello-app\"\nroot_volume = {{ {rv} }}"))
}

#[test]
fn root_volumes_that_run_instances_would_refuse() {
    // The EC2 API Reference's bounds for EbsBlockDevice, and the EBS User Guide's ratios (see parse::volume_problem).
    let cases = [
        ("type = \"io1\", size_gb = 100", "24:24: root volume type io1 needs `iops`; fix: add iops = N to root_volume (io1: at least 100)"),
        ("type = \"io2\", size_gb = 100", "24:24: root volume type io2 needs `iops`; fix: add iops = N to root_volume (io2: at least 100)"),
        ("type = \"st1\", size_gb = 16", "24:41: root volume size 16 GiB is outside st1's 125..16384 GiB; fix: give size_gb between 125 and 16384"),
        ("type = \"sc1\", size_gb = 124", "24:41: root volume size 124 GiB is outside sc1's 125..16384 GiB; fix: give size_gb between 125 and 16384"),
        ("type = \"standard\", size_gb = 2000", "24:46: root volume size 2000 GiB is outside standard's 1..1024 GiB; fix: give size_gb between 1 and 1024"),
        ("type = \"io1\", size_gb = 2, iops = 100", "24:41: root volume size 2 GiB is outside io1's 4..16384 GiB; fix: give size_gb between 4 and 16384"),
        ("type = \"gp3\", iops = 2000", "24:38: root volume iops 2000 is outside gp3's 3000..80000; fix: give iops between 3000 and 80000"),
        ("type = \"gp3\", iops = 90000, size_gb = 500", "24:38: root volume iops 90000 is outside gp3's 3000..80000; fix: give iops between 3000 and 80000"),
        ("type = \"gp3\", size_gb = 8, iops = 6000", "24:51: root volume iops 6000 is more than gp3 allows for 8 GiB (500 per GiB: 4000); fix: lower iops to 4000 or raise size_gb to 12"),
        ("type = \"gp3\", throughput = 100", "24:44: root volume throughput 100 MiB/s is outside gp3's 125..2000; fix: give throughput between 125 and 2000"),
        ("type = \"gp3\", size_gb = 100, throughput = 1000", "24:59: root volume throughput 1000 MiB/s is more than gp3 allows for 3000 IOPS (0.25 MiB/s per IOPS: 750); fix: lower throughput to 750 or raise iops to 4000"),
        ("type = \"io1\", size_gb = 100, iops = 6000", "24:53: root volume iops 6000 is more than io1 allows for 100 GiB (50 per GiB: 5000); fix: lower iops to 5000 or raise size_gb to 120"),
        ("type = \"io2\", size_gb = 10, iops = 20000", "24:52: root volume iops 20000 is more than io2 allows for 10 GiB (1000 per GiB: 10000); fix: lower iops to 10000 or raise size_gb to 20"),
        ("type = \"io2\", size_gb = 1000, iops = 300000", "24:54: root volume iops 300000 is outside io2's 100..256000; fix: give iops between 100 and 256000"),
        ("type = \"gp2\", iops = 3000", "24:38: root volume type gp2 takes no `iops`; fix: remove iops, or use gp3, io1 or io2"),
        ("type = \"io1\", size_gb = 100, iops = 1000, throughput = 200", "24:72: root volume type io1 takes no `throughput`; fix: remove throughput, or use gp3"),
        ("size_gb = 70000", "24:27: root volume size 70000 GiB is outside 1..65536; fix: give the size in GiB"),
    ];
    let project = Project::new();
    let mut wrong = Vec::new();
    for (rv, want) in cases {
        let got = project.problems(&with_root_volume(rv));
        if got != [want] {
            wrong.push(format!("{rv}: {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // What EC2 takes, at the edges, and the settings reach the launch.
    for rv in [
        "type = \"gp3\", size_gb = 1, iops = 3000, throughput = 750",
        "type = \"gp3\", size_gb = 160, iops = 80000, throughput = 2000",
        "type = \"io1\", size_gb = 4, iops = 200",
        "type = \"io2\", size_gb = 256, iops = 256000",
        "type = \"st1\", size_gb = 125",
        "type = \"standard\", size_gb = 1024",
        "type = \"gp2\", size_gb = 16384",
    ] {
        project.parse(&with_root_volume(rv)).unwrap_or_else(|d| panic!("{rv}: {d:?}"));
    }
    let p = project.parse(&with_root_volume("type = \"io2\", size_gb = 256, iops = 256000")).unwrap();
    let v = p.envs[0].clusters()[0].deploy.root_volume.clone().unwrap();
    assert_eq!((v.kind.as_str(), v.size_gb, v.iops, v.throughput), ("io2", 256, Some(256000), None));
}

#[test]
fn a_classic_elb_takes_a_health_check_timeout_of_60s_at_most() {
    // The classic ELB API takes 2..60 s (HealthCheck.Timeout), a target group 2..120 s: prod2's target group
    // takes the 90 s that staging's and prod1's classic ELBs refuse.
    let src = replace("instance_profile = \"hello-app\"", "instance_profile = \"hello-app\"\nhealth = { interval = \"100s\", timeout = \"90s\" }");
    assert_eq!(Project::new().problems(&src), vec![
        "29:17: health check timeout 1m30s of [env.staging.clusters.staging] is over 1m, the most a classic ELB takes; fix: set health.timeout to 60s or less, or use a target_group (up to 120s)",
        "36:17: health check timeout 1m30s of [env.prod.clusters.prod1] is over 1m, the most a classic ELB takes; fix: set health.timeout to 60s or less, or use a target_group (up to 120s)",
    ]);
    // A cluster's own health check is pointed at.
    let own = replace("count = 4\n[env.prod.clusters.prod2]", "count = 4\nhealth = { interval = \"2m\", timeout = \"61s\" }\n[env.prod.clusters.prod2]");
    assert_eq!(Project::new().problems(&own), vec![
        "37:10: health check timeout 1m1s of [env.prod.clusters.prod1] is over 1m, the most a classic ELB takes; fix: set health.timeout to 60s or less, or use a target_group (up to 120s)",
    ]);
    let edge = replace("instance_profile = \"hello-app\"", "instance_profile = \"hello-app\"\nhealth = { interval = \"100s\", timeout = \"60s\" }");
    Project::new().parse(&edge).expect("60s is a classic ELB's most");
    let alb = replace("instance_profile = \"hello-app\"", "instance_profile = \"hello-app\"\nhealth = { interval = \"150s\", timeout = \"120s\" }")
        .replace("load_balancer = \"hello-staging\"", "target_group = \"hello-staging\"")
        .replace("load_balancer = \"hello-prod1\"", "target_group = \"hello-prod1\"");
    Project::new().parse(&alb).expect("a target group takes 120s");
}

#[test]
fn a_root_volume_written_as_before_keeps_its_config_hash_text() {
    // launch::config_hash hashes the volume's Debug text: the new optional keys must not change it when unset.
    let v = release_core::model::pipeline::RootVolume::default_gp3();
    assert_eq!(format!("{v:?}"), "RootVolume { size_gb: 8, kind: \"gp3\", encrypted: true }");
}

/// `[bake]` with `extra` added (after `instance_type`, from line 16).
fn with_bake(extra: &str) -> String {
    replace("instance_type = \"t3.micro\"\nvars = { }", &format!("instance_type = \"t3.micro\"\n{extra}\nvars = {{ }}"))
}

#[test]
fn an_encrypted_ami_shared_with_accounts_needs_a_customer_managed_key_in_each_region() {
    let project = Project::new();
    let fix = "fix: add kms_keys = { \"REGION\" = \"arn:aws:kms:REGION:ACCOUNT:key/ID\" } for each, keys the accounts may use, or set encrypted = false";
    // Packer's kms_key_id covers the bake's region only; the copies would get the default key.
    assert_eq!(project.problems(&with_bake("regions = [\"eu-west-1\"]\naccounts = [\"210987654321\"]")), vec![format!(
        "17:12: [bake] accounts shares an encrypted AMI, which needs a customer-managed KMS key in each of its regions; none for us-east-1, eu-west-1; {fix}"
    )]);
    assert_eq!(project.problems(&with_bake("regions = [\"eu-west-1\"]\naccounts = [\"210987654321\"]\nkms_keys = { \"us-east-1\" = \"arn:aws:kms:us-east-1:123456789012:key/a\" }")), vec![format!(
        "17:12: [bake] accounts shares an encrypted AMI, which needs a customer-managed KMS key in each of its regions; none for eu-west-1; {fix}"
    )]);
    // The AWS managed key cannot be shared.
    assert_eq!(project.problems(&with_bake("accounts = [\"210987654321\"]\nkms_keys = { \"us-east-1\" = \"alias/aws/ebs\" }")), vec![
        "16:12: [bake] accounts shares an encrypted AMI, but the key of us-east-1 is the AWS managed aws/ebs key, which cannot be shared; fix: use a customer-managed key whose policy lets the accounts use it",
    ]);
    // A key is regional; a region nothing is baked in or copied to; two keys for one region.
    assert_eq!(project.problems(&with_bake("regions = [\"eu-west-1\"]\nkms_keys = { \"us-east-1\" = \"arn:aws:kms:us-east-1:1:key/a\", \"eu-west-1\" = \"arn:aws:kms:us-east-1:1:key/b\", \"ap-south-1\" = \"alias/x\" }")), vec![
        "17:75: the key of eu-west-1 in [bake] kms_keys is in us-east-1; fix: give a key of eu-west-1: KMS keys are regional",
        "17:123: [bake] kms_keys has a key for ap-south-1, where the AMI is neither baked nor copied; fix: give keys for `region` and the regions of [bake] regions only",
    ]);
    assert_eq!(project.problems(&replace("vars = { }", "vars = { kms_key_id = \"alias/a\" }\nkms_keys = { \"us-east-1\" = \"alias/b\" }")), vec![
        "17:28: us-east-1 has two keys: [bake] kms_keys and vars.kms_key_id; fix: keep the one in kms_keys",
    ]);
    // What is taken: a key per region; the bake's own key in vars (as before); no sharing; no encryption.
    for ok in [
        "regions = [\"eu-west-1\"]\naccounts = [\"210987654321\"]\nkms_keys = { \"us-east-1\" = \"arn:aws:kms:us-east-1:123456789012:key/a\", \"eu-west-1\" = \"alias/shared\" }",
        "regions = [\"eu-west-1\"]\nkms_keys = { \"eu-west-1\" = \"alias/copies\" }",
        "regions = [\"eu-west-1\"]\naccounts = [\"210987654321\"]\nencrypted = false",
    ] {
        let p = project.parse(&with_bake(ok)).unwrap_or_else(|d| panic!("{ok}: {d:?}"));
        assert!(!p.bake.kms_keys.is_empty() || !p.bake.encrypted, "{ok}");
    }
    let own = project.parse(&replace("vars = { }", "vars = { kms_key_id = \"alias/own\" }\naccounts = [\"210987654321\"]")).expect("the bake's region's key in vars");
    assert!(own.bake.kms_keys.is_empty() && own.bake.encrypted);
}

#[test]
fn asg_fleets_inherit_from_deploy_and_env_and_resolve_their_bounds() {
    // [deploy] says asg with a CPU target; prod sets a longer window; prod2 its own bounds.
    let src = replace("instance_profile = \"hello-app\"\n", "instance_profile = \"hello-app\"\nfleet = \"asg\"\nscaling = { cpu = 60 }\n");
    let src = src.replacen("[env.staging.clusters.staging]\n", "[env.staging.clusters.staging]\nfleet = \"asg\"\n", 1);
    let src = src.replacen("vars = { APP_ENV = \"production\" }\n", "vars = { APP_ENV = \"production\" }\nrollback_window = \"2h\"\n", 1);
    let src = src.replacen("target_group = \"hello-prod2\"\ncount = 4\n", "target_group = \"hello-prod2\"\ncount = 4\nscaling = { min = 2, max = 12 }\n", 1);
    let p = Project::new().parse(&src).expect("valid");
    let (_, prod1) = p.cluster("prod1").unwrap();
    let a = prod1.asg().expect("prod1 runs a group");
    assert_eq!((a.min, a.max, a.cpu, a.rollback_window.as_secs()), (4, 4, Some(60), 7200), "min = max = count by default");
    let (_, prod2) = p.cluster("prod2").unwrap();
    let a = prod2.asg().unwrap();
    assert_eq!((a.min, a.max, a.cpu), (2, 12, Some(60)), "scaling keys merge over the inherited ones");
    let (_, staging) = p.cluster("staging").unwrap();
    assert_eq!(staging.asg().unwrap().rollback_window.as_secs(), 3600, "the default window is one hour");
    let plain = Project::new().parse(GOOD).unwrap();
    assert!(plain.clusters().all(|(_, c)| c.asg().is_none()), "instances is the default");
}

#[test]
fn asg_settings_are_refused_where_they_were_written() {
    let p = Project::new();
    assert_eq!(p.problems(&replace("drain = \"30s\"", "drain = \"30s\"\nfleet = \"asgs\"")), vec![
        "22:9: fleet `asgs` in [deploy] is neither \"asg\" nor \"instances\"; fix: \"asg\" runs each release as an Auto Scaling group; \"instances\" (the default) launches bare instances",
    ]);
    let staging = |extra: &str| replace("load_balancer = \"hello-staging\"\ncount = 2\n", &format!("load_balancer = \"hello-staging\"\ncount = 2\n{extra}\n"));
    assert_eq!(p.problems(&staging("fleet = \"asg\"\nscaling = { min = 5, max = 3 }")), vec![
        "31:11: scaling of [env.staging.clusters.staging]: min 5 is above max 3; fix: make min at most max",
    ]);
    assert_eq!(p.problems(&staging("fleet = \"asg\"\nscaling = { min = 3, max = 6 }")), vec![
        "29:9: count 2 of [env.staging.clusters.staging] is outside its scaling bounds 3..6; fix: make count, the first group's size, fit between min and max",
    ]);
    assert_eq!(p.problems(&staging("fleet = \"asg\"\nscaling = { cpu = 0 }")), vec![
        "31:19: scaling cpu 0 in [env.staging.clusters.staging] is outside 1..100; fix: give the average CPU to track, in percent (60 is usual)",
    ]);
    assert_eq!(p.problems(&staging("scaling = { max = 4 }\nrollback_window = \"2h\"")), vec![
        "30:11: `scaling` applies to asg fleets only, and [env.staging.clusters.staging] runs fleet = \"instances\"; fix: set fleet = \"asg\" where the cluster's settings are, or remove it",
        "31:19: `rollback_window` applies to asg fleets only, and [env.staging.clusters.staging] runs fleet = \"instances\"; fix: set fleet = \"asg\" where the cluster's settings are, or remove it",
    ]);
}

#[test]
fn a_certificate_must_be_an_acm_arn_of_the_pipelines_region() {
    let p = Project::new();
    let not_acm = replace("count = 2", "count = 2\ncertificate = \"arn:aws:iam::123456789012:server-certificate/hello\"");
    assert_eq!(p.problems(&not_acm), vec![
        "30:15: certificate `arn:aws:iam::123456789012:server-certificate/hello` is not an ACM certificate ARN; fix: give the ARN ACM shows, like \"arn:aws:acm:us-east-1:123456789012:certificate/…\" (an IAM server certificate is not supported)"
    ]);
    let elsewhere = replace("[deploy]\n", "[deploy]\ncertificate = \"arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666\"\n");
    assert_eq!(p.problems(&elsewhere), vec![
        "19:15: certificate `arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666` is in region eu-west-1, but the pipeline deploys to us-east-1 (ACM certificates are regional); fix: request or import the certificate in us-east-1 and give that ARN"
    ]);
}

#[test]
fn a_certificate_and_tls_policy_are_inherited_from_deploy_env_and_cluster() {
    const CERT: &str = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666";
    const OTHER: &str = "arn:aws:acm:us-east-1:123456789012:certificate/ffff0000-1111-2222-3333-444455556666";
    let src = replace("[deploy]\n", &format!("[deploy]\ncertificate = \"{CERT}\"\n"))
        .replacen("[env.prod]\n", &format!("[env.prod]\ncertificate = \"{OTHER}\"\ntls_policy = \"ELBSecurityPolicy-TLS13-1-3-2021-06\"\n"), 1);
    let p = Project::new().parse(&src).expect("valid");
    assert_eq!(p.cluster("staging").unwrap().1.deploy.certificate.as_deref(), Some(CERT));
    let prod2 = &p.cluster("prod2").unwrap().1.deploy;
    assert_eq!((prod2.certificate.as_deref(), prod2.tls_policy.as_deref()), (Some(OTHER), Some("ELBSecurityPolicy-TLS13-1-3-2021-06")));
}
