//! The conformance suite, each behaviour a test of its own, against both implementations of the ports.

use std::time::Duration;

use release_core::model::ids::AmiId;
use release_core::ports::{Cloud, ZoneId};
use release_testkit::conformance::Harness;
use release_testkit::conformance_tests;
use release_testkit::emulator::Emulator;
use release_testkit::memory::MemoryCloud;

struct Memory(MemoryCloud);

#[async_trait::async_trait]
impl Harness for Memory {
    fn cloud(&self) -> Cloud {
        self.0.cloud()
    }
    async fn make_image(&self, name: &str, _base: &AmiId) -> AmiId {
        self.0.register_image(name, release_core::ports::ImageState::Available)
    }
    async fn plant_cname(&self, zone: &ZoneId, name: &str) {
        self.0.plant_cname(zone, name);
    }
    async fn wait(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
    async fn put_alarm(&self, name: &str) {
        self.0.put_alarm(name);
    }
    async fn set_alarm_state(&self, name: &str, state: release_core::ports::AlarmState) {
        self.0.set_alarm(name, state);
    }
}

struct Emu {
    emu: Emulator,
    cloud: Cloud,
}

#[async_trait::async_trait]
impl Harness for Emu {
    fn cloud(&self) -> Cloud {
        self.cloud.clone()
    }
    async fn make_image(&self, name: &str, base: &AmiId) -> AmiId {
        AmiId::parse(&self.emu.create_image(name, base.as_str())).unwrap()
    }
    async fn plant_cname(&self, zone: &ZoneId, name: &str) {
        self.emu.plant_cname(&zone.0, name, "elsewhere.example.net");
    }
    async fn wait(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
    async fn put_alarm(&self, name: &str) {
        self.emu.put_metric_alarm(name);
    }
    async fn set_alarm_state(&self, name: &str, state: release_core::ports::AlarmState) {
        self.emu.set_alarm_state(name, state.as_str());
    }
}

mod memory {
    use super::*;
    fn harness() -> Memory {
        let m = MemoryCloud::new();
        // Route53 takes a while to propagate; the suite waits for it.
        m.state().insync_after = Duration::from_secs(30);
        Memory(m)
    }
    conformance_tests!((flavor = "current_thread", start_paused = true), harness());
}

mod emulator {
    use super::*;
    async fn harness() -> Emu {
        let emu = Emulator::start();
        let aws = release_aws::Aws::connect(&release_aws::AwsOptions {
            endpoint_url: Some(emu.url()),
            region: Some("us-east-1".into()),
            profile: None,
            credentials: Some(("test".into(), "test".into())),
        })
        .await
        .expect("connect to the emulator");
        Emu { cloud: aws.cloud(), emu }
    }
    conformance_tests!((), harness().await);
}
