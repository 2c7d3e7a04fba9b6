//! Where a switch runs its hook: blue/green `after_traffic`, once the switch made its cluster the only live one.

use crate::engine::runner::Op;
use crate::model::error::{Deploy, Internal, Result};
use crate::model::hook::{failed, HookContext, HookName};
use crate::model::pipeline::hooks::live_name;
use crate::steps::hooks::{run, warn};
use crate::model::pipeline::hooks::planned_for_switch;

/// The commit live before the switch being finished: the record's, written when the switch began. A resumed
/// rollout recomputes its plan from weights that already send traffic to the target, so the plan's `previous` can
/// be the target itself; the record is right in every path, the plan only when there is no record.
fn previous_of_switch(op: &Op<'_>, plan: &crate::ops::switch::SwitchPlan) -> String {
    let recorded = op.record().and_then(|r| match &r.action {
        crate::model::ledger::Action::Switch(d) => Some(d.previous.clone()),
        _ => None,
    });
    recorded.unwrap_or_else(|| plan.previous.clone()).map(|p| p.commit.to_string()).unwrap_or_default()
}

/// Blue/green `after_traffic`, after a switch that made `plan.cluster` the only live cluster. A failure sends the
/// traffic back to the weights from before the switch in one Route53 change (`rollback_on_hook_failure`, the
/// default here) and is a failed deploy recorded `rolled-back`; or it is a warning on the record.
pub async fn after_switch(op: &mut Op<'_>, plan: &crate::ops::switch::SwitchPlan) -> Result<()> {
    if planned_for_switch(op.env(), &plan.cluster, &plan.to).is_empty() {
        return Ok(());
    }
    let cluster = op.env().cluster(plan.cluster.as_str())?.clone();
    let lb = crate::observe::balancers::lb_dns(op.cloud(), &cluster.target).await;
    let instances = op.cloud().fleet.app_instances(&op.pipeline().app).await.unwrap_or_default();
    let instances = crate::observe::groups::serving_instances(op.cloud(), op.pipeline(), instances).await.unwrap_or_default();
    let mine = crate::observe::world::cluster_instances(&instances, op.env(), &cluster);
    let ctx = HookContext {
        app: plan.app.to_string(),
        env: plan.env.to_string(),
        cluster: plan.cluster.to_string(),
        commit: plan.commit.as_ref().map(|c| c.to_string()).unwrap_or_default(),
        previous_commit: previous_of_switch(op, plan),
        ami: mine.iter().map(|i| i.ami.clone()).find(|a| !a.is_empty()).unwrap_or_default(),
        release_id: op.record().map(|r| r.release_id.to_string()).unwrap_or_default(),
        live_name: live_name(op.env(), &lb),
        lb_dns: lb,
        instance_ids: mine.iter().filter(|i| i.state == crate::ports::InstanceState::Running).map(|i| i.id.to_string()).collect(),
    };
    let Some(r) = run(op, HookName::AfterTraffic, &ctx).await? else { return Ok(()) };
    if r.passed() {
        return Ok(());
    }
    let rollback = op.env().hooks.rollback_on_failure(true);
    warn(op, &r, rollback);
    if !rollback {
        return Ok(());
    }
    // A fresh look: the records hold the new weights now, and the change is computed against what they hold.
    let mut live = crate::observe::world::live_name(op.cloud(), op.env()).await?.ok_or_else(|| Internal::Invariant { what: "blue/green without dns".to_owned() })?;
    let comment = format!("release switch {} back to {} (hook after_traffic failed)", op.pipeline().app, plan.from);
    let err = match crate::steps::dns::flip(op, &mut live, &plan.from, &comment, crate::steps::dns::Way::Guarded, Some("Route53 has the change")).await {
        Ok(_) => {
            op.back_before_no_return();
            op.set_outcome(crate::model::ledger::Outcome::RolledBack);
            let back = Deploy::HookSwitchedBack { hook: r.name.to_string(), what: r.describe(), shares: plan.from.describe_shares() };
            if let Ok(rec) = op.record_mut() {
                rec.detail = Some(back.to_string());
            }
            failed(&r).retold(back).with_rolled_back(true)
        }
        Err(e) => failed(&r)
            .retold(Deploy::HookSwitchBackFailed { hook: r.name.to_string(), what: r.describe(), error: e.to_string(), env: plan.env.to_string() })
            .with_rolled_back(false),
    };
    let (release_id, hooks) = op.record().map(|rec| (rec.release_id.to_string(), rec.hooks.clone())).unwrap_or_default();
    Err(err.with_report(serde_json::json!({ "release_id": release_id, "hooks": hooks })))
}

