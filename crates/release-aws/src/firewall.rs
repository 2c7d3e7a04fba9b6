//! EC2 security groups: the Firewall port.

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, ResourceType, Tag, TagSpecification, UserIdGroupPair};
use release_core::ports::{Firewall, IngressRule, RuleSource, SecurityGroup};
use release_core::Result;

use crate::error::{no_field, sdk};
use crate::Aws;

fn permissions(rules: &[IngressRule]) -> Vec<IpPermission> {
    rules
        .iter()
        .map(|r| {
            let p = IpPermission::builder().ip_protocol("tcp").from_port(i32::from(r.port)).to_port(i32::from(r.port));
            match &r.source {
                RuleSource::Cidr(c) => p.ip_ranges(IpRange::builder().cidr_ip(c).build()).build(),
                RuleSource::Group(g) => p.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).build()).build(),
            }
        })
        .collect()
}

#[async_trait]
impl Firewall for Aws {
    async fn groups(&self, vpc: &str, names: &[String]) -> Result<Vec<SecurityGroup>> {
        let pages = self
            .ec2
            .describe_security_groups()
            .filters(Filter::builder().name("vpc-id").values(vpc).build())
            .filters(Filter::builder().name("group-name").set_values(Some(names.to_vec())).build())
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| sdk("ec2 DescribeSecurityGroups", e))?;
        let mut out = Vec::new();
        for g in pages.iter().flat_map(|p| p.security_groups()) {
            let (Some(id), Some(name)) = (g.group_id(), g.group_name()) else { continue };
            let mut ingress = Vec::new();
            for p in g.ip_permissions() {
                // release writes single-port TCP rules; anything else in the group is someone else's business.
                if p.ip_protocol() != Some("tcp") || p.from_port() != p.to_port() {
                    continue;
                }
                let Some(port) = p.from_port().and_then(|x| u16::try_from(x).ok()) else { continue };
                for r in p.ip_ranges() {
                    if let Some(c) = r.cidr_ip() {
                        ingress.push(IngressRule { port, source: RuleSource::Cidr(c.to_owned()) });
                    }
                }
                for pair in p.user_id_group_pairs() {
                    if let Some(gid) = pair.group_id() {
                        ingress.push(IngressRule { port, source: RuleSource::Group(gid.to_owned()) });
                    }
                }
            }
            ingress.sort();
            out.push(SecurityGroup { id: id.to_owned(), name: name.to_owned(), ingress });
        }
        Ok(out)
    }

    async fn create_group(&self, vpc: &str, name: &str, description: &str, tags: &[(String, String)]) -> Result<String> {
        let tags: Vec<Tag> = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
        // EC2 refuses a tag specification without tags.
        let spec = (!tags.is_empty()).then(|| vec![TagSpecification::builder().resource_type(ResourceType::SecurityGroup).set_tags(Some(tags)).build()]);
        let out = self
            .ec2
            .create_security_group()
            .vpc_id(vpc)
            .group_name(name)
            .description(description)
            .set_tag_specifications(spec)
            .send()
            .await
            .map_err(|e| sdk("ec2 CreateSecurityGroup", e))?;
        out.group_id().map(str::to_owned).ok_or_else(|| no_field("ec2 CreateSecurityGroup", "group id"))
    }

    async fn authorize(&self, group: &str, rules: &[IngressRule]) -> Result<()> {
        if rules.is_empty() {
            return Ok(());
        }
        self.ec2
            .authorize_security_group_ingress()
            .group_id(group)
            .set_ip_permissions(Some(permissions(rules)))
            .send()
            .await
            .map_err(|e| sdk("ec2 AuthorizeSecurityGroupIngress", e))?;
        Ok(())
    }

    async fn revoke(&self, group: &str, rules: &[IngressRule]) -> Result<()> {
        if rules.is_empty() {
            return Ok(());
        }
        self.ec2
            .revoke_security_group_ingress()
            .group_id(group)
            .set_ip_permissions(Some(permissions(rules)))
            .send()
            .await
            .map_err(|e| sdk("ec2 RevokeSecurityGroupIngress", e))?;
        Ok(())
    }
}
