//! The live name's weighted records must alias their cluster's load balancer as it is now. A load balancer deleted
//! and created again has a new DNS name; a record left on the old one routes to nothing. Provision repoints it
//! (weight kept, one change batch), switch and rollback refuse to send traffic through it (`--force` or not),
//! status points it out. On the in-memory cloud.

use std::time::Duration;

use release_core::model::pipeline::LbTarget;
use release_core::ports::{LbInfo, RecordChange, WeightedAlias};
use release_core::ops::promote::PromoteOptions;
use release_core::ops::provision::{Action};
use release_core::observe::balancers::{aims_at};
use release_core::ops::switch::SwitchOptions;
use release_core::ErrorKind;
use release_testkit::fixtures::World;

const OLD: &str = "shop-blue-OLD-123.us-east-1.elb.amazonaws.com.";

/// Points `cluster`'s weighted record of prod at `dns`, keeping its weight (as a person or an old run would).
async fn point(w: &World, cluster: &str, dns: &str, zone: Option<&str>) {
    let cloud = w.cloud.cloud();
    let env = w.pipeline.env("prod").unwrap();
    let live = release_core::observe::world::live_name(&cloud, env).await.unwrap().unwrap();
    let r = live.records.weighted.iter().find(|r| r.set_identifier == cluster).unwrap().clone();
    let zone_id = zone.map_or_else(|| r.target_zone_id.clone(), str::to_owned);
    let change = RecordChange::Upsert(WeightedAlias { target_dns: dns.into(), target_zone_id: zone_id, ..r });
    cloud.dns.submit(&live.zone, &[change], "test").await.unwrap();
}

/// (weight, alias DNS name) of `cluster`'s record.
async fn record(w: &World, cluster: &str) -> (u8, String) {
    let env = w.pipeline.env("prod").unwrap();
    let live = release_core::observe::world::live_name(&w.cloud.cloud(), env).await.unwrap().unwrap();
    let r = live.records.weighted.iter().find(|r| r.set_identifier == cluster).unwrap();
    (r.weight, r.target_dns.clone())
}

fn lb_dns(w: &World, tg: &str) -> String {
    w.cloud.state().load_balancers[&LbTarget::TargetGroup(tg.into())].0.dns_name.clone()
}

fn changes(w: &World) -> u64 {
    w.cloud.state().calls.get("route53:ChangeResourceRecordSets").copied().unwrap_or(0)
}

#[test]
fn an_alias_target_is_the_load_balancer_whatever_the_case_trailing_dot_or_dualstack_prefix() {
    let lb = LbInfo { target: LbTarget::TargetGroup("shop-blue".into()), dns_name: "shop-blue-1.us-east-1.elb.amazonaws.com".into(), hosted_zone_id: "Z35SXDOTRQ7X7K".into() };
    let r = |dns: &str, zone: &str| WeightedAlias { name: "www.shop.test.".into(), set_identifier: "blue".into(), weight: 0, target_dns: dns.into(), target_zone_id: zone.into(), evaluate_target_health: true };
    assert!(aims_at(&r("shop-blue-1.us-east-1.elb.amazonaws.com", "Z35SXDOTRQ7X7K"), &lb));
    assert!(aims_at(&r("Shop-Blue-1.US-EAST-1.elb.amazonaws.com.", "z35sxdotrq7x7k"), &lb));
    assert!(aims_at(&r("dualstack.shop-blue-1.us-east-1.elb.amazonaws.com.", "Z35SXDOTRQ7X7K"), &lb));
    assert!(aims_at(&r("shop-blue-1.us-east-1.elb.amazonaws.com.", ""), &lb), "a zone not known is not compared");
    assert!(!aims_at(&r(OLD, "Z35SXDOTRQ7X7K"), &lb));
    assert!(!aims_at(&r("shop-blue-1.us-east-1.elb.amazonaws.com.", "Z1H1FL5HABSF5"), &lb), "same name, another zone");
}

#[tokio::test(start_paused = true)]
async fn a_record_left_on_an_old_name_is_repointed_by_provision_and_refused_by_switch_until_then() {
    let w = World::new(2).await;
    let (v1, v2) = (w.bake('1').await, w.bake('2').await);
    assert_eq!(w.deploy_prod(&v1).await.as_str(), "green");
    w.cloud.clock.advance(Duration::from_secs(600));
    assert_eq!(w.promote("prod", &v2).await.unwrap().cluster.as_str(), "blue", "blue is idle, healthy, runs v2");
    point(&w, "blue", OLD, None).await;
    let blue = lb_dns(&w, "shop-blue");

    // The plan names the record, where it points and where it should, and keeps its weight.
    let plan = w.release("ops").plan_provision("prod").await.unwrap();
    assert_eq!(plan.actions, vec![Action::RepointLiveRecord {
        record: "www.shop.test.".into(),
        cluster: "blue".into(),
        target: LbTarget::TargetGroup("shop-blue".into()),
        from: OLD.into(),
        to: Some(blue.clone()),
        weight: 0,
    }]);
    assert_eq!(plan.actions[0].to_string(), format!("repoint weighted alias www.shop.test. [blue] from {OLD} to {blue} (target group shop-blue; weight 0 kept)"));

    // status says so on the cluster.
    let status = w.release("ops").status(Some("prod")).await.unwrap();
    let note = status[0].clusters.iter().find(|c| c.cluster == "blue").and_then(|c| c.note.clone()).expect("a note on blue");
    assert!(note.contains(&format!("www.shop.test. [blue] points to {OLD}, not to target group shop-blue of cluster blue ({blue})")), "{note}");
    assert!(status[0].clusters.iter().find(|c| c.cluster == "green").unwrap().note.is_none());

    // A switch to blue would send all traffic to the old name: refused, forced or not, plan or not; nothing changes.
    let before = changes(&w);
    for force in [false, true] {
        let opts = SwitchOptions { force, ..Default::default() };
        let err = w.release("alice").plan_switch("blue", &opts).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
        let err = w.release("alice").switch("blue", &opts, None).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
        assert_eq!(
            err.message(),
            format!(
                "www.shop.test. [blue] points to {OLD}, not to target group shop-blue of cluster blue ({blue}); switching would send traffic there; run `release provision --env prod` to point it at the load balancer, then switch again (--force does not skip this); nothing was changed"
            )
        );
    }
    assert_eq!(changes(&w), before, "no Route53 change");
    assert_eq!(record(&w, "blue").await, (0, OLD.to_owned()));
    assert_eq!(w.weights().await.describe(), "blue=0,green=100");
    assert!(!w.locked());

    // Provision repoints it in one batch, weight kept; a second plan has nothing to do.
    let done = w.release("ops").provision("prod").await.unwrap();
    assert_eq!(done.actions.len(), 1);
    assert_eq!(changes(&w), before + 1);
    assert_eq!(record(&w, "blue").await, (0, blue.clone()));
    assert!(w.release("ops").plan_provision("prod").await.unwrap().actions.is_empty());
    assert!(w.release("ops").status(Some("prod")).await.unwrap()[0].clusters.iter().all(|c| c.note.is_none()));

    // Now the switch goes through.
    w.release("alice").switch("blue", &Default::default(), None).await.unwrap();
    assert_eq!(w.weights().await.describe(), "blue=100,green=0");
}

#[tokio::test(start_paused = true)]
async fn the_live_record_keeps_its_weight_when_repointed_and_a_switch_away_from_it_is_allowed() {
    let w = World::new(2).await;
    let (v1, v2) = (w.bake('1').await, w.bake('2').await);
    assert_eq!(w.deploy_prod(&v1).await.as_str(), "green");
    w.cloud.clock.advance(Duration::from_secs(600));
    w.promote("prod", &v2).await.unwrap();
    // The live cluster's record on a dead name: the way out (all traffic to blue) is not refused.
    point(&w, "green", "shop-green-OLD-9.us-east-1.elb.amazonaws.com.", None).await;
    let plan = w.release("ops").plan_provision("prod").await.unwrap();
    assert!(matches!(&plan.actions[..], [Action::RepointLiveRecord { cluster, weight: 100, .. }] if cluster == "green"), "{:?}", plan.actions);
    w.release("alice").switch("blue", &Default::default(), None).await.unwrap();
    assert_eq!(w.weights().await.describe(), "blue=100,green=0");
    assert!(w.lines.lock().unwrap().iter().any(|l| l.contains("note: www.shop.test. [green] points to shop-green-OLD-9")), "the switch mentions it");
    // Going back to green is refused until provision repoints it (weight 0 kept).
    let err = w.release("alice").switch("green", &Default::default(), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    w.release("ops").provision("prod").await.unwrap();
    assert_eq!(record(&w, "green").await, (0, lb_dns(&w, "shop-green")));
    w.release("alice").switch("green", &Default::default(), None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn rollback_does_not_switch_back_through_a_record_on_an_old_name() {
    let w = World::new(2).await;
    let (v1, v2) = (w.bake('1').await, w.bake('2').await);
    assert_eq!(w.deploy_prod(&v1).await.as_str(), "green");
    assert_eq!(w.deploy_prod(&v2).await.as_str(), "blue");
    point(&w, "green", "shop-green-OLD-9.us-east-1.elb.amazonaws.com.", None).await;
    w.cloud.clock.advance(Duration::from_secs(600));
    let o = PromoteOptions::default();
    let before = changes(&w);
    let err = w.release("alice").rollback("prod", &o, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(err.message().starts_with("www.shop.test. [green] points to shop-green-OLD-9.us-east-1.elb.amazonaws.com., not to target group shop-green"), "{err}");
    assert_eq!(changes(&w), before);
    assert_eq!(w.weights().await.describe(), "blue=100,green=0");
    assert!(!w.records("prod").await.iter().any(|r| r.action_name() == "rollback"), "nothing recorded");
    w.release("ops").provision("prod").await.unwrap();
    w.release("alice").rollback("prod", &o, None).await.unwrap();
    assert_eq!(w.weights().await.describe(), "blue=0,green=100");
}

#[tokio::test(start_paused = true)]
async fn a_load_balancer_created_again_under_a_new_name_or_in_another_zone_gets_its_record_repointed() {
    let w = World::new(2).await;
    // Created again: a new DNS name.
    w.cloud.state().load_balancers.get_mut(&LbTarget::TargetGroup("shop-green".into())).unwrap().0.dns_name = "shop-green-777.us-east-1.elb.amazonaws.com".into();
    // Same name, another zone (as a hand-made record might have it).
    point(&w, "blue", &format!("{}.", lb_dns(&w, "shop-blue")), Some("Z1H1FL5HABSF5")).await;
    let plan = w.release("ops").plan_provision("prod").await.unwrap();
    let text: Vec<String> = plan.actions.iter().map(ToString::to_string).collect();
    assert_eq!(text, [
        "repoint weighted alias www.shop.test. [blue] from shop-blue-1234567890.us-east-1.elb.amazonaws.com. (zone Z1H1FL5HABSF5) to shop-blue-1234567890.us-east-1.elb.amazonaws.com (zone Z35SXDOTRQ7X7K) (target group shop-blue; weight 100 kept)",
        "repoint weighted alias www.shop.test. [green] from shop-green-1234567890.us-east-1.elb.amazonaws.com to shop-green-777.us-east-1.elb.amazonaws.com (target group shop-green; weight 0 kept)",
    ]);
    let before = changes(&w);
    w.release("ops").provision("prod").await.unwrap();
    assert_eq!(changes(&w), before + 1, "both in one change batch");
    assert_eq!(record(&w, "green").await, (0, "shop-green-777.us-east-1.elb.amazonaws.com".to_owned()));
    assert!(w.release("ops").plan_provision("prod").await.unwrap().actions.is_empty());

    // Deleted: provision creates it and points the record at it.
    w.cloud.state().load_balancers.remove(&LbTarget::TargetGroup("shop-green".into()));
    let plan = w.release("ops").plan_provision("prod").await.unwrap();
    let last = plan.actions.last().unwrap().to_string();
    assert_eq!(last, "repoint weighted alias www.shop.test. [green] from shop-green-777.us-east-1.elb.amazonaws.com to the new target group shop-green (weight 0 kept)");
    w.release("ops").provision("prod").await.unwrap();
    assert_eq!(record(&w, "green").await, (0, lb_dns(&w, "shop-green")));
    assert!(w.release("ops").plan_provision("prod").await.unwrap().actions.is_empty());
}

/// A user found this: the live record pointed by hand at the idle cluster's load balancer made a promote replace
/// the instances that took all the traffic. A promote now refuses while a record taking traffic points elsewhere.
#[tokio::test(start_paused = true)]
async fn a_promote_refuses_while_a_record_taking_traffic_points_at_another_load_balancer() {
    let w = World::new(2).await;
    let (a, b) = (w.bake('a').await, w.bake('b').await);
    let live = w.deploy_prod(&a).await;
    let idle = if live.as_str() == "blue" { "green" } else { "blue" };
    let idle_tg = format!("shop-{idle}");
    point(&w, live.as_str(), &lb_dns(&w, &idle_tg), None).await;
    w.cloud.clock.advance(Duration::from_secs(600));
    let before = w.instances(idle).iter().map(|i| i.id.to_string()).collect::<Vec<_>>();
    for plan_only in [true, false] {
        let r = w.release("alice");
        let err = if plan_only { r.plan_promote("prod", &b, &Default::default()).await.unwrap_err() } else { r.promote("prod", &b, &Default::default(), None).await.unwrap_err() };
        assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
        assert!(err.message().contains(&format!("[{live}] points to {}", lb_dns(&w, &idle_tg))) && err.message().contains("run `release provision --env prod`"), "{err}");
    }
    assert_eq!(w.instances(idle).iter().map(|i| i.id.to_string()).collect::<Vec<_>>(), before, "nothing replaced");
    w.release("ops").provision("prod").await.unwrap();
    w.release("alice").promote("prod", &b, &Default::default(), None).await.expect("after provision repointed it");
}

#[tokio::test(start_paused = true)]
async fn a_weighted_record_deleted_by_hand_is_pointed_out_by_status() {
    let w = World::new(2).await;
    let v1 = w.bake('1').await;
    assert_eq!(w.deploy_prod(&v1).await.as_str(), "green");
    let cloud = w.cloud.cloud();
    let live = release_core::observe::world::live_name(&cloud, w.pipeline.env("prod").unwrap()).await.unwrap().unwrap();
    let blue = live.records.weighted.iter().find(|r| r.set_identifier == "blue").unwrap().clone();
    cloud.dns.submit(&live.zone, &[RecordChange::Delete(blue)], "by hand").await.unwrap();
    let status = w.release("ops").status(Some("prod")).await.unwrap();
    let blue = status[0].clusters.iter().find(|c| c.cluster == "blue").unwrap();
    let note = blue.note.as_deref().unwrap_or_default();
    assert!(note.contains("no weighted record for blue") && note.contains("release provision --env prod"), "{blue:#?}");
    assert!(status[0].clusters.iter().find(|c| c.cluster == "green").unwrap().note.is_none());
}
