//! The printed IAM policy (`release iam-policy`, built by `release_aws::iam::policy`) checked statically against the
//! AWS Service Authorization Reference, and against the code: every action is scoped to resource types the
//! reference lists for it (and covers the required ones), conditions use keys the reference lists for that action
//! and resource type, actions that support no resource-level permission get `"Resource": "*"`, and every AWS
//! operation the code calls (and every action of Packer's documented policy) is in the policy.
//!
//! The tables below are transcribed (in 2026) from these pages of the Service Authorization Reference (the Actions table
//! and the Resource types table of each):
//! - "Actions, resources, and condition keys for Amazon EC2"
//!   https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html
//! - "Actions, resources, and condition keys for AWS Elastic Load Balancing" (classic ELB)
//!   https://docs.aws.amazon.com/service-authorization/latest/reference/list_awselasticloadbalancing.html
//! - "Actions, resources, and condition keys for AWS Elastic Load Balancing V2" (ALB, target groups)
//!   https://docs.aws.amazon.com/service-authorization/latest/reference/list_awselasticloadbalancingv2.html
//! - "Actions, resources, and condition keys for Amazon Route 53"
//!   https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonroute53.html
//! - "Actions, resources, and condition keys for Amazon DynamoDB"
//!   https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html
//! - "Actions, resources, and condition keys for AWS Security Token Service"
//!   https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssecuritytokenservice.html
//! - "Actions, resources, and condition keys for AWS Key Management Service"
//!   https://docs.aws.amazon.com/service-authorization/latest/reference/list_awskeymanagementservice.html
//! - "Actions, resources, and condition keys for AWS Identity and Access Management (IAM)"
//!   https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html
//! - "Actions, resources, and condition keys for Amazon SNS" (notification topics)
//!   https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsns.html
//! - "Actions, resources, and condition keys for Amazon EC2 Auto Scaling" (asg fleets)
//!   https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2autoscaling.html
//! - "Actions, resources, and condition keys for AWS Systems Manager" (`ssm:` webhook secrets)
//!   https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssystemsmanager.html
//! - "Actions, resources, and condition keys for AWS Certificate Manager" (HTTPS listeners' certificates)
//!   https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscertificatemanager.html
//!
//! Only the actions this policy can hold are transcribed; of each action's condition keys only those in `KEYS`
//! (the ones the policy uses); of `ec2:CreateTags`'s hundred resource types only those release or Packer create.
//! Record-name normalisation for Route53's condition keys: "Using IAM policy conditions for fine-grained access
//! control", https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/specifying-rrset-conditions.html
//!
//! Packer's actions are the Amazon builders' documented minimal policy: "Amazon" plugin docs, section "IAM Task or
//! Instance Role" (https://developer.hashicorp.com/packer/integrations/hashicorp/amazon, docs/README.md in
//! hashicorp/packer-plugin-amazon; the same list as Packer 1.6's https://www.packer.io/docs/builders/amazon).
//! A customer-managed KMS key for EBS encryption needs the actions of "Requirements for Amazon EBS encryption",
//! section "Permissions for users" (https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption-requirements.html).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use release_aws::iam::{normalized_record_name, policies, policy, PACKER_APP_TAG};
use release_core::model::pipeline::Pipeline;
use serde_json::Value;

/// (action, [(resource type, `*` when required; the condition keys it takes)], condition keys of the action itself).
type Action = (&'static str, &'static [(&'static str, &'static [&'static str])], &'static [&'static str]);

/// The condition keys transcribed (and so the only ones the policy may use).
const KEYS: &[&str] = &[
    "aws:RequestTag/${TagKey}",
    "aws:ResourceTag/${TagKey}",
    "aws:TagKeys",
    "ec2:CreateAction",
    "ec2:Owner",
    "iam:PassedToService",
    "iam:AWSServiceName",
    "route53:ChangeResourceRecordSetsNormalizedRecordNames",
    "route53:ChangeResourceRecordSetsRecordTypes",
    "route53:ChangeResourceRecordSetsActions",
    "dynamodb:LeadingKeys",
    "ec2:Add/userId",
    "ec2:Add/group",
    "kms:ViaService",
    "kms:GrantIsForAWSResource",
    "autoscaling:ResourceTag/${TagKey}",
    "autoscaling:LaunchTemplateVersionSpecified",
    "elasticloadbalancing:CreateAction",
];

/// Resource types: (service prefix, type, ARN pattern), from each page's Resource types table.
const RESOURCE_TYPES: &[(&str, &str, &str)] = &[
    // Actions, resources, and condition keys for Amazon EC2
    ("ec2", "capacity-reservation", "arn:${Partition}:ec2:${Region}:${Account}:capacity-reservation/${CapacityReservationId}"),
    ("ec2", "elastic-gpu", "arn:${Partition}:ec2:${Region}:${Account}:elastic-gpu/${ElasticGpuId}"),
    ("ec2", "elastic-inference", "arn:${Partition}:elastic-inference:${Region}:${Account}:elastic-inference-accelerator/${AcceleratorId}"),
    ("ec2", "group", "arn:${Partition}:resource-groups:${Region}:${Account}:group/${GroupName}"),
    ("ec2", "image", "arn:${Partition}:ec2:${Region}::image/${ImageId}"),
    ("ec2", "instance", "arn:${Partition}:ec2:${Region}:${Account}:instance/${InstanceId}"),
    ("ec2", "key-pair", "arn:${Partition}:ec2:${Region}:${Account}:key-pair/${KeyPairName}"),
    ("ec2", "launch-template", "arn:${Partition}:ec2:${Region}:${Account}:launch-template/${LaunchTemplateId}"),
    ("ec2", "license-configuration", "arn:${Partition}:license-manager:${Region}:${Account}:license-configuration:${LicenseConfigurationId}"),
    ("ec2", "network-interface", "arn:${Partition}:ec2:${Region}:${Account}:network-interface/${NetworkInterfaceId}"),
    ("ec2", "placement-group", "arn:${Partition}:ec2:${Region}:${Account}:placement-group/${PlacementGroupName}"),
    ("ec2", "secondary-subnet", "arn:${Partition}:ec2:${Region}:${Account}:secondary-subnet/${SecondarySubnetId}"),
    ("ec2", "security-group", "arn:${Partition}:ec2:${Region}:${Account}:security-group/${SecurityGroupId}"),
    ("ec2", "security-group-rule", "arn:${Partition}:ec2:${Region}:${Account}:security-group-rule/${SecurityGroupRuleId}"),
    ("ec2", "snapshot", "arn:${Partition}:ec2:${Region}::snapshot/${SnapshotId}"),
    ("ec2", "subnet", "arn:${Partition}:ec2:${Region}:${Account}:subnet/${SubnetId}"),
    ("ec2", "volume", "arn:${Partition}:ec2:${Region}:${Account}:volume/${VolumeId}"),
    ("ec2", "vpc", "arn:${Partition}:ec2:${Region}:${Account}:vpc/${VpcId}"),
    // Actions, resources, and condition keys for AWS Elastic Load Balancing
    ("elasticloadbalancing", "loadbalancer", "arn:${Partition}:elasticloadbalancing:${Region}:${Account}:loadbalancer/${LoadBalancerName}"),
    // Actions, resources, and condition keys for AWS Elastic Load Balancing V2
    ("elasticloadbalancing", "loadbalancer/app/", "arn:${Partition}:elasticloadbalancing:${Region}:${Account}:loadbalancer/app/${LoadBalancerName}/${LoadBalancerId}"),
    ("elasticloadbalancing", "loadbalancer/gwy/", "arn:${Partition}:elasticloadbalancing:${Region}:${Account}:loadbalancer/gwy/${LoadBalancerName}/${LoadBalancerId}"),
    ("elasticloadbalancing", "loadbalancer/net/", "arn:${Partition}:elasticloadbalancing:${Region}:${Account}:loadbalancer/net/${LoadBalancerName}/${LoadBalancerId}"),
    ("elasticloadbalancing", "targetgroup", "arn:${Partition}:elasticloadbalancing:${Region}:${Account}:targetgroup/${TargetGroupName}/${TargetGroupId}"),
    ("elasticloadbalancing", "listener/app/", "arn:${Partition}:elasticloadbalancing:${Region}:${Account}:listener/app/${LoadBalancerName}/${LoadBalancerId}/${ListenerId}"),
    ("elasticloadbalancing", "listener/gwy/", "arn:${Partition}:elasticloadbalancing:${Region}:${Account}:listener/gwy/${LoadBalancerName}/${LoadBalancerId}/${ListenerId}"),
    ("elasticloadbalancing", "listener/net/", "arn:${Partition}:elasticloadbalancing:${Region}:${Account}:listener/net/${LoadBalancerName}/${LoadBalancerId}/${ListenerId}"),
    // Actions, resources, and condition keys for AWS Certificate Manager
    ("acm", "certificate", "arn:${Partition}:acm:${Region}:${Account}:certificate/${CertificateId}"),
    // Actions, resources, and condition keys for Amazon Route 53
    ("route53", "change", "arn:${Partition}:route53:::change/${Id}"),
    ("route53", "hostedzone", "arn:${Partition}:route53:::hostedzone/${Id}"),
    // Actions, resources, and condition keys for Amazon DynamoDB
    ("dynamodb", "index", "arn:${Partition}:dynamodb:${Region}:${Account}:table/${TableName}/index/${IndexName}"),
    ("dynamodb", "table", "arn:${Partition}:dynamodb:${Region}:${Account}:table/${TableName}"),
    // Actions, resources, and condition keys for AWS Key Management Service
    ("kms", "key", "arn:${Partition}:kms:${Region}:${Account}:key/${KeyId}"),
    // Actions, resources, and condition keys for AWS Identity and Access Management (IAM)
    ("iam", "role", "arn:${Partition}:iam::${Account}:role/${RoleNameWithPath}"),
    // Actions, resources, and condition keys for Amazon SNS
    ("sns", "topic", "arn:${Partition}:sns:${Region}:${Account}:${TopicName}"),
    // Actions, resources, and condition keys for Amazon CloudWatch
    ("cloudwatch", "alarm", "arn:${Partition}:cloudwatch:${Region}:${Account}:alarm:${AlarmName}"),
    // Actions, resources, and condition keys for Amazon EC2 Auto Scaling
    ("autoscaling", "autoScalingGroup", "arn:${Partition}:autoscaling:${Region}:${Account}:autoScalingGroup:${GroupId}:autoScalingGroupName/${GroupFriendlyName}"),
    // Actions, resources, and condition keys for AWS Systems Manager
    ("ssm", "parameter", "arn:${Partition}:ssm:${Region}:${Account}:parameter/${ParameterNameWithoutLeadingSlash}"),
];

/// Actions, from each page's Actions table (an action on two pages, as ELB's and ELBv2's CreateLoadBalancer, is
/// listed twice: its resource types are the union).
const ACTIONS: &[Action] = &[
    // Actions, resources, and condition keys for Amazon EC2
    // https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html
    ("ec2:AttachVolume", &[("instance*", &["aws:ResourceTag/${TagKey}"]), ("volume*", &["aws:ResourceTag/${TagKey}"])], &[]),
    ("ec2:AuthorizeSecurityGroupIngress", &[("security-group*", &["aws:ResourceTag/${TagKey}"]), ("security-group-rule", &["aws:RequestTag/${TagKey}", "aws:TagKeys"])], &[]),
    ("ec2:CopyImage", &[("image*", &["aws:RequestTag/${TagKey}", "aws:TagKeys", "ec2:Owner"]), ("snapshot*", &["aws:RequestTag/${TagKey}", "aws:TagKeys"])], &[]),
    ("ec2:CreateImage", &[("image*", &["aws:RequestTag/${TagKey}", "aws:TagKeys", "ec2:Owner"]), ("instance*", &["aws:ResourceTag/${TagKey}"]), ("snapshot*", &["aws:RequestTag/${TagKey}", "aws:TagKeys"])], &[]),
    ("ec2:CreateKeyPair", &[("key-pair*", &["aws:RequestTag/${TagKey}", "aws:TagKeys"])], &[]),
    ("ec2:CreateSecurityGroup", &[("security-group*", &["aws:RequestTag/${TagKey}", "aws:TagKeys"]), ("vpc", &["aws:ResourceTag/${TagKey}"])], &[]),
    ("ec2:CreateSnapshot", &[("snapshot*", &["aws:RequestTag/${TagKey}", "aws:TagKeys"]), ("volume*", &["aws:ResourceTag/${TagKey}"])], &[]),
    ("ec2:CreateTags", &[("image", &["aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys", "ec2:Owner"]), ("instance", &["aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys"]), ("key-pair", &["aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys"]), ("network-interface", &["aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys"]), ("security-group", &["aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys"]), ("security-group-rule", &["aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys"]), ("launch-template", &["aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys"]), ("snapshot", &["aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys", "ec2:Owner"]), ("subnet", &["aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys"]), ("volume", &["aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys"]), ("vpc", &["aws:RequestTag/${TagKey}", "aws:ResourceTag/${TagKey}", "aws:TagKeys"])], &["ec2:CreateAction"]),
    ("ec2:CreateLaunchTemplate", &[("launch-template*", &["aws:RequestTag/${TagKey}", "aws:TagKeys"])], &[]),
    ("ec2:CreateLaunchTemplateVersion", &[("launch-template*", &["aws:ResourceTag/${TagKey}"])], &[]),
    ("ec2:CreateVolume", &[("volume*", &["aws:RequestTag/${TagKey}", "aws:TagKeys"]), ("snapshot", &["aws:ResourceTag/${TagKey}", "ec2:Owner"])], &[]),
    ("ec2:DeleteKeyPair", &[("key-pair", &["aws:ResourceTag/${TagKey}"])], &[]),
    ("ec2:DeleteSecurityGroup", &[("security-group*", &["aws:ResourceTag/${TagKey}"])], &[]),
    ("ec2:DeleteLaunchTemplateVersions", &[("launch-template*", &["aws:ResourceTag/${TagKey}"])], &[]),
    ("ec2:DeleteSnapshot", &[("snapshot*", &["aws:ResourceTag/${TagKey}", "ec2:Owner"])], &[]),
    ("ec2:DeleteVolume", &[("volume*", &["aws:ResourceTag/${TagKey}"])], &[]),
    ("ec2:DeregisterImage", &[("image*", &["aws:ResourceTag/${TagKey}", "ec2:Owner"])], &[]),
    ("ec2:DescribeImageAttribute", &[("image*", &["aws:ResourceTag/${TagKey}", "ec2:Owner"])], &[]),
    ("ec2:DescribeImageReferences", &[], &[]),
    ("ec2:DescribeImages", &[], &[]),
    ("ec2:DescribeInstanceStatus", &[], &[]),
    ("ec2:DescribeInstanceTypeOfferings", &[], &[]),
    ("ec2:DescribeInstances", &[], &[]),
    ("ec2:DescribeLaunchTemplateVersions", &[], &[]),
    ("ec2:DescribeLaunchTemplates", &[], &[]),
    ("ec2:DescribeRegions", &[], &[]),
    ("ec2:DescribeSecurityGroups", &[], &[]),
    ("ec2:DescribeSnapshots", &[], &[]),
    ("ec2:DescribeSubnets", &[], &[]),
    ("ec2:DescribeTags", &[], &[]),
    ("ec2:DescribeVolumes", &[], &[]),
    ("ec2:DescribeVpcs", &[], &[]),
    ("ec2:DetachVolume", &[("volume*", &["aws:ResourceTag/${TagKey}"]), ("instance", &["aws:ResourceTag/${TagKey}"])], &[]),
    ("ec2:GetPasswordData", &[("instance*", &["aws:ResourceTag/${TagKey}"])], &[]),
    ("ec2:ModifyImageAttribute", &[("image*", &["aws:ResourceTag/${TagKey}", "ec2:Owner"])], &[]),
    ("ec2:ModifyInstanceAttribute", &[("instance*", &["aws:ResourceTag/${TagKey}"]), ("security-group", &["aws:ResourceTag/${TagKey}"]), ("volume", &["aws:ResourceTag/${TagKey}"])], &[]),
    ("ec2:ModifySnapshotAttribute", &[("snapshot*", &["aws:ResourceTag/${TagKey}", "ec2:Add/group", "ec2:Add/userId", "ec2:Owner"])], &[]),
    ("ec2:RegisterImage", &[("image*", &["aws:RequestTag/${TagKey}", "aws:TagKeys", "ec2:Owner"]), ("snapshot", &["aws:ResourceTag/${TagKey}", "ec2:Owner"])], &[]),
    ("ec2:RevokeSecurityGroupIngress", &[("security-group*", &["aws:ResourceTag/${TagKey}"])], &[]),
    ("ec2:RunInstances", &[("image*", &["aws:ResourceTag/${TagKey}", "ec2:Owner"]), ("instance*", &["aws:RequestTag/${TagKey}", "aws:TagKeys"]), ("network-interface*", &["aws:RequestTag/${TagKey}", "aws:TagKeys"]), ("security-group*", &["aws:ResourceTag/${TagKey}"]), ("subnet*", &["aws:ResourceTag/${TagKey}"]), ("capacity-reservation", &["aws:ResourceTag/${TagKey}"]), ("elastic-gpu", &["aws:ResourceTag/${TagKey}"]), ("elastic-inference", &[]), ("group", &[]), ("key-pair", &["aws:ResourceTag/${TagKey}"]), ("launch-template", &["aws:ResourceTag/${TagKey}"]), ("license-configuration", &[]), ("placement-group", &["aws:ResourceTag/${TagKey}"]), ("secondary-subnet", &["aws:ResourceTag/${TagKey}"]), ("snapshot", &["aws:ResourceTag/${TagKey}", "ec2:Owner"]), ("volume", &["aws:RequestTag/${TagKey}", "aws:TagKeys"])], &[]),
    ("ec2:StopInstances", &[("instance*", &["aws:ResourceTag/${TagKey}"])], &[]),
    ("ec2:TerminateInstances", &[("instance*", &["aws:ResourceTag/${TagKey}"])], &[]),
    // Actions, resources, and condition keys for AWS Elastic Load Balancing
    // https://docs.aws.amazon.com/service-authorization/latest/reference/list_awselasticloadbalancing.html
    ("elasticloadbalancing:ApplySecurityGroupsToLoadBalancer", &[("loadbalancer*", &[])], &["aws:ResourceTag/${TagKey}"]),
    ("elasticloadbalancing:ConfigureHealthCheck", &[("loadbalancer*", &[])], &["aws:ResourceTag/${TagKey}"]),
    ("elasticloadbalancing:CreateLoadBalancer", &[("loadbalancer", &[])], &["aws:RequestTag/${TagKey}", "aws:TagKeys", "aws:ResourceTag/${TagKey}"]),
    ("elasticloadbalancing:CreateLoadBalancerListeners", &[("loadbalancer*", &[])], &["aws:ResourceTag/${TagKey}"]),
    ("elasticloadbalancing:DeleteLoadBalancerListeners", &[("loadbalancer*", &[])], &["aws:ResourceTag/${TagKey}"]),
    ("elasticloadbalancing:DeregisterInstancesFromLoadBalancer", &[("loadbalancer*", &[])], &["aws:ResourceTag/${TagKey}"]),
    ("elasticloadbalancing:DescribeInstanceHealth", &[], &[]),
    ("elasticloadbalancing:DescribeLoadBalancerAttributes", &[], &[]),
    ("elasticloadbalancing:DescribeLoadBalancers", &[], &[]),
    ("elasticloadbalancing:ModifyLoadBalancerAttributes", &[("loadbalancer*", &[])], &["aws:ResourceTag/${TagKey}"]),
    ("elasticloadbalancing:RegisterInstancesWithLoadBalancer", &[("loadbalancer*", &[])], &["aws:ResourceTag/${TagKey}"]),
    ("elasticloadbalancing:AddTags", &[("loadbalancer*", &[])], &["aws:RequestTag/${TagKey}", "aws:TagKeys", "aws:ResourceTag/${TagKey}", "elasticloadbalancing:CreateAction"]),
    ("elasticloadbalancing:CreateLoadBalancerPolicy", &[("loadbalancer*", &[])], &["aws:ResourceTag/${TagKey}"]),
    ("elasticloadbalancing:DescribeLoadBalancerPolicies", &[], &[]),
    ("elasticloadbalancing:DescribeTags", &[], &[]),
    ("elasticloadbalancing:SetLoadBalancerListenerSSLCertificate", &[("loadbalancer*", &[])], &["aws:ResourceTag/${TagKey}"]),
    ("elasticloadbalancing:SetLoadBalancerPoliciesOfListener", &[("loadbalancer*", &[])], &["aws:ResourceTag/${TagKey}"]),
    // Actions, resources, and condition keys for AWS Elastic Load Balancing V2
    // https://docs.aws.amazon.com/service-authorization/latest/reference/list_awselasticloadbalancingv2.html
    ("elasticloadbalancing:CreateListener", &[("loadbalancer/app/", &[]), ("loadbalancer/gwy/", &[]), ("loadbalancer/net/", &[])], &["aws:RequestTag/${TagKey}", "aws:TagKeys", "aws:ResourceTag/${TagKey}"]),
    ("elasticloadbalancing:CreateLoadBalancer", &[("loadbalancer/app/", &[]), ("loadbalancer/gwy/", &[]), ("loadbalancer/net/", &[])], &["aws:RequestTag/${TagKey}", "aws:TagKeys", "aws:ResourceTag/${TagKey}"]),
    ("elasticloadbalancing:CreateTargetGroup", &[("targetgroup*", &[])], &["aws:RequestTag/${TagKey}", "aws:TagKeys", "aws:ResourceTag/${TagKey}"]),
    ("elasticloadbalancing:DeregisterTargets", &[("targetgroup*", &[])], &["aws:ResourceTag/${TagKey}"]),
    ("elasticloadbalancing:DescribeListeners", &[], &[]),
    ("elasticloadbalancing:DescribeLoadBalancerAttributes", &[], &[]),
    ("elasticloadbalancing:DescribeLoadBalancers", &[], &[]),
    ("elasticloadbalancing:DescribeTargetGroupAttributes", &[], &[]),
    ("elasticloadbalancing:DescribeTargetGroups", &[], &[]),
    ("elasticloadbalancing:DescribeTargetHealth", &[], &[]),
    ("elasticloadbalancing:ModifyLoadBalancerAttributes", &[("loadbalancer/app/", &[]), ("loadbalancer/gwy/", &[]), ("loadbalancer/net/", &[])], &["aws:ResourceTag/${TagKey}"]),
    ("elasticloadbalancing:ModifyTargetGroup", &[("targetgroup*", &[])], &["aws:ResourceTag/${TagKey}"]),
    ("elasticloadbalancing:ModifyTargetGroupAttributes", &[("targetgroup*", &[])], &["aws:ResourceTag/${TagKey}"]),
    ("elasticloadbalancing:RegisterTargets", &[("targetgroup*", &[])], &["aws:ResourceTag/${TagKey}"]),
    ("elasticloadbalancing:SetSecurityGroups", &[("loadbalancer/app/", &[]), ("loadbalancer/net/", &[])], &["aws:ResourceTag/${TagKey}"]),
    (
        "elasticloadbalancing:AddTags",
        &[("listener/app/", &[]), ("listener/gwy/", &[]), ("listener/net/", &[]), ("loadbalancer/app/", &[]), ("loadbalancer/gwy/", &[]), ("loadbalancer/net/", &[]), ("targetgroup", &[])],
        &["aws:RequestTag/${TagKey}", "aws:TagKeys", "aws:ResourceTag/${TagKey}", "elasticloadbalancing:CreateAction"],
    ),
    ("elasticloadbalancing:DeleteListener", &[("listener/app/", &[]), ("listener/gwy/", &[]), ("listener/net/", &[])], &["aws:ResourceTag/${TagKey}"]),
    ("elasticloadbalancing:ModifyListener", &[("listener/app/", &[]), ("listener/gwy/", &[]), ("listener/net/", &[])], &["aws:ResourceTag/${TagKey}"]),
    // https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscertificatemanager.html
    ("acm:DescribeCertificate", &[("certificate*", &[])], &["aws:ResourceTag/${TagKey}"]),
    // Actions, resources, and condition keys for Amazon Route 53
    // https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonroute53.html
    ("route53:ChangeResourceRecordSets", &[("hostedzone*", &[])], &["route53:ChangeResourceRecordSetsNormalizedRecordNames", "route53:ChangeResourceRecordSetsRecordTypes", "route53:ChangeResourceRecordSetsActions"]),
    ("route53:CreateHostedZone", &[], &[]),
    ("route53:GetChange", &[("change*", &[])], &[]),
    ("route53:ListHostedZonesByName", &[], &[]),
    ("route53:ListResourceRecordSets", &[("hostedzone*", &[])], &[]),
    // Actions, resources, and condition keys for Amazon DynamoDB
    // https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html
    ("dynamodb:CreateTable", &[("table*", &[])], &["aws:RequestTag/${TagKey}", "aws:TagKeys"]),
    ("dynamodb:DeleteItem", &[("table*", &[])], &["dynamodb:LeadingKeys"]),
    ("dynamodb:DescribeTable", &[("table*", &[])], &[]),
    ("dynamodb:GetItem", &[("table*", &[])], &["dynamodb:LeadingKeys"]),
    ("dynamodb:PutItem", &[("table*", &[])], &["dynamodb:LeadingKeys"]),
    ("dynamodb:Query", &[("table*", &[]), ("index", &[])], &["dynamodb:LeadingKeys"]),
    // Actions, resources, and condition keys for AWS Security Token Service
    // https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssecuritytokenservice.html
    ("sts:GetCallerIdentity", &[], &[]),
    // Actions, resources, and condition keys for AWS Key Management Service
    // https://docs.aws.amazon.com/service-authorization/latest/reference/list_awskeymanagementservice.html
    ("kms:CreateGrant", &[("key*", &[])], &["kms:GrantIsForAWSResource", "kms:ViaService"]),
    ("kms:Decrypt", &[("key*", &[])], &["kms:ViaService"]),
    ("kms:DescribeKey", &[("key*", &[])], &["kms:ViaService"]),
    ("kms:GenerateDataKeyWithoutPlaintext", &[("key*", &[])], &["kms:ViaService"]),
    ("kms:ReEncryptFrom", &[("key*", &[])], &["kms:ViaService"]),
    ("kms:ReEncryptTo", &[("key*", &[])], &["kms:ViaService"]),
    // Actions, resources, and condition keys for AWS Identity and Access Management (IAM)
    // https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html
    ("iam:CreateServiceLinkedRole", &[("role*", &[])], &["iam:AWSServiceName"]),
    ("iam:PassRole", &[("role*", &[])], &["iam:PassedToService"]),
    // Actions, resources, and condition keys for Amazon SNS
    // https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsns.html
    ("sns:Publish", &[("topic*", &["aws:ResourceTag/${TagKey}"])], &[]),
    // Actions, resources, and condition keys for Amazon CloudWatch
    // https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatch.html
    ("cloudwatch:DescribeAlarms", &[("alarm*", &["aws:ResourceTag/${TagKey}"])], &[]),
    // Actions, resources, and condition keys for Amazon EC2 Auto Scaling
    // https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2autoscaling.html
    // (of each action's keys only those the policy may use, as everywhere here)
    ("autoscaling:AttachLoadBalancerTargetGroups", ASG_GROUP, &[]),
    ("autoscaling:AttachLoadBalancers", ASG_GROUP, &[]),
    ("autoscaling:CreateAutoScalingGroup", ASG_GROUP, &["autoscaling:LaunchTemplateVersionSpecified", "aws:RequestTag/${TagKey}", "aws:TagKeys"]),
    ("autoscaling:CreateOrUpdateTags", ASG_GROUP, &["aws:RequestTag/${TagKey}", "aws:TagKeys"]),
    ("autoscaling:DeleteAutoScalingGroup", ASG_GROUP, &[]),
    ("autoscaling:DeleteTags", ASG_GROUP, &["aws:RequestTag/${TagKey}", "aws:TagKeys"]),
    ("autoscaling:DescribeAutoScalingGroups", &[], &[]),
    ("autoscaling:DescribeLoadBalancerTargetGroups", &[], &[]),
    ("autoscaling:DescribeLoadBalancers", &[], &[]),
    ("autoscaling:DescribePolicies", &[], &[]),
    ("autoscaling:DescribeScalingActivities", &[], &[]),
    ("autoscaling:DescribeScheduledActions", &[], &[]),
    ("autoscaling:DetachLoadBalancerTargetGroups", ASG_GROUP, &[]),
    ("autoscaling:DetachLoadBalancers", ASG_GROUP, &[]),
    ("autoscaling:PutScalingPolicy", ASG_GROUP, &[]),
    ("autoscaling:ResumeProcesses", ASG_GROUP, &[]),
    ("autoscaling:SuspendProcesses", ASG_GROUP, &[]),
    ("autoscaling:UpdateAutoScalingGroup", ASG_GROUP, &["autoscaling:LaunchTemplateVersionSpecified"]),
    // Actions, resources, and condition keys for AWS Systems Manager
    // https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssystemsmanager.html
    // (its other key, ssm:resourceTag/tag-key, is not transcribed: the policy does not use it)
    ("ssm:GetParameter", &[("parameter*", &["aws:ResourceTag/${TagKey}"])], &[]),
];

/// The one resource type of Auto Scaling's group actions, with the condition keys it takes.
const ASG_GROUP: &[(&str, &[&str])] = &[("autoScalingGroup*", &["autoscaling:ResourceTag/${TagKey}", "aws:ResourceTag/${TagKey}"])];

/// Packer's documented minimal policy for its Amazon builders (see the header).
const PACKER_DOCUMENTED: &[&str] = &[
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

/// Of Packer's documented actions, the one only sharing with other accounts (`[bake] accounts`, the template's
/// snapshot_users) uses: left out of a pipeline that shares with none.
const PACKER_WHEN_SHARING: &str = "ec2:ModifySnapshotAttribute";

/// The KMS actions EBS encryption with a customer-managed key needs (see the header): Packer's, when `[bake] vars`
/// names a kms_key_id.
const KMS_FOR_EBS: &[&str] =
    &["kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo"];

/// IAM actions release needs that are no SDK call of its own: passing the instance role (RunInstances with an
/// instance profile) and the ELB service-linked role (created by an account's first load balancer).
/// Creating a group with tags is authorised as tagging it too; RunInstances is checked on a group's launch template
/// when the group is created.
/// `elasticloadbalancing:AddTags`: what tagging at creation (the ownership tags on CreateLoadBalancer,
/// CreateTargetGroup, CreateListener) is authorised as, besides the create action itself.
const IMPLIED: &[&str] = &["iam:PassRole", "iam:CreateServiceLinkedRole", "autoscaling:CreateOrUpdateTags", "elasticloadbalancing:AddTags"];

/// Managed policies hold at most 6,144 characters (whitespace not counted):
/// "IAM and AWS STS quotas", https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html
const MANAGED_LIMIT: usize = 6_144;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(text: &str) -> Pipeline {
    let root = workspace();
    release_core::model::pipeline::parse(&root.join("pipelines/test.toml"), &root, text, false).unwrap_or_else(|d| panic!("{d:#?}"))
}

fn demo() -> Pipeline {
    load(&std::fs::read_to_string(workspace().join("pipelines/hello.toml")).unwrap())
}

/// A pipeline using everything a policy can hold: classic ELBs and target groups, a live name, named subnets, key
/// pairs, two instance profiles, AMI copies and sharing, a KMS key, a fixed base AMI, another ledger table, an SNS
/// topic and an `ssm:` webhook secret to notify.
const FULL: &str = r#"
app = "shop"
region = "us-west-2"
ledger_table = "deploys"

[build]
command = "make"
artifact = "dist/shop.tar.gz"

[bake]
template = "packer-templates/app.pkr.hcl"
base_ami = "ami-0123456789abcdef0"
regions = ["eu-west-1"]
accounts = ["123456789012"]
vars = { kms_key_id = "1234abcd-12ab-34cd-56ef-1234567890ab", subnet_id = "subnet-0ccc" }
kms_keys = { "eu-west-1" = "arn:aws:kms:eu-west-1:123456789012:key/eu" }

[deploy]
subnets = ["subnet-0aaa", "subnet-0bbb"]
instance_profile = "shop-app"
key_name = "ops"

[env.staging.clusters.staging]
target_group = "shop-staging"
count = 2

[env.prod]
dns = { zone = "example.com.", record = "shop.example.com." }
certificate = "arn:aws:acm:us-west-2:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666"
[env.prod.clusters.blue]
load_balancer = "shop-blue"
count = 2
instance_profile = "shop-prod"
[env.prod.clusters.green]
target_group = "shop-green"
count = 2

[notify]
[[notify.sinks]]
kind = "webhook"
url = "https://hooks.example.com/release"
secret = "ssm:/shop/notify/webhook-secret"
[[notify.sinks]]
kind = "webhook"
url = "https://other.example.com/release"
secret = "env:SHOP_WEBHOOK_SECRET"
[[notify.sinks]]
kind = "sns"
topic = "arn:aws:sns:us-west-2:123456789012:deploys"
[[notify.sinks]]
kind = "command"
command = "./notify.sh"
"#;

/// The full pipeline in the China partition, where Packer tags nothing at creation.
fn china() -> Pipeline {
    load(&FULL.replace("us-west-2", "cn-north-1").replace("eu-west-1", "cn-northwest-1"))
}

fn statements(doc: &Value) -> &Vec<Value> {
    assert_eq!(doc["Version"], "2012-10-17");
    doc["Statement"].as_array().expect("Statement is a list")
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|x| x.as_str().expect("a string").to_owned()).collect(),
        other => panic!("expected a string or a list of strings, got {other}"),
    }
}

fn actions_of(st: &Value) -> Vec<String> {
    strings(&st["Action"])
}

fn resources_of(st: &Value) -> Vec<String> {
    strings(&st["Resource"])
}

/// The condition keys a statement uses, with tag keys generalised (`aws:ResourceTag/release:app` →
/// `aws:ResourceTag/${TagKey}`).
fn condition_keys(st: &Value) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    if let Some(c) = st.get("Condition") {
        for (_, block) in c.as_object().expect("Condition is an object") {
            for (key, _) in block.as_object().expect("a condition operator holds an object") {
                let general = match key.split_once('/') {
                    Some((k @ ("aws:RequestTag" | "aws:ResourceTag" | "autoscaling:ResourceTag"), _)) => format!("{k}/${{TagKey}}"),
                    _ => key.clone(),
                };
                keys.insert(general);
            }
        }
    }
    keys
}

/// Whether the policy's `arn` fits the reference's `pattern`: literal parts equal, `${Partition}` a partition,
/// `${Region}` a region or `*`, `${Account}` an account id or `*`, any other variable one or more characters
/// without `:` (nor `/`, unless the variable is a path: `…WithPath`, SSM's `ParameterNameWithoutLeadingSlash`). A
/// `*` in the policy stands only for a variable.
fn fits(arn: &str, pattern: &str) -> bool {
    fn var_ok(name: &str, s: &str) -> bool {
        match name {
            "Partition" => ["aws", "aws-cn", "aws-us-gov"].contains(&s),
            "Region" => s == "*" || (!s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')),
            "Account" => s == "*" || (s.len() == 12 && s.chars().all(|c| c.is_ascii_digit())),
            _ if name.ends_with("WithoutLeadingSlash") => !s.is_empty() && !s.contains(':') && !s.starts_with('/'),
            _ => !s.is_empty() && !s.contains(':') && (name.ends_with("WithPath") || !s.contains('/')),
        }
    }
    fn go(arn: &str, pattern: &str) -> bool {
        match pattern.find("${") {
            None => arn == pattern,
            Some(i) => {
                let (lit, rest) = pattern.split_at(i);
                let Some(arn) = arn.strip_prefix(lit) else { return false };
                let end = rest.find('}').expect("a closed variable");
                let (name, after) = (&rest[2..end], &rest[end + 1..]);
                (1..=arn.len()).any(|n| arn.is_char_boundary(n) && var_ok(name, &arn[..n]) && go(&arn[n..], after))
            }
        }
    }
    go(arn, pattern)
}

/// The reference's entry for `action`: resource types (name, required, ARN pattern, condition keys) and the
/// action's own condition keys, merged over the pages listing it.
struct Entry {
    types: Vec<(String, bool, &'static str, BTreeSet<&'static str>)>,
    keys: BTreeSet<&'static str>,
}

fn entry(action: &str) -> Option<Entry> {
    let service = action.split(':').next().unwrap();
    let rows: Vec<&Action> = ACTIONS.iter().filter(|a| a.0 == action).collect();
    if rows.is_empty() {
        return None;
    }
    let mut e = Entry { types: Vec::new(), keys: BTreeSet::new() };
    for (_, types, keys) in rows {
        e.keys.extend(keys.iter().copied());
        for (t, tkeys) in types.iter() {
            let (name, required) = match t.strip_suffix('*') {
                Some(n) => (n, true),
                None => (*t, false),
            };
            let pattern = RESOURCE_TYPES
                .iter()
                .find(|(s, n, _)| *s == service && *n == name)
                .unwrap_or_else(|| panic!("resource type {service}:{name} of {action} is not transcribed"))
                .2;
            e.types.push((name.to_owned(), required, pattern, tkeys.iter().copied().collect()));
        }
    }
    Some(e)
}

/// Every way `doc` departs from the reference.
fn departures(doc: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    let mut sids = BTreeSet::new();
    // action -> resource types its statements reach
    let mut reached: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for st in statements(doc) {
        let sid = st["Sid"].as_str().unwrap_or_default().to_owned();
        if sid.is_empty() || !sid.chars().all(|c| c.is_ascii_alphanumeric()) || !sids.insert(sid.clone()) {
            bad.push(format!("statement Sid `{sid}` is missing, not alphanumeric or not unique"));
        }
        if st["Effect"] != "Allow" {
            bad.push(format!("{sid}: Effect is not Allow"));
        }
        let keys = condition_keys(st);
        for k in &keys {
            if !KEYS.contains(&k.as_str()) {
                bad.push(format!("{sid}: condition key {k} is not transcribed here; add its rows from the reference"));
            }
        }
        let resources = resources_of(st);
        for action in actions_of(st) {
            let Some(e) = entry(&action) else {
                bad.push(format!("{sid}: {action} is not in the transcribed reference (misspelt, or transcribe it)"));
                continue;
            };
            if e.types.is_empty() {
                if resources != ["*"] {
                    bad.push(format!("{sid}: {action} supports no resource-level permission, so its Resource must be \"*\", not {resources:?}"));
                }
                for k in &keys {
                    if !e.keys.contains(k.as_str()) {
                        bad.push(format!("{sid}: {action} takes no condition key {k}"));
                    }
                }
                continue;
            }
            for r in &resources {
                let matched: Vec<_> = e.types.iter().filter(|t| fits(r, t.2)).collect();
                if matched.is_empty() {
                    let listed: Vec<&str> = e.types.iter().map(|t| t.0.as_str()).collect();
                    bad.push(format!("{sid}: {action} is scoped to {r}, which is none of the resource types the reference lists for it {listed:?}"));
                    continue;
                }
                for t in &matched {
                    reached.entry(action.clone()).or_default().insert(t.0.clone());
                }
                for k in &keys {
                    if !e.keys.contains(k.as_str()) && !matched.iter().any(|t| t.3.contains(k.as_str())) {
                        bad.push(format!("{sid}: {action} on {r} takes no condition key {k}"));
                    }
                }
            }
        }
    }
    for (action, types) in &reached {
        for (name, required, ..) in entry(action).unwrap().types {
            if required && !types.contains(&name) {
                bad.push(format!("{action} needs its required resource type {name}, which no statement allows"));
            }
        }
    }
    bad
}

/// The IAM action of every AWS SDK operation the code calls (`self.ec2.run_instances()` → `ec2:RunInstances`),
/// read from the source of release-aws.
fn called_actions() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for f in std::fs::read_dir(&dir).unwrap() {
        let path = f.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let src: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        for (client, prefix) in
            [("ec2", "ec2"), ("elb", "elasticloadbalancing"), ("elbv2", "elasticloadbalancing"), ("route53", "route53"), ("dynamodb", "dynamodb"), ("sts", "sts"), ("sns", "sns"), ("ssm", "ssm"), ("cloudwatch", "cloudwatch"), ("autoscaling", "autoscaling"), ("acm", "acm")]
        {
            let needle = format!("self.{client}.");
            for (i, _) in src.match_indices(&needle) {
                let rest = &src[i + needle.len()..];
                let op: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
                if op.is_empty() || !rest[op.len()..].starts_with('(') {
                    continue;
                }
                let pascal: String = op.split('_').map(|w| w[..1].to_ascii_uppercase() + &w[1..]).collect();
                out.insert(format!("{prefix}:{pascal}"));
            }
        }
        // The operation names the error messages carry (`sdk("elbv2 CreateListener", e)`): the same calls, named
        // by hand, so a call the scan above misses still counts.
        for (i, _) in text.match_indices("sdk(\"") {
            let label: String = text[i + 5..].chars().take_while(|c| *c != '"').collect();
            let prefix = match label.split(' ').next().unwrap() {
                // `iam-policy` asks IAM for the instance profiles' roles as whoever writes the policy; no command
                // the policy is for calls IAM.
                "iam" => continue,
                "ec2" => "ec2",
                "elb" | "elbv2" => "elasticloadbalancing",
                "route53" => "route53",
                "dynamodb" => "dynamodb",
                "sts" => "sts",
                "sns" => "sns",
                "ssm" => "ssm",
                "cloudwatch" => "cloudwatch",
                "autoscaling" => "autoscaling",
                "acm" => "acm",
                other => panic!("unknown service in sdk label `{label}` ({other})"),
            };
            out.insert(format!("{prefix}:{}", label.rsplit(|c: char| !c.is_ascii_alphanumeric()).next().unwrap()));
        }
    }
    // The SDK spells it `set_load_balancer_listener_ssl_certificate`; IAM `SetLoadBalancerListenerSSLCertificate`.
    if out.remove("elasticloadbalancing:SetLoadBalancerListenerSslCertificate") {
        out.insert("elasticloadbalancing:SetLoadBalancerListenerSSLCertificate".to_owned());
    }
    // IAM has no action for a transaction: each of its writes is authorised as the PutItem or DeleteItem it is
    // (DynamoDB developer guide, "Using IAM with DynamoDB transactions").
    if out.remove("dynamodb:TransactWriteItems") {
        out.extend(["dynamodb:PutItem".to_owned(), "dynamodb:DeleteItem".to_owned()]);
    }
    out
}

fn action_set<'a>(doc: &'a Value, sid_filter: impl Fn(&str) -> bool + 'a) -> BTreeSet<String> {
    statements(doc).iter().filter(|s| sid_filter(s["Sid"].as_str().unwrap_or_default())).flat_map(actions_of).collect()
}

fn statement<'a>(doc: &'a Value, sid: &str) -> &'a Value {
    statements(doc).iter().find(|s| s["Sid"] == sid).unwrap_or_else(|| panic!("no statement {sid}"))
}

fn is_packer(sid: &str) -> bool {
    sid.starts_with("PackerBake")
}

/// Non-whitespace characters, as IAM counts a policy's size.
fn size(doc: &Value) -> usize {
    serde_json::to_string(doc).unwrap().chars().filter(|c| !c.is_whitespace()).count()
}

#[test]
fn every_statement_matches_the_service_authorization_reference() {
    for (name, pipeline) in [("demo", demo()), ("full", load(FULL)), ("china", china())] {
        let doc = policy(&pipeline);
        let bad = departures(&doc);
        println!("{name}: {} statements, {} actions, {} characters; departures from the reference: {}", statements(&doc).len(), action_set(&doc, |_| true).len(), size(&doc), bad.len());
        assert!(bad.is_empty(), "{name} policy departs from the reference:\n{}", bad.join("\n"));
    }
}

#[test]
fn the_check_catches_what_real_iam_would_refuse_or_widen() {
    // The mistakes the policy used to make, and others: each must be reported.
    let cases = [
        (r#"{"Sid":"A","Effect":"Allow","Action":["route53:CreateHostedZone"],"Resource":"arn:aws:route53:::hostedzone/*"}"#, "must be \"*\""),
        (r#"{"Sid":"A","Effect":"Allow","Action":["elasticloadbalancing:CreateListener"],"Resource":"arn:aws:elasticloadbalancing:*:*:listener/app/x/*"}"#, "none of the resource types"),
        (r#"{"Sid":"A","Effect":"Allow","Action":["ec2:RunInstances"],"Resource":"*"}"#, "none of the resource types"),
        (r#"{"Sid":"A","Effect":"Allow","Action":["ec2:DeregisterImage"],"Resource":"arn:aws:ec2:*:*:image/*"}"#, "none of the resource types"),
        (r#"{"Sid":"A","Effect":"Allow","Action":["ec2:CreateImage"],"Resource":["arn:aws:ec2:*::image/*","arn:aws:ec2:*:*:instance/*"]}"#, "required resource type snapshot"),
        (r#"{"Sid":"A","Effect":"Allow","Action":["ec2:CopyImage"],"Resource":["arn:aws:ec2:*::image/*","arn:aws:ec2:*::snapshot/*"],"Condition":{"StringEquals":{"aws:ResourceTag/app":"x"}}}"#, "takes no condition key aws:ResourceTag"),
        (r#"{"Sid":"A","Effect":"Allow","Action":["ec2:CreateSecurityGroup"],"Resource":"arn:aws:ec2:*:*:vpc/*","Condition":{"StringEquals":{"aws:RequestTag/app":"x"}}}"#, "takes no condition key aws:RequestTag"),
        (r#"{"Sid":"A","Effect":"Allow","Action":["dynamodb:CreateTable"],"Resource":"arn:aws:dynamodb:*:*:table/t","Condition":{"ForAllValues:StringLike":{"dynamodb:LeadingKeys":["x"]}}}"#, "takes no condition key dynamodb:LeadingKeys"),
        (r#"{"Sid":"A","Effect":"Allow","Action":["ec2:TerminateInstance"],"Resource":"*"}"#, "not in the transcribed reference"),
        (r#"{"Sid":"A-1","Effect":"Allow","Action":["sts:GetCallerIdentity"],"Resource":"*"}"#, "not alphanumeric"),
        (r#"{"Sid":"A","Effect":"Allow","Action":["sns:Publish"],"Resource":"*"}"#, "none of the resource types"),
        // An SSM parameter's ARN drops the leading slash of its name: `parameter//x` matches no parameter.
        (r#"{"Sid":"A","Effect":"Allow","Action":["ssm:GetParameter"],"Resource":"arn:aws:ssm:*:*:parameter//shop/x"}"#, "none of the resource types"),
    ];
    for (st, want) in cases {
        let doc: Value = serde_json::from_str(&format!(r#"{{"Version":"2012-10-17","Statement":[{st}]}}"#)).unwrap();
        let bad = departures(&doc);
        assert!(bad.iter().any(|b| b.contains(want)), "{st}: expected a departure containing `{want}`, got {bad:?}");
    }
    assert!(fits("arn:aws:elasticloadbalancing:*:*:targetgroup/shop/*", "arn:${Partition}:elasticloadbalancing:${Region}:${Account}:targetgroup/${TargetGroupName}/${TargetGroupId}"));
    assert!(!fits("arn:aws:elasticloadbalancing:*:*:loadbalancer/app/shop/*", "arn:${Partition}:elasticloadbalancing:${Region}:${Account}:loadbalancer/${LoadBalancerName}"));
}

#[test]
fn every_aws_call_the_code_makes_is_in_release_s_own_statements() {
    let called = called_actions();
    assert!(called.len() >= 40 && called.contains("ec2:RunInstances") && called.contains("elasticloadbalancing:SetSecurityGroups"), "the source scan found too little: {called:?}");
    let doc = policy(&full_with_rollout());
    let own = action_set(&doc, |sid| !is_packer(sid));
    let missing: Vec<&String> = called.iter().filter(|a| !own.contains(*a)).collect();
    let implied_missing: Vec<&&str> = IMPLIED.iter().filter(|a| !own.contains(**a)).collect();
    println!("{} operations called by release-aws; missing from the policy: {missing:?} {implied_missing:?}", called.len());
    assert!(missing.is_empty() && implied_missing.is_empty(), "the policy lacks {missing:?} {implied_missing:?}");
    // Nor anything else: each action is called, implied or Packer's.
    let all = action_set(&doc, |_| true);
    let stray: Vec<&String> = all
        .iter()
        .filter(|a| !called.contains(*a) && !IMPLIED.contains(&a.as_str()) && !PACKER_DOCUMENTED.contains(&a.as_str()) && !KMS_FOR_EBS.contains(&a.as_str()))
        .collect();
    assert!(stray.is_empty(), "the policy grants {stray:?}, which neither release nor Packer uses");
    // Release's own statements grant nothing Packer's list has that release does not call.
    let own_extra: Vec<&String> = own.iter().filter(|a| !called.contains(*a) && !IMPLIED.contains(&a.as_str())).collect();
    assert!(own_extra.is_empty(), "release's statements grant {own_extra:?}, which release does not call");
}

#[test]
fn packer_s_documented_actions_are_in_its_own_statements_only_as_the_pipeline_needs() {
    for (name, pipeline, full) in [("demo", demo(), false), ("full", load(FULL), true), ("china", china(), true)] {
        let doc = policy(&pipeline);
        let packer = action_set(&doc, is_packer);
        for action in PACKER_DOCUMENTED {
            let wanted = full || *action != PACKER_WHEN_SHARING;
            assert_eq!(packer.contains(*action), wanted, "{name}: {action} in the PackerBake statements");
        }
        for action in KMS_FOR_EBS {
            assert_eq!(packer.contains(*action), full, "{name}: {action} in the PackerBake statements");
        }
        let extra: Vec<&String> = packer.iter().filter(|a| !PACKER_DOCUMENTED.contains(&a.as_str()) && !KMS_FOR_EBS.contains(&a.as_str())).collect();
        assert!(extra.is_empty(), "{name}: PackerBake statements grant {extra:?} beyond Packer's documented list");
    }
}

#[test]
fn scoping_follows_the_app() {
    let doc = policy(&demo());
    let cond = |sid: &str| statement(&doc, sid)["Condition"].clone();
    // Tags only at creation, or on resources already the app's (release's tag or Packer's), or in Packer's request.
    for st in statements(&doc).iter().filter(|s| actions_of(s).contains(&"ec2:CreateTags".to_owned())) {
        let keys = condition_keys(st);
        assert!(
            keys.contains("ec2:CreateAction") || keys.contains("aws:ResourceTag/${TagKey}") || keys.contains("aws:RequestTag/${TagKey}"),
            "unconditioned CreateTags: {st}"
        );
    }
    assert_eq!(cond("TagAtCreation")["StringEquals"]["ec2:CreateAction"], serde_json::json!(["RunInstances", "CreateSecurityGroup"]));
    assert_eq!(cond("TagBakes")["StringEquals"]["aws:ResourceTag/release:app"], "hello");
    assert_eq!(cond("TagNewBakes")["StringEquals"][format!("aws:ResourceTag/{PACKER_APP_TAG}")], "hello");
    // Terminating and stopping: only instances tagged with the app.
    for st in statements(&doc).iter().filter(|s| actions_of(s).iter().any(|a| a == "ec2:TerminateInstances" || a == "ec2:StopInstances")) {
        let c = &st["Condition"]["StringEquals"];
        assert!(c["aws:ResourceTag/release:app"] == "hello" || c[format!("aws:ResourceTag/{PACKER_APP_TAG}")] == "hello", "{st}");
    }
    // Launching: the instance, its volumes and interfaces carry the app's tag; only the app's images.
    assert_eq!(resources_of(statement(&doc, "Launch")).len(), 3);
    assert_eq!(cond("Launch")["StringEquals"]["aws:RequestTag/release:app"], "hello");
    assert_eq!(cond("Images")["StringEquals"]["aws:ResourceTag/release:app"], "hello");
    assert_eq!(cond("PackerBakeLaunch")["StringEquals"][format!("aws:RequestTag/{PACKER_APP_TAG}")], "hello");
    assert_eq!(cond("PackerBakeGroup")["StringEquals"][format!("aws:ResourceTag/{PACKER_APP_TAG}")], "hello");
    assert_eq!(cond("PackerBakeBase")["StringEquals"]["ec2:Owner"], serde_json::json!(["amazon"]));
    // The instance role, to EC2 only; the ELB service-linked role only.
    assert_eq!(resources_of(statement(&doc, "PassRole")), ["arn:aws:iam::*:role/hello-app"]);
    assert_eq!(cond("PassRole")["StringEquals"]["iam:PassedToService"], "ec2.amazonaws.com");
    assert_eq!(cond("ElbServiceRole")["StringEquals"]["iam:AWSServiceName"], "elasticloadbalancing.amazonaws.com");
    // The ledger: this app's partitions; the live record: this app's, as an A alias, upserted or deleted.
    assert_eq!(cond("LedgerItems")["ForAllValues:StringLike"]["dynamodb:LeadingKeys"], serde_json::json!(["hello#*", "index#hello"]));
    let dns = &cond("LiveRecords")["ForAllValues:StringEquals"];
    assert_eq!(dns["route53:ChangeResourceRecordSetsNormalizedRecordNames"], serde_json::json!(["hello.example.com"]));
    assert_eq!(dns["route53:ChangeResourceRecordSetsRecordTypes"], serde_json::json!(["A"]));
    // Nothing the demo does not use: no target groups, no sharing, no KMS key, no key pair but Packer's.
    let all = action_set(&doc, |_| true);
    for absent in ["elasticloadbalancing:CreateTargetGroup", "ec2:ModifySnapshotAttribute", "kms:CreateGrant"] {
        assert!(!all.contains(absent), "{absent} granted to the demo");
    }
    assert!(!serde_json::to_string(&doc).unwrap().contains("key-pair/ops"));

    let full = policy(&load(FULL));
    let fcond = |sid: &str| statement(&full, sid)["Condition"].clone();
    let launch_network = resources_of(statement(&full, "LaunchNet"));
    assert!(launch_network.contains(&"arn:aws:ec2:*:*:subnet/subnet-0aaa".to_owned()) && !launch_network.iter().any(|r| r.ends_with("subnet/*")));
    assert!(launch_network.contains(&"arn:aws:ec2:*:*:key-pair/ops".to_owned()));
    assert_eq!(resources_of(statement(&full, "PackerBakeBase")), ["arn:aws:ec2:*::image/ami-0123456789abcdef0"]);
    assert_eq!(resources_of(statement(&full, "PackerBakeSubnet")), ["arn:aws:ec2:*:*:subnet/subnet-0ccc"]);
    assert_eq!(resources_of(statement(&full, "PassRole")), ["arn:aws:iam::*:role/shop-app", "arn:aws:iam::*:role/shop-prod"]);
    assert_eq!(resources_of(statement(&full, "Albs")).len(), 2);
    assert_eq!(fcond("PackerBakeShare")["ForAllValues:StringEquals"]["ec2:Add/userId"], serde_json::json!(["123456789012"]));
    assert_eq!(resources_of(statement(&full, "PackerBakeKms")), ["arn:aws:kms:*:*:key/1234abcd-12ab-34cd-56ef-1234567890ab", "arn:aws:kms:eu-west-1:123456789012:key/eu"]);
    assert_eq!(fcond("PackerBakeKmsGrant")["Bool"]["kms:GrantIsForAWSResource"], "true");
    // Notifications: the one topic, the one ssm: secret (its ARN without the name's leading slash); an env:
    // secret, a command and the demo's lack of [notify] grant nothing.
    assert_eq!(resources_of(statement(&full, "NotifyTopics")), ["arn:aws:sns:us-west-2:123456789012:deploys"]);
    assert_eq!(resources_of(statement(&full, "NotifySecrets")), ["arn:aws:ssm:*:*:parameter/shop/notify/webhook-secret"]);
    assert!(!all.contains("sns:Publish") && !all.contains("ssm:GetParameter"), "the demo notifies nobody");
    // Where Packer tags nothing at creation, its creations and clean-ups cannot require its tag; tagging then
    // needs it in the request.
    let cn = policy(&china());
    assert!(serde_json::to_string(&cn).unwrap().contains("arn:aws-cn:ec2:*:*:instance/*"));
    assert!(statement(&cn, "PackerBakeLaunch").get("Condition").is_none() && statement(&cn, "PackerBakeImage").get("Condition").is_none());
    assert_eq!(statement(&cn, "PackerBakeTag")["Condition"]["StringEquals"][format!("aws:RequestTag/{PACKER_APP_TAG}")], "shop");
    assert_eq!(normalized_record_name("Shop.Example.com."), "shop.example.com");
    assert_eq!(normalized_record_name("*.a b.example.com"), "\\052.a\\040b.example.com");
}

/// The full pipeline with rollout alarms in both environments and hooks: what the issue calls a full pipeline.
fn everything() -> Pipeline {
    load(&format!("{FULL}{ROLLOUTS}"))
}

const ROLLOUTS: &str = r#"
[env.prod.rollout]
steps = [10, 50, 100]
pause = "5m"
alarms = ["shop-prod-5xx", "shop-prod-p99-latency", "shop-prod-error-budget"]
[env.prod.hooks]
before_traffic = "./smoke.sh"
after_traffic = "./announce.sh"
[env.staging.rollout]
pause = "2m"
alarms = ["shop-staging-5xx"]
"#;

/// A pipeline with many clusters, each behind its own load balancer and target group: more than one managed
/// policy's worth of release statements.
fn many_clusters() -> Pipeline {
    let mut text = format!("{FULL}{ROLLOUTS}");
    for i in 0..40 {
        text.push_str(&format!("\n[env.e{i}]\ndns = {{ zone = \"example.com.\", record = \"e{i}.shop.example.com.\" }}\n[env.e{i}.clusters.c{i}]\nload_balancer = \"shop-lb-{i}-with-a-long-name\"\ncount = 1\n[env.e{i}.clusters.t{i}]\ntarget_group = \"shop-tg-{i}-long\"\ncount = 1\n"));
    }
    load(&text)
}

#[test]
fn iam_policy_splits_into_managed_policies_iam_accepts_and_loses_no_statement() {
    for (name, pipeline) in [("demo", demo()), ("full", load(FULL)), ("everything", everything()), ("china", china()), ("many", many_clusters())] {
        let whole = policy(&pipeline);
        let parts = policies(&pipeline);
        let sizes: Vec<(String, usize)> = parts.iter().map(|p| (p.name.clone(), p.characters)).collect();
        println!("{name}: {} characters in one document; split: {sizes:?} (limit {MANAGED_LIMIT})", size(&whole));
        for p in &parts {
            assert_eq!(p.characters, size(&p.document), "{name}: {} counts its size as IAM does", p.name);
            assert!(p.characters <= MANAGED_LIMIT, "{name}: {} has {} characters", p.name, p.characters);
            assert!(p.name.len() <= 128 && p.name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c)), "{name}: {}", p.name);
            // Release's and Packer's statements are never mixed: Packer may run as another principal.
            let packer: BTreeSet<bool> = statements(&p.document).iter().map(|s| is_packer(s["Sid"].as_str().unwrap())).collect();
            assert_eq!(packer.len(), 1, "{name}: {} mixes release's and Packer's statements", p.name);
        }
        let names: BTreeSet<&str> = parts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names.len(), parts.len(), "{name}: names are unique");
        // Every statement of the whole document is in exactly one part.
        let mut split: Vec<String> = parts.iter().flat_map(|p| statements(&p.document).iter().map(|s| s.to_string())).collect();
        let mut all: Vec<String> = statements(&whole).iter().map(|s| s.to_string()).collect();
        split.sort();
        all.sort();
        assert_eq!(split, all, "{name}: the parts hold exactly the whole document's statements");
        // IAM unions the policies attached to one principal: together the parts are exactly as correct as the whole
        // (an action's resource types may be granted in two parts, as RunInstances's are).
        let union: Vec<Value> = parts.iter().flat_map(|p| statements(&p.document).clone()).collect();
        assert!(departures(&serde_json::json!({ "Version": "2012-10-17", "Statement": union })).is_empty(), "{name}");
        // As few as needed: one more part than the characters demand at most, per group.
        let groups = 2;
        assert!(parts.len() <= size(&whole).div_ceil(MANAGED_LIMIT) + groups, "{name}: {} parts", parts.len());
    }
    // The full pipeline's release statements no longer fit in one managed policy; the many-cluster one needs several.
    assert!(size(&policy(&everything())) > MANAGED_LIMIT);
    assert!(policies(&many_clusters()).iter().filter(|p| p.name.starts_with("shop-release-")).count() >= 3);
    assert_eq!(policies(&demo()).iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["hello-release", "hello-release-packer"]);
}

/// The `key = var.app` entries of the tag map a source's attribute (`run_tags = local.run_tags`) names, in the
/// templates of `dir`.
fn template_tags(dir: &Path, source: &str, attribute: &str) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.to_string_lossy().ends_with(".pkr.hcl")).collect();
    files.sort();
    let template: String = files.iter().map(|f| std::fs::read_to_string(f).unwrap() + "\n").collect();
    let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let block = |text: &str, head: &str| -> Option<String> {
        let start = text.find(head)? + head.len();
        let mut depth = 1;
        for (i, c) in text[start..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(text[start..start + i].to_owned());
                    }
                }
                _ => {}
            }
        }
        None
    };
    let src = block(&template, &format!("source \"amazon-ebs\" \"{source}\" {{")).unwrap_or_else(|| panic!("no source {source} in {files:?}"));
    let line = src.lines().map(str::trim).find(|l| l.strip_prefix(attribute).is_some_and(|r| r.trim_start().starts_with('=')));
    let line = line.unwrap_or_else(|| panic!("source {source} sets no {attribute}"));
    let locals = block(&template, "locals {").unwrap_or_default();
    let mut entries = Vec::new();
    for name in line.split("local.").skip(1).map(|r| r.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>()) {
        let map = block(&locals, &format!("{name} = {{")).unwrap_or_else(|| panic!("no local {name}"));
        entries.extend(map.lines().map(flat).filter(|l| l.ends_with("= var.app")));
    }
    entries
}

#[test]
fn the_tag_the_packer_statements_rely_on_is_the_one_the_templates_set() {
    // The PackerBake conditions require `app = <app>` on what Packer creates (run_tags, run_volume_tags), and
    // release claims a bake by the same tag on the AMI and its snapshots (tags, snapshot_tags). If the real-AWS
    // source stops setting it, real IAM refuses Packer's launch and clean-ups and release's first tagging: change
    // PACKER_APP_TAG in crates/release-aws/src/iam.rs with the templates.
    let dir = workspace().join("packer-templates");
    let want = [format!("{PACKER_APP_TAG} = var.app"), format!("\"{PACKER_APP_TAG}\" = var.app")];
    for attribute in ["run_tags", "run_volume_tags", "tags", "snapshot_tags"] {
        let found = template_tags(&dir, "aws", attribute);
        assert!(found.iter().any(|e| want.contains(e)), "source aws {attribute}: {found:?} has no `{}`", want[0]);
    }
}

#[test]
fn rollout_alarms_are_described_by_name_and_only_when_a_rollout_watches_some() {
    let doc = policy(&full_with_rollout());
    let st = statement(&doc, "RolloutAlarms");
    assert_eq!(actions_of(st), ["cloudwatch:DescribeAlarms"]);
    assert_eq!(resources_of(st), ["arn:aws:cloudwatch:*:*:alarm:shop-5xx", "arn:aws:cloudwatch:*:*:alarm:shop-p99"]);
    assert!(!action_set(&policy(&demo()), |_| true).contains("cloudwatch:DescribeAlarms"), "the demo watches no alarm: not granted");
}

/// FULL with a rollout watching two alarms. Kept apart from FULL: FULL's release statements are within ~30
/// characters of a managed policy's 6,144, and the alarm statement (~170) would push them over.
fn full_with_rollout() -> Pipeline {
    load(&format!("{}\n[env.prod.rollout]\nsteps = [10, 50, 100]\npause = \"5m\"\nalarms = [\"shop-5xx\", \"shop-p99\"]\n", with_asg(FULL)))
}

/// `text` with its staging cluster running an Auto Scaling group fleet.
fn with_asg(text: &str) -> String {
    let staging = "target_group = \"shop-staging\"\ncount = 2\n";
    assert!(text.contains(staging));
    text.replacen(staging, &format!("{staging}fleet = \"asg\"\nscaling = {{ min = 2, max = 6, cpu = 60 }}\n"), 1)
}

#[test]
fn asg_fleets_are_granted_only_when_a_cluster_runs_one_and_scoped_to_the_app() {
    let demo = action_set(&policy(&demo()), |_| true);
    assert!(!demo.iter().any(|a| a.starts_with("autoscaling:") || a.contains("LaunchTemplate")), "the demo runs no group: {demo:?}");
    let doc = policy(&load(&with_asg(FULL)));
    assert!(departures(&doc).is_empty(), "{:?}", departures(&doc));
    let create = statement(&doc, "AsgCreate");
    assert_eq!(create["Condition"]["StringEquals"]["aws:RequestTag/release:app"], "shop");
    assert_eq!(create["Condition"]["Bool"]["autoscaling:LaunchTemplateVersionSpecified"], "true", "groups name a version number");
    assert_eq!(create["Condition"]["ForAllValues:StringLike"]["aws:TagKeys"], serde_json::json!(["release:*"]));
    for sid in ["AsgGroups", "AsgUntag"] {
        assert_eq!(statement(&doc, sid)["Condition"]["StringEquals"]["autoscaling:ResourceTag/release:app"], "shop", "{sid}");
    }
    assert!(!actions_of(statement(&doc, "AsgGroups")).iter().any(|a| a.contains("Traffic")), "never the traffic sources API");
    assert_eq!(statement(&doc, "Templates")["Condition"]["StringEquals"]["aws:ResourceTag/release:app"], "shop");
    assert_eq!(statement(&doc, "AsgServiceRole")["Condition"]["StringEquals"]["iam:AWSServiceName"], "autoscaling.amazonaws.com");
    for p in policies(&load(&with_asg(&format!("{FULL}{ROLLOUTS}")))) {
        assert!(p.characters <= MANAGED_LIMIT, "{} has {} characters", p.name, p.characters);
    }
}

#[test]
fn packer_may_use_the_key_of_every_region_the_ami_is_in() {
    let mut pipeline = load(FULL);
    pipeline.bake.kms_keys.insert("ap-south-1".into(), "alias/aws/ebs".into());
    let doc = policy(&pipeline);
    // The bake's key (vars.kms_key_id) and the copy's ([bake] kms_keys); the AWS managed key needs no grant.
    let keys = ["arn:aws:kms:*:*:key/1234abcd-12ab-34cd-56ef-1234567890ab", "arn:aws:kms:eu-west-1:123456789012:key/eu"];
    assert_eq!(resources_of(statement(&doc, "PackerBakeKms")), keys);
    assert_eq!(resources_of(statement(&doc, "PackerBakeKmsGrant")), keys);
    assert!(departures(&doc).is_empty(), "{:?}", departures(&doc));
}
