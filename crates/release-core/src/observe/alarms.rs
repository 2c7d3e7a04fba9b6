//! CloudWatch alarms as the engine sees them: one read ([`read`], one DescribeAlarms call) for every use, and the
//! one judgement of what a watched alarm's state means ([`breach`]).

use crate::model::error::{NotFound, Result};
use crate::model::pipeline::Environment;
use crate::ports::{AlarmState, AlarmStatus, Cloud};

/// The state of each alarm in `names`, in that order, in one DescribeAlarms call (none for no names); one
/// CloudWatch does not know (deleted) is [`AlarmState::Missing`], never left out.
pub async fn read(cloud: &Cloud, names: &[String]) -> Result<Vec<AlarmStatus>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let states = cloud.alarms.states(names).await?;
    Ok(names
        .iter()
        .map(|n| states.iter().find(|s| &s.name == n).cloned().unwrap_or(AlarmStatus { name: n.clone(), state: AlarmState::Missing, reason: None }))
        .collect())
}

/// The environment's watched alarms (`alarms` in `[env.NAME.rollout]`) that exist, for the pre-flight: a missing
/// one cannot be firing (a watch, which needs it, refuses it through [`require`]).
pub async fn watched(cloud: &Cloud, env: &Environment) -> Result<Vec<AlarmStatus>> {
    let names: Vec<String> = env.rollout.as_ref().map(|r| r.alarms.clone()).unwrap_or_default();
    Ok(read(cloud, &names).await?.into_iter().filter(|a| a.state != AlarmState::Missing).collect())
}

/// The states of `names`, in that order, from `states`; refuses (not found) when one does not exist: a watch needs
/// every alarm it names.
pub fn require(env: &Environment, names: &[String], states: &[AlarmStatus]) -> Result<Vec<AlarmStatus>> {
    let known = |a: &str| states.iter().find(|s| s.name == a && s.state != AlarmState::Missing);
    let missing: Vec<&str> = names.iter().map(String::as_str).filter(|a| known(a).is_none()).collect();
    if !missing.is_empty() {
        return Err(NotFound::Alarms { env: env.name.to_string(), missing: missing.into_iter().map(str::to_owned).collect() }.into());
    }
    Ok(names.iter().filter_map(|a| known(a).cloned()).collect())
}

/// The one judgement of a watch: why it must stop (the first alarm of `states` gone or in ALARM), or `None`.
pub fn breach(states: &[AlarmStatus]) -> Option<String> {
    states.iter().find_map(|s| match s.state {
        AlarmState::Missing => Some(format!("alarm {} no longer exists", s.name)),
        AlarmState::Alarm => Some(format!("alarm {} went to ALARM", s.name)),
        _ => None,
    })
}
