//! `release promote <sha> --env ENV`: launch fresh instances of the commit's AMI, put them behind the cluster's
//! load balancer once every one is running, retire the old ones once every new one is healthy.
//!
//! - [`plan`]: observe the world and decide ([`PromotePlan`], a plain value; `--plan` prints it);
//! - [`apply`]: carry a plan out inside the operation runner (lock, record, signals, waits).
//!
//! Invariants (DESIGN §5), each held here and proved by the tests:
//! - traffic reaches only healthy instances: new instances are registered only once running, and the old ones are
//!   deregistered only after every new one is healthy;
//! - a failure before old capacity is removed deregisters and terminates the new instances: the environment serves
//!   what it served before, and the ledger says failed;
//! - re-running after a crash converges: the unfinished record and its instances (found by tag) are adopted when
//!   they are for the same commit and settings, otherwise cleaned up; no fleet is launched twice;
//! - one environment, one operator: everything that changes AWS runs under the environment's lock.

pub mod apply;
pub mod plan;

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::ids::{AmiId, AppName, ClusterName, CommitSha, EnvName, InstanceId, ReleaseId};
use crate::pipeline::{Cluster, Environment, Pipeline};
use crate::ports::{tags, Image, Subnet};

pub use apply::{apply, deploy};
pub use plan::{observe, plan, plan_from, PromotePlan, PromoteWorld};

/// How a promote is asked for.
#[derive(Clone, Debug, Default)]
pub struct PromoteOptions {
    /// The cluster to promote to; default: the only one, or the idle one.
    pub cluster: Option<String>,
    /// Replace N instances at a time.
    pub batch: Option<u32>,
    /// Skip the wait for a cluster that was live less than `settle` ago.
    pub force: bool,
    /// The region (for `ssm:` lookups in user data).
    pub region: String,
    /// Whether to wait in the queue for a held lock (`--wait`).
    pub wait: crate::queue::Wait,
    /// Run no `[env.NAME.hooks]` (a rollback's promote: going back must not depend on the smoke tests of the
    /// release it leaves).
    pub skip_hooks: bool,
}

/// What a promote will do or did.
#[derive(Clone, Debug, Serialize)]
pub struct PromoteReport {
    /// The release (empty for a plan or a no-op).
    pub release_id: String,
    /// The app.
    pub app: AppName,
    /// The environment.
    pub env: EnvName,
    /// The cluster.
    pub cluster: ClusterName,
    /// The commit.
    pub commit: CommitSha,
    /// Its AMI.
    pub ami: AmiId,
    /// What the cluster ran before.
    pub from_commit: Option<CommitSha>,
    /// `planned`, `noop`, `completed` (an interrupted run's fleet was found serving and its record closed),
    /// `succeeded`.
    pub outcome: String,
    /// Instances launched.
    pub new_instances: Vec<InstanceId>,
    /// Old instances retired.
    pub retired_instances: Vec<InstanceId>,
    /// This app's strays retired with the old fleet.
    pub strays_retired: Vec<InstanceId>,
    /// The cluster's own instances terminated outside release (by hand?), deregistered with the old fleet.
    pub terminated_by_hand: Vec<InstanceId>,
    /// Instances of an unfinished release this run adopted.
    pub adopted: Vec<InstanceId>,
    /// Instances of failed or abandoned releases removed.
    pub cleaned: Vec<InstanceId>,
    /// The launches, per subnet (planned).
    pub launches: Vec<PlannedLaunch>,
    /// Seconds per phase.
    pub seconds: BTreeMap<String, f64>,
    /// AWS calls made by the waits (running, healthy): bounded by timeout / poll interval, not by the fleet.
    pub polls: u32,
    /// Whether the settle wait was skipped with --force.
    pub forced: bool,
    /// The hooks it ran (`[env.NAME.hooks]`), in order.
    pub hooks: Vec<crate::hooks::HookResult>,
}

/// One RunInstances call of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlannedLaunch {
    /// The subnet.
    pub subnet: String,
    /// Its zone.
    pub availability_zone: String,
    /// How many instances.
    pub count: u32,
}

/// The newest complete bake of `commit`.
pub fn find_ami(images: &[Image], commit: &CommitSha) -> Option<Image> {
    images
        .iter()
        .filter(|i| i.is_complete_bake() && i.tags.get(tags::COMMIT).map(String::as_str) == Some(commit.as_str()))
        .max_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)))
        .cloned()
}

/// A hash of the environment's resolved settings for one cluster: what user data and launch settings come from.
pub fn config_hash(pipeline: &Pipeline, env: &Environment, cluster: &Cluster) -> String {
    let d = &cluster.deploy;
    // Only what decides the instances: load balancer settings are converged by provision without new instances.
    let mut text = format!(
        "release config v2\napp {}\nenv {}\ncluster {}\ntarget {:?}\ncount {}\ntype {}\nport {}\nhealth {}\nsubnets {:?}\nsgs {:?}\nprofile {:?}\nkey {:?}\nimds {}\nroot {:?}\n",
        pipeline.app,
        env.name,
        cluster.name,
        cluster.target,
        cluster.count,
        d.instance_type,
        d.port,
        d.health_path,
        d.subnets,
        d.security_groups,
        d.instance_profile,
        d.key_name,
        d.metadata_tokens.as_str(),
        d.root_volume
    );
    for (k, v) in &env.vars {
        text.push_str(&format!("var {k}={v}\n"));
    }
    hex::encode(Sha256::digest(text.as_bytes()))[..16].to_owned()
}

/// The boot script: writes the environment's variables to `/etc/<app>/env` and restarts the service.
/// `ssm:` values are fetched on the instance at boot; their values never appear here.
pub fn user_data(app: &AppName, env_name: &EnvName, vars: &BTreeMap<String, String>, cluster: &Cluster, commit: &CommitSha, release: &ReleaseId, region: &str) -> String {
    let app = app.as_str();
    let mut plain = BTreeMap::new();
    plain.insert("RELEASE_APP".to_owned(), app.to_owned());
    plain.insert("RELEASE_ENV".to_owned(), env_name.to_string());
    plain.insert("RELEASE_CLUSTER".to_owned(), cluster.name.to_string());
    plain.insert("RELEASE_COMMIT".to_owned(), commit.to_string());
    plain.insert("RELEASE_ID".to_owned(), release.to_string());
    plain.insert("PORT".to_owned(), cluster.deploy.port.to_string());
    let mut ssm = Vec::new();
    for (k, v) in vars {
        match v.strip_prefix("ssm:") {
            Some(path) => ssm.push((k.clone(), path.to_owned())),
            None => {
                plain.insert(k.clone(), v.clone());
            }
        }
    }
    let mut s = String::from("#!/bin/bash\n# Written by release: the environment of this instance, then a restart of the service.\nset -euo pipefail\n");
    s.push_str(&format!("install -d -m 0755 /etc/{app}\numask 077\ntmp=/etc/{app}/env.tmp\ncat > \"$tmp\" <<'RELEASE_ENV_EOF'\n"));
    for (k, v) in &plain {
        s.push_str(&format!("{k}=\"{}\"\n", v.replace('\\', "\\\\").replace('"', "\\\"")));
    }
    s.push_str("RELEASE_ENV_EOF\n");
    for (k, path) in &ssm {
        s.push_str(&format!(
            "v=$(aws ssm get-parameter --region {region} --with-decryption --name '{path}' --query Parameter.Value --output text)\n\
             printf '%s=\"%s\"\\n' '{k}' \"$(printf '%s' \"$v\" | sed 's/[\\\\\"]/\\\\&/g')\" >> \"$tmp\"\n"
        ));
    }
    s.push_str(&format!("mv \"$tmp\" /etc/{app}/env\nsystemctl restart {app}.service || true\n"));
    s
}

/// Splits `count` over the subnets, spreading across zones.
pub fn spread(count: u32, subnets: &[Subnet]) -> Vec<PlannedLaunch> {
    let n = subnets.len().max(1) as u32;
    subnets
        .iter()
        .enumerate()
        .map(|(i, s)| PlannedLaunch {
            subnet: s.id.clone(),
            availability_zone: s.availability_zone.clone(),
            count: count / n + u32::from((i as u32) < count % n),
        })
        .filter(|p| p.count > 0)
        .collect()
}
