//! The least-privilege IAM policy `release` (and the Packer it runs) needs for one pipeline.
//!
//! Every action is scoped to exactly the resource types the AWS Service Authorization Reference lists for it (the
//! transcribed table and the check are in `crates/release-aws/tests/iam_reference.rs`), narrowed to this app's
//! resources by name (load balancers, target groups, the ledger table and its keys, live records) or by tag where
//! names are not known in advance:
//!
//! - `release:app = <app>`: release tags its instances, their volumes and interfaces and its security groups at
//!   creation, and its AMIs and their snapshots; terminating, deregistering, deleting, changing rules and
//!   re-tagging need it on the resource, creating needs it in the request;
//! - `app = <app>` ([`PACKER_APP_TAG`]): the Packer template's `run_tags` (and `run_volume_tags`), which the
//!   Amazon plugin puts at creation on the builder instance, its volume and interface, the temporary key pair and
//!   security group and the AMIs and snapshots it creates, and its `tags`/`snapshot_tags`, which it puts on the
//!   final AMIs: Packer's stop, terminate, rules and clean-ups need it, and release may claim a bake carrying it.
//!
//! Actions that support no resource-level permission get `"Resource": "*"`, in statements holding only such
//! actions. What the pipeline does not use (target groups, classic ELBs, a live name, key pairs, instance
//! profiles, sharing, a KMS key, SNS topics and `ssm:` webhook secrets of `[notify]`) is left out. `iam:PassRole`
//! names the role IAM says each instance profile holds ([`Aws::profile_roles`]), or, not looked up, one named like
//! the profile. Not derivable,
//! so not granted: KMS permissions for customer-managed keys encrypting a notification topic or an `ssm:` secret.
//! The statements whose Sid starts with `PackerBake` are Packer's: the Amazon builders' documented minimal policy,
//! scoped; they stand on their own (Packer run by another principal needs only them), and they and the others each
//! fit in a managed policy if the document must be split.

use std::collections::{BTreeMap, BTreeSet};

use release_core::model::ids::EnvName;
use release_core::model::ledger::{index_key, partition_key};
use release_core::model::pipeline::{BaseAmi, LbTarget, Pipeline, SecretRef, SinkKind};
use release_core::ports::tags;
use serde_json::{json, Map, Value};

use crate::{error, Aws};

/// The tag key the Packer template sets to the app (run_tags, tags, snapshot_tags).
pub const PACKER_APP_TAG: &str = "app";

/// The names Packer gives its temporary key pair (`packer_<uuid>`).
const PACKER_KEY_PAIR: &str = "packer_*";

/// The ELB service-linked role: created by the first load balancer of an account.
const ELB_SERVICE: &str = "elasticloadbalancing.amazonaws.com";

/// Packer's reads (all without resource-level permissions).
const PACKER_READS: &[&str] = &[
    "ec2:DescribeImages",
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceStatus",
    "ec2:DescribeRegions",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSnapshots",
    "ec2:DescribeSubnets",
    "ec2:DescribeTags",
    "ec2:DescribeVolumes",
];

/// The partition of `region`'s ARNs.
fn partition(region: Option<&str>) -> &'static str {
    match region {
        Some(r) if r.starts_with("cn-") => "aws-cn",
        Some(r) if r.starts_with("us-gov-") => "aws-us-gov",
        _ => "aws",
    }
}

/// A DNS name as Route53's `ChangeResourceRecordSetsNormalizedRecordNames` condition key holds it: lowercase, no
/// trailing dot, characters other than a-z, 0-9, `-`, `_` and `.` as `\` and three octal digits.
pub fn normalized_record_name(name: &str) -> String {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let mut out = String::new();
    for b in name.bytes() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(b as char),
            other => out.push_str(&format!("\\{other:03o}")),
        }
    }
    out
}

/// Statements under construction.
struct Statements {
    list: Vec<Value>,
    p: &'static str,
}

impl Statements {
    fn allow(&mut self, sid: &str, actions: &[&str], resources: Vec<String>, condition: Option<Value>) {
        if actions.is_empty() || resources.is_empty() {
            return;
        }
        let mut st = Map::new();
        st.insert("Sid".into(), sid.into());
        st.insert("Effect".into(), "Allow".into());
        st.insert("Action".into(), json!(actions));
        st.insert("Resource".into(), if resources.len() == 1 { json!(resources[0]) } else { json!(resources) });
        if let Some(c) = condition {
            st.insert("Condition".into(), c);
        }
        self.list.push(Value::Object(st));
    }

    /// EC2 resources of this account, any region.
    fn ec2(&self, what: &str) -> String {
        format!("arn:{}:ec2:*:*:{what}", self.p)
    }

    /// Images and snapshots: their ARNs carry no account.
    fn ec2_no_account(&self, what: &str) -> String {
        format!("arn:{}:ec2:*::{what}", self.p)
    }
}

fn tagged(key: &str, value: &str) -> Value {
    json!({ "StringEquals": { format!("aws:ResourceTag/{key}"): value } })
}

fn requested(key: &str, value: &str) -> Value {
    json!({ "StringEquals": { format!("aws:RequestTag/{key}"): value } })
}

/// The roles of the pipeline's instance profiles, as IAM's `GetInstanceProfile` answered, and a note for each
/// profile it could not look up; [`policy_with`] names them in `iam:PassRole`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ProfileRoles {
    /// Instance profile name -> the ARNs of its roles (IAM puts at most one in a profile; none is possible).
    pub roles: BTreeMap<String, Vec<String>>,
    /// One line per profile not in `roles`: why, and what the policy assumes instead.
    pub notes: Vec<String>,
}

impl ProfileRoles {
    /// Every profile noted as not looked up, for `why` (no connection, `--offline`).
    pub fn unknown(pipeline: &Pipeline, why: &str) -> ProfileRoles {
        let notes = instance_profiles(pipeline).iter().map(|p| guessed(p, why)).collect();
        ProfileRoles { roles: BTreeMap::new(), notes }
    }
}

fn guessed(profile: &str, why: &str) -> String {
    format!(
        "instance profile {profile}: its role was not looked up ({why}); iam:PassRole names role/{profile}, as if the role had the profile's name: check with `aws iam get-instance-profile --instance-profile-name {profile}`"
    )
}

/// The instance profiles the pipeline's clusters launch with.
pub fn instance_profiles(pipeline: &Pipeline) -> BTreeSet<&str> {
    pipeline.envs.iter().flat_map(|e| e.clusters().iter()).filter_map(|c| c.deploy.instance_profile.as_deref()).collect()
}

impl Aws {
    /// The role each of the pipeline's instance profiles holds (one `iam GetInstanceProfile` each). Terraform and
    /// CDK name a profile's role differently from the profile, so its name cannot be guessed; a profile IAM does
    /// not answer for (denied, missing, an endpoint without IAM) gets a note, not an error: the policy is still
    /// printed, with the guess.
    pub async fn profile_roles(&self, pipeline: &Pipeline) -> ProfileRoles {
        let mut out = ProfileRoles::default();
        for profile in instance_profiles(pipeline) {
            match self.iam.get_instance_profile().instance_profile_name(profile).send().await {
                Ok(answer) => {
                    let roles: Vec<String> = answer.instance_profile().map(|p| p.roles().iter().map(|r| r.arn().to_owned()).collect()).unwrap_or_default();
                    if roles.is_empty() {
                        out.notes.push(format!("instance profile {profile} holds no role: its instances get no credentials, and iam:PassRole names none for it"));
                    }
                    out.roles.insert(profile.to_owned(), roles);
                }
                Err(e) => out.notes.push(guessed(profile, &error::sdk("iam GetInstanceProfile", e).to_string())),
            }
        }
        out
    }
}

/// The policy document for `pipeline`, `iam:PassRole` naming each instance profile's role as `role/<profile>`
/// (what [`policy_with`] assumes for a profile it has no answer for).
pub fn policy(pipeline: &Pipeline) -> Value {
    policy_with(pipeline, &ProfileRoles::default())
}

/// The policy document for `pipeline`, `iam:PassRole` naming the roles `roles` found.
pub fn policy_with(pipeline: &Pipeline, roles: &ProfileRoles) -> Value {
    let app = pipeline.app.as_str();
    let p = partition(pipeline.region.as_deref());
    let mut s = Statements { list: Vec::new(), p };
    let clusters: Vec<_> = pipeline.envs.iter().flat_map(|e| e.clusters().iter()).collect();
    let classic: BTreeSet<&str> = clusters
        .iter()
        .filter_map(|c| match &c.target {
            LbTarget::ClassicElb(n) => Some(n.as_str()),
            LbTarget::TargetGroup(_) => None,
        })
        .collect();
    let groups: BTreeSet<&str> = clusters
        .iter()
        .filter_map(|c| match &c.target {
            LbTarget::TargetGroup(n) => Some(n.as_str()),
            LbTarget::ClassicElb(_) => None,
        })
        .collect();
    // HTTPS: the certificates provision checks, and whether classic ELBs or ALBs listen with one.
    let certificates: BTreeSet<&str> = clusters.iter().filter_map(|c| c.deploy.certificate.as_deref()).collect();
    let classic_tls: BTreeSet<&str> = clusters
        .iter()
        .filter(|c| c.deploy.certificate.is_some())
        .filter_map(|c| match &c.target {
            LbTarget::ClassicElb(n) => Some(n.as_str()),
            LbTarget::TargetGroup(_) => None,
        })
        .collect();
    let live: BTreeSet<String> = pipeline.envs.iter().filter_map(|e| e.dns()).map(|d| normalized_record_name(&d.record)).collect();
    let pass_roles: BTreeSet<String> = instance_profiles(pipeline)
        .into_iter()
        .flat_map(|profile| match roles.roles.get(profile) {
            Some(found) => found.clone(),
            None => vec![format!("arn:{p}:iam::*:role/{profile}")],
        })
        .collect();
    let key_pairs: BTreeSet<&str> = clusters.iter().filter_map(|c| c.deploy.key_name.as_deref()).collect();
    let images = s.ec2_no_account("image/*");
    let snapshots = s.ec2_no_account("snapshot/*");
    let bakes = vec![images.clone(), snapshots.clone()];

    // ---- release ----

    // No resource-level permission: reads, and creating the live name's zone (found by name, any zone).
    let mut unscoped = vec![
        "ec2:DescribeImages",
        "ec2:DescribeInstances",
        "ec2:DescribeInstanceTypeOfferings",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeSubnets",
        "sts:GetCallerIdentity",
    ];
    // gc: the app's snapshots by tag (those of images a crashed gc deregistered); deleting them and deregistering
    // images is in "Images"/"Snapshots" below, scoped to resources tagged with the app.
    unscoped.push("ec2:DescribeSnapshots");
    // gc: whether a launch template or SSM parameter uses an image before it goes.
    unscoped.push("ec2:DescribeImageReferences");
    if !classic.is_empty() || !groups.is_empty() {
        // DescribeTags: whose each load balancer and target group is (the ownership tags).
        unscoped.extend(["elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeTags"]);
    }
    if !classic_tls.is_empty() {
        unscoped.push("elasticloadbalancing:DescribeLoadBalancerPolicies");
    }
    if !classic.is_empty() {
        unscoped.extend(["elasticloadbalancing:DescribeLoadBalancerAttributes", "elasticloadbalancing:DescribeInstanceHealth"]);
    }
    if !groups.is_empty() {
        unscoped.extend([
            "elasticloadbalancing:DescribeListeners",
            "elasticloadbalancing:DescribeTargetGroups",
            "elasticloadbalancing:DescribeTargetGroupAttributes",
            "elasticloadbalancing:DescribeTargetHealth",
        ]);
    }
    if !live.is_empty() {
        unscoped.extend(["route53:ListHostedZonesByName", "route53:CreateHostedZone"]);
    }
    s.allow("Unscoped", &unscoped, vec!["*".into()], None);

    // The ledger and locks: one table, maybe shared with other apps; this app's items are keyed `<app>#<env>`
    // and `index#<app>`.
    let table = format!("arn:{p}:dynamodb:*:*:table/{}", pipeline.ledger_table);
    s.allow("LedgerTable", &["dynamodb:CreateTable", "dynamodb:DescribeTable"], vec![table.clone()], None);
    let some_env = EnvName::parse("env").expect("a valid environment name");
    let env_keys = format!("{}*", partition_key(&pipeline.app, &some_env).strip_suffix("env").expect("partition keys end with the environment"));
    s.allow(
        "LedgerItems",
        &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query"],
        vec![table],
        Some(json!({ "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [env_keys, index_key(&pipeline.app)] } })),
    );

    // Load balancers and target groups, by name; each target group's ALB has its name, and CreateListener is
    // authorised on the load balancer.
    s.allow(
        "ClassicElbs",
        &[
            "elasticloadbalancing:CreateLoadBalancer",
            "elasticloadbalancing:CreateLoadBalancerListeners",
            "elasticloadbalancing:DeleteLoadBalancerListeners",
            "elasticloadbalancing:ConfigureHealthCheck",
            "elasticloadbalancing:ModifyLoadBalancerAttributes",
            "elasticloadbalancing:ApplySecurityGroupsToLoadBalancer",
            "elasticloadbalancing:RegisterInstancesWithLoadBalancer",
            "elasticloadbalancing:DeregisterInstancesFromLoadBalancer",
        ],
        classic.iter().map(|n| format!("arn:{p}:elasticloadbalancing:*:*:loadbalancer/{n}")).collect(),
        None,
    );
    s.allow(
        "ClassicElbsTls",
        &[
            "elasticloadbalancing:CreateLoadBalancerPolicy",
            "elasticloadbalancing:SetLoadBalancerPoliciesOfListener",
            "elasticloadbalancing:SetLoadBalancerListenerSSLCertificate",
        ],
        classic_tls.iter().map(|n| format!("arn:{p}:elasticloadbalancing:*:*:loadbalancer/{n}")).collect(),
        None,
    );
    s.allow(
        "TargetGroups",
        &[
            "elasticloadbalancing:CreateTargetGroup",
            "elasticloadbalancing:ModifyTargetGroup",
            "elasticloadbalancing:ModifyTargetGroupAttributes",
            "elasticloadbalancing:RegisterTargets",
            "elasticloadbalancing:DeregisterTargets",
        ],
        groups.iter().map(|n| format!("arn:{p}:elasticloadbalancing:*:*:targetgroup/{n}/*")).collect(),
        None,
    );
    s.allow(
        "Albs",
        &["elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateListener", "elasticloadbalancing:SetSecurityGroups"],
        groups.iter().map(|n| format!("arn:{p}:elasticloadbalancing:*:*:loadbalancer/app/{n}/*")).collect(),
        None,
    );
    // The listeners of release's own ALBs (named like their groups): HTTP <-> HTTPS, a changed certificate or policy.
    s.allow(
        "AlbListeners",
        &["elasticloadbalancing:ModifyListener", "elasticloadbalancing:DeleteListener"],
        groups.iter().map(|n| format!("arn:{p}:elasticloadbalancing:*:*:listener/app/{n}/*/*")).collect(),
        None,
    );
    // The ownership tags, set by the calls that create (tagging at creation needs AddTags, and nothing else may
    // tag: another team's load balancer keeps its tags).
    // One statement per kind of resource, each small enough for a managed policy however many clusters there are.
    let at_creation = json!({ "StringEquals": { "elasticloadbalancing:CreateAction": ["CreateLoadBalancer", "CreateTargetGroup", "CreateListener"] } });
    for (sid, resources) in [
        ("ElbTagAtCreation", classic.iter().map(|n| format!("arn:{p}:elasticloadbalancing:*:*:loadbalancer/{n}")).collect::<Vec<_>>()),
        ("TargetGroupTagAtCreation", groups.iter().map(|n| format!("arn:{p}:elasticloadbalancing:*:*:targetgroup/{n}/*")).collect()),
        ("AlbTagAtCreation", groups.iter().map(|n| format!("arn:{p}:elasticloadbalancing:*:*:loadbalancer/app/{n}/*")).collect()),
        ("ListenerTagAtCreation", groups.iter().map(|n| format!("arn:{p}:elasticloadbalancing:*:*:listener/app/{n}/*/*")).collect()),
    ] {
        s.allow(sid, &["elasticloadbalancing:AddTags"], resources, Some(at_creation.clone()));
    }
    s.allow("Certificates", &["acm:DescribeCertificate"], certificates.iter().map(|c| (*c).to_owned()).collect(), None);
    if !classic.is_empty() || !groups.is_empty() {
        s.allow(
            "ElbServiceRole",
            &["iam:CreateServiceLinkedRole"],
            vec![format!("arn:{p}:iam::*:role/aws-service-role/{ELB_SERVICE}/AWSServiceRoleForElasticLoadBalancing")],
            Some(json!({ "StringEquals": { "iam:AWSServiceName": ELB_SERVICE } })),
        );
    }

    // The live name: in any zone (zones are found by name), only this app's records, as A aliases.
    if !live.is_empty() {
        let zones = format!("arn:{p}:route53:::hostedzone/*");
        s.allow("LiveZones", &["route53:ListResourceRecordSets"], vec![zones.clone()], None);
        s.allow(
            "LiveRecords",
            &["route53:ChangeResourceRecordSets"],
            vec![zones],
            Some(json!({ "ForAllValues:StringEquals": {
                "route53:ChangeResourceRecordSetsNormalizedRecordNames": live,
                "route53:ChangeResourceRecordSetsRecordTypes": ["A"],
                "route53:ChangeResourceRecordSetsActions": ["UPSERT", "DELETE"],
            } })),
        );
        s.allow("DnsChanges", &["route53:GetChange"], vec![format!("arn:{p}:route53:::change/*")], None);
    }

    // Security groups: created tagged, their rules changed only when tagged.
    s.allow("NewGroups", &["ec2:CreateSecurityGroup"], vec![s.ec2("security-group/*")], Some(requested(tags::APP, app)));
    s.allow("GroupsVpc", &["ec2:CreateSecurityGroup"], vec![s.ec2("vpc/*")], None);
    s.allow(
        "GroupRules",
        &["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"],
        vec![s.ec2("security-group/*")],
        Some(tagged(tags::APP, app)),
    );

    // Instances: launched tagged (instance, volumes, interfaces), from this app's images, into the pipeline's
    // subnets (when every cluster names them) with its key pairs; only this app's are terminated.
    s.allow("Launch", &["ec2:RunInstances"], vec![s.ec2("instance/*"), s.ec2("volume/*"), s.ec2("network-interface/*")], Some(requested(tags::APP, app)));
    let mut network = Vec::new();
    if !clusters.is_empty() && clusters.iter().all(|c| !c.deploy.subnets.is_empty()) {
        let ids: BTreeSet<&String> = clusters.iter().flat_map(|c| c.deploy.subnets.iter()).collect();
        network.extend(ids.iter().map(|id| s.ec2(&format!("subnet/{id}"))));
    } else {
        network.push(s.ec2("subnet/*"));
    }
    network.push(s.ec2("security-group/*"));
    network.extend(key_pairs.iter().map(|k| s.ec2(&format!("key-pair/{k}"))));
    s.allow("LaunchNet", &["ec2:RunInstances"], network, None);
    // RunInstances names the instance profile, IAM checks passing the role in it: the role IAM said the profile
    // holds, else (not looked up) one with the profile's name, as roles made in the console have.
    s.allow(
        "PassRole",
        &["iam:PassRole"],
        pass_roles.into_iter().collect(),
        Some(json!({ "StringEquals": { "iam:PassedToService": "ec2.amazonaws.com" } })),
    );
    s.allow(
        "TagAtCreation",
        &["ec2:CreateTags"],
        vec![s.ec2("instance/*"), s.ec2("volume/*"), s.ec2("network-interface/*"), s.ec2("security-group/*")],
        Some(json!({ "StringEquals": { "ec2:CreateAction": ["RunInstances", "CreateSecurityGroup"] } })),
    );
    s.allow("Terminate", &["ec2:TerminateInstances"], vec![s.ec2("instance/*")], Some(tagged(tags::APP, app)));

    // Rollouts: reading the state of the alarms they watch, by name, in any region of the account.
    rollout_alarms(&mut s, pipeline);
    asg_fleets(&mut s, pipeline);

    // Notifications: publishing to each `sns` sink's topic (its ARN as written), reading each webhook's `ssm:`
    // secret. Not granted, because the pipeline does not name the key: kms:Decrypt on a customer-managed key that
    // encrypts such a SecureString (the default aws/ssm key needs none), and kms:GenerateDataKey and kms:Decrypt
    // on a customer-managed key of an encrypted topic; add them for that key.
    let topics: BTreeSet<String> = pipeline
        .notify
        .sinks
        .iter()
        .filter_map(|sink| match &sink.kind {
            SinkKind::Sns { topic } => Some(topic.clone()),
            _ => None,
        })
        .collect();
    s.allow("NotifyTopics", &["sns:Publish"], topics.into_iter().collect(), None);
    let secrets: BTreeSet<String> = pipeline
        .notify
        .sinks
        .iter()
        .filter_map(|sink| match &sink.kind {
            // The parameter's ARN holds its name without the leading slash.
            SinkKind::Webhook { secret: Some(SecretRef::Ssm(name)), .. } => Some(format!("arn:{p}:ssm:*:*:parameter/{}", name.trim_start_matches('/'))),
            _ => None,
        })
        .collect();
    s.allow("NotifySecrets", &["ssm:GetParameter"], secrets.into_iter().collect(), None);

    // AMIs: release marks a bake Packer tagged `app` as this app's, then adds the bake key; launches and
    // removes only this app's.
    s.allow(
        "TagNewBakes",
        &["ec2:CreateTags"],
        bakes.clone(),
        Some(json!({
            "StringEquals": { format!("aws:ResourceTag/{PACKER_APP_TAG}"): app, format!("aws:RequestTag/{}", tags::APP): app },
            "ForAllValues:StringLike": { "aws:TagKeys": ["release:*"] },
        })),
    );
    s.allow(
        "TagBakes",
        &["ec2:CreateTags"],
        bakes.clone(),
        Some(json!({
            "StringEquals": { format!("aws:ResourceTag/{}", tags::APP): app },
            "StringEqualsIfExists": { format!("aws:RequestTag/{}", tags::APP): app },
            "ForAllValues:StringLike": { "aws:TagKeys": ["release:*"] },
        })),
    );
    // Deregistering and deleting snapshots: bake (a failed bake's leftovers) and gc, only what carries the app's tag.
    s.allow("Images", &["ec2:RunInstances", "ec2:DeregisterImage"], vec![images.clone()], Some(tagged(tags::APP, app)));
    s.allow("Snapshots", &["ec2:DeleteSnapshot"], vec![snapshots.clone()], Some(tagged(tags::APP, app)));

    // ---- Packer ----
    //
    // The real-AWS source (packer-templates/aws.pkr.hcl, Amazon plugin) tags with run_tags at creation; its
    // encrypt_boot makes the first AMI an intermediary, copied encrypted with its tags, then removed; the final
    // AMIs get `tags` last. In the China and GovCloud partitions the plugin tags nothing at creation: there the
    // resources Packer creates and removes cannot be told by tag, and it tags after creation.
    let at_creation = p == "aws";
    let packer_tagged = || at_creation.then(|| tagged(PACKER_APP_TAG, app));
    let packer_requested = || at_creation.then(|| requested(PACKER_APP_TAG, app));
    let key_pair = s.ec2(&format!("key-pair/{PACKER_KEY_PAIR}"));
    s.allow("PackerBakeRead", PACKER_READS, vec!["*".into()], None);
    s.allow(
        "PackerBakeLaunch",
        &["ec2:RunInstances"],
        vec![s.ec2("instance/*"), s.ec2("volume/*"), s.ec2("network-interface/*")],
        packer_requested(),
    );
    // From the base image: the one id, or images of the trusted owners.
    let owners: Vec<&str> = pipeline.bake.base_owners.iter().map(String::as_str).collect();
    let (base, base_condition) = match &pipeline.bake.base_ami {
        BaseAmi::Id(id) => (s.ec2_no_account(&format!("image/{id}")), None),
        BaseAmi::NameFilter(_) if !owners.is_empty() && !owners.contains(&"self") => {
            (images.clone(), Some(json!({ "StringEquals": { "ec2:Owner": owners } })))
        }
        BaseAmi::NameFilter(_) => (images.clone(), None),
    };
    s.allow("PackerBakeBase", &["ec2:RunInstances"], vec![base], base_condition);
    let subnet = match pipeline.bake.vars.get("subnet_id").filter(|v| !v.is_empty()) {
        Some(id) => s.ec2(&format!("subnet/{id}")),
        None => s.ec2("subnet/*"),
    };
    s.allow("PackerBakeSubnet", &["ec2:RunInstances"], vec![subnet], None);
    // The temporary key pair and security group.
    s.allow("PackerBakeNewKey", &["ec2:CreateKeyPair"], vec![key_pair.clone()], packer_requested());
    s.allow("PackerBakeKey", &["ec2:RunInstances", "ec2:DeleteKeyPair"], vec![key_pair.clone()], packer_tagged());
    s.allow("PackerBakeNewGroup", &["ec2:CreateSecurityGroup"], vec![s.ec2("security-group/*")], packer_requested());
    s.allow("PackerBakeNewGroupVpc", &["ec2:CreateSecurityGroup"], vec![s.ec2("vpc/*")], None);
    s.allow(
        "PackerBakeGroup",
        &["ec2:RunInstances", "ec2:AuthorizeSecurityGroupIngress", "ec2:DeleteSecurityGroup"],
        vec![s.ec2("security-group/*")],
        packer_tagged(),
    );
    if at_creation {
        s.allow(
            "PackerBakeTagAtCreation",
            &["ec2:CreateTags"],
            vec![
                s.ec2("instance/*"),
                s.ec2("volume/*"),
                s.ec2("network-interface/*"),
                key_pair,
                s.ec2("security-group/*"),
                images.clone(),
                snapshots.clone(),
            ],
            Some(json!({ "StringEquals": { "ec2:CreateAction": ["RunInstances", "CreateKeyPair", "CreateSecurityGroup", "CreateImage", "CopyImage"] } })),
        );
    }
    // Tags after creation (the final AMIs' `tags`; everything, where nothing is tagged at creation): with the
    // app's tag in the request, never on what another app's tag marks.
    let mut tagged_later = vec![images.clone(), snapshots.clone()];
    if !at_creation {
        tagged_later.splice(0..0, [s.ec2("instance/*"), s.ec2("volume/*"), s.ec2("network-interface/*")]);
    }
    s.allow(
        "PackerBakeTag",
        &["ec2:CreateTags"],
        tagged_later,
        Some(json!({
            "StringEquals": { format!("aws:RequestTag/{PACKER_APP_TAG}"): app },
            "StringEqualsIfExists": { format!("aws:ResourceTag/{PACKER_APP_TAG}"): app },
        })),
    );
    // The builder instance (tagged at launch, or right after it) and its volumes.
    s.allow(
        "PackerBakeInstance",
        &["ec2:StopInstances", "ec2:TerminateInstances", "ec2:CreateImage", "ec2:ModifyInstanceAttribute", "ec2:GetPasswordData"],
        vec![s.ec2("instance/*")],
        Some(tagged(PACKER_APP_TAG, app)),
    );
    s.allow("PackerBakeVolumes", &["ec2:AttachVolume", "ec2:DetachVolume"], vec![s.ec2("instance/*"), s.ec2("volume/*")], Some(tagged(PACKER_APP_TAG, app)));
    s.allow("PackerBakeDelVolume", &["ec2:DeleteVolume"], vec![s.ec2("volume/*")], packer_tagged());
    s.allow("PackerBakeNewVolume", &["ec2:CreateVolume", "ec2:CreateSnapshot"], vec![s.ec2("volume/*"), snapshots.clone()], None);
    // Its AMIs: created tagged; copies (encryption, other regions) carry their source's tags, but as a copy,
    // not as requested tags; attributes (imds_support, ami_users) are set and intermediaries removed when tagged.
    s.allow("PackerBakeNewImage", &["ec2:CreateImage"], bakes.clone(), packer_requested());
    s.allow("PackerBakeCopy", &["ec2:CopyImage", "ec2:RegisterImage"], bakes, None);
    s.allow("PackerBakeImage", &["ec2:DescribeImageAttribute", "ec2:ModifyImageAttribute", "ec2:DeregisterImage"], vec![images], packer_tagged());
    s.allow("PackerBakeSnapshot", &["ec2:DeleteSnapshot"], vec![snapshots.clone()], packer_tagged());
    if !pipeline.bake.accounts.is_empty() {
        // snapshot_users: a copy's snapshots are untagged when Packer shares them; with these accounts only.
        s.allow(
            "PackerBakeShare",
            &["ec2:ModifySnapshotAttribute"],
            vec![snapshots],
            Some(json!({
                "ForAllValues:StringEquals": { "ec2:Add/userId": pipeline.bake.accounts },
                "Null": { "ec2:Add/group": "true" },
            })),
        );
    }
    // The customer-managed keys of the encrypted AMI and its copies (`[bake] kms_keys`, or `vars` kms_key_id);
    // the default EBS key needs none.
    let keys: BTreeSet<String> = pipeline
        .bake
        .vars
        .get("kms_key_id")
        .into_iter()
        .chain(pipeline.bake.kms_keys.values())
        .filter(|k| !k.is_empty() && !k.ends_with("alias/aws/ebs"))
        .map(|key| {
            if key.starts_with("arn:") && key.contains(":key/") {
                key.clone()
            } else if key.starts_with("alias/") || key.contains(":alias/") {
                // Permissions are checked on the key an alias names, which the pipeline does not say.
                format!("arn:{p}:kms:*:*:key/*")
            } else {
                format!("arn:{p}:kms:*:*:key/{key}")
            }
        })
        .collect();
    let keys: Vec<String> = keys.into_iter().collect();
    s.allow(
        "PackerBakeKms",
        &["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo"],
        keys.clone(),
        Some(json!({ "StringLike": { "kms:ViaService": "ec2.*.amazonaws.com" } })),
    );
    s.allow("PackerBakeKmsGrant", &["kms:CreateGrant"], keys, Some(json!({ "Bool": { "kms:GrantIsForAWSResource": "true" } })));

    json!({ "Version": "2012-10-17", "Statement": s.list })
}

/// The most non-whitespace characters IAM takes in one managed policy ("IAM and AWS STS quotas").
pub const MANAGED_POLICY_LIMIT: usize = 6_144;

/// One managed policy of [`policies`]: its suggested name and its document.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct NamedPolicy {
    /// `<app>-release`, `<app>-release-packer` (Packer's statements), with `-2`, `-3`… when one is not enough.
    pub name: String,
    /// Its size as IAM counts it: non-whitespace characters.
    pub characters: usize,
    /// The policy document.
    pub document: Value,
}

/// Non-whitespace characters of `doc`'s JSON, as IAM counts a policy's size.
pub fn policy_size(doc: &Value) -> usize {
    doc.to_string().chars().filter(|c| !c.is_whitespace()).count()
}

/// [`policy`] split into as few managed policies as fit IAM's limit: release's statements and Packer's
/// (`PackerBake…`, which another principal may run) apart, each group packed in order into documents of at most
/// [`MANAGED_POLICY_LIMIT`] characters. Every statement is in exactly one document; none is cut (one statement alone
/// is far below the limit).
pub fn policies(pipeline: &Pipeline) -> Vec<NamedPolicy> {
    policies_with(pipeline, &ProfileRoles::default())
}

/// [`policies`] with `iam:PassRole` naming the roles `roles` found ([`policy_with`]).
pub fn policies_with(pipeline: &Pipeline, roles: &ProfileRoles) -> Vec<NamedPolicy> {
    let whole = policy_with(pipeline, roles);
    let statements = whole["Statement"].as_array().cloned().unwrap_or_default();
    let is_packer = |st: &Value| st["Sid"].as_str().is_some_and(|sid| sid.starts_with("PackerBake"));
    let mut out = Vec::new();
    for (suffix, packer) in [("release", false), ("release-packer", true)] {
        let group: Vec<Value> = statements.iter().filter(|st| is_packer(st) == packer).cloned().collect();
        let mut docs: Vec<Vec<Value>> = Vec::new();
        for st in group {
            let fits = |list: &Vec<Value>| {
                let mut with = list.clone();
                with.push(st.clone());
                policy_size(&json!({ "Version": "2012-10-17", "Statement": with })) <= MANAGED_POLICY_LIMIT
            };
            match docs.iter_mut().find(|d| fits(d)) {
                Some(d) => d.push(st),
                None => docs.push(vec![st]),
            }
        }
        let n = docs.len();
        for (i, list) in docs.into_iter().enumerate() {
            let document = json!({ "Version": "2012-10-17", "Statement": list });
            let name = if n == 1 { format!("{}-{suffix}", pipeline.app) } else { format!("{}-{suffix}-{}", pipeline.app, i + 1) };
            out.push(NamedPolicy { name, characters: policy_size(&document), document });
        }
    }
    out
}

/// The Auto Scaling service-linked role: created by the account's first group.
const AUTOSCALING_SERVICE: &str = "autoscaling.amazonaws.com";

/// Auto Scaling group fleets (issue 22), only when a cluster runs one: the app's launch templates and groups, made
/// tagged `release:app` (with release's tag keys only) and changed only when so tagged; groups name a template
/// version number (`autoscaling:LaunchTemplateVersionSpecified`: AWS skips the launch template's permission checks for
/// `$Latest`/`$Default`). Creating a group checks `ec2:RunInstances` on its launch template (the instance, volume,
/// network and image statements above cover the rest) and, with tags, `autoscaling:CreateOrUpdateTags`.
fn asg_fleets(s: &mut Statements, pipeline: &Pipeline) {
    if !pipeline.clusters().any(|(_, c)| c.asg().is_some()) {
        return;
    }
    let (p, app) = (s.p, pipeline.app.as_str());
    let groups = vec![format!("arn:{p}:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/*")];
    let release_keys = json!(["release:*"]);
    s.allow(
        "AsgReads",
        &[
            "autoscaling:DescribeAutoScalingGroups",
            "autoscaling:DescribeLoadBalancerTargetGroups",
            "autoscaling:DescribeLoadBalancers",
            "autoscaling:DescribePolicies",
            "autoscaling:DescribeScalingActivities",
            "autoscaling:DescribeScheduledActions",
            "ec2:DescribeLaunchTemplates",
            "ec2:DescribeLaunchTemplateVersions",
        ],
        vec!["*".into()],
        None,
    );
    s.allow(
        "AsgCreate",
        &["autoscaling:CreateAutoScalingGroup"],
        groups.clone(),
        Some(json!({
            "StringEquals": { format!("aws:RequestTag/{}", tags::APP): app },
            "ForAllValues:StringLike": { "aws:TagKeys": release_keys },
            "Bool": { "autoscaling:LaunchTemplateVersionSpecified": "true" },
        })),
    );
    s.allow(
        "AsgGroups",
        &[
            "autoscaling:UpdateAutoScalingGroup",
            "autoscaling:DeleteAutoScalingGroup",
            "autoscaling:AttachLoadBalancerTargetGroups",
            "autoscaling:DetachLoadBalancerTargetGroups",
            "autoscaling:AttachLoadBalancers",
            "autoscaling:DetachLoadBalancers",
            "autoscaling:SuspendProcesses",
            "autoscaling:ResumeProcesses",
            "autoscaling:PutScalingPolicy",
        ],
        groups.clone(),
        Some(json!({ "StringEquals": { format!("autoscaling:ResourceTag/{}", tags::APP): app } })),
    );
    s.allow(
        "AsgUntag",
        &["autoscaling:DeleteTags"],
        groups.clone(),
        Some(json!({
            "StringEquals": { format!("autoscaling:ResourceTag/{}", tags::APP): app },
            "ForAllValues:StringLike": { "aws:TagKeys": release_keys },
        })),
    );
    // Tagging at create (no group yet to carry a tag) and later: the app's tag in the request, release's keys only.
    s.allow(
        "AsgTags",
        &["autoscaling:CreateOrUpdateTags"],
        groups,
        Some(json!({
            "StringEquals": { format!("aws:RequestTag/{}", tags::APP): app },
            "StringEqualsIfExists": { format!("autoscaling:ResourceTag/{}", tags::APP): app },
            "ForAllValues:StringLike": { "aws:TagKeys": release_keys },
        })),
    );
    launch_templates(s, app);
    s.allow(
        "AsgServiceRole",
        &["iam:CreateServiceLinkedRole"],
        vec![format!("arn:{p}:iam::*:role/aws-service-role/{AUTOSCALING_SERVICE}/AWSServiceRoleForAutoScaling")],
        Some(json!({ "StringEquals": { "iam:AWSServiceName": AUTOSCALING_SERVICE } })),
    );
}

/// The app's launch templates: made with its tag (release's tag keys only), versioned, launched from and pruned only
/// when so tagged.
fn launch_templates(s: &mut Statements, app: &str) {
    let templates = vec![s.ec2("launch-template/*")];
    s.allow(
        "NewTemplates",
        &["ec2:CreateLaunchTemplate"],
        templates.clone(),
        Some(json!({
            "StringEquals": { format!("aws:RequestTag/{}", tags::APP): app },
            "ForAllValues:StringLike": { "aws:TagKeys": ["release:*"] },
        })),
    );
    s.allow(
        "TagNewTemplates",
        &["ec2:CreateTags"],
        templates.clone(),
        Some(json!({ "StringEquals": { "ec2:CreateAction": "CreateLaunchTemplate" } })),
    );
    s.allow(
        "Templates",
        &["ec2:CreateLaunchTemplateVersion", "ec2:DeleteLaunchTemplateVersions", "ec2:RunInstances"],
        templates,
        Some(json!({ "StringEquals": { format!("aws:ResourceTag/{}", tags::APP): app } })),
    );
}

/// `cloudwatch:DescribeAlarms` on the alarms the pipeline's rollouts watch (DescribeAlarms takes resource-level
/// permissions on each named alarm).
fn rollout_alarms(s: &mut Statements, pipeline: &Pipeline) {
    let p = s.p;
    let alarms: BTreeSet<String> = pipeline
        .envs
        .iter()
        .filter_map(|e| e.rollout.as_ref())
        .flat_map(|r| r.alarms.iter())
        .map(|a| format!("arn:{p}:cloudwatch:*:*:alarm:{a}"))
        .collect();
    s.allow("RolloutAlarms", &["cloudwatch:DescribeAlarms"], alarms.into_iter().collect(), None);
}
