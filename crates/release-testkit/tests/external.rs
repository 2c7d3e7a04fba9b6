//! Load balancers and target groups that `release` did not make (issue 23): used as they are, never created,
//! modified or converged; on AWS a target group belongs to at most one load balancer. On the in-memory cloud.

use std::time::Duration;

use release_core::model::pipeline::{HealthCheck, LbTarget, Pipeline};
use release_core::ops::provision::Action;
use release_core::ports::{LbKind, LbSpec, ServingLb};
use release_core::ErrorKind;
use release_testkit::fixtures::{shop_pipeline, World};
use release_testkit::memory::MemoryCloud;

fn pipeline(clusters: &str) -> Pipeline {
    shop_pipeline("drain = \"30s\"\nallow = [\"10.0.0.0/8\"]", clusters)
}

const IN_PLACE: &str = r#"[env.prod]
[env.prod.clusters.prod]
target_group = "legacy-tg"
count = 2
"#;

const BLUE_GREEN: &str = r#"[env.prod]
dns = { zone = "shop.test.", record = "www.shop.test." }
[env.prod.clusters.blue]
target_group = "legacy-blue"
count = 2
[env.prod.clusters.green]
target_group = "legacy-green"
count = 2
"#;

/// Their settings: not the pipeline's (health path, drain), so a converge would show.
fn theirs(groups: &[&str]) -> LbSpec {
    LbSpec {
        port: 80,
        health_path: "/status".into(),
        health: HealthCheck::default(),
        drain: Duration::from_secs(300),
        cross_zone: true,
        security_groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        ..Default::default()
    }
}

fn alb(name: &str, groups: &[&str]) -> Option<ServingLb> {
    Some(ServingLb { name: name.into(), kind: LbKind::Application, security_groups: groups.iter().map(|g| (*g).to_owned()).collect() })
}

/// A world whose load balancers exist before provision, made by `setup`.
fn world(p: Pipeline, setup: impl FnOnce(&MemoryCloud)) -> World {
    let w = World { cloud: MemoryCloud::new(), pipeline: p, lines: Default::default() };
    setup(&w.cloud);
    w
}

/// The ingress rules of a group, by name, as `port from source`.
fn rules(w: &World, name: &str) -> Option<Vec<String>> {
    let s = w.cloud.state();
    let (_, g) = s.groups.values().find(|(_, g)| g.name == name)?;
    Some(
        g.ingress
            .iter()
            .map(|r| match &r.source {
                release_core::ports::RuleSource::Cidr(c) => format!("{} from {c}", r.port),
                release_core::ports::RuleSource::Group(g) => format!("{} from {g}", r.port),
            })
            .collect(),
    )
}

#[tokio::test(start_paused = true)]
async fn an_existing_target_group_behind_their_alb_is_used_as_it_is_across_two_promotes() {
    let tg = LbTarget::TargetGroup("legacy-tg".into());
    let w = world(pipeline(IN_PLACE), |c| c.external_lb(&tg, alb("legacy-alb", &["sg-legacy"]), theirs(&["sg-legacy"])));
    let before = w.cloud.state().load_balancers[&tg].clone();

    let plan = w.release("ops").plan_provision("prod").await.unwrap();
    assert!(plan.notes.contains(&"target group legacy-tg: external, served by ALB legacy-alb, used as it is".to_owned()), "{:#?}", plan.notes);
    assert!(plan.notes.iter().any(|n| n.contains("admit the security groups of ALB legacy-alb (sg-legacy) on port 8080")), "{:#?}", plan.notes);
    assert!(
        !plan.actions.iter().any(|a| matches!(a, Action::CreateLoadBalancer { .. } | Action::ConfigureLoadBalancer { .. })),
        "nothing of theirs is created or converged: {:#?}",
        plan.actions
    );
    w.release("ops").provision("prod").await.unwrap();

    // No load balancer of ours, no group for one; their settings as they were; our instances admit their group.
    let s = w.cloud.state();
    assert_eq!(s.load_balancers.keys().collect::<Vec<_>>(), [&tg], "no second load balancer");
    assert_eq!(s.load_balancers[&tg], before, "their load balancer and group settings unchanged");
    assert_eq!(s.lb_owners[&tg], (None, alb("legacy-alb", &["sg-legacy"])), "still theirs, still served by legacy-alb");
    drop(s);
    assert_eq!(rules(&w, "shop-prod-lb"), None, "no load balancer group for an external load balancer");
    assert_eq!(rules(&w, "shop-prod-instances"), Some(vec!["8080 from sg-legacy".to_owned()]));
    assert!(w.release("ops").plan_provision("prod").await.unwrap().actions.is_empty(), "a second provision has nothing to do");

    // Two promotes: each registers its instances into their group and retires the previous ones.
    let (v1, v2) = (w.bake('1').await, w.bake('2').await);
    w.promote("prod", &v1).await.expect("first promote");
    let first: Vec<_> = w.instances("prod").into_iter().map(|i| i.id).collect();
    assert_eq!(first.len(), 2);
    let members = |w: &World| w.cloud.state().registered.get(&tg).map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    assert_eq!(members(&w), first, "v1's instances serve from legacy-tg");
    w.promote("prod", &v2).await.expect("second promote");
    let second: Vec<_> = w.instances("prod").into_iter().map(|i| i.id).collect();
    assert_eq!(members(&w), second, "v2's instances replaced v1's in legacy-tg");
    assert!(first.iter().all(|i| !second.contains(i)), "v1's instances were retired");
    assert_eq!(w.cloud.state().load_balancers[&tg], before, "promotes changed nothing of their load balancer either");
    let status = w.release("ops").status(Some("prod")).await.unwrap();
    assert!(format!("{status:?}").contains("legacy-tg"), "{status:#?}");
}

#[tokio::test(start_paused = true)]
async fn a_target_group_belongs_to_one_load_balancer_a_second_is_refused() {
    let tg = LbTarget::TargetGroup("legacy-tg".into());
    let w = world(pipeline(IN_PLACE), |c| c.external_lb(&tg, alb("legacy-alb", &["sg-legacy"]), theirs(&["sg-legacy"])));
    let cloud = w.cloud.cloud();
    let net = cloud.fleet.network(&[]).await.unwrap();
    let err = cloud.balancer.create(&tg, &theirs(&[]), &net, &[]).await.expect_err("an ALB of ours in front of their group");
    assert!(err.to_string().contains("TargetGroupAssociationLimit"), "{err}");
    assert_eq!(w.cloud.state().lb_owners[&tg].1, alb("legacy-alb", &["sg-legacy"]), "still served by theirs alone");
}

#[tokio::test(start_paused = true)]
async fn blue_green_clusters_behind_one_load_balancer_are_refused_before_anything_is_made() {
    let (blue, green) = (LbTarget::TargetGroup("legacy-blue".into()), LbTarget::TargetGroup("legacy-green".into()));
    let w = world(pipeline(BLUE_GREEN), |c| {
        c.external_lb(&blue, alb("legacy-alb", &["sg-legacy"]), theirs(&["sg-legacy"]));
        c.external_lb(&green, alb("legacy-alb", &["sg-legacy"]), theirs(&["sg-legacy"]));
    });
    let err = w.release("ops").provision("prod").await.expect_err("one load balancer cannot be flipped by DNS");
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert_eq!(
        err.to_string(),
        "clusters blue and green of env prod are all served by ALB legacy-alb, so a Route53 switch between them would move no traffic; give each cluster a target group behind a load balancer of its own"
    );
    let s = w.cloud.state();
    assert!(s.tables.is_empty() && s.groups.is_empty() && s.zones.is_empty(), "nothing was made");
}

#[tokio::test(start_paused = true)]
async fn an_external_target_group_no_load_balancer_serves_is_refused_not_given_an_alb() {
    let tg = LbTarget::TargetGroup("legacy-tg".into());
    let w = world(pipeline(IN_PLACE), |c| c.external_lb(&tg, None, theirs(&[])));
    let err = w.release("ops").provision("prod").await.expect_err("no load balancer of theirs");
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert!(err.to_string().starts_with("target group legacy-tg of cluster prod exists but release did not make it and no load balancer forwards to it"), "{err}");
    let s = w.cloud.state();
    assert!(s.load_balancers.is_empty() && s.groups.is_empty(), "no ALB was made in front of their group");
}

#[tokio::test(start_paused = true)]
async fn the_instances_behind_an_external_nlb_without_groups_admit_the_allowed_clients() {
    let tg = LbTarget::TargetGroup("legacy-tg".into());
    let nlb = Some(ServingLb { name: "legacy-nlb".into(), kind: LbKind::Network, security_groups: Vec::new() });
    let w = world(pipeline(IN_PLACE), |c| c.external_lb(&tg, nlb, theirs(&[])));
    let plan = w.release("ops").provision("prod").await.unwrap();
    assert!(plan.notes.contains(&"target group legacy-tg: external, served by NLB legacy-nlb, used as it is".to_owned()), "{:#?}", plan.notes);
    assert!(plan.notes.iter().any(|n| n.contains("NLB legacy-nlb has no security groups")), "{:#?}", plan.notes);
    assert_eq!(rules(&w, "shop-prod-instances"), Some(vec!["8080 from 10.0.0.0/8".to_owned()]));
}

#[tokio::test(start_paused = true)]
async fn what_provision_makes_carries_the_ownership_tags_and_is_converged() {
    let w = World::new(1).await;
    let s = w.cloud.state();
    for t in ["shop-blue", "shop-green"] {
        let (owner, served) = &s.lb_owners[&LbTarget::TargetGroup(t.into())];
        assert_eq!(owner.as_deref(), Some("shop"), "{t} is tagged release:app=shop, release:managed=true");
        assert_eq!(served.as_ref().map(|l| l.name.as_str()), Some(t));
    }
    drop(s);
    // Converged as before: a changed health path is planned for our own target groups.
    let p = release_testkit::fixtures::shop_deploy(1, "health_path = \"/ready\"", "");
    let plan = release_core::Release::new(w.session("ops"), p).plan_provision("prod").await.unwrap();
    assert!(plan.actions.iter().any(|a| matches!(a, Action::ConfigureLoadBalancer { .. })), "{:#?}", plan.actions);
}
