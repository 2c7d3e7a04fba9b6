//! The `Alarms` port over CloudWatch: one DescribeAlarms call for every alarm a rollout watches.

use aws_sdk_cloudwatch::types::{AlarmType, StateValue};
use release_core::ports::{AlarmState, AlarmStatus, Alarms};
use release_core::model::error::Input;
use release_core::Result;

use crate::error::sdk;
use crate::Aws;

fn state(v: Option<&StateValue>) -> AlarmState {
    match v {
        Some(StateValue::Alarm) => AlarmState::Alarm,
        Some(StateValue::Ok) => AlarmState::Ok,
        // INSUFFICIENT_DATA, or a value this SDK does not know: not a breach.
        _ => AlarmState::InsufficientData,
    }
}

#[async_trait::async_trait]
impl Alarms for Aws {
    async fn states(&self, names: &[String]) -> Result<Vec<AlarmStatus>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        if names.len() > 100 {
            return Err(Input::TooManyAlarms { count: names.len() }.into());
        }
        // Names given: CloudWatch answers them all in one page (MaxRecords is 100, the most names it takes).
        let out = self
            .cloudwatch
            .describe_alarms()
            .set_alarm_names(Some(names.to_vec()))
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .max_records(100)
            .send()
            .await
            .map_err(|e| sdk("cloudwatch DescribeAlarms", e))?;
        let mut list: Vec<AlarmStatus> = out
            .metric_alarms()
            .iter()
            .map(|a| AlarmStatus { name: a.alarm_name().unwrap_or_default().to_owned(), state: state(a.state_value()), reason: a.state_reason().map(str::to_owned) })
            .collect();
        list.extend(out.composite_alarms().iter().map(|a| AlarmStatus {
            name: a.alarm_name().unwrap_or_default().to_owned(),
            state: state(a.state_value()),
            reason: a.state_reason().map(str::to_owned),
        }));
        Ok(list)
    }
}
