//! The least-privilege IAM policy `release` (and the Packer it runs) needs for one pipeline.

use release_core::pipeline::{LbTarget, Pipeline};
use serde_json::{json, Value};

/// Actions Packer's amazon-ebs builder needs (its documented minimal policy), for `bake`.
const PACKER: &[&str] = &[
    "ec2:AttachVolume",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:CopyImage",
    "ec2:CreateImage",
    "ec2:CreateKeyPair",
    "ec2:CreateSecurityGroup",
    "ec2:CreateSnapshot",
    "ec2:CreateTags",
    "ec2:CreateVolume",
    "ec2:DeleteKeyPair",
    "ec2:DeleteSecurityGroup",
    "ec2:DeleteSnapshot",
    "ec2:DeleteVolume",
    "ec2:DeregisterImage",
    "ec2:DescribeImageAttribute",
    "ec2:DescribeImages",
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceStatus",
    "ec2:DescribeRegions",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSnapshots",
    "ec2:DescribeSubnets",
    "ec2:DescribeTags",
    "ec2:DescribeVolumes",
    "ec2:DescribeVpcs",
    "ec2:DetachVolume",
    "ec2:GetPasswordData",
    "ec2:ModifyImageAttribute",
    "ec2:ModifyInstanceAttribute",
    "ec2:ModifySnapshotAttribute",
    "ec2:RegisterImage",
    "ec2:RunInstances",
    "ec2:StopInstances",
    "ec2:TerminateInstances",
];

/// Reads that cannot be scoped to resources in IAM.
const READS: &[&str] = &[
    "ec2:DescribeImages",
    "ec2:DescribeInstances",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeInstanceHealth",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:DescribeListeners",
    "route53:ListHostedZonesByName",
    "route53:GetChange",
    "sts:GetCallerIdentity",
];

/// The policy document for `pipeline`: ledger table, load balancers and instances scoped to the app where IAM allows.
pub fn policy(pipeline: &Pipeline) -> Value {
    let table = format!("arn:aws:dynamodb:*:*:table/{}", pipeline.ledger_table);
    let mut lbs = Vec::new();
    for c in pipeline.envs.iter().flat_map(|e| e.clusters().iter()) {
        match &c.target {
            LbTarget::ClassicElb(n) => lbs.push(format!("arn:aws:elasticloadbalancing:*:*:loadbalancer/{n}")),
            LbTarget::TargetGroup(n) => {
                lbs.push(format!("arn:aws:elasticloadbalancing:*:*:targetgroup/{n}/*"));
                lbs.push(format!("arn:aws:elasticloadbalancing:*:*:loadbalancer/app/{n}/*"));
                lbs.push(format!("arn:aws:elasticloadbalancing:*:*:listener/app/{n}/*"));
            }
        }
    }
    json!({
        "Version": "2012-10-17",
        "Statement": [
            { "Sid": "ReadWhatCannotBeScoped", "Effect": "Allow", "Action": READS, "Resource": "*" },
            {
                "Sid": "LedgerAndLocks",
                "Effect": "Allow",
                "Action": ["dynamodb:DescribeTable", "dynamodb:CreateTable", "dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:Query"],
                "Resource": table,
            },
            {
                "Sid": "LoadBalancersOfThisApp",
                "Effect": "Allow",
                "Action": [
                    "elasticloadbalancing:CreateLoadBalancer",
                    "elasticloadbalancing:ConfigureHealthCheck",
                    "elasticloadbalancing:RegisterInstancesWithLoadBalancer",
                    "elasticloadbalancing:DeregisterInstancesFromLoadBalancer",
                    "elasticloadbalancing:CreateTargetGroup",
                    "elasticloadbalancing:RegisterTargets",
                    "elasticloadbalancing:DeregisterTargets",
                    "elasticloadbalancing:CreateListener",
                ],
                "Resource": lbs,
            },
            {
                "Sid": "LiveRecords",
                "Effect": "Allow",
                "Action": ["route53:CreateHostedZone", "route53:ListResourceRecordSets", "route53:ChangeResourceRecordSets"],
                "Resource": "arn:aws:route53:::hostedzone/*",
            },
            {
                "Sid": "LaunchTaggedInstances",
                "Effect": "Allow",
                "Action": ["ec2:RunInstances", "ec2:CreateTags"],
                "Resource": "*",
            },
            {
                "Sid": "TerminateOnlyThisAppsInstances",
                "Effect": "Allow",
                "Action": ["ec2:TerminateInstances"],
                "Resource": "arn:aws:ec2:*:*:instance/*",
                "Condition": { "StringEquals": { "ec2:ResourceTag/release:app": pipeline.app.as_str() } },
            },
            { "Sid": "PackerBake", "Effect": "Allow", "Action": PACKER, "Resource": "*" },
        ]
    })
}
