//! Follows an operation through its events: subscribes, rolls an environment back one release, and prints every
//! event of it as it comes (the same events the sinks of `[notify]` get).
//!
//!     cargo run --example events -- pipelines/hello.toml prod

#[tokio::main]
async fn main() -> release::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, env] = &args[..] else { panic!("usage: events PIPELINE_FILE ENV") };
    let app = release::App::connect(file).await?;

    let mut events = app.subscribe();
    let printer = tokio::spawn(async move {
        while let Ok(e) = events.recv().await {
            println!("event {} {}", e.event.as_str(), e.headline());
        }
    });

    let report = app.env(env)?.rollback().await?;
    println!("rolled back to {} on {} (release {})", report.plan.to_commit, report.plan.cluster, report.release_id);
    // Every event of the rollback is in the channel once it returns; dropping the app (the last sender) lets the
    // printer end when it has printed them.
    drop(app);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), printer).await;
    Ok(())
}
