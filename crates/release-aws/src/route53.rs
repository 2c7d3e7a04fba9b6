//! Route53: the Dns port. Record names are compared in lowercase with the trailing dot, as Route53 returns them.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_route53::types::{AliasTarget, Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecordSet, RrType};
use release_core::ports::{Dns, ForeignRecord, RecordChange, RecordSet, WeightedAlias, ZoneId};
use release_core::{Error, Result};

use crate::error::{build, sdk};
use crate::Aws;

fn normalize(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    if n.ends_with('.') { n } else { format!("{n}.") }
}

#[async_trait]
impl Dns for Aws {
    async fn find_zone(&self, zone: &str) -> Result<Option<ZoneId>> {
        let want = normalize(zone);
        let out = self
            .route53
            .list_hosted_zones_by_name()
            .dns_name(&want)
            .max_items(1)
            .send()
            .await
            .map_err(|e| sdk("route53 ListHostedZonesByName", e))?;
        Ok(out
            .hosted_zones()
            .iter()
            .find(|z| normalize(z.name()) == want && !z.config().is_some_and(|c| c.private_zone()))
            .map(|z| ZoneId(z.id().trim_start_matches("/hostedzone/").to_owned())))
    }

    async fn create_zone(&self, zone: &str) -> Result<ZoneId> {
        let reference = format!("release-{}-{}", normalize(zone), crate::SystemClock.now_millis());
        let out = self
            .route53
            .create_hosted_zone()
            .name(normalize(zone))
            .caller_reference(reference)
            .send()
            .await
            .map_err(|e| sdk("route53 CreateHostedZone", e))?;
        let id = out.hosted_zone().map(|z| z.id().trim_start_matches("/hostedzone/").to_owned());
        id.map(ZoneId).ok_or_else(|| Error::aws("route53 CreateHostedZone returned no zone"))
    }

    async fn records(&self, zone: &ZoneId, name: &str) -> Result<RecordSet> {
        let want = normalize(name);
        let mut set = RecordSet { weighted: Vec::new(), foreign: Vec::new() };
        let mut start: Option<(String, RrType, Option<String>)> = Some((want.clone(), RrType::A, None));
        while let Some((start_name, start_type, start_id)) = start.take() {
            let page = self
                .route53
                .list_resource_record_sets()
                .hosted_zone_id(&zone.0)
                .start_record_name(start_name)
                .start_record_type(start_type)
                .set_start_record_identifier(start_id)
                .send()
                .await
                .map_err(|e| sdk("route53 ListResourceRecordSets", e))?;
            let mut past = false;
            for rr in page.resource_record_sets() {
                if normalize(rr.name()) != want {
                    past = true;
                    break;
                }
                if !matches!(rr.r#type(), RrType::A | RrType::Aaaa | RrType::Cname) {
                    continue;
                }
                match (rr.set_identifier(), rr.weight(), rr.alias_target()) {
                    (Some(id), Some(w), Some(alias)) if *rr.r#type() == RrType::A => set.weighted.push(WeightedAlias {
                        name: want.clone(),
                        set_identifier: id.to_owned(),
                        weight: w.clamp(0, 255) as u8,
                        target_dns: alias.dns_name().to_owned(),
                        target_zone_id: alias.hosted_zone_id().to_owned(),
                    }),
                    _ => set.foreign.push(ForeignRecord { name: want.clone(), record_type: rr.r#type().as_str().to_owned() }),
                }
            }
            if !past && page.is_truncated() {
                if let (Some(n), Some(t)) = (page.next_record_name(), page.next_record_type()) {
                    start = Some((n.to_owned(), t.clone(), page.next_record_identifier().map(str::to_owned)));
                }
            }
        }
        Ok(set)
    }

    async fn apply(&self, zone: &ZoneId, changes: &[RecordChange], comment: &str) -> Result<()> {
        let mut batch = Vec::new();
        for c in changes {
            let RecordChange::Upsert(r) = c;
            let alias = build(
                "alias target",
                AliasTarget::builder()
                    .dns_name(&r.target_dns)
                    .hosted_zone_id(&r.target_zone_id)
                    .evaluate_target_health(true)
                    .build(),
            )?;
            let rrs = build(
                "record set",
                ResourceRecordSet::builder()
                    .name(&r.name)
                    .r#type(RrType::A)
                    .set_identifier(&r.set_identifier)
                    .weight(i64::from(r.weight))
                    .alias_target(alias)
                    .build(),
            )?;
            batch.push(build("change", Change::builder().action(ChangeAction::Upsert).resource_record_set(rrs).build())?);
        }
        let batch = build("change batch", ChangeBatch::builder().comment(comment).set_changes(Some(batch)).build())?;
        let out = self
            .route53
            .change_resource_record_sets()
            .hosted_zone_id(&zone.0)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| sdk("route53 ChangeResourceRecordSets", e))?;
        let Some(info) = out.change_info() else { return Ok(()) };
        let mut status = info.status().clone();
        let id = info.id().to_owned();
        let mut waited = Duration::ZERO;
        while status != ChangeStatus::Insync {
            if waited > Duration::from_secs(300) {
                return Err(Error::aws(format!("route53 change {id} not in sync after 5 minutes")));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            waited += Duration::from_secs(2);
            let got = self.route53.get_change().id(&id).send().await.map_err(|e| sdk("route53 GetChange", e))?;
            status = got.change_info().map(|c| c.status().clone()).unwrap_or(ChangeStatus::Insync);
        }
        Ok(())
    }
}
