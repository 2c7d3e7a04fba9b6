//! HTTPS with ACM certificates against the emulator (issue 23): listeners, the redirect, security group rules and the
//! TLS policies asked of AWS; a bad or missing certificate refused before anything is made; a changed certificate
//! converged.

use aws_sdk_elasticloadbalancingv2::types::{ActionTypeEnum, ProtocolEnum};
use release_e2e::{AwsView, Emulator, Project};

fn pipeline(deploy: &str) -> String {
    format!(
        r#"app = "shop"
region = "us-east-1"
[build]
command = "true"
artifact = "dist/shop.tar.gz"
[bake]
template = "packer-templates/app.pkr.hcl"
base_ami = "ami-0123456789abcdef0"
[deploy]
allow = ["203.0.113.0/24"]
{deploy}
[env.staging]
[env.staging.clusters.staging]
load_balancer = "shop-staging"
count = 1
[env.prod]
dns = {{ zone = "shop.test.", record = "www.shop.test." }}
[env.prod.clusters.blue]
target_group = "shop-blue"
count = 1
[env.prod.clusters.green]
target_group = "shop-green"
count = 1
"#
    )
}

/// The listeners of the ALB named `name`: (port, protocol, certificate, TLS policy, default action).
async fn alb_listeners(aws: &AwsView, name: &str) -> Vec<(i32, String, Option<String>, Option<String>, String)> {
    let lbs = aws.elbv2.describe_load_balancers().names(name).send().await.unwrap();
    let arn = lbs.load_balancers()[0].load_balancer_arn().unwrap();
    let out = aws.elbv2.describe_listeners().load_balancer_arn(arn).send().await.unwrap();
    let mut ls: Vec<_> = out
        .listeners()
        .iter()
        .map(|l| {
            let a = &l.default_actions()[0];
            let action = match a.r#type() {
                Some(ActionTypeEnum::Redirect) => {
                    let r = a.redirect_config().unwrap();
                    format!("redirect {}:{} {}", r.protocol().unwrap_or(""), r.port().unwrap_or(""), r.status_code().map(|s| s.as_str()).unwrap_or(""))
                }
                Some(t) => format!("{} {}", t.as_str(), a.target_group_arn().unwrap_or("").rsplit('/').nth(1).unwrap_or("")),
                None => String::new(),
            };
            (
                l.port().unwrap(),
                l.protocol().map(|p| p.as_str().to_owned()).unwrap_or_default(),
                l.certificates().first().and_then(|c| c.certificate_arn()).map(str::to_owned),
                // moto reports its default policy on plain HTTP listeners too; AWS has none there.
                l.ssl_policy().filter(|_| l.protocol() == Some(&ProtocolEnum::Https)).map(str::to_owned),
                action,
            )
        })
        .collect();
    ls.sort();
    ls
}

/// The TCP ports and CIDRs a group admits.
async fn rules(aws: &AwsView, name: &str) -> Vec<String> {
    let groups = aws.ec2.describe_security_groups().filters(aws_sdk_ec2::types::Filter::builder().name("group-name").values(name).build()).send().await.unwrap();
    let mut out: Vec<String> = groups.security_groups()[0]
        .ip_permissions()
        .iter()
        .flat_map(|p| {
            let port = p.from_port().unwrap_or(-1);
            p.ip_ranges().iter().map(move |r| format!("{port} from {}", r.cidr_ip().unwrap_or("")))
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn https_listeners_the_redirect_the_tls_policies_and_443_in_the_groups() {
    let emu = Emulator::start();
    let aws = AwsView::new(&emu).await;
    let cert = emu.request_certificate("www.shop.test", &["*.shop.test"], true);
    let project = Project::new(&pipeline(&format!("certificate = \"{cert}\"")));
    for env in ["staging", "prod"] {
        project.release(&emu, &["provision", "--env", env]).assert_ok();
    }

    // ALB: HTTPS 443 with the certificate and AWS's TLS 1.3 policy, forwarding; 80 a permanent redirect to HTTPS.
    assert_eq!(alb_listeners(&aws, "shop-blue").await, [
        (80, "HTTP".to_owned(), None, None, "redirect HTTPS:443 HTTP_301".to_owned()),
        (443, "HTTPS".to_owned(), Some(cert.clone()), Some("ELBSecurityPolicy-TLS13-1-2-2021-06".to_owned()), "forward shop-blue".to_owned()),
    ]);
    assert_eq!(rules(&aws, "shop-blue-lb").await, ["443 from 203.0.113.0/24", "80 from 203.0.113.0/24"]);

    // Classic ELB: one HTTPS listener, TLS 1.2 at least (no TLS 1.3 policy there).
    let elb = aws.elb.describe_load_balancers().load_balancer_names("shop-staging").send().await.unwrap();
    let d = &elb.load_balancer_descriptions()[0];
    let ls: Vec<(i32, String, Option<String>, Vec<String>)> = d
        .listener_descriptions()
        .iter()
        .map(|l| {
            let x = l.listener().unwrap();
            (x.load_balancer_port(), x.protocol().to_owned(), x.ssl_certificate_id().map(str::to_owned), l.policy_names().to_vec())
        })
        .collect();
    assert_eq!(ls, [(443, "HTTPS".to_owned(), Some(cert.clone()), vec!["release-tls-ELBSecurityPolicy-TLS-1-2-2017-01".to_owned()])]);
    let policies = aws.elb.describe_load_balancer_policies().load_balancer_name("shop-staging").send().await.unwrap();
    let reference: Vec<String> = policies
        .policy_descriptions()
        .iter()
        .flat_map(|p| p.policy_attribute_descriptions())
        .filter(|a| a.attribute_name() == Some("Reference-Security-Policy"))
        .filter_map(|a| a.attribute_value().map(str::to_owned))
        .collect();
    assert_eq!(reference, ["ELBSecurityPolicy-TLS-1-2-2017-01"]);
    assert_eq!(rules(&aws, "shop-staging-lb").await, ["443 from 203.0.113.0/24"]);

    let again = project.release(&emu, &["provision", "--env", "prod", "--output", "json"]);
    assert_eq!(again.json()["changed"], false, "{}", again.stdout);
}

#[tokio::test]
async fn a_bad_or_missing_certificate_is_refused_and_nothing_is_made() {
    let emu = Emulator::start();
    // Not ACM: refused by validate, with the position.
    let project = Project::new(&pipeline("certificate = \"arn:aws:iam::123456789012:server-certificate/shop\""));
    let run = project.release(&emu, &["validate"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("pipelines/shop.toml:11:15: certificate `arn:aws:iam::123456789012:server-certificate/shop` is not an ACM certificate ARN"), "{}", run.stderr);

    // Missing, or not issued yet: provision says so and makes nothing.
    let pending = emu.request_certificate("www.shop.test", &[], false);
    let missing = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000";
    for (cert, says) in [
        (missing, "does not exist in this region; request or import it in ACM, or fix `certificate`"),
        (pending.as_str(), "is PENDING_VALIDATION, not ISSUED; finish its validation in ACM, or name an issued certificate"),
    ] {
        let project = Project::new(&pipeline(&format!("certificate = \"{cert}\"")));
        let before = emu.state();
        let run = project.release(&emu, &["provision", "--env", "prod"]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert_eq!(run.error_line(), format!("error: certificate {cert} of cluster blue {says}"));
        before.assert_same(&emu.state(), "a provision refused for its certificate");
    }
}

#[tokio::test]
async fn a_changed_certificate_is_planned_and_converged() {
    let emu = Emulator::start();
    let aws = AwsView::new(&emu).await;
    let (a, b) = (emu.request_certificate("www.shop.test", &[], true), emu.request_certificate("www.shop.test", &[], true));
    let project = Project::new(&pipeline(&format!("certificate = \"{a}\"")));
    project.release(&emu, &["provision", "--env", "prod"]).assert_ok();
    project.write("pipelines/shop.toml", &pipeline(&format!("certificate = \"{b}\"")));

    let before = emu.state();
    let plan = project.release(&emu, &["provision", "--env", "prod", "--plan"]);
    plan.assert_ok();
    assert!(plan.stdout.contains(&format!("+ configure target group shop-blue of cluster blue: certificate {a} -> {b}")), "{}", plan.stdout);
    before.assert_same(&emu.state(), "provision --plan");
    project.release(&emu, &["provision", "--env", "prod"]).assert_ok();
    for tg in ["shop-blue", "shop-green"] {
        let https: Vec<_> = alb_listeners(&aws, tg).await.into_iter().filter(|l| l.0 == 443).collect();
        assert_eq!(https.len(), 1, "{https:?}");
        assert_eq!(https[0].2.as_deref(), Some(b.as_str()), "{tg} serves the new certificate");
        assert_eq!(https[0].1, ProtocolEnum::Https.as_str());
    }
    let again = project.release(&emu, &["provision", "--env", "prod", "--output", "json"]);
    assert_eq!(again.json()["changed"], false, "{}", again.stdout);
}

#[tokio::test]
async fn internal_load_balancers_are_made_internal() {
    let emu = Emulator::start();
    let aws = AwsView::new(&emu).await;
    let project = Project::new(&pipeline("scheme = \"internal\""));
    for env in ["staging", "prod"] {
        project.release(&emu, &["provision", "--env", env]).assert_ok();
    }
    let albs = aws.elbv2.describe_load_balancers().names("shop-blue").names("shop-green").send().await.unwrap();
    let schemes: Vec<&str> = albs.load_balancers().iter().map(|l| l.scheme().unwrap().as_str()).collect();
    assert_eq!(schemes, ["internal", "internal"]);
    let elb = aws.elb.describe_load_balancers().load_balancer_names("shop-staging").send().await.unwrap();
    assert_eq!(elb.load_balancer_descriptions()[0].scheme(), Some("internal"));
    let again = project.release(&emu, &["provision", "--env", "prod", "--output", "json"]);
    assert_eq!(again.json()["changed"], false, "{}", again.stdout);
}
