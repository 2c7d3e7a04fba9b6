//! CloudWatch alarms as the engine sees them: one read (one DescribeAlarms call) for every use, and the one
//! judgement of what a watched alarm's state means.


use crate::model::error::{Error, Result};
use crate::model::pipeline::Environment;
use crate::ports::{AlarmState, AlarmStatus, Cloud};

/// Checks that every alarm exists (one DescribeAlarms call) and returns their states.
pub async fn check_alarms(cloud: &Cloud, env: &Environment, alarms: &[String]) -> Result<Vec<AlarmStatus>> {
    if alarms.is_empty() {
        return Ok(Vec::new());
    }
    let states = cloud.alarms.states(alarms).await?;
    require_alarms(env, alarms, &states)
}

/// The states of `alarms`, in that order, from `states` (what CloudWatch answered); refuses (not found) when one
/// does not exist: a watch needs every alarm it names.
pub fn require_alarms(env: &Environment, alarms: &[String], states: &[AlarmStatus]) -> Result<Vec<AlarmStatus>> {
    let missing: Vec<&str> = alarms.iter().filter(|a| !states.iter().any(|s| &s.name == *a)).map(String::as_str).collect();
    if !missing.is_empty() {
        return Err(Error::not_found(format!(
            "alarm{} {} of env {}'s rollout do{} not exist in CloudWatch; create {} or fix `alarms` in [env.{}.rollout]; nothing was changed",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", "),
            env.name,
            if missing.len() > 1 { "" } else { "es" },
            if missing.len() > 1 { "them" } else { "it" },
            env.name
        )));
    }
    Ok(alarms.iter().filter_map(|a| states.iter().find(|s| &s.name == a).cloned()).collect())
}

/// The state of each alarm in `names`, in that order; one CloudWatch omits (deleted) is `missing` rather than left
/// out, so `rollout status` shows every alarm the rollout watches.
pub async fn watched_alarms(cloud: &Cloud, names: &[String]) -> Result<Vec<AlarmStatus>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let states = cloud.alarms.states(names).await?;
    Ok(names
        .iter()
        .map(|n| states.iter().find(|s| &s.name == n).cloned().unwrap_or(AlarmStatus { name: n.clone(), state: AlarmState::Missing, reason: None }))
        .collect())
}

/// The states of the environment's watched alarms (`alarms` in `[env.NAME.rollout]`), in one DescribeAlarms call,
/// none without alarms. An alarm CloudWatch does not know is left out: it cannot be firing (rollouts and batch
/// promotes, which watch them, refuse a missing one themselves).
pub async fn alarms(cloud: &Cloud, env: &Environment) -> Result<Vec<AlarmStatus>> {
    let names: Vec<String> = env.rollout.as_ref().map(|r| r.alarms.clone()).unwrap_or_default();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    cloud.alarms.states(&names).await
}
