//! One commit of the project's git repository, exported: what `release build`, `test` and `bake` work on. The
//! pipeline, the Packer template and the commands are read from the commit itself, never from the work tree.

use std::path::{Path, PathBuf};

use crate::model::error::{Input, NotFound};
use crate::model::ids::CommitSha;
use crate::model::pipeline::{self, Pipeline};
use crate::ports::{Export, Workspace};
use crate::reexport::adapters::GitWorkspace;
use crate::{Error, Result};

/// A commit exported from git, with the pipeline as that commit has it.
pub struct Checkout {
    pub(crate) workspace: GitWorkspace,
    /// The commit.
    pub sha: CommitSha,
    /// Where it was exported.
    pub export: Export,
    /// The pipeline file as the commit has it.
    pub pipeline: Pipeline,
}

impl Checkout {
    /// Exports the commit `rev` (a sha or anything git resolves) of the repository holding `pipeline_file`, and
    /// reads that file as the commit has it. `progress` hears `exported <sha> into <dir>`.
    pub async fn export(pipeline_file: &Path, rev: &str, progress: impl Fn(&str)) -> Result<Checkout> {
        let file = std::fs::canonicalize(pipeline_file).map_err(|e| Error::from(NotFound::File { path: pipeline_file.to_path_buf(), error: e.to_string() }))?;
        let workspace = GitWorkspace::discover(file.parent().unwrap_or(&file))?;
        let rel: PathBuf = file
            .strip_prefix(workspace.root())
            .map_err(|_| Error::from(Input::OutsideRepository { file: file.clone(), root: workspace.root().to_path_buf() }))?
            .to_path_buf();
        let sha = workspace.resolve(rev).await?;
        let export = workspace.export(&sha).await?;
        progress(&format!("exported {} into {}", sha.short(), export.dir.display()));
        let in_export = export.dir.join(&rel);
        if !in_export.is_file() {
            return Err(NotFound::FileAtCommit { path: rel, commit: sha.short().to_owned() }.into());
        }
        let pipeline = pipeline::load_for_bake(&in_export).map_err(|diags| {
            Error::from(Input::InvalidAtCommit { path: rel.clone(), commit: sha.short().to_owned() })
                .with_details(diags.iter().map(|d| d.to_string().replace(&export.dir.display().to_string(), "<commit>")).collect())
        })?;
        Ok(Checkout { workspace, sha, export, pipeline })
    }

    /// The exported tree.
    pub fn dir(&self) -> &Path {
        &self.export.dir
    }

    /// Runs a stage's command (`build`, `test`) in the exported tree.
    pub async fn run_stage(&self, name: &str, command: &str) -> Result<()> {
        self.workspace.run_stage(name, command, &self.export.dir).await
    }
}
