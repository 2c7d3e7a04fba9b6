//! The domain and engine of `release`: pipeline files, the bake key, and bake / promote / switch / rollback /
//! status written against port traits, so that the same engine drives AWS (`release-aws`) and the in-memory cloud
//! (`release-testkit`). This crate never names an AWS SDK type; a test in `tests/` keeps it that way.
//!
//! # Floors
//!
//! [`model`] (plain data) <- [`ports`] (the traits) <- [`engine`] (session, lock, queue, runner) <- [`observe`]
//! (read-only views) <- [`steps`] (the only writers: the Route53 flip, instances, hooks, the alarm watch) <- [`ops`]
//! (promote, switch, rollback, provision, gc, bake, status) <- this file. Imports point down only
//! (`tests/layers.rs`); ARCHITECTURE.md names where each effect lives.
//!
//! # Entry point
//!
//! [`Release`] is the engine's face (the `release` crate wraps it): a pipeline plus an [`engine::session::Session`] (the cloud, who
//! acts, where progress goes, signals). Each command is *observe -> plan -> apply*: `plan_*` reads the world and
//! returns a plain value that writes nothing; the command itself takes the environment's lock, plans again under
//! it (refusing when that differs from a plan the user confirmed) and applies it inside the operation runner.
//!
//! ```
//! use release_core::model::pipeline;
//! use release_core::Release;
//! # fn session() -> release_core::engine::session::Session { unimplemented!() }
//! let text = r#"
//! app = "shop"
//! [build]
//! command = "make dist"
//! artifact = "dist/shop.tgz"
//! [bake]
//! template = "app.pkr.hcl"
//! base_ami = "ami-0123456789abcdef0"
//! [env.staging.clusters.staging]
//! load_balancer = "shop-staging"
//! count = 2
//! "#;
//! let pipeline = pipeline::parse("pipelines/shop.toml".as_ref(), ".".as_ref(), text, false).unwrap();
//! assert_eq!(pipeline.env("staging").unwrap().clusters()[0].count, 2);
//! // With a session (AWS: `release_aws::Aws::connect(..).cloud()`; tests: `MemoryCloud::cloud()`):
//! // let release = Release::new(session(), pipeline);
//! // let report = release.promote("staging", &sha, &Default::default(), None).await?;
//! ```
//!
//! The library users depend on is the `release` crate (`crates/release`: `App::connect(file)`, builders, the real
//! adapters); a complete program on the in-memory cloud is its `examples/in_memory.rs`.
#![warn(missing_docs)]

pub mod model;
pub mod ports;
pub mod engine;
pub mod observe;
pub mod steps;
pub mod ops;

pub use model::error::{Error, ErrorKind, Result};

use crate::model::error::{Input, NotFound, Refused};

use crate::engine::{queue, runner};
use crate::model::{ids, ledger, pipeline};
use crate::engine::lock::UnlockReport;
use crate::model::ids::{CommitSha, EnvName};
use crate::ops::{gc, promote, provision, status, switch};
use crate::ops::promote::rollback;
use crate::ops::switch::rollout;
use crate::model::ledger::Record;
use crate::model::pipeline::Pipeline;
use crate::ops::promote::{PromoteOptions, PromotePlan, PromoteReport};
use crate::ops::promote::rollback::{RollbackPlan, RollbackReport};
use crate::engine::runner::{Op, OpSpec};
use crate::engine::session::Session;
use crate::ops::switch::{SwitchOptions, SwitchPlan, SwitchReport};

/// One pipeline and a session: everything a program needs to drive `release`.
#[derive(Clone)]
pub struct Release {
    /// The cloud, the actor, progress and signals.
    pub session: Session,
    /// The pipeline.
    pub pipeline: Pipeline,
}

impl Release {
    /// A pipeline driven through `session`.
    pub fn new(session: Session, pipeline: Pipeline) -> Self {
        Self { session, pipeline }
    }

    /// What a promote would do; writes nothing.
    pub async fn plan_promote(&self, env: &str, commit: &CommitSha, opts: &PromoteOptions) -> Result<PromotePlan> {
        let env = self.pipeline.env(env)?;
        promote::plan(&self.session, &self.pipeline, env, commit, opts).await
    }

    /// Promotes `commit` to `env` (its only cluster, or the idle one). `confirmed`: the plan shown to the user;
    /// the promote refuses when the plan made under the lock goes elsewhere.
    pub async fn promote(&self, env: &str, commit: &CommitSha, opts: &PromoteOptions, confirmed: Option<&PromotePlan>) -> Result<PromoteReport> {
        let environment = self.pipeline.env(env)?;
        let pipeline = &self.pipeline;
        if opts.wait != queue::Wait::No {
            // A ticket for a commit with no AMI would wait its turn only to fail: refused before queueing. The wait
            // may be long: the promote describes the images again once its turn comes.
            if self.session.recall_ami(commit).is_none() && crate::observe::images::find_ami(&self.session.cloud.images.app_images(&pipeline.app).await?, commit).is_none() {
                return Err(NotFound::AmiBeforeQueue { commit: commit.to_string() }.into());
            }
        }
        let what = format!("promote {} to {}", ids::short_sha(commit.as_str()), environment.name);
        let spec = OpSpec::new(format!("promote {} to {}", ids::short_sha(commit.as_str()), environment.name)).waiting(
            opts.wait,
            queue::TicketSpec { action: ledger::TicketAction::Promote, commit: Some(commit.clone()), cluster: None },
        );
        runner::run(&self.session, pipeline, environment, spec, async |op: &mut Op<'_>| {
            let world = promote::observe(op.session(), pipeline, environment, commit, opts).await?;
            // The gates again under the lock, just before the first change (they were at plan time too): a freeze,
            // or a window closing while this waited in the queue, holds it. From the records just read.
            let overridden = crate::observe::gates::check(op.cloud(), pipeline, environment, commit, &what, opts.override_gates.as_deref(), Some(&world.records)).await?;
            op.override_gates(overridden);
            let plan = promote::plan_from(pipeline, environment, commit, opts, &world, "promote")?;
            if let Some(c) = confirmed {
                if c.place.cluster != plan.place.cluster {
                    return Err(Refused::IdleChanged { then: c.place.cluster.to_string(), now: plan.place.cluster.to_string() }.into());
                }
            }
            let rep = promote::apply(op, &plan, opts).await?;
            // In place, a failed `after_traffic` hook with `rollback_on_hook_failure = true`: rolled back in this run.
            match crate::model::pipeline::hooks::wants_rollback(environment, &rep.hooks) {
                Some(hook) if !environment.is_blue_green() => rollback::after_hook(op, &hook, &rep, opts).await,
                _ => Ok(rep),
            }
        })
        .await
    }

    /// What a switch would do; writes nothing.
    pub async fn plan_switch(&self, cluster: &str, opts: &SwitchOptions) -> Result<SwitchPlan> {
        switch::plan(&self.session, &self.pipeline, cluster, opts).await
    }

    /// Sends the live name's traffic to `cluster`.
    pub async fn switch(&self, cluster: &str, opts: &SwitchOptions, confirmed: Option<&SwitchPlan>) -> Result<SwitchReport> {
        switch::switch(&self.session, &self.pipeline, cluster, opts, confirmed).await
    }

    /// What a rollback would do; writes nothing.
    pub async fn plan_rollback(&self, env: &str, opts: &PromoteOptions) -> Result<RollbackPlan> {
        let env = self.pipeline.env(env)?;
        rollback::plan(&self.session, &self.pipeline, env, opts).await
    }

    /// One step back through what was live.
    pub async fn rollback(&self, env: &str, opts: &PromoteOptions, confirmed: Option<&RollbackPlan>) -> Result<RollbackReport> {
        let env = self.pipeline.env(env)?;
        rollback::rollback(&self.session, &self.pipeline, env, opts, confirmed).await
    }

    /// What provision would create; writes nothing.
    pub async fn plan_provision(&self, env: &str) -> Result<provision::Plan> {
        let env = self.pipeline.env(env)?;
        provision::plan(&self.session.cloud, &self.pipeline, env).await
    }

    /// Creates what `env` needs.
    pub async fn provision(&self, env: &str) -> Result<provision::Plan> {
        let env = self.pipeline.env(env)?;
        provision::provision(&self.session, &self.pipeline, env).await
    }

    /// Status of one environment or all.
    pub async fn status(&self, env: Option<&str>) -> Result<Vec<status::EnvStatus>> {
        status::status(&self.session, &self.pipeline, env).await
    }

    /// The ledger of one environment, or of every environment the ledger knows (including ones no longer in the
    /// pipeline file), newest first, at most `limit` records.
    pub async fn history(&self, env: Option<&str>, limit: u32) -> Result<Vec<Record>> {
        self.history_of(env, limit, None).await
    }

    /// [`Release::history`] with only the records of one outcome (`history --outcome failed`): the newest `limit` of those.
    pub async fn history_of(&self, env: Option<&str>, limit: u32, outcome: Option<ledger::Outcome>) -> Result<Vec<Record>> {
        if limit == 0 {
            return Err(Input::ZeroLimit.into());
        }
        let cloud = &self.session.cloud;
        let p = &self.pipeline;
        let envs: Vec<EnvName> = match env {
            Some(e) => {
                let name = EnvName::parse(e)?;
                // An environment no longer in the file still has its history; one neither there nor in the ledger is a typo.
                if p.env(e).is_err() {
                    let indexed = match cloud.ledger.indexed_envs(&p.ledger_table, &p.app).await {
                        Ok(v) => v,
                        Err(e) if e.is(crate::model::error::Cause::Missing) => Vec::new(),
                        Err(e) => return Err(e),
                    };
                    if !indexed.contains(&name) {
                        let mut known: Vec<String> = p.envs.iter().map(|e| e.name.to_string()).collect();
                        for i in &indexed {
                            if !known.contains(&i.to_string()) {
                                known.push(i.to_string());
                            }
                        }
                        return Err(NotFound::EnvironmentOrLedger { name: e.to_owned(), file: p.file.clone(), known }.into());
                    }
                }
                vec![name]
            }
            None => {
                let mut envs: Vec<EnvName> = p.envs.iter().map(|e| e.name.clone()).collect();
                for e in cloud.ledger.indexed_envs(&p.ledger_table, &p.app).await? {
                    if !envs.contains(&e) {
                        envs.push(e);
                    }
                }
                envs
            }
        };
        let mut records = Vec::new();
        for e in &envs {
            // Filtered by outcome, the newest `limit` of those may lie further back than the newest `limit` records.
            let recs = cloud.ledger.records(&p.ledger_table, &p.app, e, if outcome.is_some() { None } else { Some(limit) }).await?;
            records.extend(recs.into_iter().filter(|r| outcome.is_none_or(|o| r.outcome == o)));
        }
        records.sort_by(|a, b| b.started.cmp(&a.started).then(b.release_id.cmp(&a.release_id)));
        records.truncate(limit as usize);
        Ok(records)
    }

    /// What `gc` would remove and keep, with the reasons; writes nothing.
    pub async fn plan_gc(&self, opts: &gc::GcOptions) -> Result<gc::Plan> {
        gc::plan(&self.session, &self.pipeline, opts).await
    }

    /// Removes what the app no longer needs, holding the lock of every environment (see [`gc`]).
    pub async fn gc(&self, opts: &gc::GcOptions, confirmed: Option<&gc::Plan>) -> Result<gc::Report> {
        gc::gc(&self.session, &self.pipeline, opts, confirmed).await
    }

    /// The lock holder and the waiting commands of one environment, or of every environment of the pipeline.
    pub async fn queue(&self, env: Option<&str>) -> Result<Vec<queue::QueueView>> {
        let envs: Vec<&pipeline::Environment> = match env {
            Some(e) => vec![self.pipeline.env(e)?],
            None => self.pipeline.envs.iter().collect(),
        };
        let mut out = Vec::new();
        for e in envs {
            out.push(queue::view(&self.session, &self.pipeline, e).await?);
        }
        Ok(out)
    }

    /// Removes a waiting command's ticket (`release queue cancel`); its command then leaves the queue.
    pub async fn cancel_ticket(&self, id: &str) -> Result<ledger::Ticket> {
        queue::cancel(&self.session, &self.pipeline, id).await
    }

    /// Breaks the lock of `env` when its holder stopped renewing it (its lease ran out: presumed dead) or is known
    /// to be gone; a live lock is refused (exit 5) unless `force` ([`crate::engine::lock::unlock`]).
    pub async fn unlock(&self, env: &str, force: bool) -> Result<UnlockReport> {
        crate::engine::lock::unlock(&self.session, &self.pipeline, self.pipeline.env(env)?, force).await
    }
}

/// Promotion gates (`approve`, `freeze`, `unfreeze`, `veto`, `unveto`, `plan`).
impl Release {
    /// Per environment (or the one named): the live commit, the candidate and every gate with its state.
    pub async fn plan_gates(&self, env: Option<&str>) -> Result<Vec<crate::observe::gates::EnvGates>> {
        let only = env.map(|e| self.pipeline.env(e)).transpose()?;
        crate::observe::gates::plan(&self.session.cloud, &self.pipeline, only).await
    }

    /// The actor approves `commit` for `env`.
    pub async fn approve(&self, env: &str, commit: &CommitSha, note: Option<&str>) -> Result<crate::ops::gates::GateReport> {
        crate::ops::gates::approve(&self.session, &self.pipeline, self.pipeline.env(env)?, commit, note).await
    }

    /// Freezes `env` until [`Release::unfreeze`] or `until`.
    pub async fn freeze(&self, env: &str, reason: &str, until: Option<crate::model::clock::Timestamp>) -> Result<crate::ops::gates::GateReport> {
        if reason.trim().is_empty() {
            return Err(Input::EmptyReason { flag: "--reason" }.into());
        }
        crate::ops::gates::freeze(&self.session, &self.pipeline, self.pipeline.env(env)?, reason, until).await
    }

    /// Ends the freeze of `env`.
    pub async fn unfreeze(&self, env: &str) -> Result<crate::ops::gates::GateReport> {
        crate::ops::gates::unfreeze(&self.session, &self.pipeline, self.pipeline.env(env)?).await
    }

    /// Vetoes `commit` in every environment of the app.
    pub async fn veto(&self, commit: &CommitSha, reason: &str) -> Result<crate::ops::gates::GateReport> {
        if reason.trim().is_empty() {
            return Err(Input::EmptyReason { flag: "--reason" }.into());
        }
        crate::ops::gates::veto(&self.session, &self.pipeline, commit, reason).await
    }

    /// Lifts the veto on `commit`.
    pub async fn unveto(&self, commit: &CommitSha) -> Result<crate::ops::gates::GateReport> {
        crate::ops::gates::unveto(&self.session, &self.pipeline, commit).await
    }
}

/// What `reconcile` decided for one environment with `auto = true`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Decision {
    /// The environment.
    pub env: EnvName,
    /// `promoted`, `held`, `up-to-date`, `nothing`, `skipped` (another run holds the lock), `failed`.
    pub decision: &'static str,
    /// The commit it is about, if one.
    pub commit: Option<CommitSha>,
    /// Why, as one line.
    pub reason: String,
    /// The releases it ran (promote, switch).
    pub release_ids: Vec<String>,
}

/// The controller (`release reconcile`).
impl Release {
    /// One cycle: for each environment with `auto = true`, promotes the newest complete bake that every gate lets
    /// through (blue/green: into the idle cluster, then a switch with the environment's rollout). Never a commit
    /// rolled back from in that environment, nor a vetoed one; a bake older than the live one is not "newer". Any
    /// number of reconcilers may run: the lock decides, and one that finds it held skips and says so. Reads: one
    /// describe of the app's images, one ledger query per environment involved, however many bakes there are.
    pub async fn reconcile_once(&self) -> Result<Vec<Decision>> {
        use crate::observe::gates;
        let autos: Vec<&pipeline::Environment> = self.pipeline.envs.iter().filter(|e| e.gates.auto).collect();
        if autos.is_empty() {
            return Ok(Vec::new());
        }
        let cloud = &self.session.cloud;
        let ledgers = gates::read(cloud, &self.pipeline, &autos).await?;
        let images = cloud.images.app_images(&self.pipeline.app).await?;
        let bakes = gates::bakes(&images);
        let mut out = Vec::new();
        for env in autos {
            let none = Vec::new();
            let own = ledgers.get(&env.name).unwrap_or(&none);
            let live = gates::live(own);
            let rolled = gates::rolled_back_from(own);
            let decide = |decision, commit: Option<&CommitSha>, reason: String| Decision { env: env.name.clone(), decision, commit: commit.cloned(), reason, release_ids: Vec::new() };
            let Some(cand) = gates::candidate(env, &bakes, &ledgers, |c| rolled.contains(c) || gates::veto(own, c).is_some()) else {
                out.push(decide("nothing", None, "no complete bake is eligible (requires, vetoes, rollbacks)".into()));
                continue;
            };
            // Newer than the live one: a rollback to an older bake is not undone by promoting what lies between.
            let rank = |c: &CommitSha| bakes.iter().position(|i| i.tags.get(crate::ports::tags::COMMIT).map(String::as_str) == Some(c.as_str()));
            let live_is_newer = live.as_ref().and_then(rank).zip(rank(&cand.commit)).is_some_and(|(l, c)| l < c);
            if live.as_ref() == Some(&cand.commit) || live_is_newer {
                out.push(decide("up-to-date", live.as_ref(), format!("{} runs {}, the newest eligible bake", env.name, live.as_ref().map(|l| ids::short_sha(l.as_str()).to_owned()).unwrap_or_default())));
                continue;
            }
            let firing = gates::firing(cloud, &self.pipeline, env).await?;
            let closed = gates::closed(&gates::judge(env, &cand.commit, &ledgers, &firing, cloud.clock.now()));
            if !closed.is_empty() {
                out.push(decide("held", Some(&cand.commit), closed.join("; ")));
                continue;
            }
            let mut d = decide("promoted", Some(&cand.commit), String::new());
            match self.reconcile_env(env, &cand.commit, &mut d.release_ids).await {
                Ok(how) => d.reason = how,
                Err(e) if e.kind() == ErrorKind::LockHeld => {
                    d.decision = "skipped";
                    d.reason = e.to_string();
                }
                Err(e) if matches!(e.kind(), ErrorKind::Interrupted) => return Err(e),
                Err(e) => {
                    d.decision = if e.kind() == ErrorKind::Refused { "held" } else { "failed" };
                    d.reason = e.to_string();
                }
            }
            out.push(d);
        }
        Ok(out)
    }

    async fn reconcile_env(&self, env: &pipeline::Environment, commit: &CommitSha, ids_out: &mut Vec<String>) -> Result<String> {
        let p = self.promote(env.name.as_str(), commit, &PromoteOptions::default(), None).await?;
        if !p.release_id.is_empty() {
            ids_out.push(p.release_id.clone());
        }
        if !env.is_blue_green() {
            return Ok(format!("promoted {} to {}/{}", ids::short_sha(commit.as_str()), env.name, p.cluster));
        }
        let s = self.switch(p.cluster.as_str(), &SwitchOptions::default(), None).await?;
        if !s.release_id.is_empty() {
            ids_out.push(s.release_id.clone());
        }
        Ok(format!("promoted {} to {}/{} and switched to it", ids::short_sha(commit.as_str()), env.name, p.cluster))
    }
}

/// Rollouts (`release rollout ...`, and `rollback` during one).
impl Release {
    /// Where the rollout of `env` stands.
    pub async fn rollout_status(&self, env: &str) -> Result<rollout::RolloutStatus> {
        let env = self.pipeline.env(env)?;
        rollout::status(&self.session, &self.pipeline, env).await
    }

    /// Goes past the hold of the rollout of `env` (asking the run that holds it, or resuming it here).
    pub async fn rollout_continue(&self, env: &str, wait: queue::Wait) -> Result<rollout::RequestReport> {
        let env = self.pipeline.env(env)?;
        rollout::continue_rollout(&self.session, &self.pipeline, env, wait).await
    }

    /// During a rollout held by a live run: asks it to go back and waits until it did; `None` otherwise (a holder
    /// provably gone then has its lock broken, for the rollback that follows to take over).
    pub async fn rollout_rollback(&self, env: &str) -> Result<Option<rollout::RequestReport>> {
        let env = self.pipeline.env(env)?;
        rollout::rollback_request(&self.session, &self.pipeline, env).await
    }
}
