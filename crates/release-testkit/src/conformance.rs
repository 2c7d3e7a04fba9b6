//! The one suite of port behaviour. Every behaviour the engine relies on is a function here, and
//! `tests/conformance.rs` of this crate runs each one as a test of its own against the in-memory cloud and against
//! the emulator ([`conformance_tests!`]), so the fast fake cannot drift from the real thing.

use std::time::Duration;

use release_core::model::clock::Timestamp;
use release_core::model::error::Cause;
use release_core::model::ids::{AmiId, AppName, ClusterName, CommitSha, EnvName, ReleaseId};
use release_core::model::ledger::{Action, LockInfo, Outcome, PromoteDetails, Record};
use release_core::model::pipeline::{BaseAmi, HealthCheck, LbTarget, MetadataTokens, RootVolume};
use release_core::ports::{tags, ChangeStatus, Cloud, Expect, IngressRule, LaunchSpec, LockWrite, LbSpec, RecordChange, RuleSource, WeightedAlias, ZoneId};
use release_core::ErrorKind;

/// What a backend offers the suite besides its ports: the things only Packer or a person does.
#[async_trait::async_trait]
pub trait Harness: Send + Sync {
    /// The ports.
    fn cloud(&self) -> Cloud;
    /// An image of this account as Packer leaves it (no release tags).
    async fn make_image(&self, name: &str, base: &AmiId) -> AmiId;
    /// A record of `name` that release does not manage (a CNAME made by hand).
    async fn plant_cname(&self, zone: &ZoneId, name: &str);
    /// Lets the backend's time pass (simulated, or real for the emulator).
    async fn wait(&self, d: Duration);
    /// A CloudWatch metric alarm, made by the account owner (INSUFFICIENT_DATA at first).
    async fn put_alarm(&self, name: &str);
    /// Sets an alarm's state, as its metric would.
    async fn set_alarm_state(&self, name: &str, state: release_core::ports::AlarmState);
}

/// Generates one `#[tokio::test]` per behaviour: `conformance_tests!((tokio test args), harness expression)`.
#[macro_export]
macro_rules! conformance_tests {
    ($attrs:tt, $harness:expr) => {
        $crate::conformance_tests!(@each $attrs; $harness;
            fleet_instances_say_where_they_run, balancer_members_and_zones_in_one_read,
            fleet_network, fleet_launch_states_terminate, balancer_create_describe, balancer_membership,
            dns_zone_lookup_is_exact, dns_weighted_records_in_one_batch, dns_foreign_records, dns_change_reaches_insync,
            fleet_offered_zones, firewall_groups_and_rules, balancer_config_round_trips,
            ledger_table, ledger_order_and_limit, ledger_writes_are_conditional_on_the_holder, ledger_environment_index,
            lock_acquire_free_held_expired, lock_renew_and_release_only_ones_own, lock_break_only_what_was_seen,
            record_with_lock_both_or_neither,
            queue_tickets_in_order_of_arrival, queue_update_and_remove_only_what_exists,
            images_completeness_and_tags, alarms_states_in_one_call, images_snapshots_by_tag_outlive_their_image,
            images_and_fleet_of_another_region, templates_made_once_with_numbered_versions, groups_launch_attach_scale_delete);
    };
    (@each $attrs:tt; $harness:expr; $($name:ident),*) => {
        $(
            #[tokio::test $attrs]
            async fn $name() {
                let h = $harness;
                $crate::conformance::$name(&h).await;
            }
        )*
    };
}

fn spec() -> LbSpec {
    LbSpec {
        port: 8080,
        health_path: "/health".into(),
        health: HealthCheck::default(),
        drain: Duration::from_secs(30),
        cross_zone: true,
        security_groups: Vec::new(),
        certificate: None,
        tls_policy: None,
        internal: false,
    }
}

fn launch_settings() -> (Option<String>, Option<String>, MetadataTokens, Option<(String, RootVolume)>) {
    // The demo's instance profile (the emulator harness creates it; EC2 refuses a profile that does not exist).
    (Some("hello-app".into()), None, MetadataTokens::Required, Some(("/dev/xvda".into(), RootVolume { size_gb: 16, kind: "gp3".into(), encrypted: true, iops: None, throughput: None })))
}

async fn base(cloud: &Cloud) -> AmiId {
    cloud.images.resolve_base(&BaseAmi::NameFilter("al2023-ami-2023.*-x86_64".into()), &["amazon".into()]).await.expect("a base image to launch")
}

/// The network: the default VPC's subnets, a named one, an unknown one.
pub async fn fleet_network(h: &dyn Harness) {
    let cloud = h.cloud();
    let net = cloud.fleet.network(&[]).await.expect("default network");
    assert!(net.vpc_id.starts_with("vpc-"), "fleet: default vpc id {:?}", net.vpc_id);
    let mut zones: Vec<&str> = net.subnets.iter().map(|s| s.availability_zone.as_str()).collect();
    zones.dedup();
    assert!(zones.len() >= 2, "fleet: default VPC spans at least two zones, got {zones:?}");
    let one = cloud.fleet.network(&[net.subnets[0].id.clone()]).await.expect("named subnet");
    assert_eq!(one.subnets, vec![net.subnets[0].clone()], "fleet: a named subnet is returned as is");
    let err = cloud.fleet.network(&["subnet-0000000000000dead".into()]).await.expect_err("unknown subnet");
    assert_eq!((err.kind(), err.cause()), (ErrorKind::NotFound, Some(Cause::Missing)), "fleet: unknown subnet is missing: {err}");
}

/// Launch with tags, find by app tag and by id and state, terminate.
pub async fn fleet_launch_states_terminate(h: &dyn Harness) {
    let cloud = h.cloud();
    let app = AppName::parse("conf-app").unwrap();
    let net = cloud.fleet.network(&[]).await.unwrap();
    let t = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let spec = LaunchSpec {
        ami: base(&cloud).await,
        instance_type: "t3.micro".into(),
        subnet: net.subnets[0].id.clone(),
        security_groups: Vec::new(),
        count: 3,
        user_data: "#!/bin/bash\ntrue\n".into(),
        tags: vec![t(tags::APP, "conf-app"), t(tags::RELEASE_ID, "r1")],
        client_token: "conformance-r1".into(),
        instance_profile: launch_settings().0,
        key_name: launch_settings().1,
        metadata_tokens: launch_settings().2,
        root_volume: launch_settings().3,
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

/// An instance's describe says its subnet, VPC and security groups (by name and id), and a promote takes them from
/// there rather than describing the subnets and groups again.
pub async fn fleet_instances_say_where_they_run(h: &dyn Harness) {
    let cloud = h.cloud();
    let net = cloud.fleet.network(&[]).await.unwrap();
    let group = cloud.firewall.create_group(&net.vpc_id, "conf-where-instances", "conformance", &[]).await.expect("group");
    let spec = LaunchSpec {
        ami: base(&cloud).await,
        instance_type: "t3.micro".into(),
        subnet: net.subnets[1].id.clone(),
        security_groups: vec![group.clone()],
        count: 1,
        user_data: String::new(),
        tags: vec![(tags::APP.to_owned(), "conf-where".to_owned())],
        client_token: "conformance-where".into(),
        instance_profile: None,
        key_name: None,
        metadata_tokens: MetadataTokens::Required,
        root_volume: None,
    };
    let ids = cloud.fleet.launch(&spec).await.unwrap();
    let found = cloud.fleet.app_instances(&AppName::parse("conf-where").unwrap()).await.unwrap();
    assert_eq!(found.len(), 1);
    let i = &found[0];
    assert_eq!((i.subnet_id.as_str(), i.vpc_id.as_str(), i.zone.as_str()), (spec.subnet.as_str(), net.vpc_id.as_str(), net.subnets[1].availability_zone.as_str()), "fleet: where it runs");
    assert_eq!(i.groups.get("conf-where-instances"), Some(&group), "fleet: its groups by name: {:?}", i.groups);
    cloud.fleet.terminate(&ids).await.unwrap();
}

/// The members and zones of a classic ELB and a target group read together are what each read alone says.
pub async fn balancer_members_and_zones_in_one_read(h: &dyn Harness) {
    let cloud = h.cloud();
    let net = cloud.fleet.network(&[]).await.unwrap();
    for target in [LbTarget::ClassicElb("conf-mz-classic".into()), LbTarget::TargetGroup("conf-mz-tg".into())] {
        cloud.balancer.create(&target, &spec(), &net, &[]).await.unwrap();
        let (members, zones) = cloud.balancer.members_and_zones(&target).await.expect("members and zones");
        assert_eq!(members, cloud.balancer.members(&target).await.unwrap(), "balancer: {target} members");
        assert_eq!(zones, cloud.balancer.zones(&target).await.unwrap(), "balancer: {target} zones");
    }
    let missing = LbTarget::ClassicElb("conf-mz-missing".into());
    let err = cloud.balancer.members_and_zones(&missing).await.expect_err("missing");
    assert_eq!((err.kind(), err.cause()), (ErrorKind::NotFound, Some(Cause::Missing)), "balancer: a missing load balancer is missing: {err}");
}

/// Create (idempotent) and describe classic ELBs and target groups.
pub async fn balancer_create_describe(h: &dyn Harness) {
    let cloud = h.cloud();
    let classic = LbTarget::ClassicElb("conf-classic".into());
    let tg = LbTarget::TargetGroup("conf-tg".into());
    let both = [classic.clone(), tg.clone()];
    assert!(cloud.balancer.describe(&both).await.unwrap().is_empty(), "balancer: nothing exists at first");
    let net = cloud.fleet.network(&[]).await.unwrap();
    let owned = [("release:app".to_owned(), "conf".to_owned()), ("release:managed".to_owned(), "true".to_owned())];
    assert!(cloud.balancer.ownership(&both).await.unwrap().is_empty(), "balancer: no ownership of what does not exist");
    let a = cloud.balancer.create(&classic, &spec(), &net, &owned).await.expect("create classic ELB");
    assert_eq!(a.target, classic);
    assert!(!a.dns_name.is_empty() && !a.hosted_zone_id.is_empty(), "balancer: classic ELB has dns and zone: {a:?}");
    let again = cloud.balancer.create(&classic, &spec(), &net, &owned).await.expect("create is idempotent");
    assert_eq!(again, a, "balancer: creating twice returns the same load balancer");
    let b = cloud.balancer.create(&tg, &spec(), &net, &owned).await.expect("create target group");
    assert_eq!(b.target, tg);
    assert!(!b.dns_name.is_empty() && !b.hosted_zone_id.is_empty(), "balancer: target group's ALB has dns and zone");
    assert_eq!(cloud.balancer.describe(&both).await.unwrap().len(), 2, "balancer: both described");
    let only = cloud.balancer.describe(std::slice::from_ref(&tg)).await.unwrap();
    assert_eq!(only, vec![b], "balancer: describe returns only what was asked");
    // What it made carries the ownership tags, and each serves itself (a target group: the ALB named like it).
    let mut owners = cloud.balancer.ownership(&both).await.unwrap();
    owners.sort_by(|x, y| x.target.name().cmp(y.target.name()));
    let seen: Vec<(String, Option<String>, Option<String>)> =
        owners.iter().map(|o| (o.target.name().to_owned(), o.managed_by.clone(), o.served_by.as_ref().map(|s| format!("{} {}", s.kind, s.name)))).collect();
    assert_eq!(
        seen,
        [
            ("conf-classic".to_owned(), Some("conf".to_owned()), Some("classic ELB conf-classic".to_owned())),
            ("conf-tg".to_owned(), Some("conf".to_owned()), Some("ALB conf-tg".to_owned())),
        ],
        "balancer: ownership of what create made"
    );
}

/// Register, members, health, deregister; a missing load balancer is `Missing`.
pub async fn balancer_membership(h: &dyn Harness) {
    let cloud = h.cloud();
    let classic = LbTarget::ClassicElb("conf-members".into());
    let net = cloud.fleet.network(&[]).await.unwrap();
    cloud.balancer.create(&classic, &spec(), &net, &[]).await.unwrap();
    let spec = LaunchSpec {
        ami: base(&cloud).await,
        instance_type: "t3.micro".into(),
        subnet: net.subnets[0].id.clone(),
        security_groups: Vec::new(),
        count: 2,
        user_data: String::new(),
        tags: vec![(tags::APP.to_owned(), "conf-members".to_owned())],
        client_token: "conformance-members".into(),
        instance_profile: None,
        key_name: None,
        metadata_tokens: MetadataTokens::Required,
        root_volume: None,
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
    let mut health_ids: Vec<_> = health.iter().map(|h| h.id.clone()).collect();
    health_ids.sort();
    assert_eq!(health_ids, want, "balancer: health lists every member (status reads membership from it)");
    cloud.balancer.deregister(&classic, &ids[..1]).await.expect("deregister");
    assert_eq!(cloud.balancer.members(&classic).await.unwrap(), vec![ids[1].clone()], "balancer: deregistered ones leave");
    let missing = LbTarget::ClassicElb("conf-missing".into());
    for err in [cloud.balancer.members(&missing).await.expect_err("members"), cloud.balancer.health(&missing).await.expect_err("health")] {
        assert_eq!((err.kind(), err.cause()), (ErrorKind::NotFound, Some(Cause::Missing)), "balancer: a missing load balancer is missing: {err}");
    }
    cloud.fleet.terminate(&ids).await.unwrap();
}

/// Zones are found by their exact name, case-insensitively; a zone created returns its name servers.
pub async fn dns_zone_lookup_is_exact(h: &dyn Harness) {
    let cloud = h.cloud();
    assert_eq!(cloud.dns.find_zone("conformance.test.").await.unwrap(), None, "dns: zone absent at first");
    let sub = cloud.dns.create_zone("sub.conformance.test.").await.expect("create sub zone");
    assert_eq!(cloud.dns.find_zone("conformance.test.").await.unwrap(), None, "dns: a zone of another name is not it");
    let zone = cloud.dns.create_zone("conformance.test.").await.expect("create zone");
    assert!(!zone.name_servers.is_empty(), "dns: a new zone's name servers are returned");
    assert_eq!(cloud.dns.find_zone("conformance.test.").await.unwrap(), Some(zone.id.clone()), "dns: zone found by name");
    assert_eq!(cloud.dns.find_zone("Conformance.Test").await.unwrap(), Some(zone.id.clone()), "dns: names compare case-insensitively");
    assert_eq!(cloud.dns.find_zone("sub.conformance.test.").await.unwrap(), Some(sub.id), "dns: the sub zone by its own name");
}

fn alias(id: &str, weight: u8) -> WeightedAlias {
    WeightedAlias {
        name: "app.conformance.test.".into(),
        set_identifier: id.into(),
        weight,
        target_dns: format!("{id}-1.us-east-1.elb.amazonaws.com"),
        target_zone_id: "Z35SXDOTRQ7X7K".into(),
        evaluate_target_health: true,
    }
}

/// Upserts in one batch create, then change weights in place; a delete removes exactly one record.
pub async fn dns_weighted_records_in_one_batch(h: &dyn Harness) {
    let cloud = h.cloud();
    let zone = cloud.dns.create_zone("weights.test.").await.unwrap().id;
    let name = "app.conformance.test.".replace("conformance", "weights");
    let rec = |id: &str, w: u8| WeightedAlias { name: name.clone(), ..alias(id, w) };
    cloud.dns.submit(&zone, &[RecordChange::Upsert(rec("blue", 100)), RecordChange::Upsert(rec("green", 0))], "conformance").await.expect("one batch");
    let mut got = cloud.dns.records(&zone, &name).await.unwrap();
    got.weighted.sort_by(|a, b| a.set_identifier.cmp(&b.set_identifier));
    assert!(got.foreign.is_empty(), "dns: no foreign records");
    assert_eq!(got.weighted.iter().map(|r| (r.set_identifier.as_str(), r.weight)).collect::<Vec<_>>(), vec![("blue", 100), ("green", 0)]);
    assert!(got.weighted[1].target_dns.starts_with("green-1."), "dns: alias target kept: {:?}", got.weighted[1]);
    cloud.dns.submit(&zone, &[RecordChange::Upsert(rec("blue", 0)), RecordChange::Upsert(rec("green", 100))], "flip").await.expect("upsert");
    let got = cloud.dns.records(&zone, &name).await.unwrap();
    let w = |id: &str| got.weighted.iter().find(|r| r.set_identifier == id).map(|r| r.weight);
    assert_eq!((w("blue"), w("green"), got.weighted.len()), (Some(0), Some(100), 2), "dns: upsert changes weights in place");
    assert!(got.weighted.iter().all(|r| r.evaluate_target_health), "dns: EvaluateTargetHealth as written");
    let unhealthy_too = WeightedAlias { evaluate_target_health: false, ..rec("blue", 0) };
    cloud.dns.submit(&zone, &[RecordChange::Upsert(unhealthy_too.clone())], "by hand").await.expect("upsert");
    let got = cloud.dns.records(&zone, &name).await.unwrap();
    assert_eq!(got.weighted.iter().find(|r| r.set_identifier == "blue"), Some(&unhealthy_too), "dns: EvaluateTargetHealth off reads back off");
    // A delete names the record exactly as it is, EvaluateTargetHealth included.
    cloud.dns.submit(&zone, &[RecordChange::Delete(unhealthy_too)], "remove").await.expect("delete");
    let got = cloud.dns.records(&zone, &name).await.unwrap();
    assert_eq!(got.weighted.iter().map(|r| r.set_identifier.as_str()).collect::<Vec<_>>(), vec!["green"], "dns: delete removes one record");
    let other = cloud.dns.records(&zone, &format!("other.{name}")).await.unwrap();
    assert!(other.weighted.is_empty() && other.foreign.is_empty(), "dns: records of another name are not returned");
}

/// A record of the live name that release does not manage is reported as foreign, never as weighted.
pub async fn dns_foreign_records(h: &dyn Harness) {
    let cloud = h.cloud();
    let zone = cloud.dns.create_zone("foreign.test.").await.unwrap().id;
    h.plant_cname(&zone, "app.foreign.test.").await;
    let got = cloud.dns.records(&zone, "app.foreign.test.").await.unwrap();
    assert!(got.weighted.is_empty(), "dns: a CNAME is not a weighted alias: {got:?}");
    assert_eq!(got.foreign.iter().map(|f| f.record_type.as_str()).collect::<Vec<_>>(), vec!["CNAME"], "dns: the CNAME is foreign");
}

/// A submitted change reports INSYNC eventually (at once in the emulator; after its propagation time in memory).
pub async fn dns_change_reaches_insync(h: &dyn Harness) {
    let cloud = h.cloud();
    let zone = cloud.dns.create_zone("sync.test.").await.unwrap().id;
    let change = cloud.dns.submit(&zone, &[RecordChange::Upsert(WeightedAlias { name: "app.sync.test.".into(), ..alias("blue", 100) })], "sync").await.unwrap();
    let mut status = cloud.dns.change_status(&change).await.unwrap();
    for _ in 0..120 {
        if status == ChangeStatus::InSync {
            break;
        }
        h.wait(Duration::from_secs(1)).await;
        status = cloud.dns.change_status(&change).await.unwrap();
    }
    assert_eq!(status, ChangeStatus::InSync, "dns: a change reaches INSYNC");
}

/// The ledger table: absent, created, exists; creating it twice is an AWS error.
pub async fn ledger_table(h: &dyn Harness) {
    let cloud = h.cloud();
    assert!(!cloud.ledger.table_exists("conformance-ledger").await.unwrap(), "ledger: table absent at first");
    let err = cloud.ledger.records("conformance-ledger", &AppName::parse("a").unwrap(), &EnvName::parse("e").unwrap(), Some(1)).await.expect_err("no table");
    assert_eq!((err.kind(), err.cause()), (ErrorKind::NotFound, Some(Cause::Missing)), "ledger: reading a missing table is missing: {err}");
    cloud.ledger.create_table("conformance-ledger").await.expect("create table");
    assert!(cloud.ledger.table_exists("conformance-ledger").await.unwrap(), "ledger: table exists after create");
    let err = cloud.ledger.create_table("conformance-ledger").await.expect_err("second create");
    assert_eq!(err.kind(), ErrorKind::Aws, "ledger: creating an existing table is an AWS error: {err}");
}

fn record(env: &str, started: i64, id: &str) -> Record {
    let sha = CommitSha::parse(&"a".repeat(40)).unwrap();
    Record {
        app: AppName::parse("conf").unwrap(),
        env: EnvName::parse(env).unwrap(),
        release_id: ReleaseId::from_string(id.into()),
        holder: ReleaseId::from_string(id.into()),
        actor: "ci".into(),
        caller: "arn:aws:iam::123456789012:user/ci".into(),
        host: "h".into(),
        started: Timestamp::from_millis(started),
        finished: None,
        outcome: Outcome::Started,
        detail: None,
        forced: false,
        rolled_back: None,
        seconds: Default::default(),
        progress: None,
        notify_failures: Vec::new(),
        hooks: Vec::new(),
        hook_running: None, gates_overridden: None,
        action: Action::Promote(PromoteDetails {
            cluster: ClusterName::parse("c").unwrap(),
            commit: sha,
            ami: AmiId::parse("ami-1").unwrap(),
            from: None,
            config_hash: "x".into(),
            in_place: true,
            new_instances: Vec::new(),
            retired_instances: Vec::new(),
            strays_retired: Vec::new(),
            terminated_by_hand: Vec::new(),
            batches_done: 0,
            subject: None,
            draining: Default::default(),
            groups: None,
        }),
    }
}

async fn table(cloud: &Cloud, name: &str) {
    if !cloud.ledger.table_exists(name).await.unwrap() {
        cloud.ledger.create_table(name).await.unwrap();
    }
}

/// Records of one environment come newest first, `limit` at most, typed as written; other environments' not.
pub async fn ledger_order_and_limit(h: &dyn Harness) {
    let cloud = h.cloud();
    table(&cloud, "conf-order").await;
    for (i, t) in [3_000i64, 1_000, 5_000, 2_000, 4_000].into_iter().enumerate() {
        cloud.ledger.put_record("conf-order", &record("prod", t, &format!("r{i}")), Expect::New).await.unwrap();
    }
    cloud.ledger.put_record("conf-order", &record("staging", 9_000, "other"), Expect::New).await.unwrap();
    let (app, prod) = (AppName::parse("conf").unwrap(), EnvName::parse("prod").unwrap());
    let all = cloud.ledger.records("conf-order", &app, &prod, None).await.unwrap();
    let starts: Vec<i64> = all.iter().map(|r| r.started.millis()).collect();
    assert_eq!(starts, vec![5_000, 4_000, 3_000, 2_000, 1_000], "ledger: newest first, only this environment");
    assert_eq!(all[0], record("prod", 5_000, "r2"), "ledger: a record reads back as written");
    let two = cloud.ledger.records("conf-order", &app, &prod, Some(2)).await.unwrap();
    assert_eq!(two.iter().map(|r| r.started.millis()).collect::<Vec<_>>(), vec![5_000, 4_000], "ledger: limit keeps the newest");
}

/// Opening a record twice fails; later writes succeed only for its holder; adoption moves the holder.
pub async fn ledger_writes_are_conditional_on_the_holder(h: &dyn Harness) {
    let cloud = h.cloud();
    table(&cloud, "conf-cond").await;
    let mut r = record("prod", 1_000, "r1");
    assert!(cloud.ledger.put_record("conf-cond", &r, Expect::New).await.unwrap(), "ledger: a new record opens");
    assert!(!cloud.ledger.put_record("conf-cond", &r, Expect::New).await.unwrap(), "ledger: it cannot be opened twice");
    r.outcome = Outcome::Succeeded;
    assert!(!cloud.ledger.put_record("conf-cond", &r, Expect::Holder(ReleaseId::from_string("intruder".into()))).await.unwrap(), "ledger: another run cannot write it");
    let mut adopted = r.clone();
    adopted.holder = ReleaseId::from_string("r2".into());
    assert!(cloud.ledger.put_record("conf-cond", &adopted, Expect::Holder(ReleaseId::from_string("r1".into()))).await.unwrap(), "ledger: adoption from the holder");
    assert!(!cloud.ledger.put_record("conf-cond", &r, Expect::Holder(ReleaseId::from_string("r1".into()))).await.unwrap(), "ledger: the old holder is locked out");
    let (app, prod) = (AppName::parse("conf").unwrap(), EnvName::parse("prod").unwrap());
    let got = cloud.ledger.records("conf-cond", &app, &prod, None).await.unwrap();
    assert_eq!(got, vec![adopted], "ledger: exactly the adopter's write holds");
}

/// The index of environments per app.
pub async fn ledger_environment_index(h: &dyn Harness) {
    let cloud = h.cloud();
    table(&cloud, "conf-index").await;
    let app = AppName::parse("conf").unwrap();
    assert!(cloud.ledger.indexed_envs("conf-index", &app).await.unwrap().is_empty());
    for e in ["staging", "prod", "prod"] {
        cloud.ledger.index_env("conf-index", &app, &EnvName::parse(e).unwrap()).await.unwrap();
    }
    cloud.ledger.index_env("conf-index", &AppName::parse("other").unwrap(), &EnvName::parse("qa").unwrap()).await.unwrap();
    let mut envs: Vec<String> = cloud.ledger.indexed_envs("conf-index", &app).await.unwrap().iter().map(ToString::to_string).collect();
    envs.sort();
    assert_eq!(envs, vec!["prod", "staging"], "ledger: each environment once, only this app's");
}

fn lock(id: &str, now: i64, lease_ms: i64) -> LockInfo {
    LockInfo {
        app: AppName::parse("conf").unwrap(),
        env: EnvName::parse("prod").unwrap(),
        holder: format!("holder-{id}"),
        release_id: ReleaseId::from_string(id.into()),
        doing: "conformance".into(),
        host: "h".into(),
        pid: None,
        acquired: Timestamp::from_millis(now),
        renewed: Some(Timestamp::from_millis(now)),
        expires: Timestamp::from_millis(now + lease_ms),
        lease: 1,
    }
}

/// A free lock is taken; a held one returns its holder, whatever its expiry says (no clock is compared); it is
/// taken over only while it is still the very lease the taker saw, never once renewed since.
pub async fn lock_acquire_free_held_expired(h: &dyn Harness) {
    let cloud = h.cloud();
    table(&cloud, "conf-lock").await;
    assert_eq!(cloud.lock.acquire("conf-lock", &lock("a", 1_000, 60_000), None).await.unwrap(), None, "lock: free is taken");
    let held = cloud.lock.acquire("conf-lock", &lock("b", 70_000, 60_000), None).await.unwrap();
    assert_eq!(held, Some(lock("a", 1_000, 60_000)), "lock: held returns the holder, even long after its expiry");
    let seen = held.unwrap();
    let renewed = LockInfo { renewed: Some(Timestamp::from_millis(30_000)), expires: Timestamp::from_millis(90_000), lease: 2, ..seen.clone() };
    assert!(cloud.lock.renew("conf-lock", &renewed).await.unwrap());
    let (app, prod) = (AppName::parse("conf").unwrap(), EnvName::parse("prod").unwrap());
    assert_eq!(cloud.lock.acquire("conf-lock", &lock("b", 70_000, 60_000), Some(&seen)).await.unwrap(), Some(renewed.clone()), "lock: a lease renewed since it was seen is not taken over");
    assert_eq!(cloud.lock.acquire("conf-lock", &lock("b", 150_000, 60_000), Some(&renewed)).await.unwrap(), None, "lock: the lease seen is taken over");
    assert_eq!(cloud.lock.holder("conf-lock", &app, &prod).await.unwrap(), Some(lock("b", 150_000, 60_000)), "lock: holder reads it back");
    let over_gone = lock("c", 160_000, 60_000);
    cloud.lock.release("conf-lock", &lock("b", 0, 0)).await.unwrap();
    assert_eq!(cloud.lock.acquire("conf-lock", &over_gone, Some(&renewed)).await.unwrap(), None, "lock: a released lock is free for a taker that watched another lease");
}

/// Renew and release work only for the holder.
pub async fn lock_renew_and_release_only_ones_own(h: &dyn Harness) {
    let cloud = h.cloud();
    table(&cloud, "conf-renew").await;
    let (app, prod) = (AppName::parse("conf").unwrap(), EnvName::parse("prod").unwrap());
    cloud.lock.acquire("conf-renew", &lock("a", 1_000, 60_000), None).await.unwrap();
    assert!(!cloud.lock.renew("conf-renew", &lock("b", 2_000, 60_000)).await.unwrap(), "lock: others cannot renew it");
    assert!(cloud.lock.renew("conf-renew", &lock("a", 30_000, 60_000)).await.unwrap(), "lock: its holder renews it");
    assert_eq!(cloud.lock.holder("conf-renew", &app, &prod).await.unwrap().map(|l| l.expires.millis()), Some(90_000), "lock: renewal extends");
    cloud.lock.release("conf-renew", &lock("b", 0, 0)).await.unwrap();
    assert!(cloud.lock.holder("conf-renew", &app, &prod).await.unwrap().is_some(), "lock: others cannot release it");
    cloud.lock.release("conf-renew", &lock("a", 0, 0)).await.unwrap();
    assert_eq!(cloud.lock.holder("conf-renew", &app, &prod).await.unwrap(), None, "lock: its holder releases it");
    assert!(!cloud.lock.renew("conf-renew", &lock("a", 40_000, 60_000)).await.unwrap(), "lock: a released lock cannot be renewed");
}

/// A record written with its lock renewed or released in one call: both when the record is the holder's and the lock
/// is still ours, neither otherwise.
pub async fn record_with_lock_both_or_neither(h: &dyn Harness) {
    let cloud = h.cloud();
    table(&cloud, "conf-both").await;
    let (app, prod) = (AppName::parse("conf").unwrap(), EnvName::parse("prod").unwrap());
    let id = |s: &str| ReleaseId::from_string(s.into());
    let mut r = record("prod", 1_000, "a");
    cloud.ledger.put_record("conf-both", &r, Expect::New).await.unwrap();
    cloud.lock.acquire("conf-both", &lock("a", 1_000, 60_000), None).await.unwrap();
    r.detail = Some("renewed".into());
    let renewed = lock("a", 30_000, 60_000);
    assert!(!cloud.ledger.put_record_with_lock("conf-both", &r, &id("b"), &renewed, LockWrite::Renew).await.unwrap(), "record+lock: not the record's holder");
    assert!(!cloud.ledger.put_record_with_lock("conf-both", &r, &id("a"), &lock("b", 30_000, 60_000), LockWrite::Renew).await.unwrap(), "record+lock: not our lock");
    assert_eq!(cloud.ledger.records("conf-both", &app, &prod, None).await.unwrap()[0].detail, None, "record+lock: refused, the record is unchanged");
    assert_eq!(cloud.lock.holder("conf-both", &app, &prod).await.unwrap().map(|l| l.expires.millis()), Some(61_000), "record+lock: refused, the lock is unchanged");
    assert!(cloud.ledger.put_record_with_lock("conf-both", &r, &id("a"), &renewed, LockWrite::Renew).await.unwrap(), "record+lock: renewed");
    assert_eq!(cloud.ledger.records("conf-both", &app, &prod, None).await.unwrap()[0].detail.as_deref(), Some("renewed"));
    assert_eq!(cloud.lock.holder("conf-both", &app, &prod).await.unwrap().map(|l| l.expires.millis()), Some(90_000), "record+lock: the lease extended");
    r.outcome = Outcome::Succeeded;
    assert!(cloud.ledger.put_record_with_lock("conf-both", &r, &id("a"), &renewed, LockWrite::Release).await.unwrap(), "record+lock: closed and released");
    assert_eq!(cloud.ledger.records("conf-both", &app, &prod, None).await.unwrap()[0].outcome, Outcome::Succeeded);
    assert_eq!(cloud.lock.holder("conf-both", &app, &prod).await.unwrap(), None, "record+lock: the lock is gone");
    assert!(!cloud.ledger.put_record_with_lock("conf-both", &r, &id("a"), &renewed, LockWrite::Release).await.unwrap(), "record+lock: a released lock is not ours");
}

/// Break removes the lock only if it is still the one seen.
pub async fn lock_break_only_what_was_seen(h: &dyn Harness) {
    let cloud = h.cloud();
    table(&cloud, "conf-break").await;
    let (app, prod) = (AppName::parse("conf").unwrap(), EnvName::parse("prod").unwrap());
    cloud.lock.acquire("conf-break", &lock("a", 1_000, 60_000), None).await.unwrap();
    assert!(!cloud.lock.break_lock("conf-break", &app, &prod, &ReleaseId::from_string("z".into())).await.unwrap(), "lock: a lock not seen is not broken");
    assert!(cloud.lock.holder("conf-break", &app, &prod).await.unwrap().is_some());
    assert!(cloud.lock.break_lock("conf-break", &app, &prod, &ReleaseId::from_string("a".into())).await.unwrap(), "lock: the lock seen is broken");
    assert_eq!(cloud.lock.holder("conf-break", &app, &prod).await.unwrap(), None);
    assert!(!cloud.lock.break_lock("conf-break", &app, &prod, &ReleaseId::from_string("a".into())).await.unwrap(), "lock: nothing to break");
}

fn ticket(id: &str, arrival: i64) -> release_core::model::ledger::Ticket {
    release_core::model::ledger::Ticket {
        app: AppName::parse("conf").unwrap(),
        env: EnvName::parse("prod").unwrap(),
        id: ReleaseId::from_string(id.into()),
        arrival: Timestamp::from_millis(arrival),
        holder: format!("holder-{id}"),
        host: "h".into(),
        pid: Some(7),
        action: release_core::model::ledger::TicketAction::Promote,
        commit: Some(release_core::model::ids::CommitSha::parse(&"c".repeat(40)).unwrap()),
        doing: format!("promote {id}"),
        expires: Timestamp::from_millis(arrival + 120_000),
        renewed: Some(Timestamp::from_millis(arrival)),
        started: None,
    }
}

/// Tickets come back in order of arrival whatever order they were written in, separate from records and the lock;
/// one id is never enqueued twice.
pub async fn queue_tickets_in_order_of_arrival(h: &dyn Harness) {
    let cloud = h.cloud();
    table(&cloud, "conf-queue").await;
    let (app, prod) = (AppName::parse("conf").unwrap(), EnvName::parse("prod").unwrap());
    assert!(cloud.queue.tickets("conf-queue", &app, &prod).await.unwrap().is_empty(), "queue: empty at first");
    for (id, at) in [("c", 3_000), ("a", 1_000), ("b", 2_000)] {
        cloud.queue.enqueue("conf-queue", &ticket(id, at)).await.unwrap();
    }
    cloud.lock.acquire("conf-queue", &lock("holder", 500, 60_000), None).await.unwrap();
    let got = cloud.queue.tickets("conf-queue", &app, &prod).await.unwrap();
    assert_eq!(got, vec![ticket("a", 1_000), ticket("b", 2_000), ticket("c", 3_000)], "queue: in order of arrival, read back whole");
    assert!(cloud.queue.enqueue("conf-queue", &ticket("a", 1_000)).await.is_err(), "queue: a ticket is never overwritten");
    let other = EnvName::parse("staging").unwrap();
    assert!(cloud.queue.tickets("conf-queue", &app, &other).await.unwrap().is_empty(), "queue: per environment");
    assert!(cloud.ledger.records("conf-queue", &app, &prod, None).await.unwrap().is_empty(), "queue: tickets are not records");
}

/// A ticket is renewed only while it exists (a cancelled one stays gone); remove says whether it was there.
pub async fn queue_update_and_remove_only_what_exists(h: &dyn Harness) {
    let cloud = h.cloud();
    table(&cloud, "conf-ticket").await;
    let (app, prod) = (AppName::parse("conf").unwrap(), EnvName::parse("prod").unwrap());
    cloud.queue.enqueue("conf-ticket", &ticket("a", 1_000)).await.unwrap();
    let mut renewed = ticket("a", 1_000);
    renewed.expires = Timestamp::from_millis(500_000);
    renewed.renewed = Some(Timestamp::from_millis(380_000));
    assert!(cloud.queue.update_ticket("conf-ticket", &renewed).await.unwrap(), "queue: its waiter renews it");
    assert_eq!(cloud.queue.tickets("conf-ticket", &app, &prod).await.unwrap(), vec![renewed.clone()], "queue: renewal extends the lease");
    assert!(cloud.queue.remove_ticket("conf-ticket", &renewed).await.unwrap(), "queue: removed");
    assert!(!cloud.queue.remove_ticket("conf-ticket", &renewed).await.unwrap(), "queue: removing twice says it was gone");
    assert!(!cloud.queue.update_ticket("conf-ticket", &renewed).await.unwrap(), "queue: a cancelled ticket is not brought back by a renewal");
    assert!(cloud.queue.tickets("conf-ticket", &app, &prod).await.unwrap().is_empty());
}

/// Images are the app's by tag; complete only once available and carrying the bake key; by name; deregister.
pub async fn images_completeness_and_tags(h: &dyn Harness) {
    let cloud = h.cloud();
    let app = AppName::parse("conf-img").unwrap();
    let b = base(&cloud).await;
    let ami = h.make_image("conf-img-1", &b).await;
    assert!(cloud.images.app_images(&app).await.unwrap().is_empty(), "images: an untagged image is not the app's");
    let found = cloud.images.by_name("conf-img-1").await.unwrap().expect("by name");
    assert_eq!(found.id, ami, "images: found by exact name");
    assert!(cloud.images.by_name("conf-img").await.unwrap().is_none(), "images: names match exactly");
    let t = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    cloud.images.tag(&ami, &found.snapshots, &[t(tags::APP, "conf-img"), t(tags::COMMIT, &"a".repeat(40))]).await.unwrap();
    let mine = cloud.images.app_images(&app).await.unwrap();
    assert_eq!(mine.len(), 1, "images: tagged with the app, it is the app's");
    assert!(!mine[0].is_complete_bake(), "images: without the bake key it is no bake");
    cloud.images.tag(&ami, &found.snapshots, &[t(tags::BAKE_KEY, "k")]).await.unwrap();
    let mine = cloud.images.app_images(&app).await.unwrap();
    assert!(mine[0].is_complete_bake(), "images: available with the key, it is a bake: {:?}", mine[0]);
    let snapshots = mine[0].snapshots.clone();
    assert!(!snapshots.is_empty(), "images: an image has its snapshots: {:?}", mine[0]);
    assert!(mine[0].root_device.is_some(), "images: the root device name is known: {:?}", mine[0]);
    cloud.images.deregister(&ami).await.expect("deregister");
    for snap in &snapshots {
        cloud.images.delete_snapshot(snap).await.expect("delete the snapshot of a deregistered image");
        let again = cloud.images.delete_snapshot(snap).await.expect_err("deleted twice");
        assert_eq!(again.cause(), Some(Cause::Missing), "images: a deleted snapshot is missing: {again}");
    }
    assert!(cloud.images.app_images(&app).await.unwrap().is_empty(), "images: deregistered images are gone");
    assert!(cloud.images.describe(&ami).await.unwrap().is_none_or(|i| !i.is_complete_bake()), "images: describe does not find it as a bake");
}

/// The zones offering an instance type are some of the region's; an unknown type is offered nowhere.
pub async fn fleet_offered_zones(h: &dyn Harness) {
    let cloud = h.cloud();
    let net = cloud.fleet.network(&[]).await.unwrap();
    let zones: std::collections::BTreeSet<String> = net.subnets.iter().map(|s| s.availability_zone.clone()).collect();
    let offered = cloud.fleet.offered_zones("t3.micro").await.expect("offerings");
    assert!(!offered.is_empty() && offered.is_subset(&zones), "fleet: t3.micro offered in {offered:?} of {zones:?}");
    assert!(cloud.fleet.offered_zones("x9.nonexistent").await.unwrap().is_empty(), "fleet: an unknown type is offered nowhere");
}

/// Groups are created, found by name in their VPC, and their TCP rules read back (CIDR and group sources).
pub async fn firewall_groups_and_rules(h: &dyn Harness) {
    let cloud = h.cloud();
    let vpc = cloud.fleet.network(&[]).await.unwrap().vpc_id;
    let names = ["conf-lb".to_owned(), "conf-instances".to_owned()];
    assert!(cloud.firewall.groups(&vpc, &names).await.unwrap().is_empty(), "firewall: none at first");
    let t = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let lb = cloud.firewall.create_group(&vpc, "conf-lb", "conformance lb", &[t(tags::APP, "conf")]).await.expect("create lb group");
    let inst = cloud.firewall.create_group(&vpc, "conf-instances", "conformance instances", &[t(tags::APP, "conf")]).await.expect("create");
    let web = IngressRule { port: 80, source: RuleSource::Cidr("0.0.0.0/0".into()) };
    let office = IngressRule { port: 80, source: RuleSource::Cidr("203.0.113.0/24".into()) };
    let from_lb = IngressRule { port: 8080, source: RuleSource::Group(lb.clone()) };
    cloud.firewall.authorize(&lb, &[web.clone(), office.clone()]).await.expect("authorize cidrs");
    cloud.firewall.authorize(&inst, std::slice::from_ref(&from_lb)).await.expect("authorize a group");
    let mut got = cloud.firewall.groups(&vpc, &names).await.unwrap();
    got.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(got.iter().map(|g| (g.name.as_str(), g.id.as_str())).collect::<Vec<_>>(), vec![("conf-instances", inst.as_str()), ("conf-lb", lb.as_str())]);
    let mut want_lb = vec![web.clone(), office.clone()];
    want_lb.sort();
    assert_eq!(got[1].ingress, want_lb, "firewall: cidr rules read back");
    assert_eq!(got[0].ingress, vec![from_lb], "firewall: a group source reads back as the group's id");
    cloud.firewall.revoke(&lb, std::slice::from_ref(&office)).await.expect("revoke");
    let after = cloud.firewall.groups(&vpc, &["conf-lb".to_owned()]).await.unwrap();
    assert_eq!(after.len(), 1, "firewall: only the group asked for");
    assert_eq!(after[0].ingress, vec![web], "firewall: the revoked rule is gone, the other stays");
}

/// A load balancer is created as the spec says, reads back equal, and converges to a changed spec.
pub async fn balancer_config_round_trips(h: &dyn Harness) {
    let cloud = h.cloud();
    let net = cloud.fleet.network(&[]).await.unwrap();
    let group = cloud.firewall.create_group(&net.vpc_id, "conf-lb-config", "conformance", &[]).await.unwrap();
    for target in [LbTarget::ClassicElb("conf-cfg".into()), LbTarget::TargetGroup("conf-cfg-tg".into())] {
        let mut want = spec();
        want.security_groups = vec![group.clone()];
        cloud.balancer.create(&target, &want, &net, &[]).await.expect("create");
        assert_eq!(cloud.balancer.config(&target).await.unwrap(), want, "balancer: {target} reads back as created");
        let changed = LbSpec {
            health_path: "/ready".into(),
            health: HealthCheck { interval: Duration::from_secs(15), timeout: Duration::from_secs(4), healthy: 3, unhealthy: 4 },
            drain: Duration::from_secs(45),
            ..want.clone()
        };
        cloud.balancer.configure(&target, &changed).await.expect("configure");
        let got = cloud.balancer.config(&target).await.unwrap();
        assert_eq!(got, changed, "balancer: {target} converged: {:?}", changed.differences(&got));
    }
    let err = cloud.balancer.config(&LbTarget::ClassicElb("conf-none".into())).await.expect_err("missing");
    assert_eq!(err.cause(), Some(Cause::Missing), "balancer: config of a missing load balancer: {err}");
}

/// Alarms: one call answers every named alarm with its state; names that do not exist are absent (the engine
/// turns that into a not-found error before a rollout starts).
pub async fn alarms_states_in_one_call<H: Harness>(h: &H) {
    use release_core::ports::AlarmState;
    let cloud = h.cloud();
    let names: Vec<String> = ["conf-5xx", "conf-p99", "conf-missing"].iter().map(|s| s.to_string()).collect();
    assert!(cloud.alarms.states(&names).await.unwrap().is_empty(), "alarms: none at first");
    h.put_alarm("conf-5xx").await;
    h.put_alarm("conf-p99").await;
    let mut got = cloud.alarms.states(&names).await.unwrap();
    got.sort_by(|a, b| a.name.cmp(&b.name));
    let names_got: Vec<&str> = got.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names_got, ["conf-5xx", "conf-p99"], "alarms: the missing one is absent");
    // CloudWatch starts an alarm in INSUFFICIENT_DATA, moto in OK: the engine relies only on "not ALARM".
    assert!(got.iter().all(|a| a.state != AlarmState::Alarm), "alarms: a new alarm is not in ALARM: {got:?}");
    h.set_alarm_state("conf-p99", AlarmState::Alarm).await;
    h.set_alarm_state("conf-5xx", AlarmState::Ok).await;
    let mut got = cloud.alarms.states(&names[..2]).await.unwrap();
    got.sort_by(|a, b| a.name.cmp(&b.name));
    let states: Vec<(&str, AlarmState)> = got.iter().map(|a| (a.name.as_str(), a.state)).collect();
    assert_eq!(states, [("conf-5xx", AlarmState::Ok), ("conf-p99", AlarmState::Alarm)], "alarms: states read back");
    let only: Vec<String> = vec!["conf-p99".into()];
    let got = cloud.alarms.states(&only).await.unwrap();
    assert_eq!(got.len(), 1, "alarms: only the names asked for: {got:?}");
}

/// gc: the app's snapshots are found by tag, also once their image is deregistered (a gc that died between the
/// two steps); deregistering twice is `Missing`; a deleted snapshot is no longer listed.
pub async fn images_snapshots_by_tag_outlive_their_image(h: &dyn Harness) {
    let cloud = h.cloud();
    let app = AppName::parse("conf-snap").unwrap();
    let other = AppName::parse("conf-snap-other").unwrap();
    let b = base(&cloud).await;
    let ami = h.make_image("conf-snap-1", &b).await;
    let found = cloud.images.describe(&ami).await.unwrap().expect("describe");
    assert!(cloud.images.app_snapshots(&app).await.unwrap().is_empty(), "snapshots: untagged ones are not the app's");
    let t = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    cloud.images.tag(&ami, &found.snapshots, &[t(tags::APP, "conf-snap"), t(tags::COMMIT, &"b".repeat(40))]).await.unwrap();
    let mut listed: Vec<String> = cloud.images.app_snapshots(&app).await.unwrap().iter().map(|s| s.id.clone()).collect();
    listed.sort();
    let mut want = found.snapshots.clone();
    want.sort();
    assert_eq!(listed, want, "snapshots: tagged with the app, the image's snapshots are the app's");
    let one = &cloud.images.app_snapshots(&app).await.unwrap()[0];
    assert_eq!(one.tags.get(tags::COMMIT).map(String::as_str), Some("b".repeat(40).as_str()), "snapshots: their tags are read: {one:?}");
    assert!(cloud.images.app_snapshots(&other).await.unwrap().is_empty(), "snapshots: another app's tag value does not match");
    cloud.images.deregister(&ami).await.expect("deregister");
    let again = cloud.images.deregister(&ami).await.expect_err("deregistered twice");
    assert_eq!(again.cause(), Some(Cause::Missing), "images: deregistering a deregistered image is missing: {again}");
    let left: Vec<String> = cloud.images.app_snapshots(&app).await.unwrap().iter().map(|s| s.id.clone()).collect();
    assert_eq!(left.len(), want.len(), "snapshots: still listed after their image is deregistered");
    for snap in &left {
        cloud.images.delete_snapshot(snap).await.expect("delete");
    }
    assert!(cloud.images.app_snapshots(&app).await.unwrap().is_empty(), "snapshots: deleted ones are not listed");
}

/// gc follows bake copies into `[bake] regions`: another region's ports see that region only.
pub async fn images_and_fleet_of_another_region(h: &dyn Harness) {
    let cloud = h.cloud();
    let app = AppName::parse("conf-region").unwrap();
    let b = base(&cloud).await;
    let ami = h.make_image("conf-region-1", &b).await;
    let found = cloud.images.describe(&ami).await.unwrap().expect("describe");
    let t = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    cloud.images.tag(&ami, &found.snapshots, &[t(tags::APP, "conf-region")]).await.unwrap();
    let other = cloud.images.in_region("eu-west-1").await.expect("another region");
    assert!(other.app_images(&app).await.unwrap().is_empty(), "regions: this region's image is not listed there");
    assert!(other.app_snapshots(&app).await.unwrap().is_empty(), "regions: nor its snapshots");
    assert!(other.describe(&ami).await.unwrap().is_none(), "regions: an id of this region is unknown there");
    let err = other.deregister(&ami).await.expect_err("deregistering an id of another region");
    assert_eq!(err.cause(), Some(Cause::Missing), "regions: {err}");
    assert!(cloud.fleet.in_region("eu-west-1").await.unwrap().app_instances(&app).await.unwrap().is_empty(), "regions: no instances there");
    let same = cloud.images.in_region("us-east-1").await.unwrap();
    assert_eq!(same.app_images(&app).await.unwrap().len(), 1, "regions: this region's own name is this region");
}

/// The launch template spec the asg checks launch from.
fn template_spec(ami: AmiId, release: &str) -> release_core::ports::TemplateSpec {
    let t = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    release_core::ports::TemplateSpec {
        ami,
        instance_type: "t3.micro".into(),
        // None: moto 5.2.5 keeps a version's user data unwrapped (CreateLaunchTemplateVersion, unlike
        // CreateLaunchTemplate), and a group launching from it fails with HTTP 500. The in-memory tests cover it.
        user_data: String::new(),
        metadata_tokens: MetadataTokens::Required,
        instance_profile: None,
        key_name: None,
        security_groups: Vec::new(),
        root_volume: launch_settings().3,
        tags: vec![t(tags::APP, "conf-asg"), t(tags::RELEASE_ID, release)],
        description: format!("release {release}"),
    }
}

/// A template is made once (tagged, its default a placeholder), a version gets the next number and names its AMI.
pub async fn templates_made_once_with_numbered_versions(h: &dyn Harness) {
    use release_core::ports::TemplateVersion;
    let cloud = h.cloud();
    let app = AppName::parse("conf-asg").unwrap();
    let tags = vec![(tags::APP.to_owned(), "conf-asg".to_owned()), (tags::MANAGED.to_owned(), "true".to_owned())];
    assert!(cloud.templates.template("conf-asg-web").await.unwrap().is_none(), "templates: none at first");
    let t = cloud.templates.ensure_template("conf-asg-web", &tags).await.expect("ensure template");
    assert_eq!((t.name.as_str(), t.default_version, t.latest_version), ("conf-asg-web", TemplateVersion(1), TemplateVersion(1)), "templates: made with one default version");
    let again = cloud.templates.ensure_template("conf-asg-web", &tags).await.expect("ensure again");
    assert_eq!(again.id, t.id, "templates: ensuring twice makes one template");
    assert_eq!(cloud.templates.app_templates(&app).await.unwrap().iter().map(|t| t.id.clone()).collect::<Vec<_>>(), vec![t.id.clone()], "templates: found by the app tag");
    let ami = base(&cloud).await;
    let v = cloud.templates.create_version(&t.id, &template_spec(ami.clone(), "r1"), "conf-asg-r1").await.expect("create version");
    assert_eq!(v, TemplateVersion(2), "templates: the first release's version is number 2");
    let versions = cloud.templates.versions(&t.id).await.expect("versions");
    let seen: Vec<(u32, Option<AmiId>, bool)> = versions.iter().map(|v| (v.number.0, v.ami.clone(), v.is_default)).collect();
    assert!(seen.contains(&(1, None, true)) && seen.contains(&(2, Some(ami), false)), "templates: the default placeholder and the release's version: {seen:?}");
    // DeleteLaunchTemplateVersions: moto 5.2.5 does not have it; `tests/scaling.rs` holds the memory cloud to AWS's rules.
}

/// A group made in one call from a version number launches instances carrying its tags; a target group attached
/// and detached gains and loses them; capacity changes; a group emptied is deleted.
pub async fn groups_launch_attach_scale_delete(h: &dyn Harness) {
    use release_core::ports::{Capacity, CapacityChange, GroupSpec, TemplateRef};
    let cloud = h.cloud();
    let app = AppName::parse("conf-asg").unwrap();
    let net = cloud.fleet.network(&[]).await.unwrap();
    let tg = LbTarget::TargetGroup("conf-asg-tg".into());
    cloud.balancer.create(&tg, &LbSpec { drain: Duration::ZERO, ..spec() }, &net, &[]).await.unwrap();
    let t = cloud.templates.ensure_template("conf-asg-api", &[(tags::APP.to_owned(), "conf-asg".to_owned())]).await.unwrap();
    let version = cloud.templates.create_version(&t.id, &template_spec(base(&cloud).await, "r7"), "conf-asg-r7").await.unwrap();
    let name = "conf-asg-api-v007";
    let group = GroupSpec {
        name: name.into(),
        template: TemplateRef { id: t.id.clone(), version },
        subnets: net.subnets.iter().map(|s| s.id.clone()).collect(),
        capacity: Capacity { min: 1, desired: 2, max: 4 },
        health_check_grace: Duration::from_secs(60),
        instance_warmup: Duration::from_secs(30),
        tags: vec![(tags::APP.to_owned(), "conf-asg".to_owned()), (tags::RELEASE_ID.to_owned(), "r7".to_owned())],
        load_balancers: Vec::new(),
        lifecycle_hooks: Vec::new(),
    };
    cloud.groups.create(&group).await.expect("create group");
    // A second group of the same name: AWS refuses (AlreadyExists), moto 5.2.5 replaces the first (tests/scaling.rs).
    let groups = cloud.groups.app_groups(&app).await.expect("describe groups");
    assert_eq!(groups.len(), 1, "groups: found by the app tag: {groups:?}");
    let g = &groups[0];
    assert_eq!((g.capacity, g.template.as_ref().map(|t| t.version)), (group.capacity, Some(version)), "groups: capacity and the version number as made");
    assert_eq!(g.instances.len(), 2, "groups: desired instances launched");
    let ids: std::collections::BTreeSet<_> = g.instances.iter().map(|i| i.id.clone()).collect();
    let instances = cloud.fleet.app_instances(&app).await.unwrap();
    let launched: Vec<_> = instances.iter().filter(|i| ids.contains(&i.id)).collect();
    assert_eq!(launched.len(), 2, "groups: their instances are EC2 instances of the app");
    assert!(launched.iter().all(|i| i.tags.get(tags::RELEASE_ID).map(String::as_str) == Some("r7")), "groups: tags propagated at launch: {launched:?}");
    assert!(cloud.balancer.members(&tg).await.unwrap().is_empty(), "groups: made unattached");
    cloud.groups.attach(name, std::slice::from_ref(&tg)).await.expect("attach");
    let members: std::collections::BTreeSet<_> = cloud.balancer.members(&tg).await.unwrap().into_iter().collect();
    assert_eq!(members, ids, "groups: attaching registers the group's instances");
    assert_eq!(cloud.groups.attachments(name).await.unwrap().iter().map(|a| a.target.clone()).collect::<Vec<_>>(), vec![tg.clone()], "groups: the attachment is listed");
    let mark = vec![(tags::CONFIG.to_owned(), "abc".to_owned())];
    cloud.groups.tag(name, &mark).await.expect("tag");
    assert_eq!(cloud.groups.app_groups(&app).await.unwrap()[0].tags.get(tags::CONFIG).map(String::as_str), Some("abc"), "groups: tagged");
    cloud.groups.untag(name, &[tags::CONFIG.to_owned()]).await.expect("untag");
    assert!(!cloud.groups.app_groups(&app).await.unwrap()[0].tags.contains_key(tags::CONFIG), "groups: untagged");
    cloud.groups.detach(name, std::slice::from_ref(&tg)).await.expect("detach");
    assert!(cloud.balancer.members(&tg).await.unwrap().is_empty(), "groups: detaching deregisters them");
    cloud.groups.set_capacity(name, &CapacityChange { desired: Some(3), ..Default::default() }).await.expect("scale out");
    let g = cloud.groups.app_groups(&app).await.unwrap().remove(0);
    assert_eq!((g.capacity.desired, g.instances.len()), (3, 3), "groups: a raised desired capacity launches");
    cloud.groups.set_capacity(name, &CapacityChange { min: Some(0), desired: Some(0), max: None }).await.expect("empty it");
    for _ in 0..60 {
        match cloud.groups.delete(name).await {
            Ok(()) => break,
            Err(e) if matches!(e.cause(), Some(Cause::InUse | Cause::ScalingInProgress)) => h.wait(Duration::from_secs(1)).await,
            Err(e) => panic!("groups: delete: {e}"),
        }
    }
    assert!(cloud.groups.app_groups(&app).await.unwrap().is_empty(), "groups: deleted");
}
