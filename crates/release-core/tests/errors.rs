//! How an error reads to a program: `{e}` the message, `{e:#}` with its detail lines, `{e:?}` (what a `main`
//! returning `Result` prints) with its kind and exit code, and `exit_code` the documented code.

use release_core::model::error::{exit, Aws, Deploy, Error, ErrorKind, Failure, Input, Internal, LockHeld, NotFound, Refused, Stage};

#[test]
fn an_error_says_its_message_its_details_on_demand_and_its_exit_code() {
    let e = Error::not_found("no AMI for 0123456789ab; run `release bake 0123456789ab`").with_details(vec!["line one".into(), "line two".into()]);
    assert_eq!(e.to_string(), "no AMI for 0123456789ab; run `release bake 0123456789ab`");
    assert_eq!(format!("{e:#}"), "no AMI for 0123456789ab; run `release bake 0123456789ab`\n  line one\n  line two");
    assert_eq!(e.exit_code(), exit::NOT_FOUND);
    let debug = format!("{e:?}");
    assert!(debug.starts_with("no AMI for 0123456789ab") && debug.contains(&format!("exit {}", exit::NOT_FOUND)) && debug.ends_with("  line two"), "{debug}");
}

/// The README's exit code table: code -> meaning.
fn documented_codes() -> Vec<(i32, String)> {
    let readme = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let table = readme.split("## Exit codes").nth(1).expect("README has an Exit codes section");
    let rows: Vec<(i32, String)> = table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let mut cells = l.trim_matches('|').split('|').map(str::trim);
            let code = cells.next()?.parse().ok()?;
            Some((code, cells.next()?.to_owned()))
        })
        .collect();
    assert!(rows.len() >= 10, "the table was read: {rows:?}");
    rows
}

#[test]
fn every_failure_family_exits_with_the_code_the_readme_documents() {
    let readme = documented_codes();
    let duration = std::time::Duration::from_secs(300);
    // One variant of each family, and the README row its code must have (by how the meaning starts).
    let cases: Vec<(Error, &str)> = vec![
        (Internal::Invariant { what: "the unfinished record r-1 vanished".into() }.into(), "internal error"),
        (Input::Weight { given: 101 }.into(), "bad input"),
        (NotFound::Zone { zone: "example.com".into(), env: "prod".into() }.into(), "not found"),
        (Refused::AllZero.into(), "refused by a safety check"),
        (LockHeld::LostBeforeRevert { env: "prod".into() }.into(), "the environment's lock is held by someone else"),
        (Aws::NotInSync { change: "C1".into(), after: duration }.into(), "AWS failed"),
        (Aws::Call { operation: "ec2 RunInstances".into(), code: "InvalidSubnetID.NotFound".into(), message: "no subnet".into(), missing: true }.into(), "not found"),
        (Stage::NoArtifact { artifact: "dist/app.tar.gz".into() }.into(), "a build, test or Packer stage failed"),
        (Deploy::NotRunning { running: 1, total: 2, after: duration }.into(), "a deploy failed"),
        (Failure::Interrupted { what: "interrupted".into() }.into(), "interrupted"),
        (Failure::Crash { at: "launched".into() }.into(), "internal error"),
        (Failure::Superseded { by: "a newer promote".into() }.into(), "ok"),
    ];
    for (e, meaning) in cases {
        let documented: Vec<i32> = readme.iter().filter(|(_, m)| m.starts_with(meaning)).map(|(c, _)| *c).collect();
        assert_eq!(documented.len(), 1, "one README row means `{meaning}`: {readme:?}");
        assert_eq!(e.exit_code(), documented[0], "{:?} is documented as `{meaning}`", e.failure());
    }
}

#[test]
fn a_promotes_clean_up_keeps_the_kind_and_the_details_of_what_stopped_it() {
    let stopped = Error::from(Failure::Interrupted { what: "interrupted; the record stays open".into() }).with_details(vec!["[hook before_traffic] boom".into()]);
    let e = stopped.retold(Deploy::Removed { commit: "0123456789ab".into(), cluster: "prod1".into(), why: "interrupted".into(), kind: ErrorKind::Interrupted, count: 2 });
    assert_eq!(e.to_string(), "promote of 0123456789ab to prod1 failed: interrupted; the 2 new instance(s) were removed and prod1 serves what it served before");
    assert_eq!((e.kind(), e.exit_code()), (ErrorKind::Interrupted, exit::INTERRUPTED));
    assert_eq!(e.details(), ["[hook before_traffic] boom"]);
    let hook = Error::from(Deploy::Hook { hook: "before_promote".into(), what: "hook before_promote (`false`) failed with exit status 1 after 0.1s".into() });
    assert_eq!(hook.exit_code(), exit::DEPLOY_FAILED);
}
