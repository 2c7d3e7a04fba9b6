//! The ports: one trait per capability of the cloud, each with an AWS implementation (`release-aws`) and an
//! in-memory one (`release-testkit`), held to the same behaviour by one conformance suite.
//! Ports observe and act; they never decide. Decisions live in the engine modules of this crate.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::clock::Clock;
use crate::error::Result;
use crate::pipeline::LbTarget;

/// Where instances and load balancers live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Network {
    pub vpc_id: String,
    pub subnets: Vec<Subnet>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Subnet {
    pub id: String,
    pub availability_zone: String,
}

/// EC2 instances (and, for now, the network they run in).
#[async_trait]
pub trait Fleet: Send + Sync {
    /// The given subnets, or every default-for-AZ subnet of the default VPC when `subnets` is empty.
    /// Unknown subnet ids are a not-found error.
    async fn network(&self, subnets: &[String]) -> Result<Network>;
}

/// What a load balancer is listening with, as `provision` creates it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LbSpec {
    /// The instance port traffic is forwarded to and health-checked on.
    pub port: u16,
    pub health_path: String,
    pub security_groups: Vec<String>,
}

/// A load balancer as Route53 alias records need it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LbInfo {
    pub target: LbTarget,
    pub dns_name: String,
    /// The hosted zone of the load balancer's DNS name (alias target zone).
    pub hosted_zone_id: String,
}

/// Classic ELBs and ELBv2 target groups (with the ALB in front of each).
#[async_trait]
pub trait Balancer: Send + Sync {
    /// The subset of `targets` that exists, in one describe per kind of load balancer.
    async fn describe(&self, targets: &[LbTarget]) -> Result<Vec<LbInfo>>;
    /// Creates what is missing for `target` (for a target group: the group, an ALB of the same name and its
    /// listener) and returns it. Safe to call when parts exist already.
    async fn create(&self, target: &LbTarget, spec: &LbSpec, network: &Network) -> Result<LbInfo>;
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ZoneId(pub String);

/// One weighted alias record of the live name: one per cluster, told apart by `set_identifier` (the cluster name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WeightedAlias {
    pub name: String,
    pub set_identifier: String,
    pub weight: u8,
    pub target_dns: String,
    pub target_zone_id: String,
}

/// A record of the live name that release does not manage (plain A/CNAME, or an alias without weight).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ForeignRecord {
    pub name: String,
    pub record_type: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordSet {
    pub weighted: Vec<WeightedAlias>,
    pub foreign: Vec<ForeignRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum RecordChange {
    /// Create or replace the weighted alias with this set identifier.
    Upsert(WeightedAlias),
}

/// Route53.
#[async_trait]
pub trait Dns: Send + Sync {
    async fn find_zone(&self, zone: &str) -> Result<Option<ZoneId>>;
    async fn create_zone(&self, zone: &str) -> Result<ZoneId>;
    /// The records named exactly `name` (A records: weighted aliases and anything else).
    async fn records(&self, zone: &ZoneId, name: &str) -> Result<RecordSet>;
    /// Applies all changes in ONE change batch and waits until it is in sync.
    async fn apply(&self, zone: &ZoneId, changes: &[RecordChange], comment: &str) -> Result<()>;
}

/// The DynamoDB table of ledger records and locks.
#[async_trait]
pub trait Ledger: Send + Sync {
    async fn table_exists(&self, table: &str) -> Result<bool>;
    /// Creates the table and waits until it is usable.
    async fn create_table(&self, table: &str) -> Result<()>;
}

/// Every port, as the engine needs them together.
#[derive(Clone)]
pub struct Cloud {
    pub fleet: Arc<dyn Fleet>,
    pub balancer: Arc<dyn Balancer>,
    pub dns: Arc<dyn Dns>,
    pub ledger: Arc<dyn Ledger>,
    pub clock: Arc<dyn Clock>,
}
