//! `release provision` against the emulator: creates exactly what the file describes, once.

use release_e2e::{AwsView, Emulator, Project};

#[tokio::test]
async fn provision_creates_what_the_demo_pipeline_needs_and_a_second_run_changes_nothing() {
    let emu = Emulator::start();
    let project = Project::demo();
    let aws = AwsView::new(&emu).await;

    let staging = project.release(&emu, &["provision", "--env", "staging", "--output", "json"]);
    staging.assert_ok();
    let doc = staging.json();
    assert_eq!(doc["changed"], true);
    let actions: Vec<&str> = doc["actions"].as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["create-ledger-table", "create-security-group", "allow-ingress", "create-security-group", "allow-ingress", "create-load-balancer"]);

    let prod = project.release(&emu, &["provision", "--env", "prod"]);
    prod.assert_ok();
    assert!(prod.stdout.contains("hello/prod: 13 actions (did):"), "{}", prod.stdout);

    // Two security groups per cluster: the load balancer's open on 80 to `allow`, the instances' open on the app
    // port to the load balancer's group only.
    let groups = aws.ec2.describe_security_groups().filters(aws_sdk_ec2::types::Filter::builder().name("group-name").values("hello-prod1-lb").values("hello-prod1-instances").build()).send().await.unwrap();
    let by_name = |n: &str| groups.security_groups().iter().find(|g| g.group_name() == Some(n)).cloned().unwrap_or_else(|| panic!("no group {n}"));
    let (lb_group, inst_group) = (by_name("hello-prod1-lb"), by_name("hello-prod1-instances"));
    let rules = |g: &aws_sdk_ec2::types::SecurityGroup| -> Vec<String> {
        g.ip_permissions()
            .iter()
            .flat_map(|p| {
                let port = p.from_port().unwrap_or(-1);
                p.ip_ranges().iter().map(move |r| format!("{port} from {}", r.cidr_ip().unwrap_or(""))).chain(p.user_id_group_pairs().iter().map(move |u| format!("{port} from {}", u.group_id().unwrap_or(""))))
            })
            .collect()
    };
    assert_eq!(rules(&lb_group), vec!["80 from 0.0.0.0/0".to_owned()]);
    assert_eq!(rules(&inst_group), vec![format!("8080 from {}", lb_group.group_id().unwrap())]);
    assert!(lb_group.tags().iter().any(|t| t.key() == Some("release:app") && t.value() == Some("hello")), "{lb_group:?}");

    // The world: three classic ELBs forwarding 80 -> 8080 and health-checking /health.
    assert_eq!(aws.classic_elbs().await, ["hello-prod1", "hello-prod2", "hello-staging"]);
    let lbs = aws.elb.describe_load_balancers().load_balancer_names("hello-prod1").send().await.unwrap();
    let lb = &lbs.load_balancer_descriptions()[0];
    let listener = lb.listener_descriptions()[0].listener().unwrap();
    assert_eq!((listener.load_balancer_port(), listener.instance_port()), (80, 8080));
    assert_eq!(lb.health_check().map(|h| h.target()), Some("HTTP:8080/health"));
    assert_eq!(lb.security_groups(), [lb_group.group_id().unwrap().to_owned()], "the load balancer sits in its own group");
    let prod1_dns = lb.dns_name().unwrap().to_owned();
    // Connection draining for `drain` (2s in the demo) and cross-zone balancing.
    let attrs = aws.elb.describe_load_balancer_attributes().load_balancer_name("hello-prod1").send().await.unwrap();
    let attrs = attrs.load_balancer_attributes().unwrap();
    assert_eq!(attrs.connection_draining().map(|d| (d.enabled(), d.timeout())), Some((true, Some(2))));
    assert_eq!(attrs.cross_zone_load_balancing().map(|c| c.enabled()), Some(true));

    // The ledger table, keyed for records and locks.
    let table = aws.dynamodb.describe_table().table_name("release-ledger").send().await.unwrap();
    let keys: Vec<String> =
        table.table().unwrap().key_schema().iter().map(|k| format!("{}:{}", k.attribute_name(), k.key_type().as_str())).collect();
    assert_eq!(keys, ["pk:HASH", "sk:RANGE"]);

    // The zone and the live name: one weighted alias per cluster, prod1 live.
    let records = aws.weighted_records("example.com.", "hello.example.com.").await;
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!((records[0].0.as_str(), records[0].1), ("prod1", 100));
    assert_eq!((records[1].0.as_str(), records[1].1), ("prod2", 0));
    assert!(records[0].2.trim_end_matches('.').eq_ignore_ascii_case(&prod1_dns), "{records:?} vs {prod1_dns}");

    // Idempotent: the second run reports nothing to do and the emulator's state is byte for byte the same.
    let before = emu.state();
    for env in ["staging", "prod"] {
        let again = project.release(&emu, &["provision", "--env", env, "--output", "json"]);
        again.assert_ok();
        assert_eq!(again.json()["changed"], false, "{}", again.stdout);
        assert_eq!(again.json()["actions"].as_array().unwrap().len(), 0);
        let text = project.release(&emu, &["provision", "--env", env]);
        assert_eq!(text.stdout.trim(), format!("hello/{env}: everything exists; nothing to do"));
    }
    before.assert_same(&emu.state(), "a second provision");
}

#[tokio::test]
async fn plan_lists_the_actions_and_changes_nothing() {
    let emu = Emulator::start();
    let project = Project::demo();
    let before = emu.state();
    let run = project.release(&emu, &["provision", "--env", "prod", "--plan"]);
    run.assert_ok();
    assert_eq!(
        run.stdout.trim(),
        "hello/prod: 14 actions (would):\n  + create DynamoDB table release-ledger (ledger and locks)\n  \
         + create security group hello-prod1-lb for cluster prod1's load balancer\n  \
         + allow tcp/80 from 0.0.0.0/0 into hello-prod1-lb\n  \
         + create security group hello-prod1-instances for cluster prod1's instances\n  \
         + allow tcp/8080 from group hello-prod1-lb into hello-prod1-instances\n  \
         + create security group hello-prod2-lb for cluster prod2's load balancer\n  \
         + allow tcp/80 from 0.0.0.0/0 into hello-prod2-lb\n  \
         + create security group hello-prod2-instances for cluster prod2's instances\n  \
         + allow tcp/8080 from group hello-prod2-lb into hello-prod2-instances\n  \
         + create classic ELB hello-prod1 for cluster prod1 (HTTP 80 -> 8080, health /health)\n  \
         + create classic ELB hello-prod2 for cluster prod2 (HTTP 80 -> 8080, health /health)\n  \
         + create Route53 hosted zone example.com.\n  \
         + create weighted alias hello.example.com. [prod1] -> load balancer hello-prod1, weight 100\n  \
         + create weighted alias hello.example.com. [prod2] -> load balancer hello-prod2, weight 0\n\
         nothing was changed (--plan)"
    );
    before.assert_same(&emu.state(), "--plan");
}

const TG_PIPELINE: &str = r#"app = "shop"
region = "us-east-1"
ledger_table = "shop-ledger"
[build]
command = "true"
artifact = "dist/shop.tar.gz"
[bake]
template = "packer-templates/app.pkr.hcl"
base_ami = "ami-0123456789abcdef0"
[deploy]
port = 9000
health_path = "/ready"
[env.prod]
dns = { zone = "shop.test.", record = "www.shop.test." }
[env.prod.clusters.blue]
target_group = "shop-blue"
count = 2
[env.prod.clusters.green]
target_group = "shop-green"
count = 2
"#;

#[tokio::test]
async fn target_group_clusters_get_a_target_group_an_alb_and_a_listener() {
    let emu = Emulator::start();
    let project = Project::new(TG_PIPELINE);
    let aws = AwsView::new(&emu).await;
    project.release(&emu, &["provision", "--env", "prod"]).assert_ok();

    let tgs = aws.elbv2.describe_target_groups().send().await.unwrap();
    let mut groups: Vec<(String, Option<i32>, Option<String>)> = tgs
        .target_groups()
        .iter()
        .map(|t| (t.target_group_name().unwrap().to_owned(), t.port(), t.health_check_path().map(String::from)))
        .collect();
    groups.sort();
    assert_eq!(groups, [
        ("shop-blue".to_owned(), Some(9000), Some("/ready".to_owned())),
        ("shop-green".to_owned(), Some(9000), Some("/ready".to_owned())),
    ]);
    let albs = aws.elbv2.describe_load_balancers().send().await.unwrap();
    for tg in tgs.target_groups() {
        let name = tg.target_group_name().unwrap();
        let alb = albs.load_balancers().iter().find(|l| l.load_balancer_name() == Some(name)).expect("ALB named like its group");
        let listeners = aws.elbv2.describe_listeners().load_balancer_arn(alb.load_balancer_arn().unwrap()).send().await.unwrap();
        let l = &listeners.listeners()[0];
        assert_eq!(l.port(), Some(80));
        assert_eq!(l.default_actions()[0].target_group_arn(), tg.target_group_arn(), "listener forwards to {name}");
    }
    assert!(aws.dynamodb.describe_table().table_name("shop-ledger").send().await.is_ok(), "ledger_table is honoured");
    let records = aws.weighted_records("shop.test.", "www.shop.test.").await;
    let weights: Vec<(&str, i64)> = records.iter().map(|r| (r.0.as_str(), r.1)).collect();
    assert_eq!(weights, [("blue", 100), ("green", 0)]);

    let before = emu.state();
    let again = project.release(&emu, &["provision", "--env", "prod", "--output", "json"]);
    again.assert_ok();
    assert_eq!(again.json()["changed"], false);
    before.assert_same(&emu.state(), "a failed command");
}

#[tokio::test]
async fn a_hand_made_record_on_the_live_name_is_refused_not_overwritten() {
    let emu = Emulator::start();
    let project = Project::new(TG_PIPELINE);
    let aws = AwsView::new(&emu).await;
    use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
    let zone = aws.route53.create_hosted_zone().name("shop.test.").caller_reference("hand").send().await.unwrap();
    let zone_id = zone.hosted_zone().unwrap().id().to_owned();
    let rrs = ResourceRecordSet::builder()
        .name("www.shop.test.")
        .r#type(RrType::Cname)
        .ttl(60)
        .resource_records(ResourceRecord::builder().value("old.shop.test.").build().unwrap())
        .build()
        .unwrap();
    let change = Change::builder().action(ChangeAction::Create).resource_record_set(rrs).build().unwrap();
    aws.route53
        .change_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .change_batch(ChangeBatch::builder().changes(change).build().unwrap())
        .send()
        .await
        .unwrap();
    let before = emu.state();
    let run = project.release(&emu, &["provision", "--env", "prod"]);
    assert_eq!(run.code, 4, "refused by a safety check: {}", run.stderr);
    assert_eq!(
        run.error_line(),
        "error: www.shop.test. already exists as a CNAME record that release does not manage; delete it or choose another `record` for env prod"
    );
    before.assert_same(&emu.state(), "a refused provision");
}

#[tokio::test]
async fn provision_converges_existing_load_balancers_and_groups_to_the_pipeline() {
    let emu = Emulator::start();
    let project = Project::demo();
    let aws = AwsView::new(&emu).await;
    project.release(&emu, &["provision", "--env", "staging"]).assert_ok();
    let pipeline = project.read("pipelines/hello.toml");
    let changed = pipeline
        .replace("[deploy]\n", "[deploy]\nhealth_path = \"/ready\"\nhealth = { interval = \"15s\", timeout = \"4s\", healthy = 3, unhealthy = 4 }\nallow = [\"203.0.113.0/24\"]\n")
        .replace("drain = \"2s\"", "drain = \"20s\"");
    project.write("pipelines/hello.toml", &changed);
    let before = emu.state();
    let plan = project.release(&emu, &["provision", "--env", "staging", "--plan"]);
    plan.assert_ok();
    before.assert_same(&emu.state(), "provision --plan");
    for line in [
        "+ allow tcp/80 from 203.0.113.0/24 into hello-staging-lb",
        "+ revoke tcp/80 from 0.0.0.0/0 from hello-staging-lb (no longer in the pipeline)",
        "+ configure load balancer hello-staging of cluster staging: health path /health -> /ready; health check every 10s timeout 5s healthy 2 unhealthy 2 -> every 15s timeout 4s healthy 3 unhealthy 4; drain 2s -> 20s",
    ] {
        assert!(plan.stdout.contains(line), "missing {line:?} in:\n{}", plan.stdout);
    }
    project.release(&emu, &["provision", "--env", "staging"]).assert_ok();
    let lbs = aws.elb.describe_load_balancers().load_balancer_names("hello-staging").send().await.unwrap();
    let hc = lbs.load_balancer_descriptions()[0].health_check().unwrap().clone();
    assert_eq!((hc.target(), hc.interval(), hc.timeout(), hc.healthy_threshold(), hc.unhealthy_threshold()), ("HTTP:8080/ready", 15, 4, 3, 4));
    let attrs = aws.elb.describe_load_balancer_attributes().load_balancer_name("hello-staging").send().await.unwrap();
    assert_eq!(attrs.load_balancer_attributes().unwrap().connection_draining().and_then(|d| d.timeout()), Some(20));
    let groups = aws.ec2.describe_security_groups().filters(aws_sdk_ec2::types::Filter::builder().name("group-name").values("hello-staging-lb").build()).send().await.unwrap();
    let cidrs: Vec<&str> = groups.security_groups()[0].ip_permissions().iter().flat_map(|p| p.ip_ranges()).filter_map(|r| r.cidr_ip()).collect();
    assert_eq!(cidrs, ["203.0.113.0/24"]);
    let again = project.release(&emu, &["provision", "--env", "staging"]);
    assert_eq!(again.stdout.trim(), "hello/staging: everything exists; nothing to do");
}

const DRAINING_TG_PIPELINE: &str = r#"app = "hello"
region = "us-east-1"
[build]
command = "true"
artifact = "x"
[bake]
template = "packer-templates/app.pkr.hcl"
base_ami = "ami-0123456789abcdef0"
[deploy]
drain = "45s"
[env.prod]
dns = { zone = "example.com.", record = "hello.example.com." }
[env.prod.clusters.blue]
target_group = "hello-blue"
count = 2
[env.prod.clusters.green]
target_group = "hello-green"
count = 2
"#;

#[tokio::test]
async fn target_groups_deregister_with_a_delay_of_drain_and_albs_sit_in_their_group() {
    let emu = Emulator::start();
    let project = Project::new(DRAINING_TG_PIPELINE);
    let aws = AwsView::new(&emu).await;
    project.release(&emu, &["provision", "--env", "prod"]).assert_ok();
    let tgs = aws.elbv2.describe_target_groups().names("hello-blue").send().await.unwrap();
    let arn = tgs.target_groups()[0].target_group_arn().unwrap();
    let attrs = aws.elbv2.describe_target_group_attributes().target_group_arn(arn).send().await.unwrap();
    let delay = attrs.attributes().iter().find(|a| a.key() == Some("deregistration_delay.timeout_seconds")).and_then(|a| a.value());
    assert_eq!(delay, Some("45"));
    let albs = aws.elbv2.describe_load_balancers().names("hello-blue").send().await.unwrap();
    let groups = aws.ec2.describe_security_groups().filters(aws_sdk_ec2::types::Filter::builder().name("group-name").values("hello-blue-lb").build()).send().await.unwrap();
    assert_eq!(albs.load_balancers()[0].security_groups(), [groups.security_groups()[0].group_id().unwrap().to_owned()]);
    let again = project.release(&emu, &["provision", "--env", "prod", "--output", "json"]);
    assert_eq!(again.json()["changed"], false, "{}", again.stdout);
}

/// Points `cluster`'s weighted record of `name` at `dns` with the SDK, keeping its weight and alias zone (what is
/// left after a load balancer is deleted and created again: the new one has a new DNS name).
async fn repoint_by_hand(aws: &AwsView, zone: &str, name: &str, cluster: &str, dns: &str) {
    use aws_sdk_route53::types::{AliasTarget, Change, ChangeAction, ChangeBatch};
    let zones = aws.route53.list_hosted_zones_by_name().dns_name(zone).send().await.unwrap();
    let zone_id = zones.hosted_zones().iter().find(|z| z.name() == zone).expect("zone").id().to_owned();
    let rrs = aws.route53.list_resource_record_sets().hosted_zone_id(&zone_id).send().await.unwrap();
    let r = rrs.resource_record_sets().iter().find(|r| r.name() == name && r.set_identifier() == Some(cluster)).expect("record").clone();
    let alias = r.alias_target().unwrap();
    let moved = AliasTarget::builder().dns_name(dns).hosted_zone_id(alias.hosted_zone_id()).evaluate_target_health(alias.evaluate_target_health()).build().unwrap();
    let mut rrs = r.clone();
    rrs.alias_target = Some(moved);
    let change = Change::builder().action(ChangeAction::Upsert).resource_record_set(rrs).build().unwrap();
    aws.route53.change_resource_record_sets().hosted_zone_id(&zone_id).change_batch(ChangeBatch::builder().changes(change).build().unwrap()).send().await.unwrap();
}

/// The DNS name of the ALB in front of a target group.
async fn alb_dns(aws: &AwsView, name: &str) -> String {
    let albs = aws.elbv2.describe_load_balancers().names(name).send().await.unwrap();
    albs.load_balancers()[0].dns_name().unwrap().to_owned()
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.').eq_ignore_ascii_case(b.trim_end_matches('.'))
}

#[tokio::test]
async fn a_record_left_on_an_old_load_balancer_name_is_planned_refused_by_switch_and_repointed() {
    let emu = Emulator::start();
    let project = Project::new(TG_PIPELINE);
    let aws = AwsView::new(&emu).await;
    project.release(&emu, &["provision", "--env", "prod"]).assert_ok();
    let (blue, green) = (alb_dns(&aws, "shop-blue").await, alb_dns(&aws, "shop-green").await);
    // Both load balancers "deleted and created again": the live one (blue, 100) and the idle one (green, 0).
    let (old_blue, old_green) = ("shop-blue-OLD-123.us-east-1.elb.amazonaws.com.", "shop-green-OLD-456.us-east-1.elb.amazonaws.com.");
    repoint_by_hand(&aws, "shop.test.", "www.shop.test.", "blue", old_blue).await;
    repoint_by_hand(&aws, "shop.test.", "www.shop.test.", "green", old_green).await;
    let records = aws.weighted_records("shop.test.", "www.shop.test.").await;
    assert_eq!(records, [("blue".to_owned(), 100, old_blue.to_owned()), ("green".to_owned(), 0, old_green.to_owned())]);

    // --plan shows both, each with its weight kept, and writes nothing.
    let before = emu.state();
    let plan = project.release(&emu, &["provision", "--env", "prod", "--plan"]);
    plan.assert_ok();
    assert_eq!(
        plan.stdout.trim(),
        format!(
            "shop/prod: 2 actions (would):\n  \
             + repoint weighted alias www.shop.test. [blue] from {old_blue} to {blue} (target group shop-blue; weight 100 kept)\n  \
             + repoint weighted alias www.shop.test. [green] from {old_green} to {green} (target group shop-green; weight 0 kept)\n\
             nothing was changed (--plan)"
        )
    );
    before.assert_same(&emu.state(), "provision --plan");

    // status points at both clusters.
    let status = project.release(&emu, &["status", "--env", "prod", "--output", "json"]).json();
    let notes: Vec<String> = status["environments"][0]["clusters"].as_array().unwrap().iter().map(|c| c["note"].as_str().unwrap_or("").to_owned()).collect();
    assert!(notes[0].starts_with(&format!("www.shop.test. [blue] points to {old_blue}, not to target group shop-blue of cluster blue ({blue})")), "{notes:?}");
    assert!(notes[1].contains(&format!("[green] points to {old_green}")) && notes[1].contains("release provision --env prod"), "{notes:?}");
    let text = project.release(&emu, &["status", "--env", "prod"]);
    assert!(text.stdout.contains(&format!("note: www.shop.test. [green] points to {old_green}")), "{}", text.stdout);

    // A switch to green would send all of prod to a name that does not exist: refused, --force or not, and
    // Route53 is not touched.
    for args in [&["switch", "green", "--yes"][..], &["switch", "green", "--force", "--yes"], &["switch", "green", "--plan"]] {
        let refused = project.release(&emu, args);
        assert_eq!(refused.code, 4, "{args:?}: {refused:?}");
        assert_eq!(
            refused.error_line(),
            format!(
                "error: www.shop.test. [green] points to {old_green}, not to target group shop-green of cluster green ({green}); switching would send traffic there; run `release provision --env prod` to point it at the load balancer, then switch again (--force does not skip this); nothing was changed"
            ),
            "{args:?}"
        );
    }
    before.assert_same(&emu.state(), "a refused switch");

    // provision repoints both in one change batch, keeping the weights.
    let fixed = project.release(&emu, &["provision", "--env", "prod", "--output", "json"]);
    fixed.assert_ok();
    let doc = fixed.json();
    assert_eq!(doc["changed"], true);
    let actions: Vec<(&str, &str)> = doc["actions"].as_array().unwrap().iter().map(|a| (a["action"].as_str().unwrap(), a["cluster"].as_str().unwrap())).collect();
    assert_eq!(actions, [("repoint-live-record", "blue"), ("repoint-live-record", "green")]);
    assert_eq!(doc["api_calls"]["Route 53:ChangeResourceRecordSets"], 1, "{}", fixed.stdout);
    let records = aws.weighted_records("shop.test.", "www.shop.test.").await;
    assert_eq!(records.iter().map(|r| (r.0.as_str(), r.1)).collect::<Vec<_>>(), [("blue", 100), ("green", 0)]);
    assert!(same_name(&records[0].2, &blue), "{records:?} vs {blue}");
    assert!(same_name(&records[1].2, &green), "{records:?} vs {green}");
    let again = project.release(&emu, &["provision", "--env", "prod"]);
    assert_eq!(again.stdout.trim(), "shop/prod: everything exists; nothing to do");
    let status = project.release(&emu, &["status", "--env", "prod", "--output", "json"]).json();
    assert!(status["environments"][0]["clusters"].as_array().unwrap().iter().all(|c| c.get("note").is_none()), "{status}");

    // The refusal was about the record only: now a forced switch to the empty cluster goes through.
    project.release(&emu, &["switch", "green", "--force", "--yes"]).assert_ok();
    let weights: Vec<(String, i64)> = aws.weighted_records("shop.test.", "www.shop.test.").await.into_iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(weights, [("blue".to_owned(), 0), ("green".to_owned(), 100)]);
}
