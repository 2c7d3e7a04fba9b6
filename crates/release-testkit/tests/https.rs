//! HTTPS load balancers (issue 23): an ACM certificate checked before anything is made (exists, ISSUED, covers
//! the live name), 443 with the TLS policy, the groups opened on 443 (and 80 for an ALB's redirect), and a changed
//! certificate or policy converged. On the in-memory cloud.

use release_core::model::pipeline::LbTarget;
use release_core::ops::provision::Action;
use release_core::ErrorKind;
use release_testkit::fixtures::{shop_deploy, World};
use release_testkit::memory::MemoryCloud;

/// The shop world, not provisioned yet, with `deploy` in its `[deploy]`.
fn world(cloud: MemoryCloud, deploy: &str) -> World {
    World { cloud, pipeline: shop_deploy(2, deploy, ""), lines: Default::default() }
}

fn rules(w: &World, name: &str) -> Vec<String> {
    let s = w.cloud.state();
    let (_, g) = s.groups.values().find(|(_, g)| g.name == name).unwrap_or_else(|| panic!("no group {name}"));
    let mut out: Vec<String> = g
        .ingress
        .iter()
        .map(|r| match &r.source {
            release_core::ports::RuleSource::Cidr(c) => format!("{} from {c}", r.port),
            release_core::ports::RuleSource::Group(g) => format!("{} from {g}", r.port),
        })
        .collect();
    out.sort();
    out
}

fn listener(w: &World, target: &str) -> (Option<String>, Option<String>) {
    let s = w.cloud.state();
    let t = if target == "shop-staging" { LbTarget::ClassicElb(target.into()) } else { LbTarget::TargetGroup(target.into()) };
    let spec = &s.load_balancers[&t].1;
    (spec.certificate.clone(), spec.tls_policy.clone())
}

#[tokio::test(start_paused = true)]
async fn a_certificate_gives_https_on_443_with_the_tls_policy_and_opens_443() {
    let cloud = MemoryCloud::new();
    let cert = cloud.certificate(&["www.shop.test", "*.shop.test"], "ISSUED");
    let w = world(cloud, &format!("certificate = \"{cert}\"\nallow = [\"203.0.113.0/24\"]"));
    let plan = w.release("ops").plan_provision("prod").await.unwrap();
    let shown: Vec<String> = plan.actions.iter().map(ToString::to_string).collect();
    assert!(
        shown.contains(&format!("create target group shop-blue with an ALB and listeners for cluster blue (HTTPS 443 -> 8080 with certificate {cert}, TLS policy ELBSecurityPolicy-TLS13-1-2-2021-06; HTTP 80 redirects to HTTPS; health /health)")),
        "{shown:#?}"
    );
    for env in ["staging", "prod"] {
        w.release("ops").provision(env).await.unwrap();
    }
    // ALB: TLS 1.3 policy; classic ELB: TLS 1.2 (it has no TLS 1.3 policy).
    assert_eq!(listener(&w, "shop-blue"), (Some(cert.clone()), Some("ELBSecurityPolicy-TLS13-1-2-2021-06".into())));
    assert_eq!(listener(&w, "shop-staging"), (Some(cert.clone()), Some("ELBSecurityPolicy-TLS-1-2-2017-01".into())));
    assert_eq!(rules(&w, "shop-blue-lb"), ["443 from 203.0.113.0/24", "80 from 203.0.113.0/24"], "443, and 80 for the redirect");
    assert_eq!(rules(&w, "shop-staging-lb"), ["443 from 203.0.113.0/24"], "a classic ELB does not redirect");
    assert!(w.release("ops").plan_provision("prod").await.unwrap().actions.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_missing_pending_or_foreign_certificate_is_refused_before_anything_is_made() {
    let cloud = MemoryCloud::new();
    let pending = cloud.certificate(&["www.shop.test"], "PENDING_VALIDATION");
    let other = cloud.certificate(&["api.example.org"], "ISSUED");
    let missing = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000".to_owned();
    for (cert, says) in [
        (&missing, "does not exist in this region; request or import it in ACM, or fix `certificate`"),
        (&pending, "is PENDING_VALIDATION, not ISSUED; finish its validation in ACM, or name an issued certificate"),
        (&other, "does not cover www.shop.test. (it covers api.example.org); request one for that name"),
    ] {
        let w = world(cloud.clone(), &format!("certificate = \"{cert}\""));
        let err = w.release("ops").provision("prod").await.expect_err("an unusable certificate");
        assert_eq!(err.kind(), ErrorKind::Input, "{err}");
        assert_eq!(err.to_string(), format!("certificate {cert} of cluster blue {says}"));
        let s = w.cloud.state();
        assert!(s.tables.is_empty() && s.groups.is_empty() && s.load_balancers.is_empty() && s.zones.is_empty(), "nothing was made for {cert}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_changed_certificate_or_tls_policy_is_planned_and_converged() {
    let cloud = MemoryCloud::new();
    let (a, b) = (cloud.certificate(&["www.shop.test"], "ISSUED"), cloud.certificate(&["www.shop.test"], "ISSUED"));
    let w = world(cloud.clone(), &format!("certificate = \"{a}\""));
    w.release("ops").provision("prod").await.unwrap();

    let changed = world(cloud.clone(), &format!("certificate = \"{b}\"\ntls_policy = \"ELBSecurityPolicy-TLS13-1-3-2021-06\""));
    let plan = changed.release("ops").plan_provision("prod").await.unwrap();
    let configure: Vec<&Action> = plan.actions.iter().filter(|a| matches!(a, Action::ConfigureLoadBalancer { .. })).collect();
    assert_eq!(configure.len(), 2, "{:#?}", plan.actions);
    assert_eq!(
        configure[0].to_string(),
        format!("configure target group shop-blue of cluster blue: certificate {a} -> {b}; TLS policy ELBSecurityPolicy-TLS13-1-2-2021-06 -> ELBSecurityPolicy-TLS13-1-3-2021-06")
    );
    changed.release("ops").provision("prod").await.unwrap();
    assert_eq!(listener(&changed, "shop-blue"), (Some(b.clone()), Some("ELBSecurityPolicy-TLS13-1-3-2021-06".into())));
    assert!(changed.release("ops").plan_provision("prod").await.unwrap().actions.is_empty());

    // Back to plain HTTP: the listener and the groups follow.
    let plain = world(cloud, "");
    let plan = plain.release("ops").plan_provision("prod").await.unwrap();
    assert!(plan.actions.iter().any(|a| a.to_string().contains("listener HTTPS 443 -> HTTP 80")), "{:#?}", plan.actions);
    plain.release("ops").provision("prod").await.unwrap();
    assert_eq!(listener(&plain, "shop-blue"), (None, None));
    assert_eq!(rules(&plain, "shop-blue-lb"), ["80 from 0.0.0.0/0"]);
}

#[tokio::test(start_paused = true)]
async fn an_internal_load_balancer_is_made_internal_and_a_scheme_change_is_not_done_in_place() {
    let w = world(MemoryCloud::new(), "scheme = \"internal\"");
    for env in ["staging", "prod"] {
        w.release("ops").provision(env).await.unwrap();
    }
    let internal = |w: &World, t: &LbTarget| w.cloud.state().load_balancers[t].1.internal;
    let blue = LbTarget::TargetGroup("shop-blue".into());
    assert!(internal(&w, &blue) && internal(&w, &LbTarget::ClassicElb("shop-staging".into())));

    let facing = world(w.cloud.clone(), "");
    let plan = facing.release("ops").plan_provision("prod").await.unwrap();
    assert!(plan.actions.is_empty(), "a scheme cannot be changed in place: {:#?}", plan.actions);
    assert!(
        plan.notes.contains(&"target group shop-blue of cluster blue is internal, the pipeline says internet-facing: a load balancer's scheme is fixed when it is made, so this needs a new load balancer (with a new DNS name); it is left as it is".to_owned()),
        "{:#?}",
        plan.notes
    );
    facing.release("ops").provision("prod").await.unwrap();
    assert!(internal(&facing, &blue), "left as it is");
}
