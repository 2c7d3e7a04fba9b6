//! Route53: the Dns port. Record names are compared in lowercase with the trailing dot, as Route53 returns them.
//! Waiting for a change to be INSYNC is the engine's (through its clock); this only submits and asks.

use async_trait::async_trait;
use aws_sdk_route53::types::{AliasTarget, Change, ChangeAction, ChangeBatch, ChangeStatus as SdkStatus, ResourceRecordSet, RrType};
use release_core::ports::{ChangeId, ChangeStatus, Dns, ForeignRecord, RecordChange, RecordSet, WeightedAlias, Zone, ZoneId};
use release_core::model::error::Input;
use release_core::Result;

use crate::error::{build, no_field, sdk};
use crate::Aws;

fn normalize(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    if n.ends_with('.') {
        n
    } else {
        format!("{n}.")
    }
}

fn zone_id(id: &str) -> ZoneId {
    ZoneId(id.trim_start_matches("/hostedzone/").to_owned())
}

#[async_trait]
impl Dns for Aws {
    async fn find_zone(&self, zone: &str) -> Result<Option<ZoneId>> {
        let want = normalize(zone);
        // Zones are listed by name from `want` on: every zone of that name comes first, public and private alike.
        let mut public = Vec::new();
        let mut start: Option<(String, Option<String>)> = Some((want.clone(), None));
        'pages: while let Some((name, id)) = start.take() {
            let out = self
                .route53
                .list_hosted_zones_by_name()
                .dns_name(&name)
                .set_hosted_zone_id(id)
                .send()
                .await
                .map_err(|e| sdk("route53 ListHostedZonesByName", e))?;
            for z in out.hosted_zones() {
                if normalize(z.name()) != want {
                    break 'pages;
                }
                if !z.config().is_some_and(|c| c.private_zone()) {
                    public.push(zone_id(z.id()));
                }
            }
            if out.is_truncated() {
                if let Some(next) = out.next_dns_name() {
                    start = Some((next.to_owned(), out.next_hosted_zone_id().map(str::to_owned)));
                }
            }
        }
        match public.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.clone())),
            several => Err(Input::SeveralZones { name: want.to_string(), zones: several.iter().map(|z| z.0.clone()).collect() }.into()),
        }
    }

    async fn create_zone(&self, zone: &str) -> Result<Zone> {
        let reference = format!("release-{}-{}", normalize(zone), crate::SystemClock.now_millis());
        let out = self
            .route53
            .create_hosted_zone()
            .name(normalize(zone))
            .caller_reference(reference)
            .send()
            .await
            .map_err(|e| sdk("route53 CreateHostedZone", e))?;
        let id = out.hosted_zone().map(|z| zone_id(z.id())).ok_or_else(|| no_field("route53 CreateHostedZone", "zone"))?;
        let name_servers = out.delegation_set().map(|d| d.name_servers().to_vec()).unwrap_or_default();
        Ok(Zone { id, name_servers })
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
                        evaluate_target_health: alias.evaluate_target_health(),
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

    async fn submit(&self, zone: &ZoneId, changes: &[RecordChange], comment: &str) -> Result<ChangeId> {
        let mut batch = Vec::new();
        for c in changes {
            let (action, r) = match c {
                RecordChange::Upsert(r) => (ChangeAction::Upsert, r),
                RecordChange::Delete(r) => (ChangeAction::Delete, r),
            };
            let alias = build(
                "alias target",
                AliasTarget::builder().dns_name(&r.target_dns).hosted_zone_id(&r.target_zone_id).evaluate_target_health(r.evaluate_target_health).build(),
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
            batch.push(build("change", Change::builder().action(action).resource_record_set(rrs).build())?);
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
        let id = out.change_info().map(|i| i.id().to_owned()).ok_or_else(|| no_field("route53 ChangeResourceRecordSets", "change id"))?;
        Ok(ChangeId(id))
    }

    async fn change_status(&self, change: &ChangeId) -> Result<ChangeStatus> {
        let got = self.route53.get_change().id(&change.0).send().await.map_err(|e| sdk("route53 GetChange", e))?;
        Ok(match got.change_info().map(|c| c.status()) {
            Some(SdkStatus::Pending) => ChangeStatus::Pending,
            _ => ChangeStatus::InSync,
        })
    }
}
