//! Ledger records and locks: what happened to an environment, and who may change it now (DESIGN §4).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::{AppName, EnvName};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Under way, or its process died; the next run of the same command resumes or cleans it up.
    Started,
    Succeeded,
    /// Failed and rolled back: the environment serves what it served before.
    Failed,
    /// Interrupted (Ctrl-C/SIGTERM) and rolled back.
    Interrupted,
    /// Found unfinished by a later run for another commit, and cleaned up.
    Abandoned,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Started => "started",
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
            Outcome::Abandoned => "abandoned",
        }
    }
}

/// One action on one environment. Written when it starts and again when it ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub app: AppName,
    pub env: EnvName,
    pub release_id: String,
    /// `promote`, `switch`, `rollback`.
    pub action: String,
    pub cluster: Option<String>,
    pub commit: Option<String>,
    pub ami: Option<String>,
    /// What the cluster (promote) or the live name (switch) had before.
    pub from: Option<String>,
    /// What it has after.
    pub to: Option<String>,
    /// CI's actor, else the git user, else the OS user.
    pub actor: String,
    /// The AWS caller identity (ARN).
    pub caller: String,
    pub host: String,
    pub started: Timestamp,
    pub finished: Option<Timestamp>,
    pub outcome: Outcome,
    /// Why it failed, or what was adopted or cleaned up.
    pub detail: Option<String>,
    pub config_hash: Option<String>,
    #[serde(default)]
    pub new_instances: Vec<String>,
    #[serde(default)]
    pub retired_instances: Vec<String>,
    /// Seconds per phase.
    #[serde(default)]
    pub seconds: BTreeMap<String, f64>,
    #[serde(default)]
    pub forced: bool,
    /// Switches: the weight sent to the target cluster.
    #[serde(default)]
    pub weight: Option<u8>,
    /// Switches: the commit the previously live cluster ran, so that a rollback knows what to go back to.
    #[serde(default)]
    pub previous_commit: Option<String>,
}

impl Record {
    /// The sort key: records of one environment sort by start time.
    pub fn sort_key(&self) -> String {
        format!("rec#{:015}#{}", self.started.millis(), self.release_id)
    }
}

/// The partition key of an environment's records and lock.
pub fn partition_key(app: &AppName, env: &EnvName) -> String {
    format!("{app}#{env}")
}

/// The lock of one environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub app: AppName,
    pub env: EnvName,
    pub holder: String,
    pub release_id: String,
    pub host: String,
    pub acquired: Timestamp,
    pub expires: Timestamp,
}

/// Who is acting: for the ledger and the lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub name: String,
    pub caller: String,
    pub host: String,
}
