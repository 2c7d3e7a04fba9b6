//! The AWS side of the ports. Each module maps one service onto one port and translates SDK errors into
//! `release-core` error kinds; nothing here decides what to do. This is the only crate that names SDK types.
//! Besides the ports: SNS and SSM for the notification sinks (`notify`).

mod acm;
mod autoscaling;
mod calls;
mod dynamodb;
mod ec2;
mod elb;
mod error;
mod firewall;
pub mod iam;
mod images;
mod notify;
mod retry;
mod route53;
mod cloudwatch;

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use release_core::model::clock::{Clock, Timestamp};
use release_core::ports::Cloud;
use release_core::model::error::Input;
use release_core::{Error, Result};

pub use calls::CallCounter;
pub use elb::classic_elb_zone_id;
pub use notify::sns_subject;

/// How to reach AWS: `None` everywhere means the standard aws-config chain (env, profile, IMDS).
#[derive(Clone, Debug, Default)]
pub struct AwsOptions {
    /// One endpoint for every service (local AWS). `AWS_ENDPOINT_URL` is honoured by the chain when unset.
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    /// Static credentials (key, secret) instead of the chain's: for tests against the emulator.
    pub credentials: Option<(String, String)>,
}

/// Clients for every service `release` uses, built from one shared config.
#[derive(Clone, Debug)]
pub struct Aws {
    pub(crate) ec2: aws_sdk_ec2::Client,
    pub(crate) elb: aws_sdk_elasticloadbalancing::Client,
    pub(crate) acm: aws_sdk_acm::Client,
    pub(crate) elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub(crate) route53: aws_sdk_route53::Client,
    pub(crate) dynamodb: aws_sdk_dynamodb::Client,
    pub(crate) sts: aws_sdk_sts::Client,
    pub(crate) sns: aws_sdk_sns::Client,
    pub(crate) ssm: aws_sdk_ssm::Client,
    pub(crate) cloudwatch: aws_sdk_cloudwatch::Client,
    pub(crate) iam: aws_sdk_iam::Client,
    pub(crate) autoscaling: aws_sdk_autoscaling::Client,
    calls: CallCounter,
    region: String,
    endpoint_url: Option<String>,
    /// Target group ARNs by name: looked up once, not once per call.
    tg_arns: Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
}

impl Aws {
    /// Loads the config chain with `opts` on top. Fails with a clear error when no region is known.
    pub async fn connect(opts: &AwsOptions) -> Result<Self> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            // A missing endpoint or bad credentials must fail within seconds, not hang.
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .read_timeout(Duration::from_secs(30))
                    .operation_timeout(Duration::from_secs(120))
                    .build(),
            )
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(6)
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(5)),
            );
        if let Some(region) = &opts.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(profile) = &opts.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = &opts.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some((key, secret)) = &opts.credentials {
            loader = loader.credentials_provider(aws_sdk_sts::config::Credentials::new(key, secret, None, None, "static"));
        }
        let config = loader.load().await;
        let region = config.region().map(|r| r.to_string()).ok_or_else(|| Error::from(Input::NoRegion))?;
        let endpoint_url = config.endpoint_url().map(str::to_owned);
        let calls = CallCounter::default();
        macro_rules! client {
            ($sdk:ident) => {
                $sdk::Client::from_conf($sdk::config::Builder::from(&config).interceptor(calls.clone()).build())
            };
        }
        // A zone without capacity is the engine's to answer (another zone), not the SDK's to retry.
        let ec2 = aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(&config).interceptor(calls.clone()).retry_classifier(retry::ZoneErrorsAreNotRetried).build(),
        );
        Ok(Self {
            ec2,
            elb: client!(aws_sdk_elasticloadbalancing),
            elbv2: client!(aws_sdk_elasticloadbalancingv2),
            route53: client!(aws_sdk_route53),
            dynamodb: client!(aws_sdk_dynamodb),
            sts: client!(aws_sdk_sts),
            sns: client!(aws_sdk_sns),
            ssm: client!(aws_sdk_ssm),
            cloudwatch: client!(aws_sdk_cloudwatch),
            iam: client!(aws_sdk_iam),
            autoscaling: client!(aws_sdk_autoscaling),
            acm: client!(aws_sdk_acm),
            calls,
            region,
            endpoint_url,
            tg_arns: Default::default(),
        })
    }

    /// The AWS calls made through this connection so far.
    /// The same connection with EC2 in another region (bake copies; gc): same credentials, endpoint and call
    /// counter. Only EC2 is regional here; the other clients stay as they are.
    pub fn regional(&self, region: &str) -> Aws {
        if region == self.region {
            return self.clone();
        }
        // Spelled as a path so that the IAM reference test's scan for `self.ec2.<operation>(` does not take the
        // client's configuration for an EC2 API call.
        let conf = aws_sdk_ec2::Client::config(&self.ec2).to_builder().region(Region::new(region.to_owned())).build();
        Aws { ec2: aws_sdk_ec2::Client::from_conf(conf), region: region.to_owned(), ..self.clone() }
    }

    pub fn calls(&self) -> CallCounter {
        self.calls.clone()
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The endpoint override in force (flag or `AWS_ENDPOINT_URL`), if any.
    pub fn endpoint_url(&self) -> Option<&str> {
        self.endpoint_url.as_deref()
    }

    /// The ARN of the caller, for the ledger's actor.
    pub async fn caller_arn(&self) -> Result<String> {
        let out = self.sts.get_caller_identity().send().await.map_err(|e| error::sdk("sts GetCallerIdentity", e))?;
        Ok(out.arn().unwrap_or("unknown").to_owned())
    }

    /// Every port backed by this connection, with the system clock.
    pub fn cloud(self) -> Cloud {
        let aws = Arc::new(self);
        Cloud {
            images: aws.clone(),
            fleet: aws.clone(),
            balancer: aws.clone(),
            dns: aws.clone(),
            ledger: aws.clone(),
            firewall: aws.clone(),
            queue: aws.clone(),
            alarms: aws.clone(),
            templates: aws.clone(),
            groups: aws.clone(),
            certificates: aws.clone(),
            lock: aws,
            clock: Arc::new(SystemClock),
        }
    }
}

/// Wall-clock time and tokio sleeps.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl SystemClock {
    pub(crate) fn now_millis(self) -> i64 {
        self.now().millis()
    }
}

#[async_trait::async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        Timestamp::from_millis(ms)
    }

    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await
    }
}
