//! The conformance suite against both implementations of the ports.

use release_aws::{Aws, AwsOptions};
use release_testkit::emulator::Emulator;
use release_testkit::{conformance, memory::MemoryCloud};

#[tokio::test]
async fn in_memory_cloud_conforms() {
    conformance::run_all(&MemoryCloud::new().cloud()).await;
}

#[tokio::test]
async fn emulator_conforms() {
    let emu = Emulator::start();
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    let aws = Aws::connect(&AwsOptions { endpoint_url: Some(emu.url()), region: Some("us-east-1".into()), profile: None })
        .await
        .expect("connect to the emulator");
    conformance::run_all(&aws.cloud()).await;
}
