//! Drives `release` as a library on the in-memory cloud of release-testkit (simulated time), through
//! [`release::App::from_parts`]: provision, promote two baked commits to the idle cluster and switch traffic to
//! each, roll back, then read status and the ledger. Against AWS the only change is `App::connect(file)`.
//!
//!     cargo run --example in_memory

use std::path::Path;
use std::time::Duration;

use release::model::ids::CommitSha;
use release::model::ledger::Actor;
use release::model::pipeline;
use release::ports::{tags, ImageState};
use release_testkit::memory::MemoryCloud;

const PIPELINE: &str = r#"
app = "shop"
[build]
command = "make dist"
artifact = "dist/shop.tgz"
[bake]
template = "app.pkr.hcl"
base_ami = "ami-0a1b2c3d4e5f60718"
[env.prod]
dns = { zone = "shop.test.", record = "www.shop.test." }
[env.prod.clusters.blue]
load_balancer = "shop-blue"
count = 3
[env.prod.clusters.green]
load_balancer = "shop-green"
count = 3
"#;

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> release::Result<()> {
    let pipeline = pipeline::parse(Path::new("pipelines/shop.toml"), Path::new("."), PIPELINE, false).expect("a valid pipeline");
    let memory = MemoryCloud::new();
    let actor = Actor { name: "example".into(), caller: "arn:aws:iam::123456789012:user/example".into(), host: "laptop".into(), pid: None };
    let mut session = release::engine::Session::new(memory.cloud(), actor);
    session.reporter = std::sync::Arc::new(|line: &str| println!("  | {line}"));
    let app = release::App::from_parts(pipeline, session);
    let prod = app.env("prod")?;

    println!("provision: {} action(s)", prod.provision().await?.actions.len());
    // `release bake` would run build, test and Packer; here two images stand in for two baked commits.
    let v1 = baked(&memory, '1').await;
    let v2 = baked(&memory, '2').await;

    for sha in [&v1, &v2] {
        // Time passes between deploys; a cluster just switched away from is replaced only after `settle`.
        memory.clock.advance(Duration::from_secs(600));
        let plan = prod.plan_promote(sha).await?;
        println!("plan: {}", plan.summary);
        let promoted = prod.promote_with(sha, &Default::default(), Some(&plan)).await?;
        let switched = prod.switch_to(&promoted.cluster).await?;
        println!("{} live on {}: {} -> {}", sha.short(), promoted.cluster, switched.plan.from.describe_shares(), switched.plan.to.describe_shares());
    }

    let back = prod.plan_rollback().await?;
    println!("rollback plan: {}", back.summary);
    prod.rollback_with(&Default::default(), Some(&back)).await?;

    let status = prod.status().await?;
    for c in status.clusters {
        println!("status: {} {} {}% {} healthy {}/{}", status.env, c.cluster, c.share.unwrap_or(0), c.commit.as_deref().map_or("-", |s| &s[..12]), c.healthy, c.count);
    }
    for r in prod.history(10).await? {
        let (from, to) = r.from_to();
        println!("ledger: {:<9} {from} -> {to} {}", r.action_name(), r.outcome.as_str());
    }
    Ok(())
}

/// A complete bake of a commit, as `release bake` leaves it: tagged with app, commit and (last) the bake key.
async fn baked(memory: &MemoryCloud, digit: char) -> CommitSha {
    let sha = CommitSha::parse(&digit.to_string().repeat(40)).unwrap();
    let ami = memory.register_image(&format!("shop-{}", sha.short()), ImageState::Available);
    let t = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    memory.cloud().images.tag(&ami, &[], &[t(tags::APP, "shop"), t(tags::COMMIT, sha.as_str()), t(tags::BAKE_KEY, "example")]).await.unwrap();
    sha
}
