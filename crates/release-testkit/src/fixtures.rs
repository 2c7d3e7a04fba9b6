//! A small world for engine tests on the in-memory cloud: the `shop` pipeline (an in-place staging and a
//! blue/green prod), provisioned, with bakes made on demand, and sessions that record progress and take signals.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use release_core::model::ids::{ClusterName, CommitSha};
use release_core::model::ledger::{Actor, Record};
use release_core::model::pipeline::{parse, Pipeline};
use release_core::ports::{tags, ImageState, Instance};
use release_core::engine::session::{SignalSender, Session, Signals};
use release_core::model::weights::Weights;
use release_core::{Release, Result};

use crate::memory::MemoryCloud;

/// The `shop` app's pipeline: its build and bake, `[deploy]` holding `deploy`, then `rest` (environments and more).
/// Every test pipeline starts here, so that only what a test is about is written in it.
pub fn shop_pipeline(deploy: &str, rest: &str) -> Pipeline {
    let src = format!(
        r#"app = "shop"
[build]
command = "true"
artifact = "a.tgz"
[bake]
template = "t.pkr.hcl"
base_ami = "ami-0a1b2c3d4e5f60718"
[deploy]
{deploy}
{rest}"#
    );
    parse(Path::new("pipelines/shop.toml"), Path::new("."), &src, false).unwrap_or_else(|d| panic!("test pipeline: {d:#?}"))
}

/// The `shop` pipeline with `count` instances per cluster; `extra` is appended (more keys, more environments).
pub fn shop(count: u32, extra: &str) -> Pipeline {
    shop_deploy(count, "", extra)
}

/// [`shop`] with `deploy` added to its `[deploy]` table (subnets, say).
pub fn shop_deploy(count: u32, deploy: &str, extra: &str) -> Pipeline {
    shop_pipeline(
        &format!("health_timeout = \"10m\"\ndrain = \"30s\"\ninstance_profile = \"shop-app\"\n{deploy}"),
        &format!(
            r#"[env.staging]
vars = {{ APP_ENV = "staging", SECRET = "ssm:/shop/secret" }}
[env.staging.clusters.staging]
load_balancer = "shop-staging"
count = {count}
[env.prod]
dns = {{ zone = "shop.test.", record = "www.shop.test.", settle = "2m" }}
[env.prod.clusters.blue]
target_group = "shop-blue"
count = {count}
[env.prod.clusters.green]
target_group = "shop-green"
count = {count}
{extra}"#
        ),
    )
}

/// A test world: the in-memory cloud, the pipeline, and what sessions printed.
pub struct World {
    /// The cloud.
    pub cloud: MemoryCloud,
    /// The pipeline.
    pub pipeline: Pipeline,
    /// Every progress line, in order.
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl World {
    /// The `shop` world, every environment provisioned.
    pub async fn new(count: u32) -> Self {
        Self::with(shop(count, "")).await
    }

    /// A world with this pipeline, every environment provisioned.
    pub async fn with(pipeline: Pipeline) -> Self {
        let w = World { cloud: MemoryCloud::new(), pipeline, lines: Default::default() };
        for env in &w.pipeline.envs {
            w.release("ops").provision(env.name.as_str()).await.expect("provision");
        }
        w
    }

    /// A session acting as `actor`, polling every 5 s, progress recorded in `lines`.
    pub fn session(&self, actor: &str) -> Session {
        let mut s = Session::new(self.cloud.cloud(), Actor { name: actor.into(), caller: "arn:aws:iam::123456789012:user/test".into(), host: "test-host".into(), pid: None });
        let lines = self.lines.clone();
        s.reporter = Arc::new(move |l: &str| lines.lock().unwrap().push(l.to_owned()));
        s.poll = Duration::from_secs(5);
        s
    }

    /// The engine's facade with a plain session.
    pub fn release(&self, actor: &str) -> Release {
        Release::new(self.session(actor), self.pipeline.clone())
    }

    /// The facade on a machine whose clock is `ahead_ms` off the cloud's (negative: behind).
    pub fn release_skewed(&self, actor: &str, ahead_ms: i64) -> Release {
        let mut s = self.session(actor);
        s.cloud.clock = Arc::new(self.cloud.clock.skewed(ahead_ms));
        Release::new(s, self.pipeline.clone())
    }

    /// The facade with signals a test can send and a crash hook.
    pub fn release_with(&self, actor: &str, crash_at: Option<&'static str>) -> (Release, SignalSender) {
        let mut s = self.session(actor);
        let (tx, rx) = Signals::channel();
        s.signals = rx;
        if let Some(step) = crash_at {
            s.checkpoint = Arc::new(move |at: &str| {
                if at == step {
                    Err(release_core::Error::from(release_core::model::error::Failure::Crash { at: at.to_owned() }))
                } else {
                    Ok(())
                }
            });
        }
        (Release::new(s, self.pipeline.clone()), tx)
    }

    /// A complete bake of the commit made of `n` repeated.
    pub async fn bake(&self, n: char) -> CommitSha {
        let sha = CommitSha::parse(&n.to_string().repeat(40)).unwrap();
        let ami = self.cloud.register_image(&format!("shop-{}", sha.short()), ImageState::Available);
        let t = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        self.cloud
            .cloud()
            .images
            .tag(&ami, &[], &[t(tags::APP, "shop"), t(tags::COMMIT, sha.as_str()), t(tags::SUBJECT, &format!("commit {n}")), t(tags::BAKE_KEY, &format!("key{n}"))])
            .await
            .unwrap();
        sha
    }

    /// Live instances of a cluster.
    pub fn instances(&self, cluster: &str) -> Vec<Instance> {
        self.cloud.live_instances().into_iter().filter(|i| i.tags.get(tags::CLUSTER).map(String::as_str) == Some(cluster)).collect()
    }

    /// The commits a cluster's live instances run.
    pub fn commits(&self, cluster: &str) -> Vec<String> {
        let mut c: Vec<String> = self.instances(cluster).iter().filter_map(|i| i.tags.get(tags::COMMIT).cloned()).collect();
        c.sort();
        c.dedup();
        c
    }

    /// The weights of prod's live name.
    pub async fn weights(&self) -> Weights {
        let env = self.pipeline.env("prod").unwrap();
        release_core::observe::world::live_name(&self.cloud.cloud(), env).await.unwrap().unwrap().weights
    }

    /// Sets prod's weights directly (as a person in the console would).
    pub async fn set_weights(&self, pairs: &[(&str, u8)]) {
        let cloud = self.cloud.cloud();
        let env = self.pipeline.env("prod").unwrap();
        let live = release_core::observe::world::live_name(&cloud, env).await.unwrap().unwrap();
        let changes: Vec<_> = live
            .records
            .weighted
            .iter()
            .map(|r| {
                let w = pairs.iter().find(|(c, _)| *c == r.set_identifier).map_or(r.weight, |(_, w)| *w);
                release_core::ports::RecordChange::Upsert(release_core::ports::WeightedAlias { weight: w, ..r.clone() })
            })
            .collect();
        cloud.dns.submit(&live.zone, &changes, "test").await.unwrap();
    }

    /// Every record of an environment, newest first.
    pub async fn records(&self, env: &str) -> Vec<Record> {
        let env = self.pipeline.env(env).unwrap();
        self.cloud.cloud().ledger.records(&self.pipeline.ledger_table, &self.pipeline.app, &env.name, None).await.unwrap()
    }

    /// Whether any lock is held.
    pub fn locked(&self) -> bool {
        self.cloud.state().locks.values().any(|l| !l.is_empty())
    }

    /// Promotes and returns the report.
    pub async fn promote(&self, env: &str, sha: &CommitSha) -> Result<release_core::ops::promote::PromoteReport> {
        self.release("alice").promote(env, sha, &Default::default(), None).await
    }

    /// Promotes to prod's idle cluster and switches to it.
    pub async fn deploy_prod(&self, sha: &CommitSha) -> ClusterName {
        // Resolvers forget the previous cluster after the settle time; tests need not wait for it.
        self.cloud.clock.advance(Duration::from_secs(600));
        let r = self.promote("prod", sha).await.expect("promote to prod");
        self.release("alice").switch(r.cluster.as_str(), &Default::default(), None).await.expect("switch");
        r.cluster
    }
}
