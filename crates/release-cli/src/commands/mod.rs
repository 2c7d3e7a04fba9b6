//! One module per command; each takes the parsed flags and the output, and returns its error to `main`.

mod bake;
mod promote;
mod provision;
mod stages;
mod validate;

use release_core::{Error, ErrorKind, Result};

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
        Command::Switch { .. } => not_built("switch", 5),
        Command::Status { .. } => not_built("status", 5),
        Command::Rollback { .. } => not_built("rollback", 5),
        Command::History { .. } => not_built("history", 5),
    }
}

/// Commands of the design that this version does not have yet: say so plainly, change nothing.
fn not_built(command: &str, issue: u32) -> Result<()> {
    Err(Error::new(
        ErrorKind::NotImplemented,
        format!("`release {command}` is not implemented in this version yet (tracked in issue {issue}); nothing was changed"),
    ))
}
