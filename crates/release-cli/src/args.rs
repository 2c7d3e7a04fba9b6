//! The command line (DESIGN §2). Global flags are accepted before or after the command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `release --version`: the version and the commit the binary was built from (build.rs).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("RELEASE_GIT_COMMIT"), ")");

#[derive(Parser, Debug)]
#[command(
    name = "release",
    version = VERSION,
    about = "Bake every commit into an AMI once, promote the same AMI through environments, flip production with Route53",
    long_about = "Bake every commit into an AMI once, promote the same AMI through environments, and flip \
production between two clusters with Route53. Pipelines live in pipelines/<app>.toml.\n\n\
Exit codes: 0 ok, 1 internal error, 2 bad input or config, 3 not found, 4 refused by a safety check, \
5 lock held (or lost), 6 AWS failure, 7 build/test/packer stage failed, 8 deploy failed, 130 interrupted."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Selects pipelines/NAME.toml; optional when there is only one pipeline
    #[arg(long, global = true, value_name = "NAME")]
    pub app: Option<String>,
    /// Use this pipeline file instead of pipelines/<app>.toml
    #[arg(long, global = true, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Send every AWS call to this endpoint (local AWS); AWS_ENDPOINT_URL is honoured too
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// AWS region; else the pipeline's `region`, else the AWS config chain (AWS_REGION, profile)
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// AWS profile from ~/.aws/config
    #[arg(long, global = true, value_name = "PROFILE")]
    pub profile: Option<String>,
    /// text for people, json for programs: one JSON document on stdout (errors too), logs on stderr
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// More logs on stderr (-v, -vv); RELEASE_LOG=<filter> overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Do not ask for confirmation (also implied when stdin is not a terminal)
    #[arg(long, global = true)]
    pub yes: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check every pipeline file; each problem is reported with file:line:col and a fix hint
    #[command(long_about = "Check every pipeline file; each problem is reported with file:line:col and a fix hint. \
        Also checks [env.NAME.hooks] (before_promote, before_traffic, after_traffic, hook_timeout, \
        rollback_on_hook_failure) and lists the hooks each environment runs.")]
    Validate,
    /// Create what an environment needs if missing: load balancers or target groups, DNS records, the ledger table
    Provision {
        /// The environment, as named under [env.NAME] in the pipeline
        #[arg(long)]
        env: String,
        /// Show what would be created and change nothing
        #[arg(long)]
        plan: bool,
    },
    /// Run the build stage on a clean export of a commit (never the dirty work tree)
    Build {
        /// The commit: a full or short sha, a branch or a tag
        sha: String,
    },
    /// Run the test stage on a clean export of a commit
    Test {
        /// The commit: a full or short sha, a branch or a tag
        sha: String,
    },
    /// Build, test and bake a commit into an AMI; a no-op when an AMI with the same bake key exists
    Bake {
        /// The commit: a full or short sha, a branch or a tag
        sha: String,
        /// Bake again even when an AMI with the same bake key exists (the old AMI is kept)
        #[arg(long)]
        force: bool,
    },
    /// The app's baked AMIs: commit, AMI, created, bake key, where each runs now
    Images,
    /// Deploy a baked commit to an environment (its only cluster, or the idle cluster of a blue/green environment)
    #[command(long_about = "Deploy a baked commit to an environment (its only cluster, or the idle cluster of a \
        blue/green environment). Runs the environment's hooks ([env.NAME.hooks], sh -c in the directory holding \
        pipelines/, RELEASE_* variables): before_promote before launching; before_traffic once the new fleet is up \
        and takes no traffic (a failure removes it, exit 8); in place, after_traffic after the swap.")]
    Promote {
        /// The commit: a full or short sha, a branch or a tag (it must be baked)
        sha: String,
        /// The environment, as named under [env.NAME]
        #[arg(long)]
        env: String,
        /// The cluster to replace; default: the only one, or the idle one (naming a live cluster is refused)
        #[arg(long, value_name = "CLUSTER")]
        cluster: Option<String>,
        /// Show what would be launched and retired, and change nothing
        #[arg(long)]
        plan: bool,
        /// Replace N instances at a time (launch N, wait healthy, retire N), so capacity never drops below count.
        /// In place with [env.NAME.rollout], each batch is then watched for its `pause` with its `alarms` (an alarm
        /// in ALARM stops the promote, exit 8; one already in ALARM refuses it before launching, exit 4)
        #[arg(long, value_name = "N")]
        batch: Option<u32>,
        /// Do not wait for a cluster that took live traffic less than `settle` ago (resolvers may still send it some)
        #[arg(long)]
        force: bool,
        /// Queue behind a held lock, in order of arrival, at most DUR (`--wait` alone: no limit; `--wait 0`: refuse
        /// at once, exit 5, as without the flag); Ctrl-C while waiting leaves the queue
        #[arg(long, value_name = "DUR", num_args = 0..=1, default_missing_value = "forever")]
        wait: Option<String>,
        /// Break glass: go through closed promotion gates (requires, soak, approvals, window, freeze, veto); the
        /// ledger record, `history` and the deploy event carry the override and --reason
        #[arg(long, requires = "reason")]
        override_gates: bool,
        /// Why the gates are overridden (with --override-gates; kept in the ledger)
        #[arg(long, value_name = "TEXT", requires = "override_gates")]
        reason: Option<String>,
    },
    /// Send live traffic to a cluster with one Route53 change
    #[command(long_about = "Send live traffic to a cluster with one Route53 change. Once the cluster takes all the \
        traffic, the environment's after_traffic hook runs ([env.NAME.hooks]); if it fails, the weights from before \
        the switch are restored in one more Route53 change (exit 8), unless rollback_on_hook_failure = false.")]
    Switch {
        /// The cluster to send traffic to (cluster names are unique in an app, so no --env)
        cluster: String,
        /// Send only PCT percent to the cluster, the rest to the cluster live now (a gradual shift)
        #[arg(long, value_name = "PCT")]
        weight: Option<u8>,
        /// A rollout in steps over [env.NAME.rollout]: the cluster's share at each step, e.g. 10,50,100 or
        /// 10,hold,100; each step is one Route53 change, watched for --pause (alarms, health) before the next
        #[arg(long, value_name = "STEPS", conflicts_with = "weight")]
        steps: Option<String>,
        /// How long each step of a rollout is watched before the next (e.g. 30s, 5m), over the file's `pause`
        #[arg(long, value_name = "DUR", conflicts_with = "weight")]
        pause: Option<String>,
        /// Show the weights before and after, and change nothing
        #[arg(long)]
        plan: bool,
        /// Switch even when the cluster is not fully healthy or serves strays (recorded as forced)
        #[arg(long)]
        force: bool,
        /// Queue behind a held lock, in order of arrival, at most DUR (`--wait` alone: no limit; `--wait 0`: refuse
        /// at once, exit 5, as without the flag); Ctrl-C while waiting leaves the queue
        #[arg(long, value_name = "DUR", num_args = 0..=1, default_missing_value = "forever")]
        wait: Option<String>,
        /// Break glass: go through closed promotion gates (requires, soak, approvals, window, freeze, veto); the
        /// ledger record, `history` and the deploy event carry the override and --reason
        #[arg(long, requires = "reason")]
        override_gates: bool,
        /// Why the gates are overridden (with --override-gates; kept in the ledger)
        #[arg(long, value_name = "TEXT", requires = "override_gates")]
        reason: Option<String>,
    },
    /// Per environment and cluster: live or idle (share of traffic), commit, AMI, healthy/count, strays, lock
    Status {
        /// Only this environment
        #[arg(long)]
        env: Option<String>,
    },
    /// One step back through what was live: the release before the current one (never a toggle)
    #[command(long_about = "One step back through what was live: the release before the current one (never a toggle).\n\n\
During a rollout (`switch` in steps): when a live run holds it (a pause or a hold), it is asked to go back and this \
waits (at most 2m) until it restored the weights from before the rollout; when its run died (its lease ran out, or \
its process is gone on this host), this restores those weights itself under the lock and closes the rollout \
`rolled-back`.")]
    Rollback {
        /// The environment
        #[arg(long)]
        env: String,
        /// Show where it would go, and change nothing
        #[arg(long)]
        plan: bool,
        /// When it must promote the previous release first: do not wait for a cluster that took live traffic less
        /// than `settle` ago (resolvers may still send it some); the ledger marks it forced
        #[arg(long)]
        force: bool,
        /// Queue behind a held lock, in order of arrival, at most DUR (`--wait` alone: no limit; `--wait 0`: refuse
        /// at once, exit 5, as without the flag); Ctrl-C while waiting leaves the queue
        #[arg(long, value_name = "DUR", num_args = 0..=1, default_missing_value = "forever")]
        wait: Option<String>,
    },
    /// The ledger: who, what, when, from -> to, outcome
    History {
        /// Only this environment (environments no longer in the pipeline file are accepted too)
        #[arg(long)]
        env: Option<String>,
        /// At most this many records, newest first
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Only records with this outcome (succeeded, failed, rolled-back, interrupted, abandoned, lost-lock, ...)
        #[arg(long)]
        outcome: Option<String>,
    },
    /// Print the least-privilege IAM policy release (and Packer) need for this pipeline; iam:PassRole names the
    /// role IAM says each instance profile holds (GetInstanceProfile)
    IamPolicy {
        /// Ask AWS nothing: iam:PassRole names a role with each instance profile's name (and says so)
        #[arg(long)]
        offline: bool,
    },
    /// The lock holder and the commands waiting for each environment's lock (`--wait`), in order; `queue cancel ID`
    /// removes a waiting command's ticket
    Queue {
        /// Only this environment
        #[arg(long)]
        env: Option<String>,
        #[command(subcommand)]
        action: Option<QueueAction>,
    },
    /// Deploy notifications: `notify test --env ENV` sends a test event to every sink of [notify]
    Notify {
        #[command(subcommand)]
        action: NotifyAction,
    },
    /// Break a lock whose holder stopped renewing it (prints who held it)
    Unlock {
        /// The environment
        #[arg(long)]
        env: String,
        /// Break it even though its holder is still renewing it (that holder then stops at its next step)
        #[arg(long)]
        force: bool,
    },
    /// Per environment: the live commit, the candidate (newest complete bake its `requires` allow) and every
    /// promotion gate with its state and reason (requires, soak, approvals, window, freeze, veto)
    Plan {
        /// Only this environment
        #[arg(long)]
        env: Option<String>,
    },
    /// The controller: for each environment with `auto = true`, promote the newest complete bake every gate lets
    /// through (blue/green: into the idle cluster, then a switch with the environment's rollout); never a commit
    /// rolled back from there, nor a vetoed one. One line per decision on stderr; SIGTERM stops it cleanly
    Reconcile {
        /// Run one cycle and exit (its decisions as the result)
        #[arg(long)]
        once: bool,
        /// How long between cycles (each reads the images once and the ledger once per environment); at least 1s
        #[arg(long, value_name = "DUR", default_value = "1m")]
        interval: String,
    },
    /// Approve a commit for an environment (its `approvals` gate counts distinct people; you count once)
    Approve {
        /// The commit: a full or short sha, a branch or a tag (it must be baked)
        sha: String,
        /// The environment the approval is for
        #[arg(long)]
        env: String,
        /// A note kept with the approval in the ledger
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },
    /// Freeze an environment: promote, switch and rollouts there are refused (exit 4) until unfrozen; rollback is not
    Freeze {
        /// The environment
        #[arg(long)]
        env: String,
        /// Why (shown to everyone the freeze refuses, and in the history)
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// End the freeze by itself then: RFC 3339 (2026-12-24T18:00:00Z), a wall time in a zone
        /// (2026-12-24T18:00[Europe/Lisbon]) or a duration from now (3d); default: until `unfreeze`
        #[arg(long, value_name = "WHEN")]
        until: Option<String>,
    },
    /// End the freeze of an environment
    Unfreeze {
        /// The environment
        #[arg(long)]
        env: String,
    },
    /// Veto a commit for the whole app: never promoted again anywhere, skipped by rollback's walk and by reconcile
    Veto {
        /// The commit: a full or short sha, a branch or a tag
        sha: String,
        /// Why (shown by `plan` and to every promote it refuses)
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Lift the veto on a commit
    Unveto {
        /// The commit: a full or short sha, a branch or a tag
        sha: String,
    },
    /// A rollout in steps (`switch` with [env.NAME.rollout] or --steps): `rollout status` shows the step, the time
    /// left, alarms and health; `rollout continue` goes past a "hold"
    Rollout {
        #[command(subcommand)]
        action: RolloutAction,
    },
    /// Remove old AMIs and their snapshots, incomplete bakes and orphan instances; never what runs or what rollback needs
    #[command(long_about = "Remove the app's AMIs (and their EBS snapshots) that nothing needs, incomplete bakes older \
than an hour, snapshots whose image is gone, and orphan instances; every decision with its reason.\n\n\
Kept: every image running in any cluster; per environment, the commit live now and the --keep releases before it \
in the ledger's history of what was live (the targets of the next --keep rollbacks); the newest complete bake of \
each of the --keep commits baked last; anything younger than --older-than; anything an unfinished operation refers \
to. Orphan instances (the app's, in no load balancer, of no cluster's current release, of no unfinished operation) \
are terminated only when confirmed on a terminal or with --yes.\n\n\
gc holds the lock of every environment of the app while it deletes (exit 5 when one is held), records what it \
removed in the ledger (never deleting from it), and a re-run after a crash finishes what was left. \
--app all collects every pipeline in pipelines/.")]
    Gc {
        /// Show what would be removed and kept, each with its reason, and change nothing
        #[arg(long)]
        plan: bool,
        /// Rollback targets kept per environment, and how many of the commits baked last keep their newest bake
        #[arg(long, value_name = "N", default_value_t = 3)]
        keep: u32,
        /// Keep every image younger than this (`14d`, `36h`, `0s`)
        #[arg(long, value_name = "DUR", default_value = "14d")]
        older_than: String,
    },
    /// A read-only web board of every app: environments, clusters, running deploys instance by instance, history
    #[command(long_about = "Serve a read-only web board of every app of the pipelines/ directory (or the one --app \
names): per environment and cluster live/idle with its share of traffic, commit, AMI, healthy/total, strays, the lock \
and queue; a running operation instance by instance; the history from the ledger; the images. Open /?tv=1 on a big \
screen. /api/status, /api/history, /api/images and /api/operation/APP/RELEASE return the same JSON documents as \
--output json of the commands; /api/events streams one event per poll; /api/health counts the AWS calls made.\n\n\
One poller reads AWS every --interval whatever the number of viewers. Nothing on the board changes AWS. The address \
is printed on stdout (with --listen 127.0.0.1:0 the port is chosen). Ctrl-C stops it.")]
    Dashboard {
        /// Where to listen; an address other than loopback needs --token
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        listen: String,
        /// How often the one poller reads AWS (every viewer sees the same snapshot); at least 1s
        #[arg(long, value_name = "DUR", default_value = "5s")]
        interval: String,
        /// Require this token on every request (Authorization: Bearer T, or ?token=T); at least 16 characters
        #[arg(long, value_name = "T", env = "RELEASE_DASHBOARD_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell
    #[command(long_about = "Print the completion script of a shell on stdout; it completes commands, flags and \
fixed values (--output, --queue ...). Needs no pipeline and makes no AWS call.\n\n\
Install: bash: `release completions bash > ~/.local/share/bash-completion/completions/release`; \
zsh: `release completions zsh > \"${fpath[1]}/_release\"`; fish: `release completions fish > ~/.config/fish/completions/release.fish`.")]
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the man page of release, or of one of its commands, as roff
    #[command(long_about = "Print a man page (roff) on stdout: release(1), or with a command name release-COMMAND(1). \
Needs no pipeline and makes no AWS call.\n\n\
Read one: `release man | man -l -`; install: `release man > /usr/local/share/man/man1/release.1`, and \
`release man promote > /usr/local/share/man/man1/release-promote.1` for each command.")]
    Man {
        /// A command (`promote`, `rollout status` is `rollout`); none for release(1) itself
        command: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum QueueAction {
    /// Remove a waiting command's ticket (its command then exits 5 without doing anything)
    Cancel {
        /// The ticket, as `release queue` lists it (r20261129T171442Z-ffbfe0)
        ticket: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum NotifyAction {
    /// Send a test event to every sink of [notify], whatever its `on` says: one attempt each, at most 5 s
    #[command(long_about = "Send a test event to every sink of the pipeline's [notify], whatever its `on` says, \
one attempt each with the same 5 s timeout as a deploy's deliveries; nothing is deployed or written to the ledger.\n\n\
The event is a `started` event of action `notify-test` for the environment (app, env, actor, host, link as a \
deploy's would be; no commit), so receivers can be checked end to end: webhook signatures (secret env:NAME or \
ssm:/path), Slack rendering, SNS subscriptions and filter policies, a command's handling of its stdin.\n\n\
Prints one line per sink (ok, or its error); --output json prints one document with a result per sink. \
Exit 0 when every sink took the event, 6 when any did not.")]
    Test {
        /// The environment the test event is about, as named under [env.NAME]
        #[arg(long)]
        env: String,
    },
}

/// `release rollout ...`.
#[derive(Debug, clap::Subcommand)]
pub enum RolloutAction {
    /// Where the environment's rollout stands: step, time left in its pause, alarms, the target's health, holder
    Status {
        /// The environment
        #[arg(long)]
        env: String,
    },
    /// Go past the "hold" of the environment's rollout (asks the run holding it; resumes it here when that run died)
    Continue {
        /// The environment
        #[arg(long)]
        env: String,
        /// When it resumes a rollout whose run died: queue behind a held lock, at most DUR (as `switch --wait`)
        #[arg(long, value_name = "DUR", num_args = 0..=1, default_missing_value = "forever")]
        wait: Option<String>,
    },
}
