//! The command line (DESIGN §2). Global flags are accepted before or after the command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "release",
    version,
    about = "Bake every commit into an AMI once, promote the same AMI through environments, flip production with Route53",
    long_about = "Bake every commit into an AMI once, promote the same AMI through environments, and flip \
production between two clusters with Route53. Pipelines live in pipelines/<app>.toml.\n\n\
Exit codes: 0 ok, 1 internal error, 2 bad input or config, 3 not found, 4 refused by a safety check, \
5 lock held, 6 AWS failure, 7 build/test/packer stage failed, 8 deploy failed and was rolled back, \
130 interrupted."
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
    /// text for people, json for programs: one JSON document on stdout, logs on stderr
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
    Build { sha: String },
    /// Run the test stage on a clean export of a commit
    Test { sha: String },
    /// Build, test and bake a commit into an AMI; a no-op when an AMI with the same bake key exists
    Bake {
        sha: String,
        /// Bake again even when an AMI with the same bake key exists
        #[arg(long)]
        force: bool,
    },
    /// The app's baked AMIs: commit, AMI, created, bake key, where each runs now
    Images,
    /// Deploy a baked commit to an environment (the idle cluster of a blue/green environment)
    Promote {
        sha: String,
        #[arg(long)]
        env: String,
        #[arg(long)]
        cluster: Option<String>,
        #[arg(long)]
        plan: bool,
        #[arg(long, value_name = "N")]
        batch: Option<u32>,
    },
    /// Send live traffic to a cluster with one Route53 change
    Switch {
        cluster: String,
        #[arg(long, value_name = "PCT")]
        weight: Option<u8>,
        #[arg(long)]
        plan: bool,
        #[arg(long)]
        force: bool,
    },
    /// Per environment and cluster: live or idle, commit, AMI, instances healthy/total
    Status {
        #[arg(long)]
        env: Option<String>,
    },
    /// Back to the previous live release
    Rollback {
        #[arg(long)]
        env: String,
    },
    /// The ledger: who, what, when, from -> to, outcome
    History {
        #[arg(long)]
        env: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Print the least-privilege IAM policy release (and Packer) need for this pipeline
    IamPolicy,
    /// Break a stale lock (prints who held it)
    Unlock {
        #[arg(long)]
        env: String,
    },
}
