//! EC2: the Fleet port.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, HttpTokensState, IamInstanceProfileSpecification, InstanceMetadataOptionsRequest, InstanceType,
    LocationType, ResourceType, Tag, TagSpecification, VolumeType,
};
use base64::Engine;
use release_core::model::ids::{AppName, InstanceId};
use release_core::ports::{tags, Fleet, Instance, InstanceState, LaunchSpec, Network, Subnet};
use release_core::model::error::{Cause, Input, NotFound};
use release_core::model::pipeline::MetadataTokens;
use release_core::{Error, Result};

use crate::error::sdk;
use crate::Aws;

fn instance(i: &aws_sdk_ec2::types::Instance) -> Option<Instance> {
    let id = i.instance_id().and_then(|id| InstanceId::parse(id).ok())?;
    let tags: BTreeMap<String, String> = i.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned()))).collect();
    Some(Instance {
        id,
        ami: i.image_id().unwrap_or("").to_owned(),
        state: i.state().and_then(|s| s.name()).map(|n| InstanceState::from_ec2(n.as_str())).unwrap_or(InstanceState::Pending),
        tags,
        zone: i.placement().and_then(|p| p.availability_zone()).unwrap_or("").to_owned(),
        subnet_id: i.subnet_id().unwrap_or("").to_owned(),
        vpc_id: i.vpc_id().unwrap_or("").to_owned(),
        groups: i.security_groups().iter().filter_map(|g| Some((g.group_name()?.to_owned(), g.group_id()?.to_owned()))).collect(),
    })
}

impl Aws {
    /// Every instance matching `ids` and `filters`, all pages.
    async fn describe_instances_by(&self, ids: Option<Vec<String>>, filters: Vec<Filter>) -> Result<Vec<Instance>> {
        let pages = self
            .ec2
            .describe_instances()
            .set_instance_ids(ids)
            .set_filters(Some(filters))
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| sdk("ec2 DescribeInstances", e))?;
        Ok(pages.iter().flat_map(|p| p.reservations()).flat_map(|r| r.instances()).filter_map(instance).collect())
    }
}

#[async_trait]
impl Fleet for Aws {
    async fn network(&self, subnets: &[String]) -> Result<Network> {
        // The default VPC's subnets are exactly the default-for-AZ ones: one call, no VPC lookup.
        let req = self.ec2.describe_subnets();
        let req = if subnets.is_empty() {
            req.filters(Filter::builder().name("default-for-az").values("true").build())
        } else {
            req.set_subnet_ids(Some(subnets.to_vec()))
        };
        let out = req.send().await.map_err(|e| {
            let err = sdk("ec2 DescribeSubnets", e);
            if err.is(Cause::Missing) {
                let mut e = Error::from(NotFound::Subnets { why: err.message().to_owned() }).with_cause(Cause::Missing);
                if let Some(code) = err.code() {
                    e = e.with_code(code);
                }
                e.with_source(err)
            } else {
                err
            }
        })?;
        let mut vpc_id = None;
        let mut found = Vec::new();
        for s in out.subnets() {
            let (Some(id), Some(az), Some(vpc)) = (s.subnet_id(), s.availability_zone(), s.vpc_id()) else { continue };
            match &vpc_id {
                None => vpc_id = Some(vpc.to_owned()),
                Some(v) if v != vpc => {
                    return Err(Input::SubnetsSpanVpcs { first: v.clone(), second: vpc.to_owned() }.into());
                }
                _ => {}
            }
            found.push(Subnet { id: id.to_owned(), availability_zone: az.to_owned() });
        }
        found.sort_by(|a, b| a.availability_zone.cmp(&b.availability_zone).then(a.id.cmp(&b.id)));
        let vpc_id = vpc_id.ok_or_else(|| Error::from(NotFound::DefaultSubnets))?;
        Ok(Network { vpc_id, subnets: found })
    }

    async fn app_instances(&self, app: &AppName) -> Result<Vec<Instance>> {
        // The state filter first: the emulator evaluates filters in order, and tags are its costly ones.
        self.describe_instances_by(None, vec![
            Filter::builder()
                .name("instance-state-name")
                .set_values(Some(["pending", "running", "stopping", "stopped"].map(String::from).to_vec()))
                .build(),
            Filter::builder().name(format!("tag:{}", tags::APP)).values(app.as_str()).build(),
        ])
        .await
    }

    async fn instances_in(&self, ids: &[InstanceId], states: &[&str]) -> Result<Vec<Instance>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(1000) {
            let mut page = self
                .describe_instances_by(
                    Some(chunk.iter().map(ToString::to_string).collect()),
                    vec![Filter::builder().name("instance-state-name").set_values(Some(states.iter().map(|s| s.to_string()).collect())).build()],
                )
                .await?;
            out.append(&mut page);
        }
        Ok(out)
    }

    async fn launch(&self, spec: &LaunchSpec) -> Result<Vec<InstanceId>> {
        let tags: Vec<Tag> = spec.tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
        // The instances, their volumes and their network interfaces carry the same tags (cost reports, SCPs).
        let tag_specs: Option<Vec<TagSpecification>> = (!tags.is_empty()).then(|| {
            [ResourceType::Instance, ResourceType::Volume, ResourceType::NetworkInterface]
                .into_iter()
                .map(|t| TagSpecification::builder().resource_type(t).set_tags(Some(tags.clone())).build())
                .collect()
        });
        // RunInstances wants user data base64-encoded, and the SDK does not do it.
        let user_data = base64::engine::general_purpose::STANDARD.encode(spec.user_data.as_bytes());
        let count = i32::try_from(spec.count).map_err(|_| Error::from(Input::LaunchCount { count: spec.count }))?;
        let tokens = match spec.metadata_tokens {
            MetadataTokens::Required => HttpTokensState::Required,
            MetadataTokens::Optional => HttpTokensState::Optional,
        };
        let root = spec.root_volume.as_ref().map(|(device, v)| {
            BlockDeviceMapping::builder()
                .device_name(device)
                .ebs(
                    EbsBlockDevice::builder()
                        .volume_size(i32::try_from(v.size_gb).unwrap_or(i32::MAX))
                        .volume_type(VolumeType::from(v.kind.as_str()))
                        .encrypted(v.encrypted)
                        .set_iops(v.iops.map(|n| i32::try_from(n).unwrap_or(i32::MAX)))
                        .set_throughput(v.throughput.map(|n| i32::try_from(n).unwrap_or(i32::MAX)))
                        .delete_on_termination(true)
                        .build(),
                )
                .build()
        });
        let out = self
            .ec2
            .run_instances()
            .image_id(spec.ami.as_str())
            .instance_type(InstanceType::from(spec.instance_type.as_str()))
            .min_count(count)
            .max_count(count)
            .subnet_id(&spec.subnet)
            .set_security_group_ids((!spec.security_groups.is_empty()).then(|| spec.security_groups.clone()))
            .user_data(user_data)
            .client_token(&spec.client_token)
            .set_tag_specifications(tag_specs)
            .set_iam_instance_profile(spec.instance_profile.as_ref().map(|p| IamInstanceProfileSpecification::builder().name(p).build()))
            .set_key_name(spec.key_name.clone())
            .metadata_options(InstanceMetadataOptionsRequest::builder().http_tokens(tokens).http_endpoint(aws_sdk_ec2::types::InstanceMetadataEndpointState::Enabled).build())
            .set_block_device_mappings(root.map(|r| vec![r]))
            .send()
            .await
            .map_err(|e| sdk("ec2 RunInstances", e))?;
        out.instances().iter().map(|i| InstanceId::parse(i.instance_id().unwrap_or(""))).collect::<Result<Vec<_>>>()
    }

    async fn offered_zones(&self, instance_type: &str) -> Result<BTreeSet<String>> {
        let pages = self
            .ec2
            .describe_instance_type_offerings()
            .location_type(LocationType::AvailabilityZone)
            .filters(Filter::builder().name("instance-type").values(instance_type).build())
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| sdk("ec2 DescribeInstanceTypeOfferings", e))?;
        Ok(pages.iter().flat_map(|p| p.instance_type_offerings()).filter_map(|o| o.location().map(str::to_owned)).collect())
    }

    async fn terminate(&self, ids: &[InstanceId]) -> Result<()> {
        for chunk in ids.chunks(1000) {
            self.ec2
                .terminate_instances()
                .set_instance_ids(Some(chunk.iter().map(ToString::to_string).collect()))
                .send()
                .await
                .map_err(|e| sdk("ec2 TerminateInstances", e))?;
        }
        Ok(())
    }

    async fn in_region(&self, region: &str) -> Result<std::sync::Arc<dyn Fleet>> {
        Ok(std::sync::Arc::new(self.regional(region)))
    }
}
