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
        }
    }
}
