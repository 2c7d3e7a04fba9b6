//! The in-memory cloud's Auto Scaling groups, on simulated time: what the emulator does not model (issue 22, "Testing
//! it honestly"), so that the group engine can be tested for timing, failures and healing. Each test asserts the
//! memory cloud's state through the ports.

use std::time::Duration;

use release_core::model::error::Cause;
use release_core::model::ids::{AmiId, AppName};
use release_core::model::pipeline::{HealthCheck, LbTarget, MetadataTokens};
use release_core::ports::{
    tags, ActivityStatus, AttachmentState, Capacity, CapacityChange, Cloud, GroupSpec, HealthState, InstanceHealth, LbSpec, Lifecycle, Process,
    TemplateRef, TemplateSpec, TemplateVersion,
};
use release_testkit::memory::MemoryCloud;

const GROUP: &str = "hello-prod1-v001";

fn tg() -> LbTarget {
    LbTarget::TargetGroup("hello-prod1".into())
}

fn template_spec(ami: AmiId) -> TemplateSpec {
    TemplateSpec {
        ami,
        instance_type: "t3.micro".into(),
        user_data: "#!/bin/bash\n".into(),
        metadata_tokens: MetadataTokens::Required,
        instance_profile: None,
        key_name: None,
        security_groups: Vec::new(),
        root_volume: None,
        tags: vec![(tags::APP.into(), "hello".into())],
        description: "release r1".into(),
    }
}

/// A memory cloud with a target group (drain 30 s) and a template version of the base image.
async fn world() -> (MemoryCloud, Cloud, TemplateRef) {
    let m = MemoryCloud::new();
    let cloud = m.cloud();
    let net = cloud.fleet.network(&[]).await.unwrap();
    let spec = LbSpec { port: 8080, health_path: "/health".into(), health: HealthCheck::default(), drain: Duration::from_secs(30), cross_zone: true, security_groups: Vec::new(), ..Default::default() };
    cloud.balancer.create(&tg(), &spec, &net, &[]).await.unwrap();
    let ami = AmiId::parse("ami-0a1b2c3d4e5f60718").unwrap();
    let t = cloud.templates.ensure_template("hello-prod1", &[(tags::APP.into(), "hello".into())]).await.unwrap();
    let version = cloud.templates.create_version(&t.id, &template_spec(ami), "r1").await.unwrap();
    (m, cloud, TemplateRef { id: t.id, version })
}

async fn group_spec(cloud: &Cloud, template: TemplateRef, desired: u32, attached: bool) -> GroupSpec {
    let net = cloud.fleet.network(&[]).await.unwrap();
    GroupSpec {
        name: GROUP.into(),
        template,
        subnets: net.subnets.iter().map(|s| s.id.clone()).collect(),
        capacity: Capacity { min: 0, desired, max: 10 },
        health_check_grace: Duration::from_secs(60),
        instance_warmup: Duration::from_secs(30),
        tags: vec![(tags::APP.into(), "hello".into()), (tags::RELEASE_ID.into(), "r1".into())],
        load_balancers: if attached { vec![tg()] } else { Vec::new() },
        lifecycle_hooks: Vec::new(),
    }
}

async fn group(cloud: &Cloud) -> release_core::ports::Group {
    cloud.groups.app_groups(&AppName::parse("hello").unwrap()).await.unwrap().into_iter().find(|g| g.name == GROUP).expect("the group")
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn instances_are_pending_for_the_launch_delay_then_in_service_and_registered() {
    let (m, cloud, template) = world().await;
    m.state().scaling.launch_delay = Duration::from_secs(40);
    cloud.groups.create(&group_spec(&cloud, template.clone(), 3, true).await).await.unwrap();
    let g = group(&cloud).await;
    assert!(g.instances.iter().all(|i| i.lifecycle == Lifecycle::Pending), "pending at first: {:?}", g.instances);
    assert!(m.registered(&tg()).is_empty(), "a pending instance is not registered yet");
    assert_eq!(cloud.groups.attachments(GROUP).await.unwrap()[0].state, AttachmentState::Added);
    // Real instances of the cloud: tagged with the group's and the template's tags, spread over the zones.
    let live = m.live_instances();
    assert_eq!(live.len(), 3);
    assert!(live.iter().all(|i| i.tags.get(tags::RELEASE_ID).map(String::as_str) == Some("r1") && i.tags.get("aws:autoscaling:groupName").map(String::as_str) == Some(GROUP)));
    let zones: std::collections::BTreeSet<_> = g.instances.iter().map(|i| i.zone.clone()).collect();
    assert_eq!(zones.len(), 3, "one per zone: {zones:?}");
    assert!(g.instances.iter().all(|i| i.template_version == Some(template.version)), "each instance names its version");
    tokio::time::sleep(Duration::from_secs(41)).await;
    let g = group(&cloud).await;
    assert!(g.instances.iter().all(|i| i.lifecycle == Lifecycle::InService), "in service after the delay: {:?}", g.instances);
    assert_eq!(m.registered(&tg()).len(), 3, "registered once in service");
    let health = cloud.balancer.health(&tg()).await.unwrap();
    assert!(health.iter().all(|h| h.state == HealthState::Healthy), "they take part in the load balancer's health model: {health:?}");
    assert_eq!(cloud.groups.attachments(GROUP).await.unwrap()[0].state, AttachmentState::InService, "the attachment is InService once one is healthy");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_unhealthy_instance_is_replaced_after_the_grace_unless_replacement_is_suspended() {
    let (m, cloud, template) = world().await;
    cloud.groups.create(&group_spec(&cloud, template, 2, true).await).await.unwrap();
    let sick = group(&cloud).await.instances[0].id.clone();
    m.state().sick.push(sick.clone());
    cloud.groups.suspend(GROUP, &[Process::ReplaceUnhealthy]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(61)).await;
    let g = group(&cloud).await;
    let judged = g.instances.iter().find(|i| i.id == sick).expect("kept while ReplaceUnhealthy is suspended");
    assert_eq!((judged.lifecycle.clone(), judged.health), (Lifecycle::InService, InstanceHealth::Unhealthy));
    cloud.groups.resume(GROUP, &[Process::ReplaceUnhealthy]).await.unwrap();
    let g = group(&cloud).await;
    assert_eq!(g.instances.iter().find(|i| i.id == sick).map(|i| i.lifecycle.clone()), Some(Lifecycle::Terminating), "taken out of service");
    assert_eq!(g.instances.iter().filter(|i| i.lifecycle != Lifecycle::Terminating).count(), 2, "a replacement launched");
    let health = cloud.balancer.health(&tg()).await.unwrap();
    assert!(health.iter().any(|h| h.id == sick && h.state == HealthState::Draining), "deregistered, draining: {health:?}");
    tokio::time::sleep(Duration::from_secs(31)).await;
    let g = group(&cloud).await;
    assert!(g.instances.iter().all(|i| i.id != sick), "gone after the deregistration delay");
    assert!(m.state().instances.iter().any(|i| i.id == sick && i.state == "terminated"), "and terminated");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_instance_terminated_by_hand_is_replaced() {
    let (m, cloud, template) = world().await;
    cloud.groups.create(&group_spec(&cloud, template, 2, false).await).await.unwrap();
    let victim = group(&cloud).await.instances[0].id.clone();
    cloud.fleet.terminate(std::slice::from_ref(&victim)).await.unwrap();
    let g = group(&cloud).await;
    let counted: Vec<_> = g.instances.iter().filter(|i| i.lifecycle != Lifecycle::Terminating).collect();
    assert!(counted.len() == 2 && counted.iter().all(|i| i.id != victim), "replaced at the next health check: {:?}", g.instances);
    assert!(group(&cloud).await.instances.iter().all(|i| i.id != victim), "then gone from the group");
    assert_eq!(m.live_instances().len(), 2);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn failed_launches_are_activities_with_aws_reason_and_are_retried() {
    let (m, cloud, template) = world().await;
    let capacity = "We currently do not have sufficient t3.micro capacity in the Availability Zone you requested.";
    m.fail_launches(&[capacity]);
    cloud.groups.create(&group_spec(&cloud, template.clone(), 2, false).await).await.unwrap();
    let acts = cloud.groups.activities(GROUP, 10).await.unwrap();
    let failed: Vec<_> = acts.iter().filter(|a| a.status == ActivityStatus::Failed).collect();
    assert_eq!(failed.len(), 1, "{acts:?}");
    assert_eq!(failed[0].status_message.as_deref(), Some(capacity), "AWS's reason, as given");
    assert!(group(&cloud).await.instances.is_empty(), "nothing launched until the retry");
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(group(&cloud).await.instances.len(), 2, "retried");
    // An image that does not exist: every try fails, each an activity naming it.
    let bad = AmiId::parse("ami-0000000000000dead").unwrap();
    let t = cloud.templates.create_version(&template.id, &template_spec(bad.clone()), "r2").await.unwrap();
    let mut spec = group_spec(&cloud, TemplateRef { id: template.id.clone(), version: t }, 1, false).await;
    spec.name = "hello-prod1-v002".into();
    cloud.groups.create(&spec).await.unwrap();
    let acts = cloud.groups.activities("hello-prod1-v002", 10).await.unwrap();
    assert!(acts[0].status == ActivityStatus::Failed && acts[0].status_message.as_deref().is_some_and(|s| s.contains(bad.as_str())), "{acts:?}");
    // Every zone out of capacity.
    m.state().capacity_out = ["us-east-1a", "us-east-1b", "us-east-1c"].map(String::from).into();
    cloud.groups.set_capacity(GROUP, &CapacityChange { desired: Some(3), ..Default::default() }).await.unwrap();
    let acts = cloud.groups.activities(GROUP, 1).await.unwrap();
    assert!(acts[0].status == ActivityStatus::Failed && acts[0].status_message.as_deref().is_some_and(|s| s.contains("capacity")), "{acts:?}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn suspended_processes_are_honoured() {
    let (_m, cloud, template) = world().await;
    cloud.groups.create(&group_spec(&cloud, template, 1, false).await).await.unwrap();
    cloud.groups.suspend(GROUP, &[Process::Launch, Process::Terminate]).await.unwrap();
    assert_eq!(group(&cloud).await.suspended, std::collections::BTreeSet::from([Process::Launch, Process::Terminate]));
    cloud.groups.set_capacity(GROUP, &CapacityChange { desired: Some(3), ..Default::default() }).await.unwrap();
    assert_eq!(group(&cloud).await.instances.len(), 1, "Launch suspended: nothing launches");
    cloud.groups.resume(GROUP, &[Process::Launch]).await.unwrap();
    assert_eq!(group(&cloud).await.instances.len(), 3, "resumed: launched");
    cloud.groups.set_capacity(GROUP, &CapacityChange { desired: Some(1), ..Default::default() }).await.unwrap();
    assert_eq!(group(&cloud).await.instances.len(), 3, "Terminate suspended: nothing terminates");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn capacity_outside_min_and_max_is_refused_like_aws() {
    let (_m, cloud, template) = world().await;
    let mut spec = group_spec(&cloud, template, 2, false).await;
    spec.capacity = Capacity { min: 3, desired: 2, max: 4 };
    let err = cloud.groups.create(&spec).await.expect_err("desired under min");
    assert_eq!(err.cause(), Some(Cause::Invalid), "{err}");
    spec.capacity = Capacity { min: 1, desired: 2, max: 4 };
    cloud.groups.create(&spec).await.unwrap();
    let err = cloud.groups.create(&spec).await.expect_err("a second group of that name");
    assert_eq!(err.cause(), Some(Cause::AlreadyExists), "{err}");
    let err = cloud.groups.set_capacity(GROUP, &CapacityChange { desired: Some(5), ..Default::default() }).await.expect_err("over max");
    assert_eq!((err.cause(), err.code()), (Some(Cause::Invalid), Some("ValidationError")), "{err}");
    assert_eq!(group(&cloud).await.capacity, Capacity { min: 1, desired: 2, max: 4 }, "unchanged");
    let err = cloud.groups.set_capacity("nope", &CapacityChange { desired: Some(1), ..Default::default() }).await.expect_err("no such group");
    assert_eq!(err.cause(), Some(Cause::Missing), "{err}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn detach_and_scale_in_drain_then_delete_is_refused_until_the_group_is_empty() {
    let (m, cloud, template) = world().await;
    cloud.groups.create(&group_spec(&cloud, template, 2, true).await).await.unwrap();
    let ids: Vec<_> = group(&cloud).await.instances.iter().map(|i| i.id.clone()).collect();
    assert_eq!(m.registered(&tg()).len(), 2);
    cloud.groups.detach(GROUP, &[tg()]).await.unwrap();
    assert!(m.registered(&tg()).is_empty(), "deregistered on detach");
    assert_eq!(cloud.groups.attachments(GROUP).await.unwrap()[0].state, AttachmentState::Removing, "removing while they drain");
    let health = cloud.balancer.health(&tg()).await.unwrap();
    assert!(ids.iter().all(|id| health.iter().any(|h| &h.id == id && h.state == HealthState::Draining)), "{health:?}");
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert!(cloud.groups.attachments(GROUP).await.unwrap().is_empty(), "gone after the deregistration delay");
    cloud.groups.attach(GROUP, &[tg()]).await.unwrap();
    assert_eq!(m.registered(&tg()).len(), 2, "registered again");
    let err = cloud.groups.delete(GROUP).await.expect_err("instances in the group");
    assert_eq!(err.cause(), Some(Cause::InUse), "no ForceDelete: {err}");
    cloud.groups.set_capacity(GROUP, &CapacityChange { min: Some(0), desired: Some(0), max: None }).await.unwrap();
    assert!(m.registered(&tg()).is_empty(), "scale-in deregisters");
    let err = cloud.groups.delete(GROUP).await.expect_err("still terminating");
    assert_eq!(err.cause(), Some(Cause::ScalingInProgress), "{err}");
    tokio::time::sleep(Duration::from_secs(31)).await;
    cloud.groups.delete(GROUP).await.expect("empty: deleted");
    assert!(m.live_instances().is_empty(), "its instances are terminated");
    assert!(cloud.groups.app_groups(&AppName::parse("hello").unwrap()).await.unwrap().is_empty());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn template_versions_honour_client_tokens_and_keep_the_default() {
    let (_m, cloud, template) = world().await;
    let ami = AmiId::parse("ami-0a1b2c3d4e5f60718").unwrap();
    let again = cloud.templates.create_version(&template.id, &template_spec(ami.clone()), "r1").await.unwrap();
    assert_eq!(again, template.version, "the same token makes no second version");
    let mut other = template_spec(ami);
    other.instance_type = "t3.small".into();
    let err = cloud.templates.create_version(&template.id, &other, "r1").await.expect_err("the token with other parameters");
    assert_eq!(err.cause(), Some(Cause::TokenReused), "{err}");
    let next = cloud.templates.create_version(&template.id, &other, "r2").await.unwrap();
    assert_eq!(next, TemplateVersion(template.version.0 + 1));
    let out = cloud.templates.delete_versions(&template.id, &[TemplateVersion(1), template.version]).await.unwrap();
    assert_eq!(out.deleted, vec![template.version]);
    assert_eq!(out.failed.iter().map(|(v, _)| *v).collect::<Vec<_>>(), vec![TemplateVersion(1)], "never the default");
    let left: Vec<u32> = cloud.templates.versions(&template.id).await.unwrap().iter().map(|v| v.number.0).collect();
    assert_eq!(left, vec![1, next.0]);
    // The clock is the memory cloud's: versions carry when they were made.
    assert!(cloud.templates.versions(&template.id).await.unwrap().iter().all(|v| v.created.is_some_and(|t| t <= cloud.clock.now())));
}
