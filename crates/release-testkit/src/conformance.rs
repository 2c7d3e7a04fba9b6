//! The one suite of port behaviour. Every check runs against the in-memory cloud and against the emulator
//! (`tests/conformance.rs` of this crate); a behaviour the engine relies on belongs here.

use release_core::ids::AppName;
use release_core::pipeline::{BaseAmi, LbTarget};
use release_core::ports::{tags, Cloud, LaunchSpec, LbSpec, RecordChange, WeightedAlias};
use release_core::ErrorKind;

fn spec() -> LbSpec {
    LbSpec { port: 8080, health_path: "/health".into(), security_groups: Vec::new() }
}

/// Runs every check; panics with the failing behaviour's name.
pub async fn run_all(cloud: &Cloud) {
    fleet_network(cloud).await;
    fleet_launch_states_terminate(cloud).await;
    balancer_create_describe(cloud).await;
    balancer_membership(cloud).await;
    dns_zone_and_weighted_records(cloud).await;
    ledger_table(cloud).await;
}

pub async fn fleet_network(cloud: &Cloud) {
    let net = cloud.fleet.network(&[]).await.expect("default network");
    assert!(net.vpc_id.starts_with("vpc-"), "fleet: default vpc id {:?}", net.vpc_id);
    let mut zones: Vec<&str> = net.subnets.iter().map(|s| s.availability_zone.as_str()).collect();
    zones.dedup();
    assert!(zones.len() >= 2, "fleet: default VPC spans at least two zones, got {zones:?}");
    let one = cloud.fleet.network(&[net.subnets[0].id.clone()]).await.expect("named subnet");
    assert_eq!(one.subnets, vec![net.subnets[0].clone()], "fleet: a named subnet is returned as is");
    let err = cloud.fleet.network(&["subnet-0000000000000dead".into()]).await.expect_err("unknown subnet");
    assert_eq!(err.kind(), ErrorKind::NotFound, "fleet: unknown subnet is not-found: {err}");
}

pub async fn fleet_launch_states_terminate(cloud: &Cloud) {
    let app = AppName::parse("conf-app").unwrap();
    let base = cloud
        .images
        .resolve_base(&BaseAmi::NameFilter("al2023-ami-2023.*-x86_64".into()), &["amazon".into()])
        .await
        .expect("a base image to launch");
    let net = cloud.fleet.network(&[]).await.unwrap();
    let t = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let spec = LaunchSpec {
        ami: base,
        instance_type: "t3.micro".into(),
        subnet: net.subnets[0].id.clone(),
        security_groups: Vec::new(),
        count: 3,
        user_data: "#!/bin/bash\ntrue\n".into(),
        tags: vec![t(tags::APP, "conf-app"), t(tags::RELEASE_ID, "r1")],
        client_token: "conformance-r1".into(),
    };
    let ids = cloud.fleet.launch(&spec).await.expect("launch");
    assert_eq!(ids.len(), 3, "fleet: one call launches count instances");
    let mine = cloud.fleet.app_instances(&app).await.unwrap();
    assert_eq!(mine.len(), 3, "fleet: instances are found by the app tag");
    assert!(mine.iter().all(|i| i.tags.get(tags::RELEASE_ID).map(String::as_str) == Some("r1")), "fleet: tags applied at launch");
    let pending = cloud.fleet.instances_in(&ids, &["pending", "stopped"]).await.unwrap();
    let running = cloud.fleet.instances_in(&ids, &["running"]).await.unwrap();
    assert_eq!(pending.len() + running.len(), 3, "fleet: state filters partition the instances");
    assert_eq!(cloud.fleet.instances_in(&ids[..1], &["pending", "running"]).await.unwrap().len(), 1, "fleet: only the ids asked");
    cloud.fleet.terminate(&ids).await.expect("terminate");
    assert!(cloud.fleet.app_instances(&app).await.unwrap().is_empty(), "fleet: terminated instances are not app instances");
    let gone = cloud.fleet.instances_in(&ids, &["shutting-down", "terminated"]).await.unwrap();
    assert_eq!(gone.len(), 3, "fleet: terminated instances are found by state");
}

pub async fn balancer_create_describe(cloud: &Cloud) {
    let classic = LbTarget::ClassicElb("conf-classic".into());
    let tg = LbTarget::TargetGroup("conf-tg".into());
    let both = [classic.clone(), tg.clone()];
    assert!(cloud.balancer.describe(&both).await.unwrap().is_empty(), "balancer: nothing exists at first");
    let net = cloud.fleet.network(&[]).await.unwrap();
    let a = cloud.balancer.create(&classic, &spec(), &net).await.expect("create classic ELB");
    assert_eq!(a.target, classic);
    assert!(!a.dns_name.is_empty() && !a.hosted_zone_id.is_empty(), "balancer: classic ELB has dns and zone: {a:?}");
    let again = cloud.balancer.create(&classic, &spec(), &net).await.expect("create is idempotent");
    assert_eq!(again, a, "balancer: creating twice returns the same load balancer");
    let b = cloud.balancer.create(&tg, &spec(), &net).await.expect("create target group");
    assert_eq!(b.target, tg);
    assert!(!b.dns_name.is_empty() && !b.hosted_zone_id.is_empty(), "balancer: target group's ALB has dns and zone");
    let mut got = cloud.balancer.describe(&both).await.unwrap();
    got.sort_by(|x, y| x.target.cmp(&y.target));
    assert_eq!(got.len(), 2, "balancer: both described");
    let only = cloud.balancer.describe(std::slice::from_ref(&tg)).await.unwrap();
    assert_eq!(only, vec![b], "balancer: describe returns only what was asked");
}

pub async fn balancer_membership(cloud: &Cloud) {
    let classic = LbTarget::ClassicElb("conf-classic".into());
    let base = cloud.images.resolve_base(&BaseAmi::NameFilter("al2023-ami-2023.*-x86_64".into()), &["amazon".into()]).await.unwrap();
    let net = cloud.fleet.network(&[]).await.unwrap();
    let spec = LaunchSpec {
        ami: base,
        instance_type: "t3.micro".into(),
        subnet: net.subnets[0].id.clone(),
        security_groups: Vec::new(),
        count: 2,
        user_data: String::new(),
        tags: vec![(tags::APP.to_owned(), "conf-members".to_owned())],
        client_token: "conformance-members".into(),
    };
    let ids = cloud.fleet.launch(&spec).await.unwrap();
    assert!(cloud.balancer.members(&classic).await.unwrap().is_empty(), "balancer: no members at first");
    cloud.balancer.register(&classic, &ids, 8080).await.expect("register");
    let mut members = cloud.balancer.members(&classic).await.unwrap();
    members.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(members, want, "balancer: registered instances are members");
    let health = cloud.balancer.health(&classic).await.unwrap();
    assert_eq!(health.len(), 2, "balancer: health of every member");
    cloud.balancer.deregister(&classic, &ids[..1]).await.expect("deregister");
    assert_eq!(cloud.balancer.members(&classic).await.unwrap(), vec![ids[1].clone()], "balancer: deregistered ones leave");
    let missing = LbTarget::ClassicElb("conf-missing".into());
    let err = cloud.balancer.members(&missing).await.expect_err("missing load balancer");
    assert_eq!(err.kind(), ErrorKind::NotFound, "balancer: a missing load balancer is not-found: {err}");
    cloud.fleet.terminate(&ids).await.unwrap();
}

pub async fn dns_zone_and_weighted_records(cloud: &Cloud) {
    assert_eq!(cloud.dns.find_zone("conformance.test.").await.unwrap(), None, "dns: zone absent at first");
    let zone = cloud.dns.create_zone("conformance.test.").await.expect("create zone");
    assert_eq!(cloud.dns.find_zone("conformance.test.").await.unwrap(), Some(zone.clone()), "dns: zone found by name");
    assert_eq!(cloud.dns.find_zone("Conformance.Test").await.unwrap(), Some(zone.clone()), "dns: names compare case-insensitively");
    let rec = |id: &str, weight: u8| WeightedAlias {
        name: "app.conformance.test.".into(),
        set_identifier: id.into(),
        weight,
        target_dns: format!("{id}-1.us-east-1.elb.amazonaws.com"),
        target_zone_id: "Z35SXDOTRQ7X7K".into(),
    };
    let changes = [RecordChange::Upsert(rec("blue", 100)), RecordChange::Upsert(rec("green", 0))];
    cloud.dns.apply(&zone, &changes, "conformance").await.expect("one batch of two upserts");
    let mut got = cloud.dns.records(&zone, "app.conformance.test.").await.unwrap();
    got.weighted.sort_by(|a, b| a.set_identifier.cmp(&b.set_identifier));
    assert!(got.foreign.is_empty(), "dns: no foreign records");
    assert_eq!(got.weighted.len(), 2, "dns: both weighted aliases: {got:?}");
    assert_eq!((got.weighted[0].set_identifier.as_str(), got.weighted[0].weight), ("blue", 100));
    assert_eq!((got.weighted[1].set_identifier.as_str(), got.weighted[1].weight), ("green", 0));
    assert!(got.weighted[1].target_dns.starts_with("green-1."), "dns: alias target kept: {:?}", got.weighted[1]);
    cloud
        .dns
        .apply(&zone, &[RecordChange::Upsert(rec("blue", 0)), RecordChange::Upsert(rec("green", 100))], "flip")
        .await
        .expect("upsert replaces");
    let got = cloud.dns.records(&zone, "app.conformance.test.").await.unwrap();
    let w = |id: &str| got.weighted.iter().find(|r| r.set_identifier == id).map(|r| r.weight);
    assert_eq!((w("blue"), w("green"), got.weighted.len()), (Some(0), Some(100), 2), "dns: upsert changes weights in place");
    let other = cloud.dns.records(&zone, "other.conformance.test.").await.unwrap();
    assert!(other.weighted.is_empty() && other.foreign.is_empty(), "dns: records of another name are not returned");
}

pub async fn ledger_table(cloud: &Cloud) {
    assert!(!cloud.ledger.table_exists("conformance-ledger").await.unwrap(), "ledger: table absent at first");
    cloud.ledger.create_table("conformance-ledger").await.expect("create table");
    assert!(cloud.ledger.table_exists("conformance-ledger").await.unwrap(), "ledger: table exists after create");
    let err = cloud.ledger.create_table("conformance-ledger").await.expect_err("second create");
    assert_eq!(err.kind(), ErrorKind::Aws, "ledger: creating an existing table is an AWS error: {err}");
}
