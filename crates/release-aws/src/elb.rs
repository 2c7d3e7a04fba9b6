//! Classic ELB and ELBv2 (ALB + target group): the Balancer port.

use async_trait::async_trait;
use aws_sdk_elasticloadbalancing::types::{HealthCheck, Instance as ElbInstance, Listener};
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, LoadBalancerSchemeEnum, LoadBalancerTypeEnum, ProtocolEnum, TargetDescription,
    TargetHealthStateEnum, TargetTypeEnum,
};
use release_core::ids::InstanceId;
use release_core::pipeline::LbTarget;
use release_core::ports::{Balancer, HealthState, LbInfo, LbSpec, Network, TargetHealth};
use release_core::error::Cause;
use release_core::{Error, Result};

use crate::error::{build, sdk};
use crate::Aws;

/// Route53 alias targets need the hosted zone of the load balancer's DNS name. Classic ELBs in the emulator
/// report none, so AWS's published per-region table is the fallback (ELB and ALB share these zones).
pub fn classic_elb_zone_id(region: &str) -> Option<&'static str> {
    Some(match region {
        "us-east-1" => "Z35SXDOTRQ7X7K",
        "us-east-2" => "Z3AADJGX6KTTL2",
        "us-west-1" => "Z368ELLRRE2KJ0",
        "us-west-2" => "Z1H1FL5HABSF5",
        "ca-central-1" => "ZQSVJUPU6J1EY",
        "eu-west-1" => "Z32O12XQLNTSW2",
        "eu-west-2" => "ZHURV8PSTC4K8",
        "eu-west-3" => "Z3Q77PNBQS71R4",
        "eu-central-1" => "Z215JYRZR1TBD5",
        "eu-north-1" => "Z23TAZ7KH15VI3",
        "ap-south-1" => "ZP97RAFLXTNZK",
        "ap-northeast-1" => "Z14GRHDCWA56QT",
        "ap-northeast-2" => "ZWKZPGTI48KDX",
        "ap-southeast-1" => "Z1LMS91P8CMLE5",
        "ap-southeast-2" => "Z1GM3OXH4ZPM65",
        "sa-east-1" => "Z2P70J7HTTTPLU",
        _ => return None,
    })
}

fn missing(target: &LbTarget) -> Error {
    Error::not_found(format!("{target} does not exist")).with_cause(Cause::Missing)
}

impl Aws {
    /// A target group's ARN by name, asked once per process.
    async fn tg_arn(&self, name: &str) -> Result<String> {
        if let Some(arn) = self.tg_arns.lock().unwrap().get(name) {
            return Ok(arn.clone());
        }
        let out = self.elbv2.describe_target_groups().names(name).send().await.map_err(|e| {
            let err = sdk("elbv2 DescribeTargetGroups", e);
            if err.is(Cause::Missing) { missing(&LbTarget::TargetGroup(name.to_owned())) } else { err }
        })?;
        let arn = out
            .target_groups()
            .first()
            .and_then(|t| t.target_group_arn())
            .ok_or_else(|| missing(&LbTarget::TargetGroup(name.to_owned())))?
            .to_owned();
        self.tg_arns.lock().unwrap().insert(name.to_owned(), arn.clone());
        Ok(arn)
    }

    /// A missing load balancer is the user's to fix (provision), not an AWS failure.
    fn elb_error(target: &LbTarget, err: Error) -> Error {
        if err.is(Cause::Missing) {
            missing(target)
        } else {
            err
        }
    }

    fn zone_or_fallback(&self, reported: Option<&str>, name: &str) -> Result<String> {
        match reported.filter(|z| !z.is_empty()) {
            Some(z) => Ok(z.to_owned()),
            None => classic_elb_zone_id(&self.region).map(str::to_owned).ok_or_else(|| {
                Error::aws(format!("load balancer {name} reports no hosted zone id and region {} has no known ELB zone", self.region))
            }),
        }
    }

    async fn classic_elbs(&self) -> Result<Vec<(String, String, Option<String>)>> {
        let pages = self.elb.describe_load_balancers().into_paginator().send().try_collect().await.map_err(|e| sdk("elb DescribeLoadBalancers", e))?;
        Ok(pages
            .iter()
            .flat_map(|p| p.load_balancer_descriptions())
            .filter_map(|lb| Some((lb.load_balancer_name()?.to_owned(), lb.dns_name()?.to_owned(), lb.canonical_hosted_zone_name_id().map(str::to_owned))))
            .collect())
    }

    /// (name, arn) of every target group.
    async fn target_groups(&self) -> Result<Vec<(String, String)>> {
        let pages = self.elbv2.describe_target_groups().into_paginator().send().try_collect().await.map_err(|e| sdk("elbv2 DescribeTargetGroups", e))?;
        Ok(pages
            .iter()
            .flat_map(|p| p.target_groups())
            .filter_map(|tg| Some((tg.target_group_name()?.to_owned(), tg.target_group_arn()?.to_owned())))
            .collect())
    }

    /// (name, arn, dns, zone) of every ELBv2 load balancer.
    async fn albs(&self) -> Result<Vec<(String, String, String, Option<String>)>> {
        let pages = self.elbv2.describe_load_balancers().into_paginator().send().try_collect().await.map_err(|e| sdk("elbv2 DescribeLoadBalancers", e))?;
        Ok(pages
            .iter()
            .flat_map(|p| p.load_balancers())
            .filter_map(|lb| {
                Some((lb.load_balancer_name()?.to_owned(), lb.load_balancer_arn()?.to_owned(), lb.dns_name()?.to_owned(), lb.canonical_hosted_zone_id().map(str::to_owned)))
            })
            .collect())
    }
}

#[async_trait]
impl Balancer for Aws {
    async fn describe(&self, targets: &[LbTarget]) -> Result<Vec<LbInfo>> {
        let mut out = Vec::new();
        if targets.iter().any(|t| matches!(t, LbTarget::ClassicElb(_))) {
            for (name, dns, zone) in self.classic_elbs().await? {
                let target = LbTarget::ClassicElb(name);
                if targets.contains(&target) {
                    let hosted_zone_id = self.zone_or_fallback(zone.as_deref(), target.name())?;
                    out.push(LbInfo { target, dns_name: dns, hosted_zone_id });
                }
            }
        }
        if targets.iter().any(|t| matches!(t, LbTarget::TargetGroup(_))) {
            let groups = self.target_groups().await?;
            let albs = self.albs().await?;
            for (name, _) in groups {
                let target = LbTarget::TargetGroup(name.clone());
                if !targets.contains(&target) {
                    continue;
                }
                // A target group is only usable once the ALB in front of it exists.
                if let Some((_, _, dns, zone)) = albs.iter().find(|a| a.0 == name) {
                    let hosted_zone_id = self.zone_or_fallback(zone.as_deref(), &name)?;
                    out.push(LbInfo { target, dns_name: dns.clone(), hosted_zone_id });
                }
            }
        }
        Ok(out)
    }

    async fn create(&self, target: &LbTarget, spec: &LbSpec, network: &Network) -> Result<LbInfo> {
        let subnets: Vec<String> = network.subnets.iter().map(|s| s.id.clone()).collect();
        let sgs = (!spec.security_groups.is_empty()).then(|| spec.security_groups.clone());
        match target {
            LbTarget::ClassicElb(name) => {
                if !self.classic_elbs().await?.iter().any(|(n, ..)| n == name) {
                    let listener = build(
                        "listener",
                        Listener::builder()
                            .protocol("HTTP")
                            .load_balancer_port(80)
                            .instance_protocol("HTTP")
                            .instance_port(i32::from(spec.port))
                            .build(),
                    )?;
                    self.elb
                        .create_load_balancer()
                        .load_balancer_name(name)
                        .listeners(listener)
                        .set_subnets(Some(subnets))
                        .set_security_groups(sgs)
                        .send()
                        .await
                        .map_err(|e| sdk("elb CreateLoadBalancer", e))?;
                }
                let check = build(
                    "health check",
                    HealthCheck::builder()
                        .target(format!("HTTP:{}{}", spec.port, spec.health_path))
                        .interval(10)
                        .timeout(5)
                        .healthy_threshold(2)
                        .unhealthy_threshold(2)
                        .build(),
                )?;
                self.elb
                    .configure_health_check()
                    .load_balancer_name(name)
                    .health_check(check)
                    .send()
                    .await
                    .map_err(|e| sdk("elb ConfigureHealthCheck", e))?;
            }
            LbTarget::TargetGroup(name) => {
                let tg_arn = match self.target_groups().await?.into_iter().find(|(n, _)| n == name) {
                    Some((_, arn)) => arn,
                    None => {
                        let out = self
                            .elbv2
                            .create_target_group()
                            .name(name)
                            .protocol(ProtocolEnum::Http)
                            .port(i32::from(spec.port))
                            .vpc_id(&network.vpc_id)
                            .target_type(TargetTypeEnum::Instance)
                            .health_check_path(&spec.health_path)
                            .health_check_interval_seconds(10)
                            .healthy_threshold_count(2)
                            .unhealthy_threshold_count(2)
                            .send()
                            .await
                            .map_err(|e| sdk("elbv2 CreateTargetGroup", e))?;
                        out.target_groups()
                            .first()
                            .and_then(|t| t.target_group_arn())
                            .ok_or_else(|| Error::aws("elbv2 CreateTargetGroup returned no target group"))?
                            .to_owned()
                    }
                };
                let lb_arn = match self.albs().await?.into_iter().find(|a| &a.0 == name) {
                    Some((_, arn, ..)) => arn,
                    None => {
                        let out = self
                            .elbv2
                            .create_load_balancer()
                            .name(name)
                            .r#type(LoadBalancerTypeEnum::Application)
                            .scheme(LoadBalancerSchemeEnum::InternetFacing)
                            .set_subnets(Some(subnets))
                            .set_security_groups(sgs)
                            .send()
                            .await
                            .map_err(|e| sdk("elbv2 CreateLoadBalancer", e))?;
                        out.load_balancers()
                            .first()
                            .and_then(|l| l.load_balancer_arn())
                            .ok_or_else(|| Error::aws("elbv2 CreateLoadBalancer returned no load balancer"))?
                            .to_owned()
                    }
                };
                let listeners = self
                    .elbv2
                    .describe_listeners()
                    .load_balancer_arn(&lb_arn)
                    .send()
                    .await
                    .map_err(|e| sdk("elbv2 DescribeListeners", e))?;
                if !listeners.listeners().iter().any(|l| l.port() == Some(80)) {
                    self.elbv2
                        .create_listener()
                        .load_balancer_arn(&lb_arn)
                        .protocol(ProtocolEnum::Http)
                        .port(80)
                        .default_actions(Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(&tg_arn).build())
                        .send()
                        .await
                        .map_err(|e| sdk("elbv2 CreateListener", e))?;
                }
            }
        }
        self.describe(std::slice::from_ref(target))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::aws(format!("{target} was created but cannot be described")))
    }

    async fn register(&self, target: &LbTarget, ids: &[InstanceId], port: u16) -> Result<()> {
        match target {
            LbTarget::ClassicElb(name) => {
                let instances = ids.iter().map(|i| ElbInstance::builder().instance_id(i.as_str()).build()).collect();
                self.elb
                    .register_instances_with_load_balancer()
                    .load_balancer_name(name)
                    .set_instances(Some(instances))
                    .send()
                    .await
                    .map_err(|e| Self::elb_error(target, sdk("elb RegisterInstancesWithLoadBalancer", e)))?;
            }
            LbTarget::TargetGroup(name) => {
                let arn = self.tg_arn(name).await?;
                let targets = ids.iter().map(|i| TargetDescription::builder().id(i.as_str()).port(i32::from(port)).build()).collect();
                self.elbv2
                    .register_targets()
                    .target_group_arn(arn)
                    .set_targets(Some(targets))
                    .send()
                    .await
                    .map_err(|e| Self::elb_error(target, sdk("elbv2 RegisterTargets", e)))?;
            }
        }
        Ok(())
    }

    async fn deregister(&self, target: &LbTarget, ids: &[InstanceId]) -> Result<()> {
        match target {
            LbTarget::ClassicElb(name) => {
                let instances = ids.iter().map(|i| ElbInstance::builder().instance_id(i.as_str()).build()).collect();
                self.elb
                    .deregister_instances_from_load_balancer()
                    .load_balancer_name(name)
                    .set_instances(Some(instances))
                    .send()
                    .await
                    .map_err(|e| Self::elb_error(target, sdk("elb DeregisterInstancesFromLoadBalancer", e)))?;
            }
            LbTarget::TargetGroup(name) => {
                let arn = self.tg_arn(name).await?;
                let targets = ids.iter().map(|i| TargetDescription::builder().id(i.as_str()).build()).collect();
                self.elbv2
                    .deregister_targets()
                    .target_group_arn(arn)
                    .set_targets(Some(targets))
                    .send()
                    .await
                    .map_err(|e| Self::elb_error(target, sdk("elbv2 DeregisterTargets", e)))?;
            }
        }
        Ok(())
    }

    async fn members(&self, target: &LbTarget) -> Result<Vec<InstanceId>> {
        match target {
            LbTarget::ClassicElb(name) => {
                let out = self
                    .elb
                    .describe_load_balancers()
                    .load_balancer_names(name)
                    .send()
                    .await
                    .map_err(|e| Self::elb_error(target, sdk("elb DescribeLoadBalancers", e)))?;
                Ok(out
                    .load_balancer_descriptions()
                    .iter()
                    .flat_map(|d| d.instances())
                    .filter_map(|i| InstanceId::parse(i.instance_id()?).ok())
                    .collect())
            }
            // Target groups have no cheaper listing than their health.
            LbTarget::TargetGroup(_) => Ok(self.health(target).await?.into_iter().map(|h| h.id).collect()),
        }
    }

    async fn health(&self, target: &LbTarget) -> Result<Vec<TargetHealth>> {
        match target {
            LbTarget::ClassicElb(name) => {
                let out = self
                    .elb
                    .describe_instance_health()
                    .load_balancer_name(name)
                    .send()
                    .await
                    .map_err(|e| Self::elb_error(target, sdk("elb DescribeInstanceHealth", e)))?;
                Ok(out
                    .instance_states()
                    .iter()
                    .filter_map(|s| {
                        let id = InstanceId::parse(s.instance_id()?).ok()?;
                        let state = match s.state() {
                            Some("InService") => HealthState::Healthy,
                            Some("OutOfService") => HealthState::Unhealthy,
                            _ => HealthState::Unknown,
                        };
                        let reason = s.description().filter(|d| !d.is_empty() && *d != "N/A").map(str::to_owned);
                        Some(TargetHealth { id, state, reason })
                    })
                    .collect())
            }
            LbTarget::TargetGroup(name) => {
                let arn = self.tg_arn(name).await?;
                let out = self
                    .elbv2
                    .describe_target_health()
                    .target_group_arn(arn)
                    .send()
                    .await
                    .map_err(|e| Self::elb_error(target, sdk("elbv2 DescribeTargetHealth", e)))?;
                Ok(out
                    .target_health_descriptions()
                    .iter()
                    .filter_map(|d| {
                        let id = InstanceId::parse(d.target()?.id()?).ok()?;
                        let h = d.target_health();
                        let state = match h.and_then(|h| h.state()) {
                            Some(TargetHealthStateEnum::Healthy) => HealthState::Healthy,
                            Some(TargetHealthStateEnum::Unhealthy) => HealthState::Unhealthy,
                            Some(TargetHealthStateEnum::Initial) => HealthState::Initial,
                            Some(TargetHealthStateEnum::Draining) => HealthState::Draining,
                            _ => HealthState::Unknown,
                        };
                        let reason = h.and_then(|h| h.description()).map(str::to_owned);
                        Some(TargetHealth { id, state, reason })
                    })
                    .collect())
            }
        }
    }
}
