//! Launch templates (EC2) and Auto Scaling groups: the LaunchTemplates and AutoScaling ports. Load balancers are
//! attached with the classic and target-group calls only (`AttachLoadBalancerTargetGroups`, `AttachLoadBalancers`),
//! never the traffic sources API; groups are deleted without ForceDelete.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_autoscaling::types::{
    Filter as AsgFilter, LaunchTemplateSpecification, LifecycleHookSpecification, MetricType, PredefinedMetricSpecification, Tag as AsgTag,
    TargetTrackingConfiguration,
};
use aws_sdk_ec2::types::{
    Filter, LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest, LaunchTemplateHttpTokensState,
    LaunchTemplateIamInstanceProfileSpecificationRequest, LaunchTemplateInstanceMetadataEndpointState, LaunchTemplateInstanceMetadataOptionsRequest,
    LaunchTemplateTagSpecificationRequest, RequestLaunchTemplateData, ResourceType, Tag, TagSpecification, VolumeType,
};
use base64::Engine;
use release_core::model::clock::Timestamp;
use release_core::model::error::Cause;
use release_core::model::ids::{AmiId, AppName, InstanceId};
use release_core::model::pipeline::{LbTarget, MetadataTokens};
use release_core::ports::{
    tags, Activity, ActivityStatus, Attachment, AttachmentState, AutoScaling, Capacity, CapacityChange, DeletedVersions, Group, GroupInstance,
    GroupSpec, InstanceHealth, LaunchTemplate, LaunchTemplateId, LaunchTemplates, Lifecycle, Process, ScalingPolicy, ScheduledAction, TemplateRef,
    TemplateSpec, TemplateVersion, TemplateVersionInfo,
};
use release_core::Result;

use crate::error::{no_field, sdk};
use crate::Aws;

/// What the placeholder default version says of itself.
const PLACEHOLDER: &str = "placeholder made with the template: groups name numbered versions only";

fn millis(t: &aws_smithy_types::DateTime) -> Timestamp {
    Timestamp::from_millis(t.to_millis().unwrap_or(0))
}

fn version(n: Option<i64>) -> TemplateVersion {
    TemplateVersion(n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0))
}

fn template(t: &aws_sdk_ec2::types::LaunchTemplate) -> Option<LaunchTemplate> {
    Some(LaunchTemplate {
        id: LaunchTemplateId(t.launch_template_id()?.to_owned()),
        name: t.launch_template_name().unwrap_or("").to_owned(),
        default_version: version(t.default_version_number()),
        latest_version: version(t.latest_version_number()),
        tags: t.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned()))).collect(),
    })
}

/// The target group's name in its ARN (`arn:aws:elasticloadbalancing:…:targetgroup/NAME/0123456789abcdef`).
fn tg_name(arn: &str) -> String {
    arn.split('/').nth(1).unwrap_or(arn).to_owned()
}

/// A launch template version's data: what a release launches.
fn template_data(spec: &TemplateSpec) -> RequestLaunchTemplateData {
    let tokens = match spec.metadata_tokens {
        MetadataTokens::Required => LaunchTemplateHttpTokensState::Required,
        MetadataTokens::Optional => LaunchTemplateHttpTokensState::Optional,
    };
    let tags: Vec<Tag> = spec.tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
    let tag_specs: Vec<LaunchTemplateTagSpecificationRequest> = if tags.is_empty() {
        Vec::new()
    } else {
        [ResourceType::Instance, ResourceType::Volume]
            .into_iter()
            .map(|t| LaunchTemplateTagSpecificationRequest::builder().resource_type(t).set_tags(Some(tags.clone())).build())
            .collect()
    };
    let root = spec.root_volume.as_ref().map(|(device, v)| {
        LaunchTemplateBlockDeviceMappingRequest::builder()
            .device_name(device)
            .ebs(
                LaunchTemplateEbsBlockDeviceRequest::builder()
                    .volume_size(i32::try_from(v.size_gb).unwrap_or(i32::MAX))
                    .volume_type(VolumeType::from(v.kind.as_str()))
                    .encrypted(v.encrypted)
                    .delete_on_termination(true)
                    .build(),
            )
            .build()
    });
    RequestLaunchTemplateData::builder()
        .image_id(spec.ami.as_str())
        .instance_type(aws_sdk_ec2::types::InstanceType::from(spec.instance_type.as_str()))
        // Launch template user data is base64, like RunInstances', and the SDK does not encode it.
        .set_user_data((!spec.user_data.is_empty()).then(|| base64::engine::general_purpose::STANDARD.encode(spec.user_data.as_bytes())))
        .metadata_options(
            LaunchTemplateInstanceMetadataOptionsRequest::builder()
                .http_tokens(tokens)
                .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::Enabled)
                .build(),
        )
        .set_iam_instance_profile(spec.instance_profile.as_ref().map(|p| LaunchTemplateIamInstanceProfileSpecificationRequest::builder().name(p).build()))
        .set_key_name(spec.key_name.clone())
        .set_security_group_ids((!spec.security_groups.is_empty()).then(|| spec.security_groups.clone()))
        .set_block_device_mappings(root.map(|r| vec![r]))
        .set_tag_specifications((!tag_specs.is_empty()).then_some(tag_specs))
        .build()
}

#[async_trait]
impl LaunchTemplates for Aws {
    async fn template(&self, name: &str) -> Result<Option<LaunchTemplate>> {
        match self.ec2.describe_launch_templates().launch_template_names(name).send().await {
            Ok(out) => Ok(out.launch_templates().iter().find_map(template)),
            Err(e) => {
                let err = sdk("ec2 DescribeLaunchTemplates", e);
                // Asking for a name that does not exist is an error in EC2, an empty answer here.
                if err.is(Cause::Missing) {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn app_templates(&self, app: &AppName) -> Result<Vec<LaunchTemplate>> {
        let pages = self
            .ec2
            .describe_launch_templates()
            .filters(Filter::builder().name(format!("tag:{}", tags::APP)).values(app.as_str()).build())
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| sdk("ec2 DescribeLaunchTemplates", e))?;
        Ok(pages.iter().flat_map(|p| p.launch_templates()).filter_map(template).collect())
    }

    async fn ensure_template(&self, name: &str, tags: &[(String, String)]) -> Result<LaunchTemplate> {
        if let Some(t) = self.template(name).await? {
            return Ok(t);
        }
        let tags: Vec<Tag> = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
        let placeholder = RequestLaunchTemplateData::builder()
            .metadata_options(LaunchTemplateInstanceMetadataOptionsRequest::builder().http_tokens(LaunchTemplateHttpTokensState::Required).build())
            .build();
        let made = self
            .ec2
            .create_launch_template()
            .launch_template_name(name)
            .version_description(PLACEHOLDER)
            .launch_template_data(placeholder)
            .tag_specifications(TagSpecification::builder().resource_type(ResourceType::LaunchTemplate).set_tags(Some(tags)).build())
            .send()
            .await;
        match made {
            Ok(out) => out.launch_template().and_then(template).ok_or_else(|| no_field("ec2 CreateLaunchTemplate", "launch template")),
            Err(e) => {
                let err = sdk("ec2 CreateLaunchTemplate", e);
                // Another run made it between the describe and the create: use theirs.
                if err.is(Cause::AlreadyExists) {
                    self.template(name).await?.ok_or(err)
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn create_version(&self, template: &LaunchTemplateId, spec: &TemplateSpec, client_token: &str) -> Result<TemplateVersion> {
        let out = self
            .ec2
            .create_launch_template_version()
            .launch_template_id(&template.0)
            .client_token(client_token)
            .version_description(&spec.description)
            .launch_template_data(template_data(spec))
            .send()
            .await
            .map_err(|e| sdk("ec2 CreateLaunchTemplateVersion", e))?;
        let n = out.launch_template_version().and_then(|v| v.version_number());
        n.map(|n| version(Some(n))).ok_or_else(|| no_field("ec2 CreateLaunchTemplateVersion", "version number"))
    }

    async fn versions(&self, template: &LaunchTemplateId) -> Result<Vec<TemplateVersionInfo>> {
        let pages = self
            .ec2
            .describe_launch_template_versions()
            .launch_template_id(&template.0)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| sdk("ec2 DescribeLaunchTemplateVersions", e))?;
        Ok(pages
            .iter()
            .flat_map(|p| p.launch_template_versions())
            .map(|v| TemplateVersionInfo {
                number: version(v.version_number()),
                ami: v.launch_template_data().and_then(|d| d.image_id()).and_then(|a| AmiId::parse(a).ok()),
                is_default: v.default_version().unwrap_or(false),
                created: v.create_time().map(millis),
                description: v.version_description().map(str::to_owned),
            })
            .collect())
    }

    async fn delete_versions(&self, template: &LaunchTemplateId, versions: &[TemplateVersion]) -> Result<DeletedVersions> {
        let mut out = DeletedVersions::default();
        for chunk in versions.chunks(200) {
            let answer = self
                .ec2
                .delete_launch_template_versions()
                .launch_template_id(&template.0)
                .set_versions(Some(chunk.iter().map(ToString::to_string).collect()))
                .send()
                .await
                .map_err(|e| sdk("ec2 DeleteLaunchTemplateVersions", e))?;
            out.deleted.extend(answer.successfully_deleted_launch_template_versions().iter().map(|v| version(v.version_number())));
            out.failed.extend(answer.unsuccessfully_deleted_launch_template_versions().iter().map(|v| {
                let why = v.response_error().map(|e| {
                    let code = e.code().map(|c| c.as_str().to_owned()).unwrap_or_default();
                    format!("{code}: {}", e.message().unwrap_or(""))
                });
                (version(v.version_number()), why.unwrap_or_default())
            }));
        }
        Ok(out)
    }
}

fn group(g: &aws_sdk_autoscaling::types::AutoScalingGroup) -> Option<Group> {
    let n = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
    let instances = g
        .instances()
        .iter()
        .filter_map(|i| {
            Some(GroupInstance {
                id: InstanceId::parse(i.instance_id()?).ok()?,
                lifecycle: i.lifecycle_state().map(|s| Lifecycle::from_aws(s.as_str())).unwrap_or(Lifecycle::Pending),
                health: if i.health_status() == Some("Healthy") { InstanceHealth::Healthy } else { InstanceHealth::Unhealthy },
                zone: i.availability_zone().unwrap_or("").to_owned(),
                template_version: i.launch_template().and_then(|t| t.version()).and_then(|v| v.parse().ok()).map(TemplateVersion),
            })
        })
        .collect();
    let template = g.launch_template().and_then(|t| {
        Some(TemplateRef { id: LaunchTemplateId(t.launch_template_id()?.to_owned()), version: TemplateVersion(t.version()?.parse().ok()?) })
    });
    let load_balancers = g
        .target_group_arns()
        .iter()
        .map(|a| LbTarget::TargetGroup(tg_name(a)))
        .chain(g.load_balancer_names().iter().map(|n| LbTarget::ClassicElb(n.clone())))
        .collect();
    Some(Group {
        name: g.auto_scaling_group_name()?.to_owned(),
        capacity: Capacity { min: n(g.min_size()), desired: n(g.desired_capacity()), max: n(g.max_size()) },
        template,
        instances,
        suspended: g.suspended_processes().iter().filter_map(|p| Process::from_aws(p.process_name()?)).collect(),
        load_balancers,
        tags: g.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned()))).collect::<BTreeMap<_, _>>(),
        created: g.created_time().map(millis),
        status: g.status().map(str::to_owned),
        health_check_grace: std::time::Duration::from_secs(n(g.health_check_grace_period()).into()),
    })
}

fn secs(d: std::time::Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

impl Aws {
    /// The ARNs of the target groups and the names of the classic ELBs among `targets`.
    async fn split_targets(&self, targets: &[LbTarget]) -> Result<(Vec<String>, Vec<String>)> {
        let (mut arns, mut names) = (Vec::new(), Vec::new());
        for t in targets {
            match t {
                LbTarget::TargetGroup(n) => arns.push(self.tg_arn(n).await?),
                LbTarget::ClassicElb(n) => names.push(n.clone()),
            }
        }
        Ok((arns, names))
    }
}

#[async_trait]
impl AutoScaling for Aws {
    async fn create(&self, spec: &GroupSpec) -> Result<()> {
        let (arns, names) = self.split_targets(&spec.load_balancers).await?;
        let tags: Vec<AsgTag> = spec.tags.iter().map(|(k, v)| AsgTag::builder().key(k).value(v).propagate_at_launch(true).build()).collect();
        let hooks: Vec<LifecycleHookSpecification> = spec
            .lifecycle_hooks
            .iter()
            .map(|h| {
                LifecycleHookSpecification::builder()
                    .lifecycle_hook_name(&h.name)
                    .lifecycle_transition(if h.on_launch { "autoscaling:EC2_INSTANCE_LAUNCHING" } else { "autoscaling:EC2_INSTANCE_TERMINATING" })
                    .heartbeat_timeout(secs(h.heartbeat))
                    .default_result(if h.continue_on_timeout { "CONTINUE" } else { "ABANDON" })
                    .build()
            })
            .collect();
        let c = spec.capacity;
        let n = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        self.autoscaling
            .create_auto_scaling_group()
            .auto_scaling_group_name(&spec.name)
            .launch_template(LaunchTemplateSpecification::builder().launch_template_id(&spec.template.id.0).version(spec.template.version.to_string()).build())
            .vpc_zone_identifier(spec.subnets.join(","))
            .min_size(n(c.min))
            .desired_capacity(n(c.desired))
            .max_size(n(c.max))
            .health_check_type("ELB")
            .health_check_grace_period(secs(spec.health_check_grace))
            .default_instance_warmup(secs(spec.instance_warmup))
            .set_tags((!tags.is_empty()).then_some(tags))
            .set_target_group_arns((!arns.is_empty()).then_some(arns))
            .set_load_balancer_names((!names.is_empty()).then_some(names))
            .set_lifecycle_hook_specification_list((!hooks.is_empty()).then_some(hooks))
            .send()
            .await
            .map_err(|e| sdk("autoscaling CreateAutoScalingGroup", e))?;
        Ok(())
    }

    async fn app_groups(&self, app: &AppName) -> Result<Vec<Group>> {
        let pages = self
            .autoscaling
            .describe_auto_scaling_groups()
            .filters(AsgFilter::builder().name(format!("tag:{}", tags::APP)).values(app.as_str()).build())
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| sdk("autoscaling DescribeAutoScalingGroups", e))?;
        Ok(pages.iter().flat_map(|p| p.auto_scaling_groups()).filter_map(group).collect())
    }

    async fn attach(&self, group: &str, targets: &[LbTarget]) -> Result<()> {
        let (arns, names) = self.split_targets(targets).await?;
        if !arns.is_empty() {
            self.autoscaling
                .attach_load_balancer_target_groups()
                .auto_scaling_group_name(group)
                .set_target_group_arns(Some(arns))
                .send()
                .await
                .map_err(|e| sdk("autoscaling AttachLoadBalancerTargetGroups", e))?;
        }
        if !names.is_empty() {
            self.autoscaling
                .attach_load_balancers()
                .auto_scaling_group_name(group)
                .set_load_balancer_names(Some(names))
                .send()
                .await
                .map_err(|e| sdk("autoscaling AttachLoadBalancers", e))?;
        }
        Ok(())
    }

    async fn detach(&self, group: &str, targets: &[LbTarget]) -> Result<()> {
        let (arns, names) = self.split_targets(targets).await?;
        if !arns.is_empty() {
            self.autoscaling
                .detach_load_balancer_target_groups()
                .auto_scaling_group_name(group)
                .set_target_group_arns(Some(arns))
                .send()
                .await
                .map_err(|e| sdk("autoscaling DetachLoadBalancerTargetGroups", e))?;
        }
        if !names.is_empty() {
            self.autoscaling
                .detach_load_balancers()
                .auto_scaling_group_name(group)
                .set_load_balancer_names(Some(names))
                .send()
                .await
                .map_err(|e| sdk("autoscaling DetachLoadBalancers", e))?;
        }
        Ok(())
    }

    async fn attachments(&self, group: &str) -> Result<Vec<Attachment>> {
        let tgs = self
            .autoscaling
            .describe_load_balancer_target_groups()
            .auto_scaling_group_name(group)
            .send()
            .await
            .map_err(|e| sdk("autoscaling DescribeLoadBalancerTargetGroups", e))?;
        let elbs = self
            .autoscaling
            .describe_load_balancers()
            .auto_scaling_group_name(group)
            .send()
            .await
            .map_err(|e| sdk("autoscaling DescribeLoadBalancers", e))?;
        let state = |s: Option<&str>| AttachmentState::from_aws(s.unwrap_or(""));
        Ok(tgs
            .load_balancer_target_groups()
            .iter()
            .filter_map(|t| Some(Attachment { target: LbTarget::TargetGroup(tg_name(t.load_balancer_target_group_arn()?)), state: state(t.state()) }))
            .chain(elbs.load_balancers().iter().filter_map(|l| Some(Attachment { target: LbTarget::ClassicElb(l.load_balancer_name()?.to_owned()), state: state(l.state()) })))
            .collect())
    }

    async fn set_capacity(&self, group: &str, change: &CapacityChange) -> Result<()> {
        let n = |v: Option<u32>| v.map(|v| i32::try_from(v).unwrap_or(i32::MAX));
        self.autoscaling
            .update_auto_scaling_group()
            .auto_scaling_group_name(group)
            .set_min_size(n(change.min))
            .set_desired_capacity(n(change.desired))
            .set_max_size(n(change.max))
            .send()
            .await
            .map_err(|e| sdk("autoscaling UpdateAutoScalingGroup", e))?;
        Ok(())
    }

    async fn suspend(&self, group: &str, processes: &[Process]) -> Result<()> {
        self.autoscaling
            .suspend_processes()
            .auto_scaling_group_name(group)
            .set_scaling_processes(Some(processes.iter().map(|p| p.as_str().to_owned()).collect()))
            .send()
            .await
            .map_err(|e| sdk("autoscaling SuspendProcesses", e))?;
        Ok(())
    }

    async fn resume(&self, group: &str, processes: &[Process]) -> Result<()> {
        self.autoscaling
            .resume_processes()
            .auto_scaling_group_name(group)
            .set_scaling_processes(Some(processes.iter().map(|p| p.as_str().to_owned()).collect()))
            .send()
            .await
            .map_err(|e| sdk("autoscaling ResumeProcesses", e))?;
        Ok(())
    }

    async fn tag(&self, group: &str, tags: &[(String, String)]) -> Result<()> {
        let tags: Vec<AsgTag> = tags
            .iter()
            .map(|(k, v)| AsgTag::builder().resource_id(group).resource_type("auto-scaling-group").key(k).value(v).propagate_at_launch(true).build())
            .collect();
        self.autoscaling.create_or_update_tags().set_tags(Some(tags)).send().await.map_err(|e| sdk("autoscaling CreateOrUpdateTags", e))?;
        Ok(())
    }

    async fn untag(&self, group: &str, keys: &[String]) -> Result<()> {
        let tags: Vec<AsgTag> = keys.iter().map(|k| AsgTag::builder().resource_id(group).resource_type("auto-scaling-group").key(k).build()).collect();
        self.autoscaling.delete_tags().set_tags(Some(tags)).send().await.map_err(|e| sdk("autoscaling DeleteTags", e))?;
        Ok(())
    }

    async fn put_cpu_policy(&self, group: &str, name: &str, percent: u8) -> Result<()> {
        let tracking = TargetTrackingConfiguration::builder()
            .predefined_metric_specification(PredefinedMetricSpecification::builder().predefined_metric_type(MetricType::AsgAverageCpuUtilization).build())
            .target_value(f64::from(percent))
            .build();
        self.autoscaling
            .put_scaling_policy()
            .auto_scaling_group_name(group)
            .policy_name(name)
            .policy_type("TargetTrackingScaling")
            .target_tracking_configuration(tracking)
            .send()
            .await
            .map_err(|e| sdk("autoscaling PutScalingPolicy", e))?;
        Ok(())
    }

    async fn policies(&self, group: &str) -> Result<Vec<ScalingPolicy>> {
        let pages = self
            .autoscaling
            .describe_policies()
            .auto_scaling_group_name(group)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| sdk("autoscaling DescribePolicies", e))?;
        Ok(pages
            .iter()
            .flat_map(|p| p.scaling_policies())
            .map(|p| {
                let tracking = p.target_tracking_configuration();
                let cpu = tracking
                    .filter(|t| t.predefined_metric_specification().and_then(|m| m.predefined_metric_type()) == Some(&MetricType::AsgAverageCpuUtilization))
                    .and_then(|t| t.target_value())
                    .map(|v| v.round().clamp(0.0, 255.0) as u8);
                ScalingPolicy { name: p.policy_name().unwrap_or("").to_owned(), kind: p.policy_type().unwrap_or("").to_owned(), cpu_target: cpu }
            })
            .collect())
    }

    async fn scheduled_actions(&self, group: &str) -> Result<Vec<ScheduledAction>> {
        let pages = self
            .autoscaling
            .describe_scheduled_actions()
            .auto_scaling_group_name(group)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| sdk("autoscaling DescribeScheduledActions", e))?;
        let n = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok());
        Ok(pages
            .iter()
            .flat_map(|p| p.scheduled_update_group_actions())
            .map(|a| ScheduledAction {
                name: a.scheduled_action_name().unwrap_or("").to_owned(),
                recurrence: a.recurrence().map(str::to_owned),
                min: n(a.min_size()),
                desired: n(a.desired_capacity()),
                max: n(a.max_size()),
            })
            .collect())
    }

    async fn activities(&self, group: &str, limit: u32) -> Result<Vec<Activity>> {
        let out = self
            .autoscaling
            .describe_scaling_activities()
            .auto_scaling_group_name(group)
            .max_records(i32::try_from(limit.clamp(1, 100)).unwrap_or(100))
            .send()
            .await
            .map_err(|e| sdk("autoscaling DescribeScalingActivities", e))?;
        Ok(out
            .activities()
            .iter()
            .map(|a| Activity {
                id: a.activity_id().unwrap_or("").to_owned(),
                status: ActivityStatus::from_aws(a.status_code().map(|s| s.as_str()).unwrap_or("")),
                description: a.description().unwrap_or("").to_owned(),
                cause: a.cause().unwrap_or("").to_owned(),
                status_message: a.status_message().map(str::to_owned),
                start: a.start_time().map(millis),
            })
            .collect())
    }

    async fn delete(&self, group: &str) -> Result<()> {
        // Never ForceDelete: a group is emptied (min = desired = 0) and waited for first, so that its instances
        // leave their load balancers the careful way.
        self.autoscaling.delete_auto_scaling_group().auto_scaling_group_name(group).send().await.map_err(|e| sdk("autoscaling DeleteAutoScalingGroup", e))?;
        Ok(())
    }
}
