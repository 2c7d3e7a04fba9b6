//! The weights of a blue/green environment's live name: one Route53 weighted alias per cluster. This module alone
//! decides what they mean: which clusters are live, which is primary, which are idle, each one's share of traffic,
//! and what a switch changes them to. Promote, switch, rollback, rollout and status all ask it.
//!
//! Route53 sends each record `weight / sum` of the queries; when every weight is 0 it answers each record with
//! equal probability, so all-zero means "everyone live", never "no one".

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::error::{Input, NotFound, Refused, Result};
use crate::model::ids::ClusterName;

/// The weight of each cluster's record (0..=255 as Route53 allows; `release` writes 0..=100).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Weights(BTreeMap<ClusterName, u8>);

impl Weights {
    /// From (cluster, weight) pairs.
    pub fn new(pairs: impl IntoIterator<Item = (ClusterName, u8)>) -> Self {
        Self(pairs.into_iter().collect())
    }

    /// The raw weight of a cluster (0 when it has no record).
    pub fn weight(&self, cluster: &ClusterName) -> u8 {
        self.0.get(cluster).copied().unwrap_or(0)
    }

    /// Whether the cluster has a record at all.
    pub fn has(&self, cluster: &ClusterName) -> bool {
        self.0.contains_key(cluster)
    }

    /// (cluster, weight), by cluster name.
    pub fn iter(&self) -> impl Iterator<Item = (&ClusterName, u8)> {
        self.0.iter().map(|(c, w)| (c, *w))
    }

    /// Every cluster with a record.
    pub fn clusters(&self) -> impl Iterator<Item = &ClusterName> {
        self.0.keys()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn sum(&self) -> u32 {
        self.0.values().map(|w| u32::from(*w)).sum()
    }

    /// The percentage of the live name's traffic the cluster takes (0.0..=100.0).
    pub fn share(&self, cluster: &ClusterName) -> f64 {
        if !self.has(cluster) {
            return 0.0;
        }
        match self.sum() {
            0 => 100.0 / self.0.len() as f64,
            sum => f64::from(self.weight(cluster)) * 100.0 / f64::from(sum),
        }
    }

    /// The cluster's share rounded to a whole percent, as shown to people.
    pub fn percent(&self, cluster: &ClusterName) -> u8 {
        self.share(cluster).round().clamp(0.0, 100.0) as u8
    }

    /// Whether the cluster takes any traffic.
    pub fn is_live(&self, cluster: &ClusterName) -> bool {
        self.share(cluster) > 0.0
    }

    /// Clusters that take traffic.
    pub fn live(&self) -> Vec<&ClusterName> {
        self.0.keys().filter(|c| self.is_live(c)).collect()
    }

    /// The cluster taking the largest share; ties go to the first by name. `None` without records.
    pub fn primary(&self) -> Option<&ClusterName> {
        let mut best: Option<(&ClusterName, u8)> = None;
        for (c, w) in &self.0 {
            if best.is_none_or(|(_, bw)| *w > bw) {
                best = Some((c, *w));
            }
        }
        best.map(|(c, _)| c)
    }

    /// Traffic split over more than one cluster (a gradual shift under way, or all-zero).
    pub fn is_partial(&self) -> bool {
        self.live().len() > 1
    }

    /// The weights after sending `percent` of the traffic (100 when not given) to `target`; the rest goes to the
    /// cluster that is primary now (when that is not the target), every other cluster gets 0. Refuses a result
    /// where every weight is 0 (Route53 would then split traffic evenly).
    pub fn after_switch(&self, target: &ClusterName, percent: Option<u8>) -> Result<Weights> {
        let w = percent.unwrap_or(100);
        if w > 100 {
            return Err(Input::Weight { given: w }.into());
        }
        if !self.has(target) {
            return Err(NotFound::LiveRecord { cluster: target.to_string() }.into());
        }
        // The rest goes to the heaviest other cluster already taking traffic: lowering the primary's share must give
        // it to someone, and only a cluster that is live already (checked when traffic first moved to it) may get it.
        // With no other live cluster the target keeps all the traffic whatever its weight (a resumed rollout plans
        // its steps from weights that already send everything to it).
        let mut rest_to: Option<&ClusterName> = None;
        for (c, cw) in self.iter().filter(|(c, _)| *c != target && self.is_live(c)) {
            if rest_to.is_none_or(|r| cw > self.weight(r)) {
                rest_to = Some(c);
            }
        }
        let rest_to = rest_to.cloned();
        let next = Weights(
            self.0
                .keys()
                .map(|c| {
                    let v = if c == target {
                        w
                    } else if Some(c) == rest_to.as_ref() {
                        100 - w
                    } else {
                        0
                    };
                    (c.clone(), v)
                })
                .collect(),
        );
        if next.sum() == 0 {
            return Err(Refused::AllZero.into());
        }
        Ok(next)
    }

    /// The weights with exactly `cluster` at 100 and everyone else at 0.
    pub fn all_to(&self, cluster: &ClusterName) -> Weights {
        Weights(self.0.keys().map(|c| (c.clone(), if c == cluster { 100 } else { 0 })).collect())
    }

    /// `prod1=100,prod2=0`, as the ledger and Route53 change comments show them.
    pub fn describe(&self) -> String {
        self.0.iter().map(|(c, w)| format!("{c}={w}")).collect::<Vec<_>>().join(",")
    }

    /// `prod1 100%, prod2 0%`: shares as people read them.
    pub fn describe_shares(&self) -> String {
        self.0.keys().map(|c| format!("{c} {}%", self.percent(c))).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// One step of a rollout: a share of the traffic for the target, or a hold until someone says go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RolloutStep {
    /// The target's share, 1..=100.
    Percent(u8),
    /// Wait for `release rollout continue` (or `release rollback`), keeping the lock.
    Hold,
}

impl fmt::Display for RolloutStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RolloutStep::Percent(p) => write!(f, "{p}%"),
            RolloutStep::Hold => f.write_str("hold"),
        }
    }
}

impl Serialize for RolloutStep {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            RolloutStep::Percent(p) => s.serialize_u8(*p),
            RolloutStep::Hold => s.serialize_str("hold"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for RolloutStep {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            F(f64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) if (1..=100).contains(&n) => Ok(RolloutStep::Percent(n as u8)),
            // DynamoDB numbers read back through JSON may come as floats.
            Raw::F(f) if f.fract() == 0.0 && (1.0..=100.0).contains(&f) => Ok(RolloutStep::Percent(f as u8)),
            Raw::S(s) if s == "hold" => Ok(RolloutStep::Hold),
            _ => Err(serde::de::Error::custom("a rollout step is 1..100 or \"hold\"")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> ClusterName {
        ClusterName::parse(s).unwrap()
    }

    fn w(pairs: &[(&str, u8)]) -> Weights {
        Weights::new(pairs.iter().map(|(n, v)| (c(n), *v)))
    }

    #[test]
    fn shares_are_weight_over_sum() {
        let x = w(&[("blue", 0), ("green", 50)]);
        assert_eq!(x.percent(&c("green")), 100, "0/50 sends everything to green");
        assert_eq!(x.live(), vec![&c("green")]);
        assert!(!x.is_live(&c("blue")));
        let y = w(&[("blue", 90), ("green", 10)]);
        assert_eq!((y.percent(&c("blue")), y.percent(&c("green"))), (90, 10));
        assert!(y.is_partial());
        assert_eq!(y.primary(), Some(&c("blue")));
    }

    #[test]
    fn all_zero_means_everyone_is_live() {
        let x = w(&[("blue", 0), ("green", 0)]);
        assert_eq!(x.percent(&c("blue")), 50);
        assert!(x.clusters().all(|c| x.is_live(c)));
        assert!(x.is_partial());
    }

    #[test]
    fn a_switch_sends_the_rest_to_the_primary() {
        let x = w(&[("blue", 100), ("green", 0), ("red", 0)]);
        assert_eq!(x.after_switch(&c("green"), Some(10)).unwrap(), w(&[("blue", 90), ("green", 10), ("red", 0)]));
        assert_eq!(x.after_switch(&c("green"), None).unwrap(), w(&[("blue", 0), ("green", 100), ("red", 0)]));
        let partial = w(&[("blue", 90), ("green", 10), ("red", 0)]);
        assert_eq!(partial.after_switch(&c("green"), Some(50)).unwrap(), w(&[("blue", 50), ("green", 50), ("red", 0)]));
    }

    #[test]
    fn lowering_the_primary_gives_the_rest_to_the_other_live_cluster_never_to_no_one() {
        let x = w(&[("blue", 60), ("green", 40)]);
        assert_eq!(x.after_switch(&c("blue"), Some(30)).unwrap(), w(&[("blue", 30), ("green", 70)]));
        let all = w(&[("blue", 100), ("green", 0)]);
        assert_eq!(all.after_switch(&c("blue"), Some(30)).unwrap(), w(&[("blue", 30), ("green", 0)]), "no idle cluster gets traffic unchecked");
        assert_eq!(all.after_switch(&c("blue"), Some(100)).unwrap(), all);
    }

    #[test]
    fn a_switch_never_leaves_every_weight_at_zero() {
        let x = w(&[("blue", 100), ("green", 0)]);
        let err = x.after_switch(&c("blue"), Some(0)).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Refused);
        assert_eq!(x.after_switch(&c("green"), Some(0)).unwrap(), w(&[("blue", 100), ("green", 0)]));
    }
}
