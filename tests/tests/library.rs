//! The `release` library's examples (`crates/release/examples/`), run as programs against the emulator through
//! `App::connect` and the AWS config chain, asserting the world afterwards: Route53 weights, load balancer
//! membership, what runs where, and the ledger.

use release_e2e::{run_example, AwsView, Emulator, Project, Run};

async fn weights(aws: &AwsView) -> Vec<(String, i64)> {
    aws.weighted_records("example.com.", "hello.example.com.").await.into_iter().map(|(c, w, _)| (c, w)).collect()
}

fn w(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(c, w)| (c.to_string(), *w)).collect()
}

/// The ledger's rows of one environment, newest first: (action, cluster, commit, outcome).
async fn rows(aws: &AwsView, env: &str) -> Vec<(String, String, String, String)> {
    aws.ledger("release-ledger")
        .await
        .iter()
        .filter(|r| r["pk"] == format!("hello#{env}"))
        .map(|r| {
            let get = |k: &str| r.get(k).cloned().unwrap_or_else(|| "-".into());
            (get("action"), get("cluster"), get("commit"), get("outcome"))
        })
        .collect()
}

fn row(action: &str, cluster: &str, commit: &str, outcome: &str) -> (String, String, String, String) {
    (action.into(), cluster.into(), commit.into(), outcome.into())
}

/// `cluster` runs `count` instances of `commit`, and exactly those are in its load balancer.
async fn serves(aws: &AwsView, cluster: &str, commit: &str, count: usize) {
    let running = aws.running("hello", cluster).await;
    assert_eq!(running.len(), count, "{cluster}: {running:?}");
    assert!(running.iter().all(|i| i.tags["release:commit"] == commit), "{cluster} runs {commit}: {running:?}");
    let ids: Vec<String> = running.iter().map(|i| i.id.clone()).collect();
    assert_eq!(aws.elb_members(&format!("hello-{cluster}")).await, ids, "{cluster}: its load balancer holds exactly its fleet");
}

#[track_caller]
fn ok(run: &Run, name: &str) {
    assert_eq!(run.code, 0, "example {name} failed:\nstdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
}

#[tokio::test]
async fn the_library_examples_promote_switch_read_status_and_follow_events() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    let url = emu.url();
    let example = |name: &str, args: &[&str]| run_example(project.path(), &url, name, args);
    assert_eq!(weights(&aws).await, w(&[("prod1", 100), ("prod2", 0)]));

    // promote_and_switch: staging in place, prod's idle cluster (prod2), then prod's traffic to it.
    let run = example("promote_and_switch", &["pipelines/hello.toml", &a]);
    ok(&run, "promote_and_switch");
    assert!(run.stdout.contains("prod: prod1 100%, prod2 0% -> prod1 0%, prod2 100% (prod2 runs"), "{}", run.stdout);
    serves(&aws, "staging", &a, 2).await;
    serves(&aws, "prod2", &a, 4).await;
    assert_eq!(weights(&aws).await, w(&[("prod1", 0), ("prod2", 100)]));
    assert_eq!(rows(&aws, "staging").await[0], row("promote", "staging", &a, "succeeded"));
    assert_eq!(rows(&aws, "prod").await[..2], [row("switch", "prod2", &a, "succeeded"), row("promote", "prod2", &a, "succeeded")]);

    // Again with B: the same engine replaces staging in place and fills the other prod cluster.
    let run = example("promote_and_switch", &["pipelines/hello.toml", &b]);
    ok(&run, "promote_and_switch");
    serves(&aws, "staging", &b, 2).await;
    serves(&aws, "prod1", &b, 4).await;
    serves(&aws, "prod2", &a, 4).await;
    assert_eq!(weights(&aws).await, w(&[("prod1", 100), ("prod2", 0)]));
    assert_eq!(rows(&aws, "prod").await[..2], [row("switch", "prod1", &b, "succeeded"), row("promote", "prod1", &b, "succeeded")]);

    // status reads and writes nothing.
    let before = (aws.ledger("release-ledger").await.len(), weights(&aws).await);
    let run = example("status", &["pipelines/hello.toml"]);
    ok(&run, "status");
    for line in [format!("prod prod1 live 100% {} 4/4 healthy", &b[..12]), format!("prod prod2 idle 0% {} 4/4 healthy", &a[..12])] {
        assert!(run.stdout.lines().any(|l| l == line), "no line `{line}` in:\n{}", run.stdout);
    }
    assert!(run.stdout.lines().any(|l| l.starts_with("staging staging ") && l.contains(&b[..12]) && l.ends_with("2/2 healthy")), "{}", run.stdout);
    assert!(run.stdout.contains(&format!("prod ledger: switch prod1=0,prod2=100 -> prod1=100,prod2=0 succeeded")), "{}", run.stdout);
    assert_eq!((aws.ledger("release-ledger").await.len(), weights(&aws).await), before, "status changed nothing");

    // events: a rollback of prod (a switch back to prod2, which still runs A), every event printed as it came:
    // started, its steps, and the closing `rolled-back`.
    let run = example("events", &["pipelines/hello.toml", "prod"]);
    ok(&run, "events");
    let events: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with("event ")).collect();
    assert!(events.first().is_some_and(|e| e.starts_with("event started hello/prod: rollback")), "{}", run.stdout);
    assert!(events.last().is_some_and(|e| e.starts_with("event rolled-back hello/prod: rollback")), "{}", run.stdout);
    assert!(run.stdout.contains(&format!("rolled back to {a} on prod2")), "{}", run.stdout);
    assert_eq!(weights(&aws).await, w(&[("prod1", 0), ("prod2", 100)]));
    serves(&aws, "prod2", &a, 4).await;
    assert_eq!(rows(&aws, "prod").await[0], row("rollback", "prod2", &a, "succeeded"));
}
