//! A safety check said no (exit 4); nothing was changed.

use std::fmt;

/// Which safety check refused, with the facts it judged on.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refused {
    /// The idle cluster a promote goes to is not the one of the plan the user confirmed.
    IdleChanged {
        /// The cluster of the confirmed plan.
        then: String,
        /// The idle cluster now.
        now: String,
    },
    /// A switch's weights are not those of the plan the user confirmed.
    WeightsChanged {
        /// The weights the confirmed plan went from (`prod1=100,prod2=0`).
        then_from: String,
        /// The weights the confirmed plan went to.
        then_to: String,
        /// The weights now.
        now_from: String,
        /// The weights the plan goes to now.
        now_to: String,
    },
    /// A change would leave every cluster at weight 0 (Route53 would then split traffic evenly).
    AllZero,
    /// The load balancer of the cluster traffic would go to serves instances that are not the cluster's.
    Strays {
        /// The load balancer (`target group hello-prod1`).
        target: String,
        /// The cluster.
        cluster: String,
        /// The strays, described.
        strays: Vec<String>,
    },
    /// The cluster traffic would go to is not ready (too few instances, unhealthy, mixed commits).
    NotReady {
        /// The cluster.
        cluster: String,
        /// What is wrong with it.
        problems: Vec<String>,
    },
    /// A watched alarm fires now, so traffic must not move toward the cluster it watches.
    AlarmFiring {
        /// The environment.
        env: String,
        /// The alarms in ALARM.
        firing: Vec<String>,
        /// What moving the traffic would do (`a promote in batches would stop after its first batch`).
        what: String,
    },
    /// Weighted records of the live name point elsewhere than their clusters' load balancers.
    Misdirected {
        /// Each misdirected record, described.
        records: Vec<String>,
        /// The environment to provision.
        env: String,
    },
    /// The world changed between the plan the user confirmed and the plan made under the lock.
    PlanChanged {
        /// The command to run again (`switch`, `rollback`, `gc`, `promote`).
        command: &'static str,
        /// What the confirmed plan said.
        then: String,
        /// What the plan says now.
        now: String,
    },
    /// The user did not confirm the plan.
    NotConfirmed,
    /// The live name's weights match no step of the unfinished rollout at or after the one it reached: someone
    /// changed them by hand.
    WeightsOffSteps {
        /// The environment.
        env: String,
        /// The live shares (`blue 70%, green 30%`).
        shares: String,
        /// The step the rollout reached, named (`2 (50%)`, `before the first`).
        step: String,
    },
    /// A switch to another cluster than the one of an unfinished rollout whose process died.
    RolloutUnfinished {
        /// The rollout's release id.
        release_id: String,
        /// The environment.
        env: String,
        /// The cluster the rollout goes to.
        cluster: String,
        /// The step its process died at, named.
        step: String,
    },
    /// A rollback asked of a live rollout that ended (otherwise than rolled back) before it saw the request.
    RolloutEnded {
        /// The rollout's release id.
        release_id: String,
        /// How it ended (`succeeded`).
        outcome: String,
        /// The environment.
        env: String,
    },
    /// Clusters of a blue/green environment served by one load balancer: a Route53 flip between them moves no
    /// traffic.
    SharedLoadBalancer {
        /// The environment.
        env: String,
        /// The load balancer (`ALB legacy-alb`).
        lb: String,
        /// The clusters it serves.
        clusters: Vec<String>,
    },
    /// A cluster's target group exists, is not release's, and no load balancer forwards to it: serving it would
    /// need a load balancer of release's attached to someone else's group.
    ExternalUnserved {
        /// The target (`target group legacy-tg`).
        target: String,
        /// The cluster.
        cluster: String,
    },
    /// The live name exists as a record release does not manage (a CNAME, a simple A record).
    ForeignRecord {
        /// The record's name.
        name: String,
        /// Its type (`CNAME`).
        record_type: String,
        /// The environment.
        env: String,
    },
    /// A promote to a cluster that takes live traffic.
    LiveCluster {
        /// The cluster.
        cluster: String,
        /// Its share of the traffic, in percent.
        percent: u8,
        /// The live name (empty without dns).
        record: String,
    },
    /// A promote to a blue/green environment whose every cluster takes live traffic.
    NoIdleCluster {
        /// The environment.
        env: String,
        /// The shares (`blue 50%, green 50%`).
        shares: String,
    },
    /// A promote to a blue/green environment whose records taking traffic alias another cluster's load balancer:
    /// which cluster is idle cannot be told from the weights.
    MisdirectedLive {
        /// Each misdirected record, described.
        records: Vec<String>,
        /// The environment to provision.
        env: String,
    },
    /// No subnet of the cluster is in a zone that offers its instance type.
    NoOfferedSubnet {
        /// The cluster.
        cluster: String,
        /// The instance type.
        instance_type: String,
        /// Each subnet skipped and why.
        skipped: Vec<String>,
    },
    /// Instance subnets in zones the cluster's load balancer is not enabled in: their instances would never be
    /// InService (ELBv2 `unused`, `Target.NotInUse`; a classic ELB keeps them OutOfService).
    ZoneNotServed {
        /// The cluster.
        cluster: String,
        /// Its load balancer.
        target: String,
        /// Each subnet outside, with its zone (`subnet-… (us-east-1c)`).
        subnets: Vec<String>,
        /// The zones the load balancer is enabled in.
        served: Vec<String>,
    },
    /// The cluster's load balancer serves another app's instances: not release's to retire.
    ForeignStrays {
        /// The load balancer (`target group hello-prod1`).
        target: String,
        /// The cluster.
        cluster: String,
        /// This app.
        app: String,
        /// The foreign instances, described.
        strays: Vec<String>,
    },
    /// A rollback that would promote into an idle cluster, in an environment with none.
    NoIdleToRollBack {
        /// The environment.
        env: String,
    },
    /// `status`: a serving cluster runs fewer instances than its count (capacity was lost).
    ShortCluster {
        /// The cluster.
        cluster: String,
        /// The environment.
        env: String,
        /// Its role (`live`, `in-place`).
        role: String,
        /// How many instances it runs.
        total: usize,
        /// How many of them are healthy in its load balancer.
        healthy: usize,
        /// How many it should.
        count: u32,
        /// Its instances terminated by hand, described.
        terminated: Vec<String>,
        /// The commit to promote again, short: the one it runs, else the one the ledger last put on it.
        commit: Option<String>,
    },
    /// The gc plan made under the locks would remove what the plan shown to the user did not list.
    GcPlanGrew {
        /// The images it would remove besides; empty when only orphan instances are new.
        images: Vec<String>,
    },
    /// The serving group of an asg cluster runs more instances than the pipeline's `scaling.max` allows a new group:
    /// a deploy never shrinks a fleet that autoscaling grew, nor clamps it silently.
    DesiredOverMax {
        /// The cluster.
        cluster: String,
        /// The serving group.
        group: String,
        /// Its desired capacity.
        desired: u32,
        /// The pipeline's max.
        max: u32,
    },
    /// A promotion gate of the environment is closed (`requires`, `soak`, `approvals`, `windows`, a freeze, a veto).
    GateClosed {
        /// What was asked (`promote 3f2a1b2 to prod`).
        what: String,
        /// Each closed gate with its reason (`approvals: 1 of 2 (alice)`).
        closed: Vec<String>,
    },
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::IdleChanged { then, now } => {
                write!(f, "the idle cluster changed since the plan was shown ({then} then, {now} now); nothing was changed, run the promote again")
            }
            Refused::WeightsChanged { then_from, then_to, now_from, now_to } => write!(
                f,
                "the weights changed since the plan was shown ({then_from} -> {then_to} then, {now_from} -> {now_to} now); nothing was changed, run the switch again"
            ),
            Refused::AllZero => f.write_str(
                "that would leave every cluster at weight 0, and Route53 would then split traffic evenly over all of them; \
                 send the traffic to another cluster instead (`release switch <cluster>`)",
            ),
            Refused::Strays { target, cluster, strays } => write!(
                f,
                "{target} of cluster {cluster} serves instances that are not its current ones: {}; promote to it again to retire them (this app's), deregister them by hand, or --force; nothing was changed",
                strays.join(", ")
            ),
            Refused::NotReady { cluster, problems } => {
                write!(f, "cluster {cluster} is not ready for traffic: {}; nothing was changed (--force to switch anyway)", problems.join("; "))
            }
            Refused::AlarmFiring { env, firing, what } => {
                let many = firing.len() > 1;
                write!(
                    f,
                    "alarm{} {} of env {env} {} in ALARM now, so {what}; fix {} or remove {} from `alarms` in [env.{env}.rollout] (--force does not skip this); nothing was changed",
                    if many { "s" } else { "" },
                    firing.join(", "),
                    if many { "are" } else { "is" },
                    if many { "them" } else { "it" },
                    if many { "them" } else { "it" },
                )
            }
            Refused::Misdirected { records, env } => write!(
                f,
                "{}; switching would send traffic there; run `release provision --env {env}` to point it at the load balancer, then switch again (--force does not skip this); nothing was changed",
                records.join("; ")
            ),
            Refused::PlanChanged { command, then, now } => {
                write!(f, "the environment changed since the plan was shown (then: {then}; now: {now}); nothing was changed, run the {command} again")
            }
            Refused::NotConfirmed => f.write_str("not confirmed; nothing was changed (pass --yes to skip the question)"),
            Refused::WeightsOffSteps { env, shares, step } => write!(
                f,
                "the live name's weights ({shares}) are none of the rollout's steps at or after {step} (someone changed them); run `release rollback --env {env}` to go back, or `release switch` with --weight to choose"
            ),
            Refused::RolloutUnfinished { release_id, env, cluster, step } => write!(
                f,
                "the rollout {release_id} of env {env} to cluster {cluster} is unfinished (its process died at {step}); resume it with `release switch {cluster}` or go back with `release rollback --env {env}`; nothing was changed"
            ),
            Refused::RolloutEnded { release_id, outcome, env } => {
                write!(f, "rollout {release_id} ended {outcome} before it saw the rollback request; run `release rollback --env {env}` again")
            }
            Refused::SharedLoadBalancer { env, lb, clusters } => write!(
                f,
                "clusters {} of env {env} are all served by {lb}, so a Route53 switch between them would move no traffic; give each cluster a target group behind a load balancer of its own",
                clusters.join(" and ")
            ),
            Refused::ExternalUnserved { target, cluster } => write!(
                f,
                "{target} of cluster {cluster} exists but release did not make it and no load balancer forwards to it; put it behind your load balancer, or name a target group that does not exist yet (release then makes one with its own ALB)"
            ),
            Refused::ForeignRecord { name, record_type, env } => {
                write!(f, "{name} already exists as a {record_type} record that release does not manage; delete it or choose another `record` for env {env}")
            }
            Refused::LiveCluster { cluster, percent, record } => {
                write!(f, "cluster {cluster} is live (it takes {percent}% of {record}); promote to an idle cluster, or switch away from {cluster} first")
            }
            Refused::NoIdleCluster { env, shares } => write!(
                f,
                "every cluster of env {env} takes live traffic ({shares}); finish or undo the shift first (`release switch <cluster>` or `release rollback --env {env}`)"
            ),
            Refused::MisdirectedLive { records, env } => write!(
                f,
                "{}; which cluster takes traffic cannot be told from the weights; run `release provision --env {env}` to point each record at its cluster's load balancer, then promote again; nothing was changed",
                records.join("; ")
            ),
            Refused::NoOfferedSubnet { cluster, instance_type, skipped } => write!(
                f,
                "no subnet of cluster {cluster} is in a zone that offers {instance_type}: {}; choose another instance_type or subnets",
                skipped.join("; ")
            ),
            Refused::ZoneNotServed { cluster, target, subnets, served } => write!(
                f,
                "cluster {cluster}'s subnet {} is in a zone {target} is not enabled in (it serves {}): instances there would never be InService; list subnets in those zones, or enable the zone on the load balancer",
                subnets.join(", "),
                if served.is_empty() { "no zone".to_owned() } else { served.join(", ") }
            ),
            Refused::ForeignStrays { target, cluster, app, strays } => write!(
                f,
                "{target} of cluster {cluster} serves instances that are not {app}'s: {}; deregister them by hand (they are not release's to retire)",
                strays.join(", ")
            ),
            Refused::NoIdleToRollBack { env } => write!(f, "env {env} has no idle cluster to roll back into"),
            Refused::ShortCluster { cluster, env, role, total, healthy, count, terminated, commit } => {
                write!(f, "cluster {cluster} of {env} is {role} {total}/{count}")?;
                if !terminated.is_empty() {
                    write!(f, " ({})", terminated.join(", "))?;
                }
                if *total > 0 && *healthy == 0 {
                    write!(f, " and none of them is healthy in its load balancer")?;
                }
                let commit = commit.as_deref().unwrap_or("<sha>");
                // In place a promote replaces the short cluster itself; in blue/green it goes to the idle cluster
                // (never the live one), so the way to full capacity is a fresh fleet there and a switch to it.
                if role == "in-place" {
                    write!(f, "; `release promote {commit} --env {env}` launches a full fleet again")
                } else {
                    write!(f, "; `release promote {commit} --env {env}` launches a full fleet into the idle cluster, then `release switch` to it")
                }
            }
            Refused::DesiredOverMax { cluster, group, desired, max } => write!(
                f,
                "group {group} of cluster {cluster} runs {desired} instances, more than scaling.max = {max} allows a new group; raise scaling.max to at least {desired} and promote again; nothing was changed"
            ),
            Refused::GateClosed { what, closed } => write!(
                f,
                "{what} is held by its gates: {}; nothing was changed (`release plan` shows every gate; break glass with --override-gates --reason TEXT)",
                closed.join("; ")
            ),
            Refused::GcPlanGrew { images } => write!(
                f,
                "the world changed since the plan was shown (now also {}); nothing was changed, run gc again",
                if images.is_empty() { "orphan instances".to_owned() } else { images.join(", ") }
            ),
        }
    }
}
