//! The local side of a bake: [`GitWorkspace`] (resolve a commit, export exactly it, run the build and test
//! commands there) and [`PackerBaker`] (the Baker port over `packer build -machine-readable`); and
//! [`LocalHooks`], the HookRunner port (lifecycle hooks run with `sh -c` on this machine).

mod hooks;
mod packer;
mod workspace;

pub use hooks::LocalHooks;

pub use packer::{parse_machine_line, MachineLine, PackerBaker};
pub use workspace::GitWorkspace;

/// The last lines of a process's output, kept for the error message when it fails.
pub(crate) struct Tail {
    lines: std::collections::VecDeque<String>,
    keep: usize,
}

impl Tail {
    pub(crate) fn new(keep: usize) -> Self {
        Self { lines: Default::default(), keep }
    }

    pub(crate) fn push(&mut self, line: String) {
        if self.lines.len() == self.keep {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    pub(crate) fn into_vec(self) -> Vec<String> {
        self.lines.into()
    }
}
