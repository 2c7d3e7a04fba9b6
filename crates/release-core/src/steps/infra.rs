//! What `provision` creates and converges: the ledger table, security groups and their rules, load balancers and
//! hosted zones. Each call names what it was doing when it fails.
//!
//! The ledger table is the one thing created outside the runner: the lock the runner takes lives in it.

use crate::model::error::{Result, ResultExt};
use crate::model::ids::{AppName, EnvName};
use crate::model::pipeline::LbTarget;
use crate::ports::{Cloud, IngressRule, LbInfo, LbSpec, Network, Zone};

/// Creates the ledger table (before any lock can be taken: the locks live in it).
pub async fn create_table(cloud: &Cloud, table: &str) -> Result<()> {
    cloud.ledger.create_table(table).await.context(format!("creating table {table}"))
}

/// Notes `env` of `app` in the table's index of environments (what `history` and `gc` read).
pub async fn index_env(cloud: &Cloud, table: &str, app: &AppName, env: &EnvName) -> Result<()> {
    cloud.ledger.index_env(table, app, env).await
}

/// Creates a security group; its id.
pub async fn create_group(cloud: &Cloud, vpc: &str, name: &str, description: &str, tags: &[(String, String)]) -> Result<String> {
    cloud.firewall.create_group(vpc, name, description, tags).await.context(format!("creating security group {name}"))
}

/// Allows `rules` into group `id` (named `group`).
pub async fn allow(cloud: &Cloud, id: &str, group: &str, rules: &[IngressRule]) -> Result<()> {
    cloud.firewall.authorize(id, rules).await.context(format!("allowing traffic into {group}"))
}

/// Revokes `rules` of group `id` (named `group`).
pub async fn revoke(cloud: &Cloud, id: &str, group: &str, rules: &[IngressRule]) -> Result<()> {
    cloud.firewall.revoke(id, rules).await.context(format!("revoking rules of {group}"))
}

/// Creates a cluster's load balancer (with its target group and listener), each part tagged `tags` at creation.
pub async fn create_lb(cloud: &Cloud, target: &LbTarget, spec: &LbSpec, network: &Network, tags: &[(String, String)]) -> Result<LbInfo> {
    cloud.balancer.create(target, spec, network, tags).await.context(format!("creating {target}"))
}

/// Converges a load balancer's settings (health check, listener, groups) to `spec`.
pub async fn configure_lb(cloud: &Cloud, target: &LbTarget, spec: &LbSpec) -> Result<()> {
    cloud.balancer.configure(target, spec).await.context(format!("configuring {target}"))
}

/// Creates a hosted zone.
pub async fn create_zone(cloud: &Cloud, zone: &str) -> Result<Zone> {
    cloud.dns.create_zone(zone).await.context(format!("creating hosted zone {zone}"))
}
