//! The promotion gates of a pipeline file (`requires`, `soak`, `approvals`, `windows`, `auto`): parsed into the
//! model, and every bad one refused at its file:line:col (`release validate` exits 2 on these).

use std::path::Path;
use std::time::Duration;

use release_core::model::pipeline::{parse, Diagnostic, Pipeline};

const GOOD: &str = r#"app = "hello"

[build]
command = "make dist"
artifact = "dist/hello.tar.gz"

[bake]
template = "packer-templates/app.pkr.hcl"
base_ami = "ami-12345678"

[env.staging]
auto = true
[env.staging.clusters.staging]
load_balancer = "hello-staging"
count = 1

[env.prod]
requires = ["staging"]
soak = "30m"
approvals = 2
windows = ["mon-fri 09:00-16:00 Europe/Lisbon"]
[env.prod.clusters.prod]
load_balancer = "hello-prod"
count = 2
"#;

fn parsed(src: &str) -> Result<Pipeline, Vec<Diagnostic>> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("packer-templates")).unwrap();
    std::fs::write(dir.path().join("packer-templates/app.pkr.hcl"), "# template\n").unwrap();
    parse(Path::new("pipelines/hello.toml"), dir.path(), src, true)
}

fn problems(src: &str) -> Vec<String> {
    match parsed(src) {
        Ok(_) => panic!("expected problems in:\n{src}"),
        Err(d) => d.iter().map(|d| d.to_string().trim_start_matches("pipelines/hello.toml:").to_owned()).collect(),
    }
}

fn replace(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from:?} is not in the good file");
    GOOD.replacen(from, to, 1)
}

#[test]
fn gates_parse_into_the_environment() {
    let p = parsed(GOOD).expect("valid");
    let staging = p.env("staging").unwrap();
    assert!(staging.gates.auto);
    assert!(!staging.gates.any(), "auto alone holds nothing");
    let prod = p.env("prod").unwrap();
    assert_eq!(prod.gates.requires.iter().map(|e| e.as_str()).collect::<Vec<_>>(), ["staging"]);
    assert_eq!(prod.gates.soak, Some(Duration::from_secs(1800)));
    assert_eq!(prod.gates.approvals, 2);
    assert_eq!(prod.gates.windows.iter().map(|w| w.text()).collect::<Vec<_>>(), ["mon-fri 09:00-16:00 Europe/Lisbon"]);
    assert!(!prod.gates.auto);
    let days = parsed(&replace("soak = \"30m\"", "soak = \"2d\"")).expect("days");
    assert_eq!(days.env("prod").unwrap().gates.soak, Some(Duration::from_secs(2 * 86_400)));
}

#[test]
fn an_unknown_environment_in_requires() {
    assert_eq!(problems(&replace("requires = [\"staging\"]", "requires = [\"stagign\"]")), vec![
        "18:13: `requires` of [env.prod] names `stagign`, which is not an environment of this file; fix: did you mean `staging`?",
    ]);
}

#[test]
fn a_cycle_of_requires() {
    let src = replace("auto = true", "requires = [\"prod\"]");
    assert_eq!(problems(&src), vec![
        "12:13: `requires` makes a cycle: staging -> prod -> staging; fix: no commit could ever enter these environments; remove one of the requirements",
    ]);
    assert_eq!(problems(&replace("requires = [\"staging\"]", "requires = [\"prod\"]")), vec![
        "18:13: [env.prod] requires itself; fix: remove it from `requires`",
    ]);
}

#[test]
fn a_bad_soak() {
    assert_eq!(problems(&replace("soak = \"30m\"", "soak = \"30 minutes\"")), vec![
        "19:8: `soak` in [env.prod]: `30 minutes` is not a duration: write the unit right after the number, as `30m` (units: ms, s, m, h, d); fix: write a duration like \"30s\", \"10m\", \"1h\" or \"1m30s\"",
    ]);
}

#[test]
fn malformed_windows_and_unknown_zones() {
    let src = replace("windows = [\"mon-fri 09:00-16:00 Europe/Lisbon\"]", "windows = [\"mon-fri 09:00-16:00 Europe/Lisboa\", \"weekdays 9-5\"]");
    assert_eq!(problems(&src), vec![
        "21:12: window `mon-fri 09:00-16:00 Europe/Lisboa`: `Europe/Lisboa` is not a known time zone; write an IANA name like \"Europe/Lisbon\" or \"UTC\" (in [env.prod]); fix: write \"DAYS HH:MM-HH:MM ZONE\", like \"mon-fri 09:00-16:00 Europe/Lisbon\"",
        "21:49: window `weekdays 9-5`: `weekdays` is not a list of days; write days like mon-fri, sat,sun or daily (in [env.prod]); fix: write \"DAYS HH:MM-HH:MM ZONE\", like \"mon-fri 09:00-16:00 Europe/Lisbon\"",
    ]);
}

#[test]
fn negative_approvals() {
    assert_eq!(problems(&replace("approvals = 2", "approvals = -1")), vec![
        "20:13: `approvals` in [env.prod] is -1, outside 0..100; fix: write how many distinct people must approve, 0 for none",
    ]);
}
