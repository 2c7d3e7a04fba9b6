//! Every path of the crates below the facade, in this one file: the rest of the facade (and the CLI) names them
//! only through the modules declared here, so that moving a module inside release-core means editing this file
//! alone.

/// Plain data of the domain: ids, time, errors, weights, ledger records, the pipeline and its parser, hook and
/// event types (release-core's ground floor, `release_core::model`).
pub mod model {
    pub use release_core::model::*;
}

/// The traits the engine drives (EC2, ELB, Route53, DynamoDB, ...) and the values crossing them; the in-memory
/// cloud of `release-testkit` and the AWS adapters implement them.
pub mod ports {
    pub use release_core::ports::*;
}

/// The machinery every operation runs in: the [`Session`](engine::Session) (cloud, actor, progress, signals), the
/// environment's lock, the queue in front of it, event delivery and the operation runner.
pub mod engine {
    pub use release_core::engine::*;
    pub use release_core::engine::session::{Reporter, Session, SignalSender, Signals};
}

/// Read-only views of the world (clusters, strays, load balancers, alarms, images).
pub mod observe {
    pub use release_core::observe::*;
}

/// The operations: their options, plans and reports. Each is run through [`App`](crate::App) /
/// [`Env`](crate::Env) (or [`Release`](crate::Release)); these modules hold their types.
pub mod ops {
    pub use release_core::engine::queue;
    pub use release_core::ops::promote::rollback;
    pub use release_core::ops::switch::rollout;
    pub use release_core::ops::*;
}

pub use release_core::model::error::exit;
pub use release_core::engine::lock::UnlockReport;
pub use release_core::{Error, ErrorKind, Release, Result};

pub use release_aws::CallCounter;

/// The adapters the facade wires in; not part of its public surface.
pub(crate) mod adapters {
    pub use release_aws::iam::{policy as iam_policy, policy_with as iam_policy_with};
    pub use release_aws::iam::{policies as iam_policies, policies_with as iam_policies_with, instance_profiles, NamedPolicy, ProfileRoles, MANAGED_POLICY_LIMIT};
    pub use release_aws::{Aws, AwsOptions};
    pub use release_notify::LocalSinks;
    pub use release_packer::{GitWorkspace, LocalHooks, PackerBaker};
}
