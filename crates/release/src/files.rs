//! Pipeline files as the `release` command loads them: one file, checked against the other files of its
//! `pipelines/` directory (a load balancer owned by two apps' clusters).

use std::path::{Path, PathBuf};

use crate::model::error::Input;
use crate::model::pipeline::{self, Pipeline};
use crate::{Error, Result};

/// Every pipeline file of the directory `file` is in (for checks across apps), `file` itself when alone.
pub fn siblings(file: &Path) -> Vec<PathBuf> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut files = if dir.file_name().is_some_and(|n| n == "pipelines") { pipeline::pipeline_files(dir).unwrap_or_default() } else { Vec::new() };
    if !files.iter().any(|f| f == file) {
        files.push(file.to_path_buf());
    }
    files
}

/// One pipeline file, checked against the other files of its directory too; its problems as one input error
/// (exit 2) with every diagnostic (`file:line:col: ...`) in its details.
pub fn load(file: &Path) -> Result<Pipeline> {
    let all = siblings(file);
    let result = pipeline::load_dir(&all).into_iter().find(|(f, _)| f == file).map(|(_, r)| r).unwrap_or_else(|| pipeline::load_file(file));
    result.map_err(|diags| {
        Error::from(Input::PipelineFile { file: file.to_path_buf(), problems: diags.len() })
        .with_details(diags.iter().map(ToString::to_string).collect())
    })
}
