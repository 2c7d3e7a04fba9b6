//! One module per command; each takes the parsed flags and the output, and returns its error to `main`.

mod bake;
mod promote;
mod provision;
mod stages;
mod switch;
mod validate;

use release_core::Result;

use crate::args::{Cli, Command};
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
        Command::Promote { sha, env, cluster, plan, batch } => {
            promote::run(g, out, sha, env, cluster.as_deref(), *plan, *batch).await
        }
        Command::Unlock { env } => promote::unlock(g, out, env).await,
        Command::IamPolicy => {
            let pipeline = crate::context::load_pipeline(g)?;
            let policy = release_aws::iam::policy(&pipeline);
            out.result(&serde_json::json!({ "ok": true, "app": pipeline.app, "policy": policy }), || {
                serde_json::to_string_pretty(&policy).unwrap_or_default()
            });
            Ok(())
        }
        Command::Switch { cluster, weight, plan, force } => switch::switch(g, out, cluster, *weight, *plan, *force).await,
        Command::Status { env } => switch::status(g, out, env.as_deref()).await,
        Command::Rollback { env } => switch::rollback(g, out, env).await,
        Command::History { env, limit } => switch::history(g, out, env.as_deref(), *limit).await,
    }
}
