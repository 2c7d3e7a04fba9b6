//! EC2 images: the Images port.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, Tag};
use release_core::model::ids::{AmiId, AppName};
use release_core::model::pipeline::BaseAmi;
use release_core::ports::{tags, Image, ImageReferences, ImageState, Images, Snapshot};
use release_core::model::error::{Cause, NotFound};
use release_core::Result;

use crate::error::sdk;
use crate::Aws;

fn image(img: &aws_sdk_ec2::types::Image) -> Option<Image> {
    let id = AmiId::parse(img.image_id()?).ok()?;
    let state = match img.state().map(|s| s.as_str()) {
        Some("available") => ImageState::Available,
        Some("pending") => ImageState::Pending,
        Some("failed") | Some("error") => ImageState::Failed,
        _ => ImageState::Other,
    };
    let tags: BTreeMap<String, String> =
        img.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned()))).collect();
    let snapshots = img.block_device_mappings().iter().filter_map(|b| b.ebs()?.snapshot_id().map(str::to_owned)).collect();
    Some(Image {
        id,
        name: img.name().unwrap_or("").to_owned(),
        state,
        created: img.creation_date().unwrap_or("").to_owned(),
        tags,
        snapshots,
        root_device: img.root_device_name().map(str::to_owned),
    })
}

impl Aws {
    async fn describe_images(&self, owners: &[String], filters: Vec<Filter>, ids: Option<Vec<String>>) -> Result<Vec<Image>> {
        let pages = self
            .ec2
            .describe_images()
            .set_owners((!owners.is_empty()).then(|| owners.to_vec()))
            .set_filters((!filters.is_empty()).then(|| filters.clone()))
            .set_image_ids(ids)
            .into_paginator()
            .send()
            .try_collect()
            .await;
        match pages {
            Ok(pages) => Ok(pages.iter().flat_map(|p| p.images()).filter_map(image).collect()),
            Err(e) => {
                let err = sdk("ec2 DescribeImages", e);
                // Asking for an id that does not exist (any more) is an empty answer, not a failure.
                if err.is(Cause::Missing) {
                    Ok(Vec::new())
                } else {
                    Err(err)
                }
            }
        }
    }
}

#[async_trait]
impl Images for Aws {
    async fn resolve_base(&self, base: &BaseAmi, owners: &[String]) -> Result<AmiId> {
        match base {
            BaseAmi::Id(id) => {
                let found = self.describe_images(&[], Vec::new(), Some(vec![id.to_string()])).await?;
                found.into_iter().next().map(|i| i.id).ok_or_else(|| {
                    NotFound::BaseAmi { id: id.to_string(), region: self.region.clone() }.into()
                })
            }
            BaseAmi::NameFilter(filter) => {
                let filters = vec![
                    Filter::builder().name("name").values(filter).build(),
                    Filter::builder().name("state").values("available").build(),
                ];
                let found = self.describe_images(owners, filters, None).await?;
                found.into_iter().max_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name))).map(|i| i.id).ok_or_else(|| {
                    NotFound::BaseAmiNamed { filter: filter.clone(), owners: owners.to_vec(), region: self.region.clone() }.into()
                })
            }
        }
    }

    async fn app_images(&self, app: &AppName) -> Result<Vec<Image>> {
        let filters = vec![Filter::builder().name(format!("tag:{}", tags::APP)).values(app.as_str()).build()];
        self.describe_images(&["self".to_owned()], filters, None).await
    }

    async fn by_name(&self, name: &str) -> Result<Option<Image>> {
        let filters = vec![Filter::builder().name("name").values(name).build()];
        Ok(self.describe_images(&["self".to_owned()], filters, None).await?.into_iter().find(|i| i.name == name))
    }

    async fn describe(&self, ami: &AmiId) -> Result<Option<Image>> {
        Ok(self.describe_images(&[], Vec::new(), Some(vec![ami.to_string()])).await?.into_iter().next())
    }

    async fn tag(&self, ami: &AmiId, snapshots: &[String], tags: &[(String, String)]) -> Result<()> {
        let mut resources = vec![ami.to_string()];
        resources.extend(snapshots.iter().cloned());
        let tags: Vec<Tag> = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
        self.ec2
            .create_tags()
            .set_resources(Some(resources))
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| sdk("ec2 CreateTags", e))?;
        Ok(())
    }

    async fn deregister(&self, ami: &AmiId) -> Result<()> {
        // EC2 deletes the snapshots the image's block device mappings name in the same call (none used by another
        // image), which closes the window where a crash leaves them; the caller's deletes then find them gone.
        self.ec2
            .deregister_image()
            .image_id(ami.as_str())
            .delete_associated_snapshots(true)
            .send()
            .await
            .map_err(|e| sdk("ec2 DeregisterImage", e))?;
        Ok(())
    }

    async fn delete_snapshot(&self, snapshot: &str) -> Result<()> {
        self.ec2.delete_snapshot().snapshot_id(snapshot).send().await.map_err(|e| sdk("ec2 DeleteSnapshot", e))?;
        Ok(())
    }

    async fn in_region(&self, region: &str) -> Result<std::sync::Arc<dyn Images>> {
        Ok(std::sync::Arc::new(self.regional(region)))
    }

    async fn app_snapshots(&self, app: &AppName) -> Result<Vec<Snapshot>> {
        let pages = self
            .ec2
            .describe_snapshots()
            .owner_ids("self")
            .filters(Filter::builder().name(format!("tag:{}", tags::APP)).values(app.as_str()).build())
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| sdk("ec2 DescribeSnapshots", e))?;
        Ok(pages
            .iter()
            .flat_map(|p| p.snapshots())
            .filter_map(|s| {
                Some(Snapshot {
                    id: s.snapshot_id()?.to_owned(),
                    tags: s.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned()))).collect(),
                    size_gb: s.volume_size().and_then(|v| u32::try_from(v).ok()),
                })
            })
            .collect())
    }

    async fn references(&self, amis: &[AmiId]) -> Result<ImageReferences> {
        if amis.is_empty() {
            return Ok(ImageReferences::Known(BTreeMap::new()));
        }
        let ids: Vec<String> = amis.iter().map(|a| a.to_string()).collect();
        // One attempt first, without retries: an endpoint without the operation (moto answers a bare HTTP 500) would
        // otherwise be asked six times with backoff. Anything else is asked again with the usual retries.
        let once = self
            .ec2
            .describe_image_references()
            .set_image_ids(Some(ids.clone()))
            .include_all_resource_types(true)
            .customize()
            .config_override(aws_sdk_ec2::config::Builder::default().retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled()))
            .send()
            .await;
        let first = match once {
            Ok(page) => page,
            Err(e) if crate::error::unimplemented(&e) => {
                return Ok(ImageReferences::Unknown(sdk("ec2 DescribeImageReferences", e).to_string()));
            }
            Err(_) => match self.ec2.describe_image_references().set_image_ids(Some(ids.clone())).include_all_resource_types(true).send().await {
                Ok(page) => page,
                Err(e) => {
                    let err = sdk("ec2 DescribeImageReferences", e);
                    return if err.is(Cause::UnknownOperation) { Ok(ImageReferences::Unknown(err.to_string())) } else { Err(err) };
                }
            },
        };
        let mut pages = vec![first];
        while let Some(token) = pages.last().and_then(|p| p.next_token()).map(str::to_owned) {
            let page = self
                .ec2
                .describe_image_references()
                .set_image_ids(Some(ids.clone()))
                .include_all_resource_types(true)
                .next_token(token)
                .send()
                .await
                .map_err(|e| sdk("ec2 DescribeImageReferences", e))?;
            pages.push(page);
        }
        let mut out: BTreeMap<AmiId, Vec<String>> = BTreeMap::new();
        for r in pages.iter().flat_map(|p| p.image_references()) {
            let Some(ami) = r.image_id().and_then(|i| AmiId::parse(i).ok()) else { continue };
            let kind = r.resource_type().map(|t| t.as_str().to_owned()).unwrap_or_else(|| "a resource".into());
            out.entry(ami).or_default().push(format!("{kind} {}", r.arn().unwrap_or("?")));
        }
        Ok(ImageReferences::Known(out))
    }
}
