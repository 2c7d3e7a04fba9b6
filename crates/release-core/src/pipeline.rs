//! Pipeline files (`pipelines/<app>.toml`, DESIGN §3): parsed with spans so that every problem is reported at its
//! file:line:col with a fix hint, all of them at once rather than the first only.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use toml_edit::{ImDocument, Item, Table, TableLike};

use crate::clock::{format_duration, parse_duration};
use crate::error::{Error, ErrorKind};
use crate::ids::{is_slug, AmiId, AppName, ClusterName, EnvName};

pub const DEFAULT_LEDGER_TABLE: &str = "release-ledger";
pub const MAX_COUNT: i64 = 1000;
const HEALTH_TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(6 * 3600));
const DRAIN_RANGE: (Duration, Duration) = (Duration::ZERO, Duration::from_secs(3600));

/// One problem in a pipeline file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.col, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "; fix: {hint}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pipeline {
    /// The file this was read from.
    pub file: PathBuf,
    /// Relative paths in the file (template, artifact) are relative to this directory: the one holding `pipelines/`.
    pub root: PathBuf,
    pub app: AppName,
    pub region: Option<String>,
    /// The DynamoDB table holding the ledger and the locks; `release-ledger` unless set.
    pub ledger_table: String,
    pub build: BuildStage,
    pub test: Option<TestStage>,
    pub bake: BakeSpec,
    pub deploy: DeploySettings,
    pub envs: Vec<Environment>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BuildStage {
    pub command: String,
    pub artifact: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TestStage {
    pub command: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum BaseAmi {
    Id(AmiId),
    NameFilter(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BakeSpec {
    pub template: String,
    pub base_ami: BaseAmi,
    pub base_owners: Vec<String>,
    pub instance_type: String,
    pub vars: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeploySettings {
    pub instance_type: String,
    #[serde(serialize_with = "ser_duration")]
    pub health_timeout: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub drain: Duration,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    /// The port the service listens on; load balancers forward to it and health-check it.
    pub port: u16,
    /// The HTTP path the load balancer health-checks.
    pub health_path: String,
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

impl Default for DeploySettings {
    fn default() -> Self {
        Self {
            instance_type: "t3.micro".into(),
            health_timeout: Duration::from_secs(600),
            drain: Duration::from_secs(30),
            subnets: Vec::new(),
            security_groups: Vec::new(),
            port: 8080,
            health_path: "/health".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Environment {
    pub name: EnvName,
    pub vars: BTreeMap<String, String>,
    pub dns: Option<DnsSettings>,
    pub clusters: Vec<Cluster>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DnsSettings {
    pub zone: String,
    pub record: String,
    pub ttl: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cluster {
    pub name: ClusterName,
    pub target: LbTarget,
    pub count: u32,
    /// `[deploy]` with this cluster's overrides applied.
    pub deploy: DeploySettings,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "kebab-case")]
pub enum LbTarget {
    /// A classic ELB, by name.
    ClassicElb(String),
    /// An ELBv2 target group, by name (provision creates an ALB and listener of the same name in front of it).
    TargetGroup(String),
}

impl LbTarget {
    pub fn name(&self) -> &str {
        match self {
            LbTarget::ClassicElb(n) | LbTarget::TargetGroup(n) => n,
        }
    }
}

impl fmt::Display for LbTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LbTarget::ClassicElb(n) => write!(f, "load balancer {n}"),
            LbTarget::TargetGroup(n) => write!(f, "target group {n}"),
        }
    }
}

impl Pipeline {
    pub fn env(&self, name: &str) -> Result<&Environment, Error> {
        self.envs.iter().find(|e| e.name.as_str() == name).ok_or_else(|| {
            let known: Vec<&str> = self.envs.iter().map(|e| e.name.as_str()).collect();
            Error::new(
                ErrorKind::NotFound,
                format!("no environment `{name}` in {}; known: {}", self.file.display(), known.join(", ")),
            )
        })
    }

    /// The environment owning a cluster; cluster names are unique within an app.
    pub fn cluster(&self, name: &str) -> Result<(&Environment, &Cluster), Error> {
        self.envs
            .iter()
            .flat_map(|e| e.clusters.iter().map(move |c| (e, c)))
            .find(|(_, c)| c.name.as_str() == name)
            .ok_or_else(|| {
                let known: Vec<&str> =
                    self.envs.iter().flat_map(|e| e.clusters.iter().map(|c| c.name.as_str())).collect();
                Error::new(
                    ErrorKind::NotFound,
                    format!("no cluster `{name}` in {}; known: {}", self.file.display(), known.join(", ")),
                )
            })
    }

}

/// The project root for a pipeline file: the parent of its `pipelines/` directory, else the file's own directory.
pub fn project_root(file: &Path) -> PathBuf {
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
    if dir.file_name().is_some_and(|n| n == "pipelines") {
        match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    } else {
        dir
    }
}

/// Reads and validates one pipeline file. Relative paths are checked against [`project_root`].
pub fn load_file(file: &Path) -> Result<Pipeline, Vec<Diagnostic>> {
    let src = std::fs::read_to_string(file).map_err(|e| {
        vec![Diagnostic {
            file: file.to_path_buf(),
            line: 1,
            col: 1,
            message: format!("cannot read the pipeline file: {e}"),
            hint: Some("pass an existing file with --pipeline, or create pipelines/<app>.toml".into()),
        }]
    })?;
    parse(file, &project_root(file), &src, true)
}

/// Every `*.toml` in `dir`, sorted by name.
pub fn pipeline_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Parses pipeline text. `check_files` also checks that the template exists under `root`.
pub fn parse(file: &Path, root: &Path, src: &str, check_files: bool) -> Result<Pipeline, Vec<Diagnostic>> {
    let mut w = Walker { file, src, diags: Vec::new() };
    let doc = match ImDocument::parse(src.to_owned()) {
        Ok(doc) => doc,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            // toml_edit's message spans lines ("invalid string\nexpected ..."); a diagnostic is one line.
            let msg = e.message().trim().trim_end_matches('.').lines().map(str::trim).collect::<Vec<_>>().join("; ");
            w.error(span, format!("invalid TOML: {}", lowercase_first(&msg)), Some("fix the TOML syntax at this position"));
            return Err(w.diags);
        }
    };
    let top = doc.as_table();
    let pipeline = w.pipeline(top, root, check_files);
    if w.diags.is_empty() {
        Ok(pipeline.expect("a pipeline without diagnostics is complete"))
    } else {
        w.diags.sort_by_key(|d| (d.line, d.col));
        Err(w.diags)
    }
}

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A table together with where to point when something inside it is missing.
#[derive(Clone)]
struct Tbl<'a> {
    t: &'a dyn TableLike,
    /// `[env.prod]` style path for messages.
    name: String,
    anchor: Option<Range<usize>>,
}

struct Walker<'a> {
    file: &'a Path,
    src: &'a str,
    diags: Vec<Diagnostic>,
}

impl<'a> Walker<'a> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>, hint: Option<&str>) {
        let (line, col) = line_col(self.src, span.start);
        self.diags.push(Diagnostic {
            file: self.file.to_path_buf(),
            line,
            col,
            message: message.into(),
            hint: hint.map(str::to_owned),
        });
    }

    fn span_of(&self, tbl: &Tbl<'_>, key: &str) -> Range<usize> {
        if let Some((k, item)) = tbl.t.get_key_value(key) {
            return item_span(item).or_else(|| k.span()).unwrap_or(0..0);
        }
        tbl.anchor.clone().unwrap_or(0..0)
    }

    fn key_span(&self, tbl: &Tbl<'_>, key: &str) -> Range<usize> {
        tbl.t.get_key_value(key).and_then(|(k, _)| k.span()).or_else(|| tbl.anchor.clone()).unwrap_or(0..0)
    }

    fn unknown_keys(&mut self, tbl: &Tbl<'_>, allowed: &[&str]) {
        let unknown: Vec<(String, Range<usize>)> = tbl
            .t
            .iter()
            .filter(|(k, _)| !allowed.contains(k))
            .map(|(k, _)| (k.to_owned(), self.key_span(&tbl, k)))
            .collect();
        for (key, span) in unknown {
            let hint = match closest(&key, allowed) {
                Some(c) => format!("did you mean `{c}`?"),
                None => format!("remove it; allowed keys here: {}", allowed.join(", ")),
            };
            self.error(span, format!("unknown key `{key}` in [{}]", tbl.name), Some(&hint));
        }
    }

    fn missing(&mut self, tbl: &Tbl<'_>, key: &str, hint: &str) {
        let span = tbl.anchor.clone().unwrap_or(0..0);
        self.error(span, format!("missing key `{key}` in [{}]", tbl.name), Some(hint));
    }

    fn str(&mut self, tbl: &Tbl<'_>, key: &str) -> Option<(String, Range<usize>)> {
        let item = tbl.t.get(key)?;
        let span = self.span_of(&tbl, key);
        match item.as_str() {
            Some(s) => Some((s.to_owned(), span)),
            None => {
                self.error(
                    span,
                    format!("`{key}` in [{}] must be a string, not {}", tbl.name, item.type_name()),
                    Some("quote the value"),
                );
                None
            }
        }
    }

    fn required_str(&mut self, tbl: &Tbl<'_>, key: &str, hint: &str) -> Option<(String, Range<usize>)> {
        if tbl.t.get(key).is_none() {
            self.missing(&tbl, key, hint);
            return None;
        }
        let (s, span) = self.str(&tbl, key)?;
        if s.trim().is_empty() {
            self.error(span, format!("`{key}` in [{}] is empty", tbl.name), Some(hint));
            return None;
        }
        Some((s, span))
    }

    fn str_list(&mut self, tbl: &Tbl<'_>, key: &str) -> Option<Vec<(String, Range<usize>)>> {
        let item = tbl.t.get(key)?;
        let span = self.span_of(&tbl, key);
        let Some(arr) = item.as_array() else {
            self.error(
                span,
                format!("`{key}` in [{}] must be an array of strings, not {}", tbl.name, item.type_name()),
                Some("write it as [\"a\", \"b\"]"),
            );
            return None;
        };
        let mut out = Vec::new();
        for v in arr.iter() {
            let vspan = v.span().unwrap_or_else(|| span.clone());
            match v.as_str() {
                Some(s) => out.push((s.to_owned(), vspan)),
                None => {
                    self.error(vspan, format!("`{key}` in [{}] must hold strings only", tbl.name), Some("quote each element"));
                    return None;
                }
            }
        }
        Some(out)
    }

    fn int(&mut self, tbl: &Tbl<'_>, key: &str) -> Option<(i64, Range<usize>)> {
        let item = tbl.t.get(key)?;
        let span = self.span_of(&tbl, key);
        match item.as_integer() {
            Some(n) => Some((n, span)),
            None => {
                self.error(
                    span,
                    format!("`{key}` in [{}] must be an integer, not {}", tbl.name, item.type_name()),
                    Some("write a whole number without quotes"),
                );
                None
            }
        }
    }

    fn sub_table<'t>(&mut self, parent: &Tbl<'t>, key: &str, name: impl Into<String>) -> Option<Tbl<'t>> {
        let name: String = name.into();
        let (k, item) = parent.t.get_key_value(key)?;
        match item.as_table_like() {
            Some(t) => Some(Tbl { t, name, anchor: item_span(item).or_else(|| k.span()).or_else(|| parent.anchor.clone()) }),
            None => {
                let span = item_span(item).or_else(|| k.span()).unwrap_or(0..0);
                self.error(
                    span,
                    format!("`{key}` in [{}] must be a table, not {}", parent.name, item.type_name()),
                    Some(&format!("write it as a [{name}] section or an inline table {{ ... }}")),
                );
                None
            }
        }
    }

    fn string_map(&mut self, tbl: &Tbl<'_>, key: &str, name: String, env_style_keys: bool) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(vars) = self.sub_table(tbl, key, name.clone()) else { return out };
        let entries: Vec<(String, Range<usize>)> =
            vars.t.iter().map(|(k, _)| (k.to_owned(), self.key_span(&vars, k))).collect();
        for (k, kspan) in entries {
            if env_style_keys && !is_env_var_name(&k) {
                self.error(
                    kspan,
                    format!("`{k}` in [{name}] is not a valid environment variable name"),
                    Some("use letters, digits and `_`, not starting with a digit"),
                );
                continue;
            }
            let Some((v, vspan)) = self.str(&vars, &k) else { continue };
            if let Some(path) = v.strip_prefix("ssm:") {
                if !path.starts_with('/') || path.len() < 2 || path.contains(char::is_whitespace) {
                    self.error(
                        vspan,
                        format!("`{k}` in [{name}] is not a valid SSM reference: `{v}`"),
                        Some("write ssm:/path/to/parameter"),
                    );
                    continue;
                }
            }
            out.insert(k, v);
        }
        out
    }

    fn duration(
        &mut self,
        tbl: &Tbl<'_>,
        key: &str,
        range: (Duration, Duration),
    ) -> Option<Duration> {
        let (s, span) = self.str(&tbl, key)?;
        match parse_duration(&s) {
            Ok(d) if d < range.0 || d > range.1 => {
                self.error(
                    span,
                    format!(
                        "`{key}` in [{}] is {}, outside {}..{}",
                        tbl.name,
                        format_duration(d),
                        format_duration(range.0),
                        format_duration(range.1)
                    ),
                    Some("pick a duration inside that range"),
                );
                None
            }
            Ok(d) => Some(d),
            Err(why) => {
                self.error(
                    span,
                    format!("`{key}` in [{}]: {why}", tbl.name),
                    Some("write a duration like \"30s\", \"10m\", \"1h\" or \"1m30s\""),
                );
                None
            }
        }
    }

    /// `[deploy]` keys, shared by the `[deploy]` table and by cluster overrides.
    fn deploy_settings(&mut self, tbl: &Tbl<'_>, base: &DeploySettings) -> DeploySettings {
        let mut d = base.clone();
        if let Some((s, span)) = self.str(&tbl, "instance_type") {
            if is_instance_type(&s) {
                d.instance_type = s;
            } else {
                self.error(span, format!("`{s}` is not an EC2 instance type"), Some("write a type like \"t3.micro\""));
            }
        }
        if let Some(v) = self.duration(&tbl, "health_timeout", HEALTH_TIMEOUT_RANGE) {
            d.health_timeout = v;
        }
        if let Some(v) = self.duration(&tbl, "drain", DRAIN_RANGE) {
            d.drain = v;
        }
        if let Some(list) = self.str_list(&tbl, "subnets") {
            d.subnets = self.ids_with_prefix(list, "subnet-", "a subnet id");
        }
        if let Some(list) = self.str_list(&tbl, "security_groups") {
            d.security_groups = self.ids_with_prefix(list, "sg-", "a security group id");
        }
        if let Some((n, span)) = self.int(&tbl, "port") {
            match u16::try_from(n) {
                Ok(p) if p > 0 => d.port = p,
                _ => self.error(span, format!("port {n} is outside 1..65535"), Some("use the port the service listens on")),
            }
        }
        if let Some((p, span)) = self.str(&tbl, "health_path") {
            if p.starts_with('/') && !p.contains(char::is_whitespace) {
                d.health_path = p;
            } else {
                self.error(span, format!("health_path `{p}` must start with `/`"), Some("write a path like \"/health\""));
            }
        }
        d
    }

    fn ids_with_prefix(&mut self, list: Vec<(String, Range<usize>)>, prefix: &str, what: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (s, span) in list {
            if s.strip_prefix(prefix).is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric())) {
                out.push(s);
            } else {
                self.error(span, format!("`{s}` is not {what}"), Some(&format!("ids look like {prefix}0123abcd")));
            }
        }
        out
    }

    fn pipeline(&mut self, top: &Table, root: &Path, check_files: bool) -> Option<Pipeline> {
        let top = &Tbl { t: top, name: "top level".into(), anchor: Some(0..0) };
        self.unknown_keys(&top, &["app", "region", "ledger_table", "build", "test", "bake", "deploy", "env"]);

        let app = self.required_str(&top, "app", "add app = \"<name>\" at the top").and_then(|(s, span)| {
            AppName::parse(&s)
                .map_err(|_| {
                    self.error(
                        span,
                        format!("app name `{s}` is invalid"),
                        Some("use 1-32 characters of a-z, 0-9 and `-`, not starting or ending with `-`"),
                    )
                })
                .ok()
        });
        let region = self.str(&top, "region").and_then(|(s, span)| {
            if is_region(&s) {
                Some(s)
            } else {
                self.error(span, format!("`{s}` is not an AWS region name"), Some("write a region like \"us-east-1\""));
                None
            }
        });
        let ledger_table = match self.str(&top, "ledger_table") {
            Some((s, span)) if !is_table_name(&s) => {
                self.error(span, format!("`{s}` is not a DynamoDB table name"), Some("use 3-255 characters of a-z, A-Z, 0-9, `_`, `-` and `.`"));
                None
            }
            Some((s, _)) => Some(s),
            None => Some(DEFAULT_LEDGER_TABLE.to_owned()),
        };

        let build = self.build(&top);
        let test = self.test(&top);
        let bake = self.bake(&top, root, check_files);
        let deploy = match self.sub_table(&top, "deploy", "deploy") {
            Some(t) => {
                self.unknown_keys(&t, DEPLOY_KEYS);
                self.deploy_settings(&t, &DeploySettings::default())
            }
            None => DeploySettings::default(),
        };
        let envs = self.envs(&top, &deploy);
        Some(Pipeline {
            file: self.file.to_path_buf(),
            root: root.to_path_buf(),
            app: app?,
            region,
            ledger_table: ledger_table?,
            build: build?,
            test,
            bake: bake?,
            deploy,
            envs: envs?,
        })
    }

    fn build(&mut self, top: &Tbl<'_>) -> Option<BuildStage> {
        if top.t.get("build").is_none() {
            self.missing(&top, "build", "add a [build] section with command and artifact");
            return None;
        }
        let t = self.sub_table(&top, "build", "build")?;
        self.unknown_keys(&t, &["command", "artifact"]);
        let command = self.required_str(&t, "command", "add command = \"make dist\" (run in a clean export of the commit)");
        let artifact = self.required_str(&t, "artifact", "add artifact = \"<path the build writes>\"").and_then(|(a, span)| {
            if Path::new(&a).is_absolute() || a.split('/').any(|p| p == "..") {
                self.error(span, format!("artifact `{a}` must be a relative path inside the export"), Some("write a path like \"dist/app.tar.gz\""));
                None
            } else {
                Some(a)
            }
        });
        Some(BuildStage { command: command?.0, artifact: artifact? })
    }

    fn test(&mut self, top: &Tbl<'_>) -> Option<TestStage> {
        let t = self.sub_table(&top, "test", "test")?;
        self.unknown_keys(&t, &["command"]);
        let (command, _) = self.required_str(&t, "command", "add command = \"make check\", or remove [test]")?;
        Some(TestStage { command })
    }

    fn bake(&mut self, top: &Tbl<'_>, root: &Path, check_files: bool) -> Option<BakeSpec> {
        if top.t.get("bake").is_none() {
            self.missing(&top, "bake", "add a [bake] section with template and base_ami");
            return None;
        }
        let t = self.sub_table(&top, "bake", "bake")?;
        self.unknown_keys(&t, &["template", "base_ami", "base_owners", "instance_type", "vars"]);
        let template = self.required_str(&t, "template", "add template = \"packer-templates/app.pkr.hcl\"").and_then(
            |(tpl, span)| {
                if check_files && !root.join(&tpl).is_file() {
                    self.error(
                        span,
                        format!("template `{tpl}` does not exist under {}", root.display()),
                        Some("give a path relative to the directory that holds pipelines/"),
                    );
                    None
                } else {
                    Some(tpl)
                }
            },
        );
        let owners = self.str_list(&t, "base_owners").map(|l| l.into_iter().map(|(s, _)| s).collect::<Vec<_>>());
        let base_ami = self.required_str(&t, "base_ami", "add base_ami = \"ami-...\" or a name filter with base_owners").and_then(
            |(s, span)| {
                if s.starts_with("ami-") {
                    match AmiId::parse(&s) {
                        Ok(id) => Some(BaseAmi::Id(id)),
                        Err(_) => {
                            self.error(span, format!("base_ami `{s}` is not an AMI id"), Some("write ami- followed by hex digits, or a name filter"));
                            None
                        }
                    }
                } else if owners.as_ref().is_none_or(|o| o.is_empty()) {
                    self.error(
                        span,
                        format!("base_ami `{s}` is a name filter but [bake] has no base_owners"),
                        Some("add base_owners = [\"amazon\"] (or the account id you trust) so no stranger's image can match"),
                    );
                    None
                } else {
                    Some(BaseAmi::NameFilter(s))
                }
            },
        );
        let instance_type = match self.str(&t, "instance_type") {
            Some((s, _)) if is_instance_type(&s) => Some(s),
            Some((s, span)) => {
                self.error(span, format!("`{s}` is not an EC2 instance type"), Some("write a type like \"t3.micro\""));
                None
            }
            None => Some("t3.micro".to_owned()),
        };
        let vars = self.string_map(&t, "vars", "bake.vars".into(), false);
        Some(BakeSpec {
            template: template?,
            base_ami: base_ami?,
            base_owners: owners.unwrap_or_default(),
            instance_type: instance_type?,
            vars,
        })
    }

    fn envs(&mut self, top: &Tbl<'_>, deploy: &DeploySettings) -> Option<Vec<Environment>> {
        if top.t.get("env").is_none() {
            self.missing(&top, "env", "add at least one environment, e.g. [env.staging.clusters.staging]");
            return None;
        }
        let envs_tbl = self.sub_table(&top, "env", "env")?;
        let mut envs = Vec::new();
        let mut ok = true;
        // Cluster names are unique within the app, so `switch prod2` needs no --env.
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let names: Vec<String> = envs_tbl.t.iter().map(|(k, _)| k.to_owned()).collect();
        for env_name in names {
            let kspan = self.key_span(&envs_tbl, &env_name);
            let label = format!("env.{env_name}");
            let Some(env_tbl) = self.sub_table(&envs_tbl, &env_name, label.clone()) else {
                ok = false;
                continue;
            };
            let name = match EnvName::parse(&env_name) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.error(kspan.clone(), format!("environment name `{env_name}` is invalid"), Some("use 1-32 characters of a-z, 0-9 and `-`"));
                    None
                }
            };
            match (name, self.environment(&env_tbl, &label, deploy, &mut seen)) {
                (Some(name), Some((vars, dns, clusters))) => envs.push(Environment { name, vars, dns, clusters }),
                _ => ok = false,
            }
        }
        if envs_tbl.t.is_empty() {
            self.error(envs_tbl.anchor.clone().unwrap_or(0..0), "no environments defined", Some("add [env.<name>.clusters.<cluster>]"));
            return None;
        }
        ok.then_some(envs)
    }

    #[allow(clippy::type_complexity)]
    fn environment(
        &mut self,
        t: &Tbl<'_>,
        label: &str,
        deploy: &DeploySettings,
        seen: &mut BTreeMap<String, String>,
    ) -> Option<(BTreeMap<String, String>, Option<DnsSettings>, Vec<Cluster>)> {
        self.unknown_keys(&t, &["vars", "dns", "clusters"]);
        let vars = self.string_map(&t, "vars", format!("{label}.vars"), true);
        let dns = match t.t.get("dns") {
            Some(_) => Some(self.dns(&t, label)),
            None => None,
        };
        if t.t.get("clusters").is_none() {
            self.missing(&t, "clusters", &format!("add a [{label}.clusters.<name>] section with load_balancer and count"));
            return None;
        }
        let ct = self.sub_table(&t, "clusters", format!("{label}.clusters"))?;
        let mut clusters = Vec::new();
        let mut ok = true;
        let names: Vec<String> = ct.t.iter().map(|(k, _)| k.to_owned()).collect();
        for cname in &names {
            let kspan = self.key_span(&ct, cname);
            let clabel = format!("{label}.clusters.{cname}");
            if let Some(other) = seen.get(cname) {
                self.error(
                    kspan.clone(),
                    format!("cluster name `{cname}` is already used in [{other}]"),
                    Some("cluster names must be unique within an app; rename one"),
                );
                ok = false;
            }
            seen.insert(cname.clone(), clabel.to_owned());
            let Some(cl) = self.sub_table(&ct, cname, clabel) else {
                ok = false;
                continue;
            };
            let name = ClusterName::parse(cname).map_err(|_| {
                self.error(kspan.clone(), format!("cluster name `{cname}` is invalid"), Some("use 1-32 characters of a-z, 0-9 and `-`"))
            });
            match (name, self.cluster(&cl, deploy)) {
                (Ok(name), Some((target, count, deploy))) => clusters.push(Cluster { name, target, count, deploy }),
                _ => ok = false,
            }
        }
        let anchor = self.key_span(&t, "clusters");
        match (&dns, names.len()) {
            (_, 0) => {
                self.error(anchor, format!("[{label}] has no clusters"), Some(&format!("add [{label}.clusters.<name>]")));
                return None;
            }
            (Some(_), 1) => {
                self.error(
                    anchor,
                    format!("[{label}] has dns but only one cluster; blue/green needs two or more"),
                    Some(&format!("add a second cluster under [{label}.clusters], or remove dns to replace in place")),
                );
                return None;
            }
            (None, n) if n > 1 => {
                self.error(
                    anchor,
                    format!("[{label}] has {n} clusters but no dns; without dns there is one cluster, replaced in place"),
                    Some(&format!("add dns = {{ zone = ..., record = ... }} to [{label}], or keep one cluster")),
                );
                return None;
            }
            _ => {}
        }
        let dns = match dns {
            Some(Some(d)) => Some(d),
            Some(None) => return None,
            None => None,
        };
        ok.then_some((vars, dns, clusters))
    }

    fn dns(&mut self, env: &Tbl<'_>, label: &str) -> Option<DnsSettings> {
        let t = self.sub_table(&env, "dns", format!("{label}.dns"))?;
        self.unknown_keys(&t, &["zone", "record", "ttl"]);
        let zone = self.required_str(&t, "zone", "add zone = \"example.com.\"").and_then(|(z, span)| {
            if is_dns_name(&z) {
                Some(z)
            } else {
                self.error(span, format!("zone `{z}` is not a fully qualified domain name"), Some("write it with the trailing dot, e.g. \"example.com.\""));
                None
            }
        });
        let record = self.required_str(&t, "record", "add record = \"app.example.com.\"").and_then(|(r, span)| {
            if !is_dns_name(&r) {
                self.error(span, format!("record `{r}` is not a fully qualified domain name"), Some("write it with the trailing dot, e.g. \"app.example.com.\""));
                return None;
            }
            if let Some(z) = &zone {
                if !(r == *z || r.ends_with(&format!(".{z}"))) {
                    self.error(span, format!("record `{r}` is not inside zone `{z}`"), Some("use a name that ends with the zone"));
                    return None;
                }
            }
            Some(r)
        });
        let ttl = match self.int(&t, "ttl") {
            Some((n, span)) if !(1..=172_800).contains(&n) => {
                self.error(span, format!("ttl {n} is outside 1..172800 seconds"), Some("60 is a good ttl for a blue/green record"));
                None
            }
            Some((n, _)) => Some(n as u32),
            None => Some(60),
        };
        Some(DnsSettings { zone: zone?, record: record?, ttl: ttl? })
    }

    fn cluster(&mut self, t: &Tbl<'_>, deploy: &DeploySettings) -> Option<(LbTarget, u32, DeploySettings)> {
        let mut allowed = vec!["load_balancer", "target_group", "count"];
        allowed.extend_from_slice(DEPLOY_KEYS);
        self.unknown_keys(&t, &allowed);
        let lb = self.str(&t, "load_balancer");
        let tg = self.str(&t, "target_group");
        let target = match (lb, tg) {
            (Some(_), Some((_, span))) => {
                self.error(span, format!("[{}] names both load_balancer and target_group", t.name), Some("keep one of them"));
                None
            }
            (Some((n, span)), None) => self.lb_name(n, span, "load balancer").map(LbTarget::ClassicElb),
            (None, Some((n, span))) => self.lb_name(n, span, "target group").map(LbTarget::TargetGroup),
            (None, None) => {
                if !t.t.contains_key("load_balancer") && !t.t.contains_key("target_group") {
                    self.missing(&t, "load_balancer", "add load_balancer = \"<classic ELB name>\" or target_group = \"<target group name>\"");
                }
                None
            }
        };
        let count = match self.int(&t, "count") {
            Some((n, span)) if !(1..=MAX_COUNT).contains(&n) => {
                self.error(span, format!("count {n} is outside 1..{MAX_COUNT}"), Some("set how many instances the cluster runs, at least 1"));
                None
            }
            Some((n, _)) => Some(n as u32),
            None if !t.t.contains_key("count") => {
                self.missing(&t, "count", "add count = <number of instances>");
                None
            }
            None => None,
        };
        let settings = self.deploy_settings(&t, deploy);
        Some((target?, count?, settings))
    }

    fn lb_name(&mut self, n: String, span: Range<usize>, what: &str) -> Option<String> {
        let ok = !n.is_empty()
            && n.len() <= 32
            && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !n.starts_with('-')
            && !n.ends_with('-');
        if ok {
            Some(n)
        } else {
            self.error(span, format!("{what} name `{n}` is invalid"), Some("use 1-32 letters, digits and `-`, not starting or ending with `-`"));
            None
        }
    }
}

const DEPLOY_KEYS: &[&str] = &["instance_type", "health_timeout", "drain", "subnets", "security_groups", "port", "health_path"];


fn item_span(item: &Item) -> Option<Range<usize>> {
    match item {
        Item::Value(v) => v.span(),
        Item::Table(t) => t.span(),
        Item::ArrayOfTables(a) => a.span(),
        Item::None => None,
    }
}

fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn closest<'k>(key: &str, allowed: &[&'k str]) -> Option<&'k str> {
    allowed
        .iter()
        .map(|a| (levenshtein(key, a), *a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 3))
        .min()
        .map(|(_, a)| a)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn is_env_var_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_') && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn is_instance_type(s: &str) -> bool {
    match s.split_once('.') {
        Some((family, size)) => {
            !family.is_empty()
                && !size.is_empty()
                && family.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && size.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        }
        None => false,
    }
}

fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        && parts.last().is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_table_name(s: &str) -> bool {
    (3..=255).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

fn is_dns_name(s: &str) -> bool {
    s.ends_with('.')
        && s.len() > 1
        && s.len() <= 254
        && s[..s.len() - 1].split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') && is_slug(&l.to_ascii_lowercase(), 63)
        })
}

