//! Drives `release` as a library: load a pipeline, provision, promote a baked commit to the idle cluster, switch
//! traffic to it, roll back, and read status and the ledger, all on the in-memory cloud (simulated time).
//! Against AWS, the only change is the cloud: `release_aws::Aws::connect(&opts).await?.cloud()`.
//!
//!     cargo run -p release-testkit --example promote_and_switch

use std::path::Path;

use release_core::model::ids::CommitSha;
use release_core::model::ledger::Actor;
use release_core::model::pipeline;
use release_core::ports::{tags, ImageState};
use release_core::ops::promote::PromoteOptions;
use release_core::engine::session::Session;
use release_core::ops::switch::SwitchOptions;
use release_core::Release;
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
async fn main() -> release_core::Result<()> {
    let pipeline = pipeline::parse(Path::new("pipelines/shop.toml"), Path::new("."), PIPELINE, false).expect("a valid pipeline");
    let memory = MemoryCloud::new();
    let actor = Actor { name: "example".into(), caller: "arn:aws:iam::123456789012:user/example".into(), host: "laptop".into(), pid: None };
    let mut session = Session::new(memory.cloud(), actor);
    session.reporter = std::sync::Arc::new(|line: &str| println!("  | {line}"));
    let release = Release::new(session, pipeline);

    println!("provision: {} action(s)", release.provision("prod").await?.actions.len());
    // `release bake` would run build, test and Packer; here two images stand in for two baked commits.
    let v1 = baked(&memory, '1').await;
    let v2 = baked(&memory, '2').await;

    for sha in [&v1, &v2] {
        // Time passes between deploys; a cluster just switched away from is replaced only after `settle`.
        memory.clock.advance(std::time::Duration::from_secs(600));
        let plan = release.plan_promote("prod", sha, &PromoteOptions::default()).await?;
        println!("plan: {}", plan.summary);
        let promoted = release.promote("prod", sha, &PromoteOptions::default(), Some(&plan)).await?;
        let switched = release.switch(promoted.cluster.as_str(), &SwitchOptions::default(), None).await?;
        println!("{} live on {}: {} -> {}", &sha.as_str()[..12], promoted.cluster, switched.plan.from.describe_shares(), switched.plan.to.describe_shares());
    }

    let back = release.plan_rollback("prod", &PromoteOptions::default()).await?;
    println!("rollback plan: {}", back.summary);
    release.rollback("prod", &PromoteOptions::default(), Some(&back)).await?;

    for env in release.status(Some("prod")).await? {
        for c in env.clusters {
            println!("status: {} {} {}% {} healthy {}/{}", env.env, c.cluster, c.share.unwrap_or(0), c.commit.as_deref().map_or("-", |s| &s[..12]), c.healthy, c.count);
        }
    }
    for r in release.history(Some("prod"), 10).await? {
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
