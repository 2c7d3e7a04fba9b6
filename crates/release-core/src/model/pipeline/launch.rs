//! What an instance is launched with, decided from the pipeline alone: its boot script (user data), the hash of
//! the settings that decide its instances, and the names of the security groups release manages.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::ids::{AppName, CommitSha, EnvName, ReleaseId};
use crate::model::pipeline::{Cluster, Environment, Pipeline};

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

/// Which of a cluster's two groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupRole {
    /// The load balancer's.
    Lb,
    /// The instances'.
    Instances,
}

/// The name of a cluster's security group.
pub fn group_name(pipeline: &Pipeline, cluster: &Cluster, role: GroupRole) -> String {
    format!("{}-{}-{}", pipeline.app, cluster.name, role.as_str())
}

impl GroupRole {
    fn as_str(self) -> &'static str {
        match self {
            GroupRole::Lb => "lb",
            GroupRole::Instances => "instances",
        }
    }
}
