//! How an error reads to a program: `{e}` the message, `{e:#}` with its detail lines, `{e:?}` (what a `main`
//! returning `Result` prints) with its kind and exit code, and `exit_code` the documented code.

use release_core::model::error::{exit, Aws, Deploy, Error, ErrorKind, Failure, Input, Internal, LockHeld, NotFound, Refused, Stage};

#[test]
fn an_error_says_its_message_its_details_on_demand_and_its_exit_code() {
    let e = Error::from(NotFound::Ami { commit: "0123456789ab".into() }).with_details(vec!["line one".into(), "line two".into()]);
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

/// Where `line` decides by an error's message text: `.message()` followed, in the same expression (through any
/// chained calls such as `.to_lowercase()` or `.trim()`), by a text test (`.contains(`, `.starts_with(`,
/// `.ends_with(`, `.strip_prefix(`), or by `==`/`!=` in an `if` or a match guard. Comment lines are not code.
/// Comparing to the text on the right (`x != Some(e.message())`) is left alone: that compares what is shown (a
/// dashboard not printing the same error twice), it does not classify.
fn decides_by_message(line: &str) -> bool {
    if line.trim_start().starts_with("//") {
        return false;
    }
    let mut from = 0;
    while let Some(at) = line[from..].find(".message()") {
        let start = from + at;
        let mut rest = &line[start + ".message()".len()..];
        // Skip chained calls: `.name(…)` with balanced parentheses.
        loop {
            if ["contains(", "starts_with(", "ends_with(", "strip_prefix("].iter().any(|t| rest.strip_prefix('.').is_some_and(|r| r.starts_with(t))) {
                return true;
            }
            let Some(call) = rest.strip_prefix('.') else { break };
            let name_len = call.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(call.len());
            let Some(args) = call[name_len..].strip_prefix('(') else { break };
            let mut depth = 1;
            let Some(end) = args.char_indices().find_map(|(i, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                (depth == 0).then_some(i)
            }) else {
                break;
            };
            rest = &args[end + 1..];
        }
        let rest = rest.trim_start();
        let before = &line[..start];
        let in_condition = before.split(|c: char| !(c.is_alphanumeric() || c == '_')).any(|w| w == "if");
        if in_condition && (rest.starts_with("==") || rest.starts_with("!=")) {
            return true;
        }
        from = start + 1;
    }
    false
}

fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Issue 21: kinds and decisions come from the variant, never from message text. Every `crates/*/src/**/*.rs`
/// is read; nothing is allow-listed.
#[test]
fn no_decision_reads_message_text() {
    // The detector itself, on lines that must and must not count.
    for bad in [
        r#"    if e.message().contains("not found") {"#,
        r#"    let gone = e.message().starts_with("no AMI");"#,
        r#"    Err(e) if e.message().to_lowercase().ends_with("vanished") => {}"#,
        r#"    if let Some(rest) = e.message().strip_prefix("lost the lock") {"#,
        r#"    Err(e) if e.message() == "interrupted" => {}"#,
        r#"        } else if err.message().trim() != "x" {"#,
    ] {
        assert!(decides_by_message(bad), "not caught: {bad}");
    }
    for good in [
        r#"    let why = if e.kind() == ErrorKind::Interrupted { "interrupted".to_owned() } else { e.message().to_owned() };"#,
        r#"    sink_line(tail, e.message());"#,
        r#"    let same = e.message() == other;"#,
        r#"    // never `if e.message().contains(..)`"#,
        r#"    if previous.error.as_deref() != Some(e.message()) {"#,
    ] {
        assert!(!decides_by_message(good), "caught wrongly: {good}");
    }
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for krate in std::fs::read_dir(&crates).unwrap() {
        let src = krate.unwrap().path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    assert!(files.len() > 50, "the sources were found: {} files", files.len());
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (i, line) in text.lines().enumerate() {
            if decides_by_message(line) {
                found.push(format!("{}:{}: {}", f.strip_prefix(&crates).unwrap_or(f).display(), i + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "decisions by message text (match on the error's failure or kind instead):\n{}", found.join("\n"));
}
