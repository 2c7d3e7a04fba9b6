//! The AWS side of notifications: publishing an event to an SNS topic, and reading a webhook's `ssm:` secret.
//! One call each, no retry of its own beyond the SDK's: the caller (`release_core::engine::delivery::Delivery`) bounds the
//! time of an attempt and retries.

use aws_sdk_sns::types::MessageAttributeValue;
use release_core::model::event::Event;
use release_core::model::error::{Internal, NotFound};
use release_core::{Error, Result};

use crate::error::{build, sdk};
use crate::Aws;

/// SNS subjects must be "less than 100 characters long", with no line breaks or control characters.
const SUBJECT_CHARS: usize = 99;

/// The subject of an event's SNS message: its headline, on one line, cut to fit.
pub fn sns_subject(event: &Event) -> String {
    let line: String = event.headline().chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if line.chars().count() <= SUBJECT_CHARS {
        line
    } else {
        line.chars().take(SUBJECT_CHARS - 1).collect::<String>() + "…"
    }
}

/// The region of an SNS topic ARN (`arn:aws:sns:<region>:<account>:<name>`).
fn topic_region(topic: &str) -> Option<&str> {
    topic.split(':').nth(3).filter(|r| !r.is_empty())
}

impl Aws {
    /// Publishes `event` to the SNS topic `topic` (an ARN, in its own region): the event's JSON as the message,
    /// its headline as the subject, and the message attributes `app`, `env`, `outcome` and `event` (String) for
    /// subscription filter policies.
    pub async fn publish_event(&self, topic: &str, event: &Event) -> Result<()> {
        let message = serde_json::to_string(event).map_err(|e| Error::from(Internal::Encode { what: "the event", error: e.to_string() }))?;
        let attribute = |v: &str| build("an SNS message attribute", MessageAttributeValue::builder().data_type("String").string_value(v).build());
        let mut publish = self
            .sns
            .publish()
            .topic_arn(topic)
            .message(message)
            .subject(sns_subject(event))
            .message_attributes("app", attribute(&event.app)?)
            .message_attributes("env", attribute(&event.env)?)
            .message_attributes("outcome", attribute(&event.outcome)?)
            .message_attributes("event", attribute(event.event.as_str())?)
            .customize();
        // A topic of another region is published to there, not to the connection's region.
        if let Some(region) = topic_region(topic).filter(|r| *r != self.region()) {
            publish = publish.config_override(aws_sdk_sns::config::Builder::default().region(aws_sdk_sns::config::Region::new(region.to_owned())));
        }
        publish.send().await.map_err(|e| sdk("sns Publish", e))?;
        Ok(())
    }

    /// The value of the SSM parameter `name` (a SecureString is decrypted: kms:Decrypt on its key).
    pub async fn parameter(&self, name: &str) -> Result<String> {
        let out = self.ssm.get_parameter().name(name).with_decryption(true).send().await.map_err(|e| sdk("ssm GetParameter", e))?;
        out.parameter()
            .and_then(|p| p.value())
            .map(str::to_owned)
            .ok_or_else(|| NotFound::SsmValue { name: name.to_owned() }.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_one_line_of_fewer_than_100_characters() {
        let mut e: Event = serde_json::from_value(serde_json::json!({
            "event": "failed", "at": 0, "app": "hello", "env": "prod", "cluster": "prod2", "action": "promote",
            "commit": null, "commit_short": "3f2a1b2c3d4e", "subject": null, "ami": null, "from": "", "to": "",
            "actor": "alice", "caller": "", "host": "", "release_id": "r1", "outcome": "failed",
            "reason": "short", "rolled_back": true, "seconds": {}, "instances": { "launched": 0, "retired": 0 }, "link": null
        }))
        .unwrap();
        assert_eq!(sns_subject(&e), "hello/prod: promote 3f2a1b2c3d4e on prod2 failed (alice): short");
        e.reason = Some(format!("line one\nline two {}", "x".repeat(200)));
        let s = sns_subject(&e);
        assert_eq!(s.chars().count(), 99);
        assert!(s.ends_with('…') && !s.chars().any(char::is_control), "{s}");
    }

    #[test]
    fn topic_regions_come_from_the_arn() {
        assert_eq!(topic_region("arn:aws:sns:eu-west-1:123456789012:deploys"), Some("eu-west-1"));
        assert_eq!(topic_region("arn:aws:sns::123456789012:deploys"), None);
    }
}
