//! `release dashboard [--listen ADDR] [--interval DUR] [--token T]`: a read-only web board of every app of the
//! `pipelines/` directory. One poller per process reads AWS every `--interval` and keeps the latest snapshot; every
//! viewer (page, `/api/...`, the event stream) reads that snapshot, so AWS calls per minute do not depend on how
//! many screens are watching. The documents are the CLI's own (`crate::documents`).

mod poller;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use release::model::clock::{format_duration, parse_duration};
use release::model::error::{Input, Internal};
use release::{App, Error, Result};

use crate::args::Global;
use crate::context;
use crate::output::Output;

/// What `release dashboard` was asked for.
pub struct Args<'a> {
    pub listen: &'a str,
    pub interval: &'a str,
    pub token: Option<&'a str>,
}

pub async fn run(g: &Global, out: &Output, args: Args<'_>) -> Result<()> {
    let addr: SocketAddr = args
        .listen
        .parse()
        .map_err(|_| Error::from(Input::Listen { given: args.listen.to_owned() }))?;
    let interval = parse_duration(args.interval).map_err(|why| Error::from(Input::Interval { given: args.interval.to_owned(), why }))?;
    if interval < Duration::from_secs(1) {
        return Err(Input::IntervalTooShort { given: args.interval.to_owned() }.into());
    }
    let token = args.token.map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
    if let Some(t) = &token {
        if t.len() < 16 {
            return Err(Input::TokenTooShort.into());
        }
    }
    // Anyone who can reach a non-loopback address can read the board: that needs a token.
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(Input::ListenUnprotected { addr: addr.to_string() }.into());
    }
    // Every pipeline of the directory (or the one --app/--pipeline names).
    let files = context::selected_files(g)?;
    let pipelines = files.iter().map(|f| context::load_file(f)).collect::<Result<Vec<_>>>()?;
    // Read-only: the actor is never written anywhere; the session only carries the cloud to the readers, and
    // judges a lock's holder as `release unlock` does (a dead one is shown dead). Ctrl-C ends the board.
    let first = context::builder(g, pipelines[0].clone()).actor("dashboard").caller_identity(false).handle_signals(false).connect().await?;
    let apps: Vec<App> = pipelines.into_iter().map(|p| first.with_pipeline(p)).collect();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::from(Input::CannotListen { addr: addr.to_string(), error: e.to_string() }))?;
    let bound = listener.local_addr().map_err(|e| Error::from(Internal::System { what: "cannot read the listening address".into(), error: e.to_string() }))?;
    let names: Vec<String> = apps.iter().map(|a| a.pipeline().app.to_string()).collect();
    let poller = poller::Poller::start(Arc::new(apps), first, interval);
    let url = format!("http://{bound}/");
    out.progress(format!(
        "dashboard: {} app(s) ({}) at {url}, reading AWS every {}{}; Ctrl-C stops it",
        names.len(),
        names.join(", "),
        format_duration(interval),
        if token.is_some() { "; requests need the token (Authorization: Bearer T, or ?token=T)" } else { "" }
    ));
    // The address first, on stdout (one line, or one JSON document), so that scripts can find a port chosen by :0.
    out.result(&serde_json::json!({ "ok": true, "url": url, "listen": bound.to_string(), "apps": names, "interval_seconds": interval.as_secs_f64() }), || url.clone());
    use std::io::Write;
    std::io::stdout().flush().ok();
    server::serve(listener, server::State::new(poller, token)).await
}
