//! One module per command; each takes the parsed flags and the output, and returns its error to `main`.

mod bake;
mod completions;
mod gc;
mod gates;
mod dashboard;
mod history;
mod man;
mod notify;
mod promote;
mod queue;
mod provision;
mod rollback;
mod stages;
mod status;
mod switch;
mod unlock;
mod validate;
mod rollout;

use release::Result;

use crate::args::{Cli, Command, NotifyAction};
use crate::output::Output;

pub async fn run(cli: &Cli, out: &Output) -> Result<()> {
    let g = &cli.global;
    match &cli.command {
        Command::Validate => validate::run(g, out),
        Command::Provision { env, plan } => provision::run(g, out, env, *plan).await,
        Command::Build { sha } => stages::build(g, out, sha).await,
        Command::Test { sha } => stages::test(g, out, sha).await,
        Command::Bake { sha, force } => bake::run(g, out, sha, *force).await,
        Command::Images => bake::images(g, out).await,
        Command::Promote { sha, env, cluster, plan, batch, force, wait, override_gates, reason } => {
            let wait = queue::wait(wait.as_deref())?;
            let override_gates = gates::override_reason(*override_gates, reason.as_deref())?;
            promote::run(g, out, promote::Args { rev: sha, env, cluster: cluster.as_deref(), plan: *plan, batch: *batch, force: *force, wait, override_gates }).await
        }
        Command::Queue { env, action } => queue::run(g, out, env.as_deref(), action.as_ref()).await,
        Command::Unlock { env, force } => unlock::run(g, out, env, *force).await,
        Command::Notify { action: NotifyAction::Test { env } } => notify::test(g, out, env).await,
        Command::IamPolicy { offline } => {
            let pipeline = crate::context::load_pipeline(g)?;
            let (policies, roles) = if *offline {
                (release::iam_policies(&pipeline), release::ProfileRoles::unknown(&pipeline, "--offline"))
            } else {
                crate::context::builder(g, pipeline.clone()).iam_policies().await?
            };
            // Notes go to stderr, so that the documents on stdout stay what IAM takes.
            for note in &roles.notes {
                eprintln!("note: {note}");
            }
            let text = || {
                policies
                    .iter()
                    .map(|p| format!("// {}: {} of {} characters\n{}", p.name, p.characters, release::MANAGED_POLICY_LIMIT, serde_json::to_string_pretty(&p.document).unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            // `policy`, the whole document in one, stays for readers of the earlier output; IAM takes `policies`.
            let whole = release::iam_policy_with(&pipeline, &roles);
            let doc = serde_json::json!({ "ok": true, "app": pipeline.app, "policies": policies, "policy": whole, "pass_roles": roles.roles, "notes": roles.notes });
            out.result(&doc, text);
            Ok(())
        }
        Command::Switch { cluster, weight, steps, pause, plan, force, wait, override_gates, reason } => {
            let rollout = rollout::options(steps.as_deref(), pause.as_deref())?;
            let override_gates = gates::override_reason(*override_gates, reason.as_deref())?;
            switch::run(g, out, cluster, *weight, rollout, *plan, *force, queue::wait(wait.as_deref())?, override_gates).await
        }
        Command::Status { env } => status::run(g, out, env.as_deref()).await,
        Command::Rollback { env, plan, force, wait } => rollback::run(g, out, env, *plan, *force, queue::wait(wait.as_deref())?).await,
        Command::History { env, limit, outcome } => history::run(g, out, env.as_deref(), *limit, outcome.as_deref()).await,
        Command::Rollout { action } => rollout::run(g, out, action).await,
        Command::Reconcile { once, interval } => gates::reconcile(g, out, *once, interval).await,
        Command::Plan { env } => gates::plan(g, out, env.as_deref()).await,
        Command::Approve { sha, env, note } => gates::approve(g, out, sha, env, note.as_deref()).await,
        Command::Freeze { env, reason, until } => gates::freeze(g, out, env, reason, until.as_deref()).await,
        Command::Unfreeze { env } => gates::unfreeze(g, out, env).await,
        Command::Veto { sha, reason } => gates::veto(g, out, sha, reason).await,
        Command::Unveto { sha } => gates::unveto(g, out, sha).await,
        Command::Gc { plan, keep, older_than } => gc::run(g, out, *plan, *keep, older_than).await,
        Command::Dashboard { listen, interval, token } => {
            dashboard::run(g, out, dashboard::Args { listen, interval, token: token.as_deref() }).await
        }
        Command::Completions { shell } => completions::run(*shell),
        Command::Man { command } => man::run(command.as_deref()),
    }
}
