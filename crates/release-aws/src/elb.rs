//! Classic ELB and ELBv2 (ALB + target group): the Balancer port.

use async_trait::async_trait;
use std::time::Duration;

use aws_sdk_elasticloadbalancing::types::{
    ConnectionDraining, CrossZoneLoadBalancing, HealthCheck as HealthCheck_, Instance as ElbInstance, Listener, LoadBalancerAttributes,
};
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, LoadBalancerSchemeEnum, LoadBalancerTypeEnum, ProtocolEnum, TargetDescription, TargetGroupAttribute,
    TargetHealthStateEnum, TargetTypeEnum,
};
use release_core::model::pipeline::HealthCheck;
use release_core::ops::provision::LISTENER_PORT;
use release_core::model::ids::InstanceId;
use release_core::model::pipeline::LbTarget;
use release_core::ports::{Balancer, HealthState, LbInfo, LbPart, LbSpec, Network, TargetHealth};
use release_core::model::error::{Aws as AwsError, Cause, NotFound};
use release_core::{Error, Result};

use crate::error::{build, no_field, sdk};
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

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

fn classic_listener(instance_port: u16) -> Result<Listener> {
    build(
        "listener",
        Listener::builder()
            .protocol("HTTP")
            .load_balancer_port(i32::from(LISTENER_PORT))
            .instance_protocol("HTTP")
            .instance_port(i32::from(instance_port))
            .build(),
    )
}

fn missing(target: &LbTarget) -> Error {
    Error::from(NotFound::LbTarget { target: target.to_string() }).with_cause(Cause::Missing)
}

impl Aws {
    /// A target group's ARN by name, asked once per process.
    pub(crate) async fn tg_arn(&self, name: &str) -> Result<String> {
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

    /// One classic ELB, described by name.
    async fn classic(
        &self,
        target: &LbTarget,
        name: &str,
    ) -> Result<aws_sdk_elasticloadbalancing::operation::describe_load_balancers::DescribeLoadBalancersOutput> {
        self.elb.describe_load_balancers().load_balancer_names(name).send().await.map_err(|e| Self::elb_error(target, sdk("elb DescribeLoadBalancers", e)))
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
            None => classic_elb_zone_id(&self.region)
                .map(str::to_owned)
                .ok_or_else(|| AwsError::NoElbZone { name: name.to_owned(), region: self.region.clone() }.into()),
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

    /// A classic ELB with its listener, unless one of that name exists.
    async fn create_classic(&self, name: &str, spec: &LbSpec, subnets: Vec<String>, sgs: Option<Vec<String>>) -> Result<()> {
        if !self.classic_elbs().await?.iter().any(|(n, ..)| n == name) {
            self.elb
                .create_load_balancer()
                .load_balancer_name(name)
                .listeners(classic_listener(spec.port)?)
                .set_subnets(Some(subnets))
                .set_security_groups(sgs)
                .send()
                .await
                .map_err(|e| sdk("elb CreateLoadBalancer", e))?;
        }
        Ok(())
    }

    /// A target group with its ALB and the ALB's listener, each made unless it exists (a half-made one is finished).
    async fn create_alb(&self, name: &str, spec: &LbSpec, network: &Network, subnets: Vec<String>, sgs: Option<Vec<String>>) -> Result<()> {
        let tg_arn = match self.target_groups().await?.into_iter().find(|(n, _)| n == name) {
            Some((_, arn)) => arn,
            None => self.create_target_group(name, spec, network).await?,
        };
        let lb_arn = match self.albs().await?.into_iter().find(|a| a.0 == name) {
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
                    .ok_or_else(|| no_field("elbv2 CreateLoadBalancer", "load balancer"))?
                    .to_owned()
            }
        };
        let listeners = self.elbv2.describe_listeners().load_balancer_arn(&lb_arn).send().await.map_err(|e| sdk("elbv2 DescribeListeners", e))?;
        if !listeners.listeners().iter().any(|l| l.port() == Some(i32::from(LISTENER_PORT))) {
            self.elbv2
                .create_listener()
                .load_balancer_arn(&lb_arn)
                .protocol(ProtocolEnum::Http)
                .port(i32::from(LISTENER_PORT))
                .default_actions(Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(&tg_arn).build())
                .send()
                .await
                .map_err(|e| sdk("elbv2 CreateListener", e))?;
        }
        Ok(())
    }

    /// A new target group, with the spec's health check; its ARN.
    async fn create_target_group(&self, name: &str, spec: &LbSpec, network: &Network) -> Result<String> {
        let h = &spec.health;
        let out = self
            .elbv2
            .create_target_group()
            .name(name)
            .protocol(ProtocolEnum::Http)
            .port(i32::from(spec.port))
            .vpc_id(&network.vpc_id)
            .target_type(TargetTypeEnum::Instance)
            .health_check_path(&spec.health_path)
            .health_check_interval_seconds(secs(h.interval))
            .health_check_timeout_seconds(secs(h.timeout))
            .healthy_threshold_count(h.healthy as i32)
            .unhealthy_threshold_count(h.unhealthy as i32)
            .send()
            .await
            .map_err(|e| sdk("elbv2 CreateTargetGroup", e))?;
        Ok(out
            .target_groups()
            .first()
            .and_then(|t| t.target_group_arn())
            .ok_or_else(|| no_field("elbv2 CreateTargetGroup", "target group"))?
            .to_owned())
    }

    /// A classic ELB as the spec says: health check, draining and cross-zone balancing, its security groups when
    /// they differ, and its listener replaced when the instance port changed (it cannot be changed in place).
    async fn configure_classic(&self, target: &LbTarget, name: &str, spec: &LbSpec) -> Result<()> {
        let h = &spec.health;
        let check = build(
            "health check",
            HealthCheck_::builder()
                .target(format!("HTTP:{}{}", spec.port, spec.health_path))
                .interval(secs(h.interval))
                .timeout(secs(h.timeout))
                .healthy_threshold(h.healthy as i32)
                .unhealthy_threshold(h.unhealthy as i32)
                .build(),
        )?;
        self.elb
            .configure_health_check()
            .load_balancer_name(name)
            .health_check(check)
            .send()
            .await
            .map_err(|e| Self::elb_error(target, sdk("elb ConfigureHealthCheck", e)))?;
        let draining = ConnectionDraining::builder().enabled(!spec.drain.is_zero()).timeout(secs(spec.drain).max(1)).build();
        let cross = CrossZoneLoadBalancing::builder().enabled(spec.cross_zone).build();
        self.elb
            .modify_load_balancer_attributes()
            .load_balancer_name(name)
            .load_balancer_attributes(LoadBalancerAttributes::builder().connection_draining(draining).cross_zone_load_balancing(cross).build())
            .send()
            .await
            .map_err(|e| Self::elb_error(target, sdk("elb ModifyLoadBalancerAttributes", e)))?;
        let now = self.config(target).await?;
        if !spec.security_groups.is_empty() && now.security_groups != sorted(&spec.security_groups) {
            self.elb
                .apply_security_groups_to_load_balancer()
                .load_balancer_name(name)
                .set_security_groups(Some(spec.security_groups.clone()))
                .send()
                .await
                .map_err(|e| Self::elb_error(target, sdk("elb ApplySecurityGroupsToLoadBalancer", e)))?;
        }
        if now.port != spec.port {
            // A listener's instance port cannot be changed in place: replace the listener.
            self.elb
                .delete_load_balancer_listeners()
                .load_balancer_name(name)
                .load_balancer_ports(i32::from(LISTENER_PORT))
                .send()
                .await
                .map_err(|e| Self::elb_error(target, sdk("elb DeleteLoadBalancerListeners", e)))?;
            self.elb
                .create_load_balancer_listeners()
                .load_balancer_name(name)
                .listeners(classic_listener(spec.port)?)
                .send()
                .await
                .map_err(|e| Self::elb_error(target, sdk("elb CreateLoadBalancerListeners", e)))?;
        }
        Ok(())
    }

    /// A target group as the spec says (health check, deregistration delay), and its ALB's security groups.
    async fn configure_target_group(&self, target: &LbTarget, name: &str, spec: &LbSpec) -> Result<()> {
        let h = &spec.health;
        let arn = self.tg_arn(name).await?;
        self.elbv2
            .modify_target_group()
            .target_group_arn(&arn)
            .health_check_path(&spec.health_path)
            .health_check_interval_seconds(secs(h.interval))
            .health_check_timeout_seconds(secs(h.timeout))
            .healthy_threshold_count(h.healthy as i32)
            .unhealthy_threshold_count(h.unhealthy as i32)
            .send()
            .await
            .map_err(|e| Self::elb_error(target, sdk("elbv2 ModifyTargetGroup", e)))?;
        self.elbv2
            .modify_target_group_attributes()
            .target_group_arn(&arn)
            .attributes(TargetGroupAttribute::builder().key("deregistration_delay.timeout_seconds").value(secs(spec.drain).to_string()).build())
            .send()
            .await
            .map_err(|e| Self::elb_error(target, sdk("elbv2 ModifyTargetGroupAttributes", e)))?;
        if !spec.security_groups.is_empty() {
            if let Some((_, lb_arn, ..)) = self.albs().await?.into_iter().find(|a| a.0 == name) {
                self.elbv2
                    .set_security_groups()
                    .load_balancer_arn(lb_arn)
                    .set_security_groups(Some(spec.security_groups.clone()))
                    .send()
                    .await
                    .map_err(|e| Self::elb_error(target, sdk("elbv2 SetSecurityGroups", e)))?;
            }
        }
        Ok(())
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
            LbTarget::ClassicElb(name) => self.create_classic(name, spec, subnets, sgs).await?,
            LbTarget::TargetGroup(name) => self.create_alb(name, spec, network, subnets, sgs).await?,
        }
        // Health check, draining and balancing as the spec says, also on a load balancer that existed half-made.
        self.configure(target, spec).await?;
        self.describe(std::slice::from_ref(target))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| AwsError::NotDescribable { target: target.to_string() }.into())
    }

    async fn config(&self, target: &LbTarget) -> Result<LbSpec> {
        match target {
            LbTarget::ClassicElb(name) => {
                let out = self.classic(target, name).await?;
                let d = out.load_balancer_descriptions().first().ok_or_else(|| missing(target))?;
                let port = d
                    .listener_descriptions()
                    .iter()
                    .filter_map(|l| l.listener())
                    .find(|l| l.load_balancer_port() == i32::from(LISTENER_PORT))
                    .and_then(|l| u16::try_from(l.instance_port()).ok())
                    .unwrap_or(0);
                let hc = d.health_check();
                // `HTTP:8080/health`
                let path = hc.and_then(|h| h.target().split_once('/').map(|(_, p)| format!("/{p}"))).unwrap_or_default();
                let health = HealthCheck {
                    interval: Duration::from_secs(hc.map_or(0, |h| h.interval()) as u64),
                    timeout: Duration::from_secs(hc.map_or(0, |h| h.timeout()) as u64),
                    healthy: hc.map_or(0, |h| h.healthy_threshold()) as u32,
                    unhealthy: hc.map_or(0, |h| h.unhealthy_threshold()) as u32,
                };
                let attrs = self
                    .elb
                    .describe_load_balancer_attributes()
                    .load_balancer_name(name)
                    .send()
                    .await
                    .map_err(|e| Self::elb_error(target, sdk("elb DescribeLoadBalancerAttributes", e)))?;
                let a = attrs.load_balancer_attributes();
                let draining = a.and_then(|a| a.connection_draining()).filter(|c| c.enabled()).map_or(0, |c| c.timeout().unwrap_or(0));
                let cross_zone = a.and_then(|a| a.cross_zone_load_balancing()).is_some_and(|c| c.enabled());
                let mut security_groups: Vec<String> = d.security_groups().to_vec();
                security_groups.sort();
                Ok(LbSpec { port, health_path: path, health, drain: Duration::from_secs(draining as u64), cross_zone, security_groups })
            }
            LbTarget::TargetGroup(name) => {
                let out = self.elbv2.describe_target_groups().names(name).send().await.map_err(|e| Self::elb_error(target, sdk("elbv2 DescribeTargetGroups", e)))?;
                let tg = out.target_groups().first().ok_or_else(|| missing(target))?;
                let arn = tg.target_group_arn().unwrap_or_default();
                let health = HealthCheck {
                    interval: Duration::from_secs(tg.health_check_interval_seconds().unwrap_or(0) as u64),
                    timeout: Duration::from_secs(tg.health_check_timeout_seconds().unwrap_or(0) as u64),
                    healthy: tg.healthy_threshold_count().unwrap_or(0) as u32,
                    unhealthy: tg.unhealthy_threshold_count().unwrap_or(0) as u32,
                };
                let attrs = self
                    .elbv2
                    .describe_target_group_attributes()
                    .target_group_arn(arn)
                    .send()
                    .await
                    .map_err(|e| Self::elb_error(target, sdk("elbv2 DescribeTargetGroupAttributes", e)))?;
                let delay = attrs
                    .attributes()
                    .iter()
                    .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
                    .and_then(|a| a.value())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(300);
                let albs = self.elbv2.describe_load_balancers().names(name).send().await.map_err(|e| Self::elb_error(target, sdk("elbv2 DescribeLoadBalancers", e)))?;
                let mut security_groups: Vec<String> = albs.load_balancers().first().map(|l| l.security_groups().to_vec()).unwrap_or_default();
                security_groups.sort();
                Ok(LbSpec {
                    port: tg.port().and_then(|p| u16::try_from(p).ok()).unwrap_or(0),
                    health_path: tg.health_check_path().unwrap_or("/").to_owned(),
                    health,
                    drain: Duration::from_secs(delay),
                    // An ALB always balances across zones.
                    cross_zone: true,
                    security_groups,
                })
            }
        }
    }

    async fn configure(&self, target: &LbTarget, spec: &LbSpec) -> Result<()> {
        match target {
            LbTarget::ClassicElb(name) => self.configure_classic(target, name, spec).await,
            LbTarget::TargetGroup(name) => self.configure_target_group(target, name, spec).await,
        }
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
                let out = self.classic(target, name).await?;
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

    async fn zones(&self, target: &LbTarget) -> Result<std::collections::BTreeSet<String>> {
        match target {
            LbTarget::ClassicElb(name) => {
                let out = self.classic(target, name).await?;
                Ok(out.load_balancer_descriptions().iter().flat_map(|d| d.availability_zones()).cloned().collect())
            }
            LbTarget::TargetGroup(name) => {
                let out = self.elbv2.describe_target_groups().names(name).send().await.map_err(|e| Self::elb_error(target, sdk("elbv2 DescribeTargetGroups", e)))?;
                let arns: Vec<String> = out.target_groups().iter().flat_map(|t| t.load_balancer_arns()).cloned().collect();
                if arns.is_empty() {
                    return Ok(Default::default());
                }
                let lbs = self
                    .elbv2
                    .describe_load_balancers()
                    .set_load_balancer_arns(Some(arns))
                    .send()
                    .await
                    .map_err(|e| Self::elb_error(target, sdk("elbv2 DescribeLoadBalancers", e)))?;
                Ok(lbs.load_balancers().iter().flat_map(|l| l.availability_zones()).filter_map(|z| z.zone_name().map(str::to_owned)).collect())
            }
        }
    }

    async fn members_and_zones(&self, target: &LbTarget) -> Result<(Vec<InstanceId>, std::collections::BTreeSet<String>)> {
        match target {
            LbTarget::ClassicElb(name) => {
                let out = self.classic(target, name).await?;
                let d = out.load_balancer_descriptions();
                let members = d.iter().flat_map(|d| d.instances()).filter_map(|i| InstanceId::parse(i.instance_id()?).ok()).collect();
                Ok((members, d.iter().flat_map(|d| d.availability_zones()).cloned().collect()))
            }
            LbTarget::TargetGroup(name) => {
                // The group's description names its arn (which the health call needs) and its load balancers.
                let out = self.elbv2.describe_target_groups().names(name).send().await.map_err(|e| Self::elb_error(target, sdk("elbv2 DescribeTargetGroups", e)))?;
                let group = out.target_groups().first().ok_or_else(|| missing(target))?;
                if let Some(arn) = group.target_group_arn() {
                    self.tg_arns.lock().unwrap().insert(name.clone(), arn.to_owned());
                }
                let arns: Vec<String> = group.load_balancer_arns().to_vec();
                let members = self.health(target).await?.into_iter().map(|h| h.id).collect();
                if arns.is_empty() {
                    return Ok((members, Default::default()));
                }
                let lbs = self
                    .elbv2
                    .describe_load_balancers()
                    .set_load_balancer_arns(Some(arns))
                    .send()
                    .await
                    .map_err(|e| Self::elb_error(target, sdk("elbv2 DescribeLoadBalancers", e)))?;
                Ok((members, lbs.load_balancers().iter().flat_map(|l| l.availability_zones()).filter_map(|z| z.zone_name().map(str::to_owned)).collect()))
            }
        }
    }

    async fn missing_part(&self, target: &LbTarget) -> Result<Option<LbPart>> {
        let name = target.name().to_owned();
        match target {
            LbTarget::ClassicElb(_) => Ok((!self.classic_elbs().await?.iter().any(|(n, ..)| *n == name)).then_some(LbPart::LoadBalancer(name))),
            LbTarget::TargetGroup(_) => {
                if !self.target_groups().await?.iter().any(|(n, _)| *n == name) {
                    return Ok(Some(LbPart::TargetGroup(name)));
                }
                let albs = self.albs().await?;
                let Some((_, arn, ..)) = albs.iter().find(|a| a.0 == name) else { return Ok(Some(LbPart::LoadBalancer(name))) };
                let out = self.elbv2.describe_listeners().load_balancer_arn(arn).send().await.map_err(|e| sdk("elbv2 DescribeListeners", e))?;
                Ok(out.listeners().is_empty().then_some(LbPart::Listener(name)))
            }
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
                            Some(TargetHealthStateEnum::Unused) => HealthState::Unused,
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
