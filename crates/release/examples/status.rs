//! Reads where every environment of a pipeline stands (what `release status` shows) and its last ledger
//! records. Reads only: no lock, no record, no caller-identity call.
//!
//!     cargo run --example status -- pipelines/hello.toml

#[tokio::main]
async fn main() -> release::Result<()> {
    let file = std::env::args().nth(1).unwrap_or_else(|| "pipelines/hello.toml".into());
    let app = release::App::builder(file).caller_identity(false).connect().await?;

    for env in &app.pipeline().envs {
        let env = app.env(env.name.as_str())?;
        let status = env.status().await?;
        for c in &status.clusters {
            let commit = c.commit.as_deref().map_or("-", |s| &s[..12]);
            println!("{} {} {} {}% {} {}/{} healthy", status.env, c.cluster, c.role, c.share.unwrap_or(0), commit, c.healthy, c.count);
        }
        if let Some(problem) = status.problem() {
            println!("{}: {}", status.env, problem.message());
        }
        for r in env.history(3).await? {
            let (from, to) = r.from_to();
            println!("{} ledger: {} {from} -> {to} {}", status.env, r.action_name(), r.outcome.as_str());
        }
    }
    Ok(())
}
