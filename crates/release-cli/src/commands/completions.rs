//! `release completions SHELL`: the shell's completion script, generated from the command line's own definition
//! so that it cannot drift from it.

use clap::CommandFactory;
use release::Result;

use crate::args::Cli;

pub fn run(shell: clap_complete::Shell) -> Result<()> {
    let mut script = Vec::new();
    // Into a buffer: clap_complete panics when stdout is a closed pipe (`release completions bash | head`).
    clap_complete::generate(shell, &mut Cli::command(), "release", &mut script);
    super::man::print(&script)
}
