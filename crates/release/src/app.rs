//! [`App`]: one pipeline connected to a cloud, and its builder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::engine::{Reporter, Session};
use crate::model::error::{Failure, Input, Internal, NotFound};
use crate::model::event::Event;
use crate::ports::Notifier;
use crate::model::ids::CommitSha;
use crate::model::pipeline::Pipeline;
use crate::notifier::{SinkNotifier, Tee};
use crate::ops::bake::{BakeContext, BakeOptions, BakeOutcome};
use crate::ops::gc;
use crate::reexport::adapters::{Aws, AwsOptions, GitWorkspace, LocalHooks, PackerBaker};
use crate::{CallCounter, Checkout, Env, Error, Release, Result};

/// How many events a slow subscriber may fall behind before it misses some (`RecvError::Lagged`).
const EVENT_BUFFER: usize = 1024;

/// One pipeline connected to a cloud: the entry point of the library. Cheap to clone (clones share the
/// connection, the call counter and the event channel).
#[derive(Clone)]
pub struct App {
    release: Release,
    region: String,
    endpoint_url: Option<String>,
    calls: Option<CallCounter>,
    events: broadcast::Sender<Event>,
}

/// How an [`App`] is built; [`App::builder`] starts one with the defaults of [`App::connect`].
pub struct AppBuilder {
    source: Source,
    region: Option<String>,
    profile: Option<String>,
    endpoint_url: Option<String>,
    reporter: Option<Arc<dyn Reporter>>,
    signals: bool,
    exit_when_idle: bool,
    poll: Option<Duration>,
    actor: Option<String>,
    caller_identity: bool,
    checkpoint: Option<Arc<dyn Fn(&str) -> Result<()> + Send + Sync>>,
}

enum Source {
    File(PathBuf),
    Loaded(Box<Pipeline>),
}

impl App {
    /// Loads the pipeline file `path` and connects to AWS with every default (see [`App::builder`]).
    pub async fn connect(path: impl AsRef<Path>) -> Result<App> {
        Self::builder(path).connect().await
    }

    /// A builder for the pipeline file `path`, with these defaults:
    /// - AWS: the standard config chain (environment, `AWS_PROFILE`, IMDS; `AWS_ENDPOINT_URL` for local AWS),
    ///   in the pipeline's `region` unless the chain or [`AppBuilder::region`] says otherwise;
    /// - the actor: CI's actor variable, the git user or the OS user ([`process::actor_name`](crate::process::actor_name)),
    ///   this host and process, and the AWS caller identity (one STS call);
    /// - the lifecycle hooks of `[env.NAME.hooks]` run as local commands; events go to the sinks of `[notify]`
    ///   and to [`App::subscribe`];
    /// - Ctrl-C and SIGTERM are handed to the running operation (the first stops it cleanly, as the command
    ///   does); while none runs they are only counted: the process does not exit on its own (see
    ///   [`AppBuilder::exit_when_idle`]);
    /// - progress lines go to `tracing` (info, target `release`); waits poll every 5 s (`RELEASE_POLL_SECONDS`).
    pub fn builder(path: impl AsRef<Path>) -> AppBuilder {
        AppBuilder::new(Source::File(path.as_ref().to_path_buf()))
    }

    /// [`App::builder`] for a pipeline already loaded (the `release` command loads its own, with its messages).
    pub fn builder_for(pipeline: Pipeline) -> AppBuilder {
        AppBuilder::new(Source::Loaded(Box::new(pipeline)))
    }

    /// An app over a session built by hand: the in-memory cloud of `release-testkit`, or any other [`Cloud`](crate::ports::Cloud).
    /// The session is used as it is (its notifier, hooks, signals, clock); only the event tee for
    /// [`App::subscribe`] is added in front of its notifier.
    pub fn from_parts(pipeline: Pipeline, mut session: Session) -> App {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        session.notifier = Arc::new(Tee { inner: session.notifier.clone(), events: events.clone() });
        let region = pipeline.region.clone().unwrap_or_default();
        App { release: Release::new(session, pipeline), region, endpoint_url: None, calls: None, events }
    }

    /// The handle on the environment `name`; a name the pipeline does not have is a not-found error naming the
    /// known ones (exit 3).
    pub fn env(&self, name: &str) -> Result<Env<'_>> {
        let env = self.release.pipeline.env(name)?;
        Ok(Env::new(self, env))
    }

    /// The handle on the environment that has the cluster `name`, and the cluster's name as the pipeline spells it.
    pub fn env_of_cluster(&self, name: &str) -> Result<Env<'_>> {
        let (env, _) = self.release.pipeline.cluster(name)?;
        Ok(Env::new(self, env))
    }

    /// A receiver of every [`Event`] of every operation this app (and its clones) runs from now on, whatever the
    /// sinks of `[notify]` take. A receiver that falls more than 1024 events behind loses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The engine's face for this pipeline: every operation of [`Env`], by environment name, plus the
    /// operations over the whole pipeline (status of all environments, history including environments no
    /// longer in the file, gc, the queues).
    pub fn release(&self) -> &Release {
        &self.release
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &Pipeline {
        &self.release.pipeline
    }

    /// The session: the cloud, the actor, progress, signals.
    pub fn session(&self) -> &Session {
        &self.release.session
    }

    /// The AWS region (the pipeline's for an app from [`App::from_parts`], empty when it names none).
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The endpoint override in force (local AWS), if any.
    pub fn endpoint_url(&self) -> Option<&str> {
        self.endpoint_url.as_deref()
    }

    /// The AWS calls made so far through this connection (shared by its clones and [`App::with_pipeline`]), by
    /// operation; empty for an app from [`App::from_parts`].
    pub fn api_calls(&self) -> BTreeMap<String, u64> {
        self.calls.as_ref().map(CallCounter::snapshot).unwrap_or_default()
    }

    /// Another pipeline on the same connection, session and event channel (several apps of one directory).
    pub fn with_pipeline(&self, pipeline: Pipeline) -> App {
        App { release: Release::new(self.release.session.clone(), pipeline), ..self.clone() }
    }

    /// The IAM policy `release` needs for this pipeline (`release iam-policy`).
    pub fn iam_policy(&self) -> serde_json::Value {
        crate::iam_policy(&self.release.pipeline)
    }

    /// A full sha for `rev`, resolved with git in the checkout holding the pipeline file (as a bake exports from
    /// it): `--pipeline` given from another directory resolves in the pipeline's repository, not the current
    /// directory's. A full sha git does not know (a shallow CI clone) is accepted only when it has an AMI
    /// (`in_checkout` false); anything else git does not know is not found.
    pub async fn resolve(&self, rev: &str) -> Result<Resolved> {
        use crate::ports::Workspace;
        let file = &self.pipeline().file;
        let dir = match file.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(d) => d.to_path_buf(),
            None => std::env::current_dir().map_err(|e| Error::from(Internal::System { what: "cannot read the current directory".into(), error: e.to_string() }))?,
        };
        let known = match GitWorkspace::discover(&dir) {
            Ok(ws) => ws.resolve(rev).await,
            // Outside a repository git knows no commit at all: not found, as an unknown one is.
            Err(e) => Err(match e.failure() {
                Failure::Input(Input::NotARepository { dir }) => NotFound::Repository { dir: dir.clone() }.into(),
                _ => e,
            }),
        };
        match (known, CommitSha::parse(rev)) {
            (Ok(sha), _) => Ok(Resolved { sha, in_checkout: true }),
            (Err(e), Ok(full)) => {
                let images = self.session().cloud.images.app_images(&self.pipeline().app).await?;
                if let Some(ami) = crate::observe::images::find_ami(&images, &full) {
                    // The promote that follows finds it here rather than describing the images again.
                    self.session().remember_ami(ami);
                    return Ok(Resolved { sha: full, in_checkout: false });
                }
                Err(Error::from(NotFound::CommitNowhere { rev: rev.to_owned() }).with_source(e))
            }
            (Err(e), Err(_)) => Err(e),
        }
    }

    /// Bakes the exported commit `checkout` into an AMI with Packer (building and testing it first), or reuses
    /// a complete bake with the same key unless `force`. Progress lines go to the app's reporter.
    pub async fn bake(&self, checkout: &Checkout, force: bool) -> Result<BakeOutcome> {
        let opts = BakeOptions { force, emulator_endpoint: self.endpoint_url.clone(), region: self.region.clone() };
        let baker = PackerBaker::default();
        let ctx = BakeContext { session: &self.release.session, workspace: &checkout.workspace, baker: &baker };
        crate::ops::bake::bake(&ctx, &checkout.pipeline, &checkout.export.dir, &checkout.sha, &opts).await
    }

    /// What `gc` with `opts` would decide for each of the app's images, with the images and instances it read:
    /// the view of `release images`. Writes nothing.
    pub async fn image_verdicts(&self, opts: &gc::GcOptions) -> Result<(gc::World, gc::Plan)> {
        let world = gc::observe(&self.release.session, &self.release.pipeline).await?;
        let plan = gc::plan_from(&self.release.pipeline, &world, opts);
        Ok((world, plan))
    }
}

/// A commit resolved by [`App::resolve`].
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The full sha.
    pub sha: CommitSha,
    /// Whether git knows it here (false: a full sha of a shallow clone, accepted because its AMI exists).
    pub in_checkout: bool,
}

/// What names a commit for [`Env`]'s operations: a full 40-character sha as `&str` or `String`, or a [`CommitSha`].
pub trait AsCommit {
    /// The commit, or an input error for what is not a full sha (resolve other revisions with [`App::resolve`]).
    fn as_commit(&self) -> Result<CommitSha>;
}

impl AsCommit for str {
    fn as_commit(&self) -> Result<CommitSha> {
        CommitSha::parse(self)
    }
}

impl AsCommit for String {
    fn as_commit(&self) -> Result<CommitSha> {
        CommitSha::parse(self)
    }
}

impl AsCommit for CommitSha {
    fn as_commit(&self) -> Result<CommitSha> {
        Ok(self.clone())
    }
}

impl<T: AsCommit + ?Sized> AsCommit for &T {
    fn as_commit(&self) -> Result<CommitSha> {
        (**self).as_commit()
    }
}

impl AppBuilder {
    fn new(source: Source) -> Self {
        Self {
            source,
            region: None,
            profile: None,
            endpoint_url: None,
            reporter: None,
            signals: true,
            exit_when_idle: false,
            poll: None,
            actor: None,
            caller_identity: true,
            checkpoint: None,
        }
    }

    /// The AWS region, over the config chain's and the pipeline's.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The AWS profile of the shared config files.
    pub fn profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }

    /// One endpoint for every AWS service (local AWS: `http://127.0.0.1:4566`); `AWS_ENDPOINT_URL` is
    /// honoured when this is not given.
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// [`AppBuilder::region`], [`AppBuilder::profile`] and [`AppBuilder::endpoint_url`] from options that may be
    /// absent (command-line flags).
    pub fn aws(mut self, region: Option<String>, profile: Option<String>, endpoint_url: Option<String>) -> Self {
        self.region = region.or(self.region);
        self.profile = profile.or(self.profile);
        self.endpoint_url = endpoint_url.or(self.endpoint_url);
        self
    }

    /// Where progress lines go (`promote: waiting for 2 instance(s) to be healthy ...`); a closure
    /// `|line: &str| ...` will do.
    pub fn reporter(mut self, reporter: impl Reporter + 'static) -> Self {
        self.reporter = Some(Arc::new(reporter));
        self
    }

    /// Whether Ctrl-C and SIGTERM are handed to the running operation (default true). Off, the process's own
    /// handling applies (by default the signal ends it wherever it is).
    pub fn handle_signals(mut self, on: bool) -> Self {
        self.signals = on;
        self
    }

    /// With signals handled: whether a signal that arrives while no operation runs ends the process at once
    /// (exit 130, `interrupted; nothing was changed` on stderr), as the `release` command does. Default false: a
    /// library does not exit its caller's process.
    pub fn exit_when_idle(mut self, on: bool) -> Self {
        self.exit_when_idle = on;
        self
    }

    /// How often waits poll AWS (default: `RELEASE_POLL_SECONDS`, else 5 s).
    pub fn poll(mut self, every: Duration) -> Self {
        self.poll = Some(every);
        self
    }

    /// The actor's name in locks, records and events (default: see [`App::builder`]).
    pub fn actor(mut self, name: impl Into<String>) -> Self {
        self.actor = Some(name.into());
        self
    }

    /// Whether to look up the AWS caller identity for the ledger's records (default true; one STS call).
    /// Turn it off for an app that only reads.
    pub fn caller_identity(mut self, on: bool) -> Self {
        self.caller_identity = on;
        self
    }

    /// Called at each step boundary with the step's name; an error stops the operation right there, as a crash
    /// would (crash tests).
    pub fn checkpoint(mut self, f: impl Fn(&str) -> Result<()> + Send + Sync + 'static) -> Self {
        self.checkpoint = Some(Arc::new(f));
        self
    }

    /// What `release iam-policy` prints: [`iam_policies`](crate::iam_policies), with `iam:PassRole` naming the
    /// role IAM says each instance profile holds (`GetInstanceProfile`, with this builder's AWS options; no call
    /// when the pipeline names no profile). A profile that cannot be looked up (no region, denied, missing, an
    /// endpoint without IAM) is noted in the [`ProfileRoles`](crate::ProfileRoles), never an error beyond the
    /// pipeline's own: the policy then names a role with the profile's name.
    pub async fn iam_policies(self) -> Result<(Vec<crate::IamPolicy>, crate::ProfileRoles)> {
        let pipeline = match self.source {
            Source::File(path) => crate::files::load(&path)?,
            Source::Loaded(p) => *p,
        };
        let roles = if crate::reexport::adapters::instance_profiles(&pipeline).is_empty() {
            crate::ProfileRoles::default()
        } else {
            let opts = AwsOptions { endpoint_url: self.endpoint_url, region: self.region.or_else(|| pipeline.region.clone()), profile: self.profile, credentials: None };
            match Aws::connect(&opts).await {
                Ok(aws) => aws.profile_roles(&pipeline).await,
                Err(e) => crate::ProfileRoles::unknown(&pipeline, &e.to_string()),
            }
        };
        Ok((crate::reexport::adapters::iam_policies_with(&pipeline, &roles), roles))
    }

    /// Loads the pipeline (for a file), connects to AWS and builds the session.
    pub async fn connect(self) -> Result<App> {
        let pipeline = match self.source {
            Source::File(path) => crate::files::load(&path)?,
            Source::Loaded(p) => *p,
        };
        let opts = AwsOptions { endpoint_url: self.endpoint_url, region: self.region.or_else(|| pipeline.region.clone()), profile: self.profile, credentials: None };
        let aws = Aws::connect(&opts).await?;
        let calls = aws.calls();
        let region = aws.region().to_owned();
        let endpoint_url = aws.endpoint_url().map(str::to_owned);
        let actor = crate::process::actor(&aws, self.actor, self.caller_identity).await?;
        let notifier: Arc<dyn Notifier> = Arc::new(SinkNotifier::new(aws.clone()));
        let mut session = Session::new(aws.cloud(), actor);
        session.cloud.clock = crate::process::clock(session.cloud.clock.clone());
        session.notifier = notifier;
        session.reporter = self.reporter.unwrap_or_else(|| Arc::new(|line: &str| tracing::info!(target: "release", "{line}")));
        if self.signals {
            session.signals = crate::process::signals(self.exit_when_idle);
        }
        if let Some(c) = self.checkpoint {
            session.checkpoint = c;
        }
        session.entropy = crate::process::entropy();
        session.poll = self.poll.unwrap_or_else(crate::process::default_poll);
        session.hooks = Arc::new(LocalHooks);
        session.holder_gone = Arc::new(crate::process::holder_gone);
        let mut app = App::from_parts(pipeline, session);
        app.region = region;
        app.endpoint_url = endpoint_url;
        app.calls = Some(calls);
        Ok(app)
    }
}
