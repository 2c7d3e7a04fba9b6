//! A build, test or Packer stage ran and failed (exit 7).

use std::fmt;

/// Which stage failed, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// The build succeeded but left no artifact where `[build] artifact` says.
    NoArtifact {
        /// The artifact path from the pipeline file.
        artifact: String,
    },
    /// `packer init` failed (its output is the details).
    PackerInit {
        /// Its exit code (-1 for a signal).
        code: i32,
        /// The first line of its output.
        first: String,
    },
    /// `packer build` failed (its errors are the details).
    PackerBuild {
        /// Its exit code (-1 for a signal).
        code: i32,
        /// The first line of its last error.
        last: String,
    },
    /// `packer build` succeeded but named no AMI.
    PackerNoAmi {
        /// The build source it was asked to run.
        source: String,
    },
    /// `packer build` named something that is not an AMI id.
    PackerBadAmi {
        /// What it named.
        given: String,
    },
    /// A build or test stage's command failed (its last output is the details).
    Command {
        /// `build` or `test`.
        stage: String,
        /// The command.
        command: String,
        /// Its exit code; None when a signal ended it.
        code: Option<i32>,
    },
    /// The AMI Packer made ended in state `failed`.
    AmiFailed {
        /// The AMI.
        ami: String,
    },
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::NoArtifact { artifact } => {
                write!(f, "the build succeeded but did not write the artifact {artifact}; fix [build] artifact or the build")
            }
            Stage::PackerInit { code, first } => write!(f, "packer init failed (exit code {code}): {first}"),
            Stage::PackerBuild { code, last } => write!(f, "packer build failed (exit code {code}): {last}"),
            Stage::PackerNoAmi { source } => write!(f, "packer build succeeded but reported no AMI; does the template define source {source}?"),
            Stage::PackerBadAmi { given } => write!(f, "packer reported `{given}`, which is not an AMI id"),
            Stage::Command { stage, command, code } => {
                let code = code.map_or_else(|| "a signal".to_owned(), |c| format!("exit code {c}"));
                write!(f, "{stage} command `{command}` failed with {code}; its last output is above")
            }
            Stage::AmiFailed { ami } => write!(f, "{ami} ended in state failed; see the AMI's state reason in EC2"),
        }
    }
}
