//! The Baker port over `packer build -machine-readable`: progress from the `ui` lines, the AMI id from the
//! `artifact,0,id` line, the failure from the `error` lines.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use async_trait::async_trait;
use release_core::model::ids::AmiId;
use release_core::ports::{BakeRequest, Baker, ProgressFn};
use release_core::model::error::{Input, Internal, NotFound, Stage};
use release_core::{Error, Result};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::Tail;

/// How to run Packer; `PACKER` in the environment names another binary.
pub struct PackerBaker {
    program: PathBuf,
}

impl Default for PackerBaker {
    fn default() -> Self {
        Self { program: std::env::var_os("PACKER").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("packer")) }
    }
}

impl PackerBaker {
    pub fn new(program: PathBuf) -> Self {
        Self { program }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        // Never phone home, and never ask questions.
        cmd.env("CHECKPOINT_DISABLE", "1").env("PACKER_NO_COLOR", "1").stdin(Stdio::null());
        cmd
    }

    fn not_installed(&self, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::NotFound {
            NotFound::Packer { program: self.program.clone() }.into()
        } else {
            Internal::System { what: format!("cannot run {}", self.program.display()), error: e.to_string() }.into()
        }
    }

    /// `packer init`: since 1.10 the amazon plugin is not bundled, and `init` installs what `required_plugins` names.
    async fn init(&self, req: &BakeRequest, target: &Path, version: &str, progress: &ProgressFn) -> Result<()> {
        progress(&format!("packer: init {} (packer {version})", target.display()));
        let out = self.command().arg("init").arg(target).current_dir(&req.workdir).output().await.map_err(|e| self.not_installed(e))?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stderr).trim().to_owned() + String::from_utf8_lossy(&out.stdout).trim();
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("no error output").to_owned();
            return Err(Error::from(Stage::PackerInit { code: out.status.code().unwrap_or(-1), first })
                .with_details(text.lines().map(|l| format!("[packer] {l}")).collect()));
        }
        Ok(())
    }

    /// `packer build -machine-readable`: its `ui` lines as progress, the AMI from its `artifact` line, the failure
    /// from its `error` lines and stderr.
    async fn build(&self, req: &BakeRequest, target: &Path, progress: &ProgressFn) -> Result<AmiId> {
        let source = if req.emulator { "amazon-ebs.emulator" } else { "amazon-ebs.aws" };
        let mut cmd = self.command();
        cmd.arg("build").arg("-machine-readable").arg(format!("-only={source}"));
        for (k, v) in &req.vars {
            cmd.arg("-var").arg(format!("{k}={v}"));
        }
        cmd.arg(target).current_dir(&req.workdir).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| self.not_installed(e))?;
        let mut stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut stderr = BufReader::new(child.stderr.take().expect("piped")).lines();
        let mut ami = None;
        let mut errors = Tail::new(8);
        let (mut out_done, mut err_done) = (false, false);
        while !(out_done && err_done) {
            tokio::select! {
                line = stdout.next_line(), if !out_done => match line {
                    Ok(Some(l)) => read_machine_line(&l, &mut ami, &mut errors, progress),
                    _ => out_done = true,
                },
                line = stderr.next_line(), if !err_done => match line {
                    Ok(Some(l)) => errors.push(l),
                    _ => err_done = true,
                },
            }
        }
        let status = child.wait().await.map_err(|e| Error::from(Internal::System { what: "waiting for packer".into(), error: e.to_string() }))?;
        let errors = errors.into_vec();
        if !status.success() {
            let last = errors.last().map(|e| e.lines().next().unwrap_or("").to_owned()).unwrap_or_else(|| "no error output".into());
            return Err(Error::from(Stage::PackerBuild { code: status.code().unwrap_or(-1), last })
            .with_details(errors.iter().flat_map(|e| e.lines().map(|l| format!("[packer] {l}"))).collect()));
        }
        let ami = ami.ok_or_else(|| Error::from(Stage::PackerNoAmi { source: source.to_owned() }))?;
        AmiId::parse(&ami).map_err(|_| Stage::PackerBadAmi { given: ami.clone() }.into())
    }
}

/// One line of `-machine-readable` output: `timestamp,target,type,data...`.
#[derive(Debug, PartialEq, Eq)]
pub struct MachineLine {
    pub target: String,
    pub kind: String,
    pub data: Vec<String>,
}

/// Parses one line, undoing Packer's escapes (`%!(PACKER_COMMA)`, literal `\n`).
pub fn parse_machine_line(line: &str) -> Option<MachineLine> {
    let mut fields = line.split(',');
    let ts = fields.next()?;
    if ts.is_empty() || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let target = fields.next()?.to_owned();
    let kind = fields.next()?.to_owned();
    let data = fields.map(|f| f.replace("%!(PACKER_COMMA)", ",").replace("\\n", "\n")).collect();
    Some(MachineLine { target, kind, data })
}

/// The variables a template declares (`variable "name" {`), so that an undeclared one fails before Packer runs.
fn declared_variables(template: &str) -> BTreeSet<String> {
    template
        .lines()
        .filter_map(|l| l.trim().strip_prefix("variable"))
        .filter_map(|rest| rest.trim().strip_prefix('"'))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// Whether a Packer version reads plugins and `required_plugins` (1.7 and later): then the template's folder is
/// built as a whole, after `packer init`; 1.6 is handed the template file alone.
pub fn reads_plugins(version: &str) -> bool {
    let mut parts = version.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty()).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (1, 7)
}

/// The `.pkr.hcl` files Packer reads for `target`: the file, or every one in the folder.
fn template_files(target: &Path) -> Result<Vec<PathBuf>> {
    if target.is_file() {
        return Ok(vec![target.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(target)
        .map_err(|e| Error::from(Input::PackerTemplateDir { path: target.to_path_buf(), error: e.to_string() }))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".pkr.hcl"))
        .collect();
    files.sort();
    Ok(files)
}

/// Refuses a `[bake] vars` entry that the template (the `.pkr.hcl` files Packer reads for `target`) does not declare.
fn require_declared(req: &BakeRequest, target: &Path) -> Result<()> {
    let mut declared = BTreeSet::new();
    for file in template_files(target)? {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| Error::from(Input::PackerTemplate { path: file.clone(), error: e.to_string() }))?;
        declared.extend(declared_variables(&text));
    }
    if let Some(var) = req.vars.keys().find(|k| !declared.contains(*k)) {
        return Err(Input::PackerVariable { template: req.template.clone(), var: var.clone() }.into());
    }
    Ok(())
}

/// One line of `packer build -machine-readable` stdout: a `ui` line is progress (or an error), an `artifact` line
/// names the AMI, an `error` line is kept.
fn read_machine_line(l: &str, ami: &mut Option<String>, errors: &mut Tail, progress: &ProgressFn) {
    let Some(m) = parse_machine_line(l) else { return };
    match (m.kind.as_str(), m.data.as_slice()) {
        ("ui", [level, msg, ..]) => {
            let msg = msg.trim();
            if level == "error" {
                errors.push(msg.to_owned());
            } else if !msg.is_empty() {
                progress(&format!("packer: {}", msg.trim_start_matches("==> ")));
            }
        }
        ("artifact", [_, key, value, ..]) if key == "id" => {
            // `region:ami-...`, one per region.
            *ami = value.split(',').next().and_then(|v| v.rsplit(':').next()).map(str::to_owned);
        }
        ("error", [msg, ..]) => errors.push(msg.trim().to_owned()),
        _ => {}
    }
}

#[async_trait]
impl Baker for PackerBaker {
    async fn version(&self) -> Result<String> {
        let out = self.command().arg("version").output().await.map_err(|e| self.not_installed(e))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let first = text.lines().next().unwrap_or("").trim();
        match first.strip_prefix("Packer v") {
            Some(v) if out.status.success() => Ok(v.trim().to_owned()),
            _ => Err(NotFound::PackerVersion { program: self.program.clone(), said: first.to_owned() }.into()),
        }
    }

    async fn bake(&self, req: &BakeRequest, progress: &ProgressFn) -> Result<AmiId> {
        let version = self.version().await?;
        let modern = reads_plugins(&version);
        if !modern && !req.emulator {
            return Err(Input::PackerTooOld { version }.into());
        }
        // Packer 1.7+ builds the template's folder (the aws source lives beside app.pkr.hcl); 1.6 the file alone.
        let target = if modern { req.template.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")) } else { req.template.clone() };
        require_declared(req, &target)?;
        if modern {
            self.init(req, &target, &version, progress).await?;
        }
        self.build(req, &target, progress).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use release_core::ErrorKind;

    #[test]
    fn parses_artifact_and_escapes() {
        let l = parse_machine_line("1795320026,amazon-ebs.emulator,artifact,0,id,us-east-1:ami-2af30096aa2834469").unwrap();
        assert_eq!((l.target.as_str(), l.kind.as_str()), ("amazon-ebs.emulator", "artifact"));
        assert_eq!(l.data, ["0", "id", "us-east-1:ami-2af30096aa2834469"]);
        let ui = parse_machine_line("1795320026,,ui,say,No volumes to clean up%!(PACKER_COMMA) skipping").unwrap();
        assert_eq!(ui.data, ["say", "No volumes to clean up, skipping"]);
        assert!(parse_machine_line("not machine readable").is_none());
    }

    #[tokio::test]
    async fn packer_1_6_refuses_a_real_aws_bake_before_building_anything() {
        // Debian's 1.6.6 (the only Packer here); nothing is built, so nothing can reach AWS.
        let baker = PackerBaker::default();
        if baker.version().await.map(|v| reads_plugins(&v)).unwrap_or(true) {
            panic!("this test needs Packer 1.6 on PATH (make tools installs Debian's 1.6.6)");
        }
        let dir = std::env::temp_dir();
        let req = BakeRequest { template: dir.join("none.pkr.hcl"), workdir: dir, vars: Default::default(), emulator: false };
        let err = baker.bake(&req, &|_: &str| {}).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Input, "{err}");
        assert!(err.to_string().contains("needs Packer 1.7 or later"), "{err}");
    }

    #[test]
    fn plugins_are_read_from_1_7_on() {
        assert!(!reads_plugins("1.6.6"));
        assert!(reads_plugins("1.7.0"));
        assert!(reads_plugins("1.11.2"));
        assert!(reads_plugins("2.0.0-dev"));
        assert!(!reads_plugins("0.12.3"));
    }

    #[test]
    fn finds_declared_variables() {
        let vars = declared_variables("variable \"app\" {\n}\n  variable \"exec_start\" {\n locals {}");
        assert_eq!(vars.into_iter().collect::<Vec<_>>(), ["app", "exec_start"]);
    }
}
