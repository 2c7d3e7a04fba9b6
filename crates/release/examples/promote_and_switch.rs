//! Promotes a baked commit to staging, then to prod's idle cluster, and sends prod's traffic to it: the tour of
//! the crate docs as a program. Against AWS, or local AWS with `AWS_ENDPOINT_URL=http://127.0.0.1:4566`:
//!
//!     cargo run --example promote_and_switch -- pipelines/hello.toml <full sha>

#[tokio::main]
async fn main() -> release::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, sha] = &args[..] else { panic!("usage: promote_and_switch PIPELINE_FILE SHA") };

    let app = release::App::builder(file).reporter(|line: &str| eprintln!("{line}")).connect().await?;
    app.env("staging")?.promote(sha).await?;
    let done = app.env("prod")?.promote(sha).await?;
    let switched = app.env("prod")?.switch_to(&done.cluster).await?;

    println!("prod: {} -> {} ({} runs {})", switched.plan.from.describe_shares(), switched.plan.to.describe_shares(), done.cluster, done.commit);
    Ok(())
}
