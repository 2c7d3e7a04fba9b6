//! Every path of the crates below the facade, in this one file: the rest of the facade (and the CLI) names them
//! only through the modules declared here, so that moving a module inside release-core means editing this file
//! alone.

/// Plain data of the domain: ids, time, errors, weights, ledger records, the pipeline and its parser, hook names
/// and deploy events.
pub mod model {
    pub use release_core::{clock, error, ids, ledger, pipeline, weights};
    /// Hook names and results (`[env.NAME.hooks]`).
    pub use release_core::hooks as hook;
    /// Deploy events and the [`Notifier`](release_core::notify::Notifier) port they cross.
    pub use release_core::notify as event;
}

/// The traits the engine drives (EC2, ELB, Route53, DynamoDB, ...) and the values crossing them; the in-memory
/// cloud of `release-testkit` and the AWS adapters implement them.
pub mod ports {
    pub use release_core::ports::*;
}

/// The machinery every operation runs in: the [`Session`](engine::Session) (cloud, actor, progress, signals), the
/// operation runner, and the queue in front of an environment's lock.
pub mod engine {
    pub use release_core::queue;
    pub use release_core::runner;
    pub use release_core::runner::{Reporter, Session, SignalSender, Signals};
}

/// Read-only views of the world (clusters, strays, instances terminated by hand).
pub mod observe {
    pub use release_core::world;
}

/// The operations: their options, plans and reports. Each is run through [`App`](crate::App) /
/// [`Env`](crate::Env) (or [`Release`](crate::Release)); these modules hold their types.
pub mod ops {
    pub use release_core::{bake, gc, promote, provision, rollback, rollout, status, switch};
    pub use release_core::queue;
}

pub use release_core::error::exit;
pub use release_core::{Error, ErrorKind, Release, Result, UnlockReport};

pub use release_aws::CallCounter;

/// The adapters the facade wires in; not part of its public surface.
pub(crate) mod adapters {
    pub use release_aws::iam::policy as iam_policy;
    pub use release_aws::{Aws, AwsOptions};
    pub use release_notify::LocalSinks;
    pub use release_packer::{GitWorkspace, LocalHooks, PackerBaker};
}
