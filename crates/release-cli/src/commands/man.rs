//! `release man [COMMAND]`: release(1), or release-COMMAND(1), as roff, generated from the command line's own
//! definition (every flag's help and long help) so that it cannot drift from it.

use clap::CommandFactory;
use release::model::error::{Input, Internal};
use release::{Error, Result};

use crate::args::Cli;

pub fn run(command: Option<&str>) -> Result<()> {
    let root = Cli::command();
    let page = match command {
        None => root,
        Some(name) => {
            let names: Vec<String> = root.get_subcommands().map(|c| c.get_name().to_owned()).collect();
            let Some(sub) = root.find_subcommand(name).cloned() else {
                return Err(Input::Command { given: name.to_owned(), known: names }.into());
            };
            // A page of its own, named release-COMMAND as git's are, with the global flags in it.
            // clap takes a 'static name; this process prints one page and exits.
            let page_name: &'static str = Box::leak(format!("release-{name}").into_boxed_str());
            sub.name(page_name).version(crate::args::VERSION)
        }
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page).render(&mut roff).map_err(|e| Error::from(Internal::System { what: "rendering the man page".into(), error: e.to_string() }))?;
    print(&roff)
}

/// Writes a generated document to stdout; a reader that stopped early (`| head`) is not an error.
pub(super) fn print(bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Internal::System { what: "writing to stdout".into(), error: e.to_string() }.into()),
        _ => Ok(()),
    }
}
