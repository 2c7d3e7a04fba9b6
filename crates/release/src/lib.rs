//! `release` as a library: promote a baked commit, switch traffic, roll back and read the ledger from a Rust
//! program, with the same engine, the same lock and the same ledger as the `release` command (which is built on
//! this crate).
//!
//! # A tour
//!
//! **1. Connect.** [`App::connect`] loads a pipeline file (checked against the other files of its `pipelines/`
//! directory, as the command does) and connects to AWS through the standard config chain (environment, profile,
//! IMDS; `AWS_ENDPOINT_URL` points it at local AWS). The [`App`] comes with the real lifecycle-hooks runner, the
//! real notifier for the sinks of `[notify]`, Ctrl-C / SIGTERM handed to the engine, and a unique run id per
//! process. [`App::builder`] changes any of that: region, profile, endpoint, where progress lines go, ...
//!
//! ```no_run
//! # async fn tour() -> release::Result<()> {
//! let app = release::App::connect("pipelines/shop.toml").await?;
//! # Ok(()) }
//! ```
//!
//! **2. Promote, then switch.** [`App::env`] is a handle on one environment; unknown names fail as the command
//! does. A promote replaces the fleet of the environment's only cluster in place, or (blue/green) fills the idle
//! cluster, which [`Env::switch_to`] then makes live in one Route53 change.
//!
//! ```no_run
//! # async fn tour(app: release::App, sha: String) -> release::Result<()> {
//! let done = app.env("prod")?.promote(&sha).await?;
//! app.env("prod")?.switch_to(&done.cluster).await?;
//! # Ok(()) }
//! ```
//!
//! **3. Look before you leap.** Every operation that changes AWS has a `plan_*` twin that reads the world and
//! returns a plain value, writing nothing; options are plain structs (`..Default::default()`).
//!
//! ```no_run
//! # async fn tour(app: release::App, sha: String) -> release::Result<()> {
//! use release::ops::promote::PromoteOptions;
//! let prod = app.env("prod")?;
//! let opts = PromoteOptions { batch: Some(2), ..Default::default() };
//! let plan = prod.plan_promote_with(&sha, &opts).await?;
//! println!("{}", plan.summary);
//! prod.promote_with(&sha, &opts, Some(&plan)).await?; // refused if the idle cluster changed meanwhile
//! # Ok(()) }
//! ```
//!
//! **4. Read the world and the ledger.**
//!
//! ```no_run
//! # async fn tour(app: release::App) -> release::Result<()> {
//! let prod = app.env("prod")?;
//! for c in prod.status().await?.clusters {
//!     println!("{} {} {:?}% {}/{}", c.cluster, c.role, c.share, c.healthy, c.count);
//! }
//! for r in prod.history(10).await? {
//!     println!("{} {} {}", r.started, r.action_name(), r.outcome.as_str());
//! }
//! # Ok(()) }
//! ```
//!
//! **5. Follow what happens.** [`App::subscribe`] receives the [`Event`]s of every operation this `App` runs
//! (started, step, succeeded, failed, rolled back, ...), besides the sinks of `[notify]`.
//!
//! ```no_run
//! # async fn tour(app: release::App) -> release::Result<()> {
//! let mut events = app.subscribe();
//! tokio::spawn(async move {
//!     while let Ok(e) = events.recv().await {
//!         println!("{}", e.headline());
//!     }
//! });
//! app.env("prod")?.rollback().await?;
//! # Ok(()) }
//! ```
//!
//! The in-memory cloud of `release-testkit` drives the same API through [`App::from_parts`]; this doc test runs
//! a whole deploy on it:
//!
//! ```
//! use release::model::{ids::CommitSha, ledger::Actor, pipeline};
//! use release::ports::{tags, ImageState};
//! use release_testkit::memory::MemoryCloud;
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> release::Result<()> {
//! let text = "app = \"shop\"\n[build]\ncommand = \"make\"\nartifact = \"shop.tgz\"\n[bake]\ntemplate = \"app.pkr.hcl\"\n\
//!             base_ami = \"ami-0a1b2c3d4e5f60718\"\n[env.staging.clusters.staging]\nload_balancer = \"shop-staging\"\ncount = 2\n";
//! let pipeline = pipeline::parse("pipelines/shop.toml".as_ref(), ".".as_ref(), text, false).expect("valid");
//! let memory = MemoryCloud::new();
//! let actor = Actor { name: "doc".into(), caller: String::new(), host: "here".into(), pid: None };
//! let app = release::App::from_parts(pipeline, release::engine::Session::new(memory.cloud(), actor));
//! app.env("staging")?.provision().await?;
//! // A bake, as `release bake` leaves it: an image tagged with the app and the commit (the bake key last).
//! let sha = CommitSha::parse(&"a".repeat(40))?;
//! let ami = memory.register_image("shop-aaaaaaa", ImageState::Available);
//! let t = |k: &str, v: &str| (k.to_owned(), v.to_owned());
//! memory.cloud().images.tag(&ami, &[], &[t(tags::APP, "shop"), t(tags::COMMIT, sha.as_str()), t(tags::BAKE_KEY, "k")]).await?;
//! let done = app.env("staging")?.promote(&sha).await?;
//! assert_eq!(done.new_instances.len(), 2);
//! # Ok(()) }
//! ```
//!
//! Runnable programs against AWS (or the emulator: `AWS_ENDPOINT_URL=http://127.0.0.1:4566`) are in
//! `crates/release/examples/`: `promote_and_switch`, `status`, `events`, and `in_memory` on the in-memory cloud.
//!
//! # Errors, progress and Ctrl-C
//!
//! Every call returns [`Result`]. `{e}` is the one-line message (it says what to do, naming the `release` command
//! that does it); `{e:#}` adds the detail lines (a pipeline file's problems, the tail of a failed stage);
//! [`Error::exit_code`] is the documented code the command would exit with, and `e.kind()` what went wrong. A
//! `main` that returns `release::Result` exits 1; exit with `std::process::exit(e.exit_code())` to keep the codes.
//!
//! Progress lines (`launched 3 instances`, countdowns, what a Ctrl-C will do) go to the reporter: by default a
//! `tracing` event (target `release`, level INFO), so a program without a `tracing` subscriber shows none; set one
//! with [`AppBuilder::reporter`] (`|line: &str| eprintln!("{line}")`). Ctrl-C and SIGTERM are handed to the engine:
//! before the point of no return the first one puts the environment back; after it the first is acknowledged (a
//! progress line) and the work finishes, a second stops at once and a re-run finishes.
//!
//! A promote that finds the cluster already running the commit does nothing and returns
//! [`ops::promote::PromoteOutcome::Noop`] (no record, no release id); waiting for a held lock is
//! `PromoteOptions { wait: Wait::For(..), .. }` (the command's `--wait`); [`App::resolve`] turns `HEAD` or a short
//! sha into the full one.
//!
//! # Modules
//!
//! The engine's types are re-exported by layer: [`model`] (plain data: ids, the pipeline, ledger records,
//! weights, errors, events), [`ports`] (the traits the engine drives), [`engine`] (session, runner, queue),
//! [`observe`] (read-only views) and [`ops`] (each operation's options, plan and report). [`Error`] carries a
//! kind whose [`exit`] code the `release` command exits with.
#![deny(missing_docs)]

mod app;
mod checkout;
mod env;
pub mod files;
mod notifier;
pub mod process;
mod reexport;

pub use app::{App, AppBuilder, AsCommit, Resolved};
pub use checkout::Checkout;
pub use env::{Env, SinkTrial, TEST_ACTION};
pub use notifier::SinkNotifier;
pub use reexport::{engine, exit, model, observe, ops, ports};
pub use reexport::{CallCounter, Error, ErrorKind, Release, Result, UnlockReport};

/// A deploy event (re-exported from [`model::event`]).
pub use reexport::model::event::Event;
/// Whether and how long a command waits in an environment's queue (re-exported from [`engine::queue`]).
pub use reexport::engine::queue::Wait;

/// The IAM policy `release` needs for `pipeline` (`release iam-policy`); needs no connection.
pub fn iam_policy(pipeline: &model::pipeline::Pipeline) -> serde_json::Value {
    reexport::adapters::iam_policy(pipeline)
}

/// [`iam_policy`] with `iam:PassRole` naming the roles `roles` found (see [`AppBuilder::iam_policies`]).
pub fn iam_policy_with(pipeline: &model::pipeline::Pipeline, roles: &ProfileRoles) -> serde_json::Value {
    reexport::adapters::iam_policy_with(pipeline, roles)
}

/// One managed policy of [`iam_policies`]: suggested name, size as IAM counts it, document.
pub use reexport::adapters::NamedPolicy as IamPolicy;
/// The most characters (whitespace not counted) IAM takes in one managed policy.
pub use reexport::adapters::MANAGED_POLICY_LIMIT;

/// [`iam_policy`] split into as few managed policies as fit IAM's size limit (release's and Packer's statements
/// apart); what `release iam-policy` prints.
pub fn iam_policies(pipeline: &model::pipeline::Pipeline) -> Vec<IamPolicy> {
    reexport::adapters::iam_policies(pipeline)
}

/// The roles of a pipeline's instance profiles as IAM answered, and a note for each it could not look up (see
/// [`AppBuilder::iam_policies`]).
pub use reexport::adapters::ProfileRoles;
