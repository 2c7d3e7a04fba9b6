//! Load balancers and target groups that another team made (issue 23), made here with the SDK: `release` uses them
//! as they are (registers and retires its instances), never makes a second load balancer, never changes theirs.

use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, LoadBalancerTypeEnum, ProtocolEnum};
use release_e2e::{AwsView, Emulator, Project};
use release_testkit::proxy::{FaultProxy, Realism};

/// The default VPC, one of its subnets in each zone, and a security group of theirs.
async fn network(aws: &AwsView, group: &str) -> (String, Vec<String>, String) {
    let subnets = aws.ec2.describe_subnets().send().await.unwrap();
    let mut by_zone = std::collections::BTreeMap::new();
    for s in subnets.subnets() {
        by_zone.entry(s.availability_zone().unwrap().to_owned()).or_insert((s.vpc_id().unwrap().to_owned(), s.subnet_id().unwrap().to_owned()));
    }
    let vpc = by_zone.values().next().unwrap().0.clone();
    let all: Vec<String> = by_zone.values().map(|(_, s)| s.clone()).collect();
    let sg = aws.ec2.create_security_group().group_name(group).description("theirs").vpc_id(&vpc).send().await.unwrap();
    (vpc, all, sg.group_id().unwrap().to_owned())
}

/// Their ALB `legacy-alb` with a listener on 80 forwarding to their target group `legacy-tg`; (group id, tg arn).
async fn their_alb(aws: &AwsView) -> (String, String) {
    let (vpc, subnets, sg) = network(aws, "legacy-alb-sg").await;
    let lb = aws
        .elbv2
        .create_load_balancer()
        .name("legacy-alb")
        .r#type(LoadBalancerTypeEnum::Application)
        .set_subnets(Some(subnets))
        .security_groups(&sg)
        .send()
        .await
        .unwrap();
    let lb_arn = lb.load_balancers()[0].load_balancer_arn().unwrap().to_owned();
    let tg = aws
        .elbv2
        .create_target_group()
        .name("legacy-tg")
        .protocol(ProtocolEnum::Http)
        .port(8080)
        .vpc_id(&vpc)
        .health_check_path("/status")
        .health_check_interval_seconds(17)
        .send()
        .await
        .unwrap();
    let tg_arn = tg.target_groups()[0].target_group_arn().unwrap().to_owned();
    aws.elbv2
        .create_listener()
        .load_balancer_arn(&lb_arn)
        .protocol(ProtocolEnum::Http)
        .port(80)
        .default_actions(Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(&tg_arn).build())
        .send()
        .await
        .unwrap();
    (sg, tg_arn)
}

/// Everything about their load balancers a change would show: every ELBv2 load balancer, listener, target group
/// (health check, port), its attributes and tags, every classic ELB with its listeners, health check and groups.
async fn theirs(aws: &AwsView) -> String {
    let mut out = Vec::new();
    let lbs = aws.elbv2.describe_load_balancers().send().await.unwrap();
    for lb in lbs.load_balancers() {
        out.push(format!("alb {:?} {:?} {:?}", lb.load_balancer_name(), lb.scheme(), lb.security_groups()));
        let ls = aws.elbv2.describe_listeners().load_balancer_arn(lb.load_balancer_arn().unwrap()).send().await.unwrap();
        for l in ls.listeners() {
            out.push(format!("  listener {:?} {:?} {:?}", l.port(), l.protocol(), l.default_actions()));
        }
    }
    let tgs = aws.elbv2.describe_target_groups().send().await.unwrap();
    for tg in tgs.target_groups() {
        out.push(format!("tg {:?} {:?} {:?} {:?} {:?}", tg.target_group_name(), tg.port(), tg.health_check_path(), tg.health_check_interval_seconds(), tg.load_balancer_arns()));
        let arn = tg.target_group_arn().unwrap();
        let attrs = aws.elbv2.describe_target_group_attributes().target_group_arn(arn).send().await.unwrap();
        let mut a: Vec<String> = attrs.attributes().iter().map(|a| format!("{:?}={:?}", a.key(), a.value())).collect();
        a.sort();
        out.push(format!("  attributes {a:?}"));
        let tags = aws.elbv2.describe_tags().resource_arns(arn).send().await.unwrap();
        out.push(format!("  tags {:?}", tags.tag_descriptions().iter().flat_map(|d| d.tags()).map(|t| format!("{:?}={:?}", t.key(), t.value())).collect::<Vec<_>>()));
    }
    let elbs = aws.elb.describe_load_balancers().send().await.unwrap();
    for d in elbs.load_balancer_descriptions() {
        let ls: Vec<String> = d.listener_descriptions().iter().filter_map(|l| l.listener()).map(|l| format!("{}->{}", l.load_balancer_port(), l.instance_port())).collect();
        out.push(format!("elb {:?} {ls:?} {:?} {:?}", d.load_balancer_name(), d.health_check().map(|h| h.target()), d.security_groups()));
    }
    out.join("\n")
}

/// The ids registered in a target group.
async fn tg_members(aws: &AwsView, arn: &str) -> Vec<String> {
    let h = aws.elbv2.describe_target_health().target_group_arn(arn).send().await.unwrap();
    let mut ids: Vec<String> = h.target_health_descriptions().iter().filter_map(|d| d.target()?.id().map(str::to_owned)).collect();
    ids.sort();
    ids
}

/// The ingress rules of a group, by name, as `port from source`.
async fn rules(aws: &AwsView, name: &str) -> Vec<String> {
    let groups = aws.ec2.describe_security_groups().filters(aws_sdk_ec2::types::Filter::builder().name("group-name").values(name).build()).send().await.unwrap();
    let g = &groups.security_groups()[0];
    let mut out: Vec<String> = g
        .ip_permissions()
        .iter()
        .flat_map(|p| {
            let port = p.from_port().unwrap_or(-1);
            p.ip_ranges().iter().map(move |r| format!("{port} from {}", r.cidr_ip().unwrap_or(""))).chain(p.user_id_group_pairs().iter().map(move |u| format!("{port} from {}", u.group_id().unwrap_or(""))))
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn an_existing_target_group_behind_their_alb_is_used_as_it_is_across_two_promotes() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    let (their_sg, tg_arn) = their_alb(&aws).await;
    let pipeline = project.read("pipelines/hello.toml");
    project.write("pipelines/hello.toml", &pipeline.replace("load_balancer = \"hello-staging\"", "target_group = \"legacy-tg\""));
    let before = theirs(&aws).await;

    let plan = project.release(&emu, &["provision", "--env", "staging", "--plan"]);
    plan.assert_ok();
    for line in [
        "note: target group legacy-tg: external, served by ALB legacy-alb, used as it is",
        &format!("note: the instances of cluster staging admit the security groups of ALB legacy-alb ({their_sg}) on port 8080; those groups are read, never changed"),
        &format!("+ allow tcp/8080 from group {their_sg} into hello-staging-instances"),
    ] {
        assert!(plan.stdout.contains(line), "missing {line:?} in:\n{}", plan.stdout);
    }
    assert!(!plan.stdout.contains("create target group") && !plan.stdout.contains("configure"), "{}", plan.stdout);
    project.release(&emu, &["provision", "--env", "staging"]).assert_ok();
    assert_eq!(theirs(&aws).await, before, "no load balancer made, nothing of theirs changed");
    let lb_group = aws.ec2.describe_security_groups().filters(aws_sdk_ec2::types::Filter::builder().name("group-name").values("hello-staging-lb").build()).send().await.unwrap();
    assert!(!rules(&aws, "hello-staging-instances").await.iter().any(|r| r.ends_with(lb_group.security_groups()[0].group_id().unwrap())));
    assert_eq!(rules(&aws, "hello-staging-instances").await, [format!("8080 from {their_sg}")], "our instances admit their load balancer's group");
    assert_eq!(rules(&aws, "legacy-alb-sg").await, Vec::<String>::new(), "their group's rules untouched");
    let again = project.release(&emu, &["provision", "--env", "staging", "--output", "json"]);
    assert_eq!(again.json()["changed"], false, "{}", again.stdout);

    // Two promotes: each registers its fleet into their group and retires the one before.
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    let first: Vec<String> = aws.running("hello", "staging").await.iter().map(|i| i.id.clone()).collect();
    assert_eq!(first.len(), 2);
    assert_eq!(tg_members(&aws, &tg_arn).await, first, "v1 serves from legacy-tg");
    let status = project.release(&emu, &["status", "--env", "staging", "--output", "json"]);
    status.assert_ok();
    project.release(&emu, &["promote", &b, "--env", "staging"]).assert_ok();
    let second: Vec<String> = aws.running("hello", "staging").await.iter().map(|i| i.id.clone()).collect();
    assert_eq!(tg_members(&aws, &tg_arn).await, second, "v2 replaced v1 in legacy-tg");
    assert!(first.iter().all(|i| !second.contains(i)), "v1 retired");
    let all = aws.app_instances("hello").await;
    for id in &first {
        let state = &all.iter().find(|i| &i.id == id).unwrap().state;
        assert!(state == "terminated" || state == "shutting-down", "old {id} is {state}");
    }
    assert_eq!(theirs(&aws).await, before, "promotes changed nothing of theirs either");
}

#[tokio::test]
async fn an_external_classic_elb_is_used_as_it_is() {
    let emu = Emulator::start();
    let (project, a, _) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    let (_, subnets, their_sg) = network(&aws, "legacy-elb-sg").await;
    let listener = aws_sdk_elasticloadbalancing::types::Listener::builder().protocol("HTTP").load_balancer_port(80).instance_protocol("HTTP").instance_port(8080).build().unwrap();
    aws.elb.create_load_balancer().load_balancer_name("legacy-elb").listeners(listener).set_subnets(Some(subnets)).security_groups(&their_sg).send().await.unwrap();
    let check = aws_sdk_elasticloadbalancing::types::HealthCheck::builder().target("HTTP:8080/status").interval(17).timeout(5).healthy_threshold(3).unhealthy_threshold(3).build().unwrap();
    aws.elb.configure_health_check().load_balancer_name("legacy-elb").health_check(check).send().await.unwrap();
    let pipeline = project.read("pipelines/hello.toml");
    project.write("pipelines/hello.toml", &pipeline.replace("load_balancer = \"hello-staging\"", "load_balancer = \"legacy-elb\""));
    let before = theirs(&aws).await;

    let run = project.release(&emu, &["provision", "--env", "staging"]);
    run.assert_ok();
    assert!(run.stdout.contains("note: load balancer legacy-elb: external, used as it is"), "{}", run.stdout);
    assert!(!run.stdout.contains("configure"), "{}", run.stdout);
    assert_eq!(rules(&aws, "hello-staging-instances").await, [format!("8080 from {their_sg}")]);
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    let running: Vec<String> = aws.running("hello", "staging").await.iter().map(|i| i.id.clone()).collect();
    assert_eq!(aws.elb_members("legacy-elb").await, running, "our fleet serves from their ELB");
    assert_eq!(theirs(&aws).await, before, "their ELB's listeners, health check and groups unchanged");
}

/// AWS refuses a second load balancer for a target group (`TargetGroupAssociationLimit`); the emulator allows it,
/// the realism proxy does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_realism_proxy_refuses_a_second_load_balancer_for_a_target_group() {
    let emu = Emulator::start();
    let proxy = FaultProxy::start(&emu.url(), 1);
    proxy.realism(Realism::new());
    let aws = AwsView::at(&proxy.url(), "test", "test").await;
    let (_, tg_arn) = their_alb(&aws).await;
    let (_, subnets, sg) = network(&aws, "second-sg").await;
    let second = aws.elbv2.create_load_balancer().name("second-alb").set_subnets(Some(subnets)).security_groups(&sg).send().await.unwrap();
    let arn = second.load_balancers()[0].load_balancer_arn().unwrap().to_owned();
    let err = aws
        .elbv2
        .create_listener()
        .load_balancer_arn(&arn)
        .protocol(ProtocolEnum::Http)
        .port(80)
        .default_actions(Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(&tg_arn).build())
        .send()
        .await
        .expect_err("a second load balancer for legacy-tg");
    use aws_sdk_elasticloadbalancingv2::error::ProvideErrorMetadata;
    assert_eq!(err.code(), Some("TargetGroupAssociationLimit"), "{err:?}");
    let direct = AwsView::new(&emu).await;
    let listeners = direct.elbv2.describe_listeners().load_balancer_arn(&arn).send().await.unwrap();
    assert!(listeners.listeners().is_empty(), "nothing reached the emulator");
    let tg = direct.elbv2.describe_target_groups().target_group_arns(&tg_arn).send().await.unwrap();
    assert_eq!(tg.target_groups()[0].load_balancer_arns().len(), 1);
    assert_eq!(proxy.stats().injected.get("elasticloadbalancing:CreateListener TargetGroupAssociationLimit").copied(), Some(1));
}
