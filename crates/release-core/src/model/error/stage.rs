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
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::NoArtifact { artifact } => {
                write!(f, "the build succeeded but did not write the artifact {artifact}; fix [build] artifact or the build")
            }
        }
    }
}
