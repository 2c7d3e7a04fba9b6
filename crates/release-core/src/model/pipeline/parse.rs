//! The pipeline file parser: `toml_edit` with spans, so that every problem is reported at its file:line:col with a
//! fix hint, all of them at once rather than the first only. It builds the model of the parent module.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml_edit::{ImDocument, Item, Table, TableLike};

use super::{
    BakeSpec, BaseAmi, BuildStage, Cluster, DeploySettings, FleetKind, Scaling, Diagnostic, DnsSettings, Environment, HealthCheck, LbTarget,
    MetadataTokens, NotifySettings, Pipeline, QueueMode, SecretRef, Sink, SinkKind, RootVolume, TestStage, Topology, DEFAULT_LEDGER_TABLE, DEFAULT_SETTLE, MAX_COUNT,
};
use super::gates::{Gates, Window};
use super::{check_steps, Rollout, RolloutStep, DEFAULT_ROLLOUT_PAUSE, MAX_ROLLOUT_ALARMS, MAX_ROLLOUT_PAUSE};
use crate::model::clock::{format_duration, parse_duration};
use crate::model::event::EventKind;
use crate::model::ids::{is_slug, AmiId, AppName, ClusterName, EnvName};

const HEALTH_TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(6 * 3600));
const DRAIN_RANGE: (Duration, Duration) = (Duration::ZERO, Duration::from_secs(3600));
const SETTLE_RANGE: (Duration, Duration) = (Duration::ZERO, Duration::from_secs(3600));
const SOAK_RANGE: (Duration, Duration) = (Duration::ZERO, Duration::from_secs(90 * 86_400));
const ROLLBACK_WINDOW_RANGE: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(30 * 86_400));

/// The asg keys (`fleet`, `scaling`, `rollback_window`) read so far down [deploy] -> environment -> cluster, each with
/// where it was last written, so that a value refused at a cluster is reported at the line that set it.
#[derive(Clone, Default)]
struct AsgKeys {
    fleet: Option<(FleetKind, Range<usize>)>,
    scaling: Scaling,
    scaling_at: Option<Range<usize>>,
    rollback_window: Option<(Duration, Range<usize>)>,
}

/// Parses pipeline text. `check_files` also checks that the template exists under `root`.
pub fn parse(file: &Path, root: &Path, src: &str, check_files: bool) -> Result<Pipeline, Vec<Diagnostic>> {
    parse_scoped(file, root, src, check_files, Scope::Whole)
}

/// Parses only what a bake reads from the commit it bakes (app, `[build]`, `[test]`, `[bake]`): the environment
/// settings always come from the current checkout, so an older commit whose `[env]` or `[deploy]` no longer
/// validates can still be baked. The result has no environments.
pub fn parse_for_bake(file: &Path, root: &Path, src: &str) -> Result<Pipeline, Vec<Diagnostic>> {
    parse_scoped(file, root, src, true, Scope::Bake)
}

/// For commands that only read (`status`, `history`) during an incident: the pipeline with its problems when the
/// file still makes a whole pipeline (an unknown or misspelt key somewhere is reported, not fatal); the problems
/// alone when it does not. Commands that change AWS use [`parse`], which refuses any problem.
pub fn parse_readable(file: &Path, root: &Path, src: &str) -> Result<(Pipeline, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut w = Walker { file, src, diags: Vec::new(), region: None };
    let Ok(doc) = ImDocument::parse(src.to_owned()) else { return parse(file, root, src, true).map(|p| (p, Vec::new())) };
    let pipeline = w.pipeline(doc.as_table(), root, true, Scope::Whole);
    w.diags.sort_by_key(|d| (d.line, d.col));
    match pipeline {
        Some(p) => Ok((p, w.diags)),
        None => Err(w.diags),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Whole,
    Bake,
}

fn parse_scoped(file: &Path, root: &Path, src: &str, check_files: bool, scope: Scope) -> Result<Pipeline, Vec<Diagnostic>> {
    let mut w = Walker { file, src, diags: Vec::new(), region: None };
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
    let pipeline = w.pipeline(top, root, check_files, scope);
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

/// Names already taken within one file: clusters (unique in the app) and load balancers (one cluster each).
#[derive(Default)]
struct Seen {
    clusters: BTreeMap<String, String>,
    targets: BTreeMap<String, String>,
}

struct Walker<'a> {
    file: &'a Path,
    src: &'a str,
    diags: Vec<Diagnostic>,
    /// The pipeline's `region`, once read (certificates are regional).
    region: Option<String>,
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

    /// Like [`Self::unknown_keys`], but `reported` keys were already reported with a message of their own.
    fn unknown_keys_except(&mut self, tbl: &Tbl<'_>, allowed: &[&str], reported: &[&str]) {
        let all: Vec<&str> = allowed.iter().chain(reported.iter()).copied().collect();
        self.unknown_keys(tbl, &all);
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
        if let Some(list) = self.str_list(tbl, "lb_subnets") {
            d.lb_subnets = self.ids_with_prefix(list, "subnet-", "a subnet id");
        }
        if let Some(list) = self.str_list(tbl, "security_groups") {
            d.security_groups = self.ids_with_prefix(list, "sg-", "a security group id");
        }
        if let Some(list) = self.str_list(tbl, "allow") {
            d.allow = self.allow(tbl, list);
        }
        if let Some((n, span)) = self.int(tbl, "port") {
            match u16::try_from(n) {
                Ok(p) if p > 0 => d.port = p,
                _ => self.error(span, format!("port {n} is outside 1..65535"), Some("use the port the service listens on")),
            }
        }
        if let Some((p, span)) = self.str(tbl, "health_path") {
            if p.starts_with('/') && !p.contains(char::is_whitespace) {
                d.health_path = p;
            } else {
                self.error(span, format!("health_path `{p}` must start with `/`"), Some("write a path like \"/health\""));
            }
        }
        if let Some(h) = self.sub_table(tbl, "health", format!("{}.health", tbl.name)) {
            self.health_check(&h, &mut d.health);
        }
        if let Some((p, span)) = self.str(tbl, "instance_profile") {
            if !p.is_empty() && p.len() <= 128 && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b)) {
                d.instance_profile = Some(p);
            } else {
                self.error(span, format!("`{p}` is not an instance profile name"), Some("give the name of the IAM instance profile (not its ARN)"));
            }
        }
        if let Some((k, _)) = self.str(tbl, "key_name") {
            d.key_name = (!k.is_empty()).then_some(k);
        }
        if let Some((m, span)) = self.str(tbl, "metadata_tokens") {
            match m.as_str() {
                "required" => d.metadata_tokens = MetadataTokens::Required,
                "optional" => d.metadata_tokens = MetadataTokens::Optional,
                _ => self.error(span, format!("metadata_tokens `{m}` is neither \"required\" nor \"optional\""), Some("keep \"required\" (IMDSv2)")),
            }
        }
        if let Some(v) = self.sub_table(tbl, "root_volume", format!("{}.root_volume", tbl.name)) {
            d.root_volume = Some(self.root_volume(&v, base));
        }
        self.lb_keys(tbl, &mut d);
        if let Some((n, span)) = self.int(tbl, "max_targets") {
            if (1..=100_000).contains(&n) {
                d.max_targets = n as u32;
            } else {
                self.error(span, format!("max_targets {n} is outside 1..100000"), Some("set it to your load balancer's raised quota"));
            }
        }
        d
    }

    /// `certificate`, `tls_policy` and `scheme`: the load balancer's listener and reach, in `[deploy]`, an
    /// environment or a cluster.
    fn lb_keys(&mut self, tbl: &Tbl<'_>, d: &mut DeploySettings) {
        if let Some((c, span)) = self.str(tbl, "certificate") {
            match acm_region(&c) {
                None => self.error(
                    span,
                    format!("certificate `{c}` is not an ACM certificate ARN"),
                    Some("give the ARN ACM shows, like \"arn:aws:acm:us-east-1:123456789012:certificate/…\" (an IAM server certificate is not supported)"),
                ),
                Some(r) if self.region.as_deref().is_some_and(|main| main != r) => {
                    let main = self.region.clone().unwrap_or_default();
                    self.error(
                        span,
                        format!("certificate `{c}` is in region {r}, but the pipeline deploys to {main} (ACM certificates are regional)"),
                        Some(&format!("request or import the certificate in {main} and give that ARN")),
                    );
                }
                Some(_) => d.certificate = Some(c),
            }
        }
        if let Some((s, span)) = self.str(tbl, "scheme") {
            match s.as_str() {
                "internet-facing" => d.internal = false,
                "internal" => d.internal = true,
                _ => self.error(span, format!("scheme `{s}` is neither \"internet-facing\" nor \"internal\""), Some("\"internal\" puts the load balancer in lb_subnets with private addresses only")),
            }
        }
        if let Some((p, span)) = self.str(tbl, "tls_policy") {
            if !p.is_empty() && p.len() <= 128 && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
                d.tls_policy = Some(p);
            } else {
                self.error(span, format!("tls_policy `{p}` is not a security policy name"), Some("write a name like \"ELBSecurityPolicy-TLS13-1-2-2021-06\""));
            }
        }
    }

    /// `allow`: the CIDR blocks that may reach the load balancer (never none).
    fn allow(&mut self, tbl: &Tbl<'_>, list: Vec<(String, Range<usize>)>) -> Vec<String> {
        let mut cidrs = Vec::new();
        for (c, span) in list {
            if is_cidr(&c) {
                cidrs.push(c);
            } else {
                self.error(span, format!("`{c}` in `allow` is not an IPv4 CIDR"), Some("write a block like \"203.0.113.0/24\", or \"0.0.0.0/0\" for everyone"));
            }
        }
        if cidrs.is_empty() {
            let span = self.span_of(tbl, "allow");
            self.error(span, "`allow` is empty: nobody could reach the load balancer", Some("list who may, e.g. [\"0.0.0.0/0\"]"));
        }
        cidrs
    }

    /// `[.. .health]`, over `health` (the inherited check).
    fn health_check(&mut self, h: &Tbl<'_>, health: &mut HealthCheck) {
        self.unknown_keys(h, &["interval", "timeout", "healthy", "unhealthy"]);
        if let Some(v) = self.duration(h, "interval", (Duration::from_secs(5), Duration::from_secs(300))) {
            health.interval = v;
        }
        if let Some(v) = self.duration(h, "timeout", (Duration::from_secs(2), Duration::from_secs(120))) {
            health.timeout = v;
        }
        for (key, slot) in [("healthy", &mut health.healthy), ("unhealthy", &mut health.unhealthy)] {
            if let Some((n, span)) = self.int(h, key) {
                if (2..=10).contains(&n) {
                    *slot = n as u32;
                } else {
                    self.error(span, format!("`{key}` threshold {n} is outside 2..10"), Some("load balancers count 2 to 10 checks in a row"));
                }
            }
        }
        if health.timeout >= health.interval {
            let span = self.span_of(h, "timeout");
            self.error(span, format!("health check timeout {} is not shorter than its interval {}", format_duration(health.timeout), format_duration(health.interval)), Some("make timeout shorter than interval"));
        }
    }

    /// A classic ELB's health check: its API (Elastic Load Balancing API Reference, `HealthCheck`) takes a timeout
    /// of 2 to 60 seconds, where a target group takes up to 120 (`HealthCheckTimeoutSeconds`), the bound `health`
    /// is parsed with; both take an interval of 5 to 300 and want the timeout shorter.
    fn classic_health(&mut self, t: &Tbl<'_>, health: &HealthCheck) {
        if health.timeout <= CLASSIC_HEALTH_TIMEOUT_MAX {
            return;
        }
        // The cluster's own `health` if it has one, else its `load_balancer`: what makes the inherited one wrong.
        let span = if t.t.contains_key("health") { self.span_of(t, "health") } else { self.span_of(t, "load_balancer") };
        self.error(
            span,
            format!(
                "health check timeout {} of [{}] is over {}, the most a classic ELB takes",
                format_duration(health.timeout),
                t.name,
                format_duration(CLASSIC_HEALTH_TIMEOUT_MAX)
            ),
            Some("set health.timeout to 60s or less, or use a target_group (up to 120s)"),
        );
    }

    /// `[.. .root_volume]`, over the inherited one (or EC2's default: 8 GiB gp3, encrypted), refused where
    /// RunInstances would refuse it ([`volume_problem`]).
    fn root_volume(&mut self, v: &Tbl<'_>, base: &DeploySettings) -> RootVolume {
        self.unknown_keys(v, &["size_gb", "type", "encrypted", "iops", "throughput"]);
        let mut rv = base.root_volume.clone().unwrap_or_else(RootVolume::default_gp3);
        if let Some((n, span)) = self.int(v, "size_gb") {
            if (1..=65536).contains(&n) {
                rv.size_gb = n as u32;
            } else {
                self.error(span, format!("root volume size {n} GiB is outside 1..65536"), Some("give the size in GiB"));
            }
        }
        if let Some((t, span)) = self.str(v, "type") {
            if ["gp3", "gp2", "io1", "io2", "st1", "sc1", "standard"].contains(&t.as_str()) {
                if t != rv.kind {
                    // Another type: the inherited performance settings were for the old one.
                    rv.iops = None;
                    rv.throughput = None;
                }
                rv.kind = t;
            } else {
                self.error(span, format!("`{t}` is not an EBS volume type"), Some("use gp3, gp2, io1, io2, st1, sc1 or standard"));
            }
        }
        for (key, slot) in [("iops", &mut rv.iops), ("throughput", &mut rv.throughput)] {
            if let Some((n, span)) = self.int(v, key) {
                match u32::try_from(n) {
                    Ok(n) if n > 0 => *slot = Some(n),
                    _ => self.error(span, format!("root volume `{key}` {n} is not a positive number"), Some("give a whole number above 0")),
                }
            }
        }
        if let Some((problem, key, fix)) = volume_problem(&rv) {
            let span = [key, "type", "size_gb"].iter().find(|k| v.t.contains_key(**k)).map(|k| self.span_of(v, k)).or_else(|| v.anchor.clone()).unwrap_or(0..0);
            self.error(span, problem, Some(&fix));
        }
        if let Some(item) = v.t.get("encrypted") {
            match item.as_bool() {
                Some(b) => rv.encrypted = b,
                None => {
                    let span = self.span_of(v, "encrypted");
                    self.error(span, "`encrypted` must be true or false", Some("write encrypted = true"));
                }
            }
        }
        rv
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

    fn pipeline(&mut self, top: &Table, root: &Path, check_files: bool, scope: Scope) -> Option<Pipeline> {
        let top = &Tbl { t: top, name: "top level".into(), anchor: Some(0..0) };
        if scope == Scope::Whole {
            self.unknown_keys(top, TOP_KEYS);
        }

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
        self.region = region.clone();
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
        if scope == Scope::Bake {
            return Some(Pipeline {
                file: self.file.to_path_buf(),
                root: root.to_path_buf(),
                app: app?,
                region,
                ledger_table: ledger_table?,
                build: build?,
                test,
                bake: bake?,
                deploy: DeploySettings::default(),
                envs: Vec::new(),
                notify: NotifySettings::default(),
            });
        }
        let (deploy, asg) = match self.sub_table(&top, "deploy", "deploy") {
            Some(t) => {
                self.unknown_keys(&t, DEPLOY_KEYS);
                (self.deploy_settings(&t, &DeploySettings::default()), self.asg_keys(&t, &AsgKeys::default()))
            }
            None => (DeploySettings::default(), AsgKeys::default()),
        };
        let envs = self.envs(&top, &deploy, &asg);
        let notify = self.notify(&top);
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
            notify: notify?,
        })
    }

    fn notify(&mut self, top: &Tbl<'_>) -> Option<NotifySettings> {
        let Some(t) = self.sub_table(top, "notify", "notify") else { return Some(NotifySettings::default()) };
        self.unknown_keys(&t, &["link", "sinks"]);
        let mut ok = true;
        let link = match self.str(&t, "link") {
            Some((l, span)) if !(l.starts_with("http://") || l.starts_with("https://")) => {
                self.error(span, format!("link `{l}` in [notify] is not an http(s) URL"), Some("write the address people open, e.g. http://deploys.internal:8080"));
                ok = false;
                None
            }
            Some((l, _)) => Some(l),
            None => None,
        };
        let mut sinks = Vec::new();
        if let Some((k, item)) = t.t.get_key_value("sinks") {
            let span = item_span(item).or_else(|| k.span()).unwrap_or(0..0);
            let tables: Vec<&Table> = match item {
                Item::ArrayOfTables(a) => a.iter().collect(),
                _ => {
                    self.error(span, "`sinks` in [notify] must be an array of tables", Some("write each sink as a [[notify.sinks]] section"));
                    return None;
                }
            };
            for (i, st) in tables.into_iter().enumerate() {
                let anchor = st.span().or_else(|| Some(span.clone()));
                let tbl = Tbl { t: st, name: format!("notify.sinks #{}", i + 1), anchor };
                match self.sink(&tbl) {
                    Some(s) => sinks.push(s),
                    None => ok = false,
                }
            }
        }
        ok.then_some(NotifySettings { link, sinks })
    }

    fn sink(&mut self, t: &Tbl<'_>) -> Option<Sink> {
        let (kind, kspan) = self.required_str(t, "kind", "add kind = \"webhook\" (or slack, sns, command)")?;
        let url = |p: &mut Self, what: &str| -> Option<String> {
            let (u, span) = p.required_str(t, "url", &format!("add url = \"https://...\", the {what}'s address"))?;
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                p.error(span, format!("url `{u}` of a {what} sink is not an http(s) URL"), Some("write the full https:// address"));
                return None;
            }
            Some(u)
        };
        let (kind, allowed, label) = match kind.as_str() {
            "webhook" => {
                let u = url(self, "webhook");
                let secret = match self.str(t, "secret") {
                    Some((s, span)) => match (s.strip_prefix("env:"), s.strip_prefix("ssm:")) {
                        (Some(name), _) if is_env_var_name(name) => Some(SecretRef::Env(name.to_owned())),
                        (_, Some(path)) if path.starts_with('/') && path.len() > 1 => Some(SecretRef::Ssm(path.to_owned())),
                        _ => {
                            self.error(span, "`secret` of a webhook sink must be a reference, env:NAME or ssm:/path", Some("never write the secret itself in the pipeline file"));
                            return None;
                        }
                    },
                    None => None,
                };
                let u = u?;
                (SinkKind::Webhook { url: u.clone(), secret }, &["kind", "url", "secret", "on"][..], format!("webhook {}", redact(&u)))
            }
            "slack" => {
                let u = url(self, "slack")?;
                (SinkKind::Slack { url: u.clone() }, &["kind", "url", "on"][..], format!("slack {}", redact(&u)))
            }
            "sns" => {
                let (topic, span) = self.required_str(t, "topic", "add topic = \"arn:aws:sns:<region>:<account>:<name>\"")?;
                if !(topic.starts_with("arn:aws") && topic.split(':').nth(2) == Some("sns") && topic.split(':').count() == 6) {
                    self.error(span, format!("topic `{topic}` is not an SNS topic ARN"), Some("write arn:aws:sns:<region>:<account>:<name>"));
                    return None;
                }
                (SinkKind::Sns { topic: topic.clone() }, &["kind", "topic", "on"][..], format!("sns {topic}"))
            }
            "command" => {
                let (command, _) = self.required_str(t, "command", "add command = \"./notify.sh\" (the event comes as JSON on its stdin)")?;
                (SinkKind::Command { command: command.clone() }, &["kind", "command", "on"][..], format!("command `{command}`"))
            }
            other => {
                self.error(kspan, format!("sink kind `{other}` is unknown"), Some("use webhook, slack, sns or command"));
                return None;
            }
        };
        self.unknown_keys(t, allowed);
        let mut on: std::collections::BTreeSet<EventKind> = EventKind::DEFAULT.into_iter().collect();
        if let Some(list) = self.str_list(t, "on") {
            on.clear();
            for (name, span) in list {
                match EventKind::parse(&name) {
                    Some(k) => {
                        on.insert(k);
                    }
                    None => {
                        let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                        self.error(span, format!("event `{name}` is unknown"), Some(&format!("use some of: {}", names.join(", "))));
                        return None;
                    }
                }
            }
        }
        Some(Sink { kind, on, label })
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
        self.unknown_keys(&t, &["template", "base_ami", "base_owners", "instance_type", "vars", "regions", "accounts", "encrypted", "kms_keys"]);
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
        let base_ami = self.base_ami(&t, owners.as_deref());
        let instance_type = match self.str(&t, "instance_type") {
            Some((s, _)) if is_instance_type(&s) => Some(s),
            Some((s, span)) => {
                self.error(span, format!("`{s}` is not an EC2 instance type"), Some("write a type like \"t3.micro\""));
                None
            }
            None => Some("t3.micro".to_owned()),
        };
        let vars = self.string_map(&t, "vars", "bake.vars".into(), false);
        let mut regions = Vec::new();
        for (r, span) in self.str_list(&t, "regions").unwrap_or_default() {
            if is_region(&r) {
                regions.push(r);
            } else {
                self.error(span, format!("`{r}` in [bake] regions is not an AWS region name"), Some("write regions like \"eu-west-1\""));
            }
        }
        let mut accounts = Vec::new();
        for (a, span) in self.str_list(&t, "accounts").unwrap_or_default() {
            if a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()) {
                accounts.push(a);
            } else {
                self.error(span, format!("`{a}` in [bake] accounts is not an AWS account id"), Some("write the 12-digit account id"));
            }
        }
        let encrypted = match t.t.get("encrypted") {
            None => true,
            Some(item) => item.as_bool().unwrap_or_else(|| {
                let span = self.span_of(&t, "encrypted");
                self.error(span, "`encrypted` in [bake] must be true or false", Some("write encrypted = true"));
                true
            }),
        };
        let main = top.t.get("region").and_then(|r| r.as_str()).filter(|r| is_region(r)).map(str::to_owned);
        let kms_keys = self.kms_keys(&t, main.as_deref(), &regions, &vars);
        if !accounts.is_empty() && encrypted {
            self.shared_keys(&t, main.as_deref(), &regions, &kms_keys, &vars);
        }
        Some(BakeSpec {
            regions,
            accounts,
            encrypted,
            kms_keys,
            template: template?,
            base_ami: base_ami?,
            base_owners: owners.unwrap_or_default(),
            instance_type: instance_type?,
            vars,
        })
    }

    /// `[bake] kms_keys`: region -> key, for the bake's region and the regions it copies to; a key ARN names its
    /// region, which must be the one it is given for (KMS keys are regional; a copy's key must be in its region).
    fn kms_keys(&mut self, t: &Tbl<'_>, main: Option<&str>, regions: &[String], vars: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let keys = self.string_map(t, "kms_keys", "bake.kms_keys".into(), false);
        if keys.is_empty() {
            return keys;
        }
        let Some(table) = self.sub_table(t, "kms_keys", "bake.kms_keys") else { return keys };
        for (region, key) in &keys {
            let span = self.span_of(&table, region);
            let arn_region = key.strip_prefix("arn:").and_then(|rest| rest.split(':').nth(2));
            if main != Some(region.as_str()) && !regions.contains(region) {
                self.error(span, format!("[bake] kms_keys has a key for {region}, where the AMI is neither baked nor copied"), Some("give keys for `region` and the regions of [bake] regions only"));
            } else if key.trim().is_empty() {
                self.error(span, format!("the key of {region} in [bake] kms_keys is empty"), Some("give a key ARN, key id or alias/NAME"));
            } else if arn_region.is_some_and(|r| r != region) {
                self.error(span, format!("the key of {region} in [bake] kms_keys is in {}", arn_region.unwrap_or_default()), Some(&format!("give a key of {region}: KMS keys are regional")));
            } else if main == Some(region.as_str()) && vars.get("kms_key_id").is_some_and(|k| !k.is_empty()) {
                self.error(span, format!("{region} has two keys: [bake] kms_keys and vars.kms_key_id"), Some("keep the one in kms_keys"));
            }
        }
        keys
    }

    /// An encrypted AMI shared with `[bake] accounts` needs a customer-managed key in each of its regions: Packer's
    /// `kms_key_id` covers the bake's region only (copies get the default key), and the default `aws/ebs` key
    /// cannot be shared, so the accounts could not launch it.
    fn shared_keys(&mut self, t: &Tbl<'_>, main: Option<&str>, regions: &[String], keys: &BTreeMap<String, String>, vars: &BTreeMap<String, String>) {
        let main_key = main.and_then(|m| keys.get(m)).or_else(|| vars.get("kms_key_id")).filter(|k| !k.is_empty());
        let mut missing: Vec<String> = Vec::new();
        match (main, main_key) {
            (None, _) => missing.push("the bake's own region (set `region` at the top of the file)".into()),
            (Some(m), None) => missing.push(m.to_owned()),
            (Some(_), Some(_)) => {}
        }
        missing.extend(regions.iter().filter(|r| Some(r.as_str()) != main && !keys.contains_key(*r)).cloned());
        let default_key = main
            .filter(|_| main_key.is_some_and(|k| is_default_ebs_key(k)))
            .map(str::to_owned)
            .or_else(|| keys.iter().find(|(_, k)| is_default_ebs_key(k)).map(|(r, _)| r.clone()));
        let span = self.span_of(t, "accounts");
        if !missing.is_empty() {
            self.error(
                span,
                format!("[bake] accounts shares an encrypted AMI, which needs a customer-managed KMS key in each of its regions; none for {}", missing.join(", ")),
                Some("add kms_keys = { \"REGION\" = \"arn:aws:kms:REGION:ACCOUNT:key/ID\" } for each, keys the accounts may use, or set encrypted = false"),
            );
        } else if let Some(region) = default_key {
            self.error(
                span,
                format!("[bake] accounts shares an encrypted AMI, but the key of {region} is the AWS managed aws/ebs key, which cannot be shared"),
                Some("use a customer-managed key whose policy lets the accounts use it"),
            );
        }
    }

    /// `base_ami`: an AMI id, or a name filter (only with `base_owners`, so that no stranger's image can match).
    fn base_ami(&mut self, t: &Tbl<'_>, owners: Option<&[String]>) -> Option<BaseAmi> {
        let (s, span) = self.required_str(t, "base_ami", "add base_ami = \"ami-...\" or a name filter with base_owners")?;
        if s.starts_with("ami-") {
            match AmiId::parse(&s) {
                Ok(id) => Some(BaseAmi::Id(id)),
                Err(_) => {
                    self.error(span, format!("base_ami `{s}` is not an AMI id"), Some("write ami- followed by hex digits, or a name filter"));
                    None
                }
            }
        } else if owners.is_none_or(|o| o.is_empty()) {
            self.error(
                span,
                format!("base_ami `{s}` is a name filter but [bake] has no base_owners"),
                Some("add base_owners = [\"amazon\"] (or the account id you trust) so no stranger's image can match"),
            );
            None
        } else {
            Some(BaseAmi::NameFilter(s))
        }
    }

    fn envs(&mut self, top: &Tbl<'_>, deploy: &DeploySettings, asg: &AsgKeys) -> Option<Vec<Environment>> {
        if top.t.get("env").is_none() {
            self.missing(top, "env", "add at least one environment, e.g. [env.staging.clusters.staging]");
            return None;
        }
        let envs_tbl = self.sub_table(top, "env", "env")?;
        let mut envs = Vec::new();
        let mut ok = true;
        // Cluster names are unique within the app, so `switch prod2` needs no --env; a load balancer belongs to one
        // cluster only, across environments.
        let mut seen = Seen::default();
        let names: Vec<String> = envs_tbl.t.iter().map(|(k, _)| k.to_owned()).collect();
        let mut required = Vec::new();
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
            let shape = self.environment(&env_tbl, &label, (deploy, asg), &mut seen);
            let rollout = self.rollout(&env_tbl, &label);
            let hooks = self.hooks(&env_tbl, &label);
            let gates = self.gates(&env_tbl, &label);
            if let (Some(name), Some((_, requires))) = (&name, &gates) {
                required.push((name.clone(), kspan.clone(), requires.clone()));
            }
            match (name, shape, rollout, hooks, gates) {
                (Some(name), Some((vars, topology, queue)), Ok(rollout), Some(hooks), Some((gates, _))) => {
                    if let Some(r) = rollout.as_ref().filter(|r| !r.steps.is_empty() && !matches!(topology, Topology::BlueGreen { .. })) {
                        let span = self.key_span(&env_tbl, "rollout");
                        self.error(
                            span,
                            format!("[{label}.rollout] has steps ({}), but {label} has no dns: traffic cannot be shifted in steps", r.steps.len()),
                            Some("remove `steps`; in place, `pause` and `alarms` apply between the batches of `release promote --batch N`"),
                        );
                        ok = false;
                    } else {
                        envs.push(Environment { name, vars, topology, queue, rollout, hooks, gates });
                    }
                }
                _ => ok = false,
            }
        }
        if envs_tbl.t.is_empty() {
            self.error(envs_tbl.anchor.clone().unwrap_or(0..0), "no environments defined", Some("add [env.<name>.clusters.<cluster>]"));
            return None;
        }
        ok &= self.requires_fit(&required);
        ok.then_some(envs)
    }

    fn environment(
        &mut self,
        t: &Tbl<'_>,
        label: &str,
        (deploy, asg): (&DeploySettings, &AsgKeys),
        seen: &mut Seen,
    ) -> Option<(BTreeMap<String, String>, Topology, QueueMode)> {
        self.unknown_keys(
            t,
            &["vars", "dns", "clusters", "queue", "rollout", "hooks", "fleet", "scaling", "rollback_window", "certificate", "tls_policy", "scheme", "requires", "soak", "approvals", "windows", "auto"],
        );
        let asg = self.asg_keys(t, asg);
        let mut own = deploy.clone();
        self.lb_keys(t, &mut own);
        let deploy = &own;
        let vars = self.string_map(t, "vars", format!("{label}.vars"), true);
        let queue = self.queue_mode(t, label);
        let dns = match t.t.get("dns") {
            Some(_) => Some(self.dns(t, label)),
            None => None,
        };
        if t.t.get("clusters").is_none() {
            self.missing(t, "clusters", &format!("add a [{label}.clusters.<name>] section with load_balancer and count"));
            return None;
        }
        let (clusters, named, mut ok) = self.clusters(t, label, (deploy, &asg), seen)?;
        if !self.cluster_count_fits(t, label, dns.is_some(), named) {
            return None;
        }
        ok &= self.vars_fit(t, label, &vars, &clusters);
        if !ok {
            return None;
        }
        let topology = match dns {
            Some(Some(dns)) => Topology::BlueGreen { dns, clusters },
            Some(None) => return None,
            None => Topology::InPlace { cluster: clusters.into_iter().next()? },
        };
        Some((vars, topology, queue))
    }

    /// `queue`: "fifo" (the default) or "latest".
    fn queue_mode(&mut self, t: &Tbl<'_>, label: &str) -> QueueMode {
        let mut queue = QueueMode::Fifo;
        if let Some((q, span)) = self.str(t, "queue") {
            match q.as_str() {
                "fifo" => queue = QueueMode::Fifo,
                "latest" => queue = QueueMode::Latest,
                _ => self.error(
                    span,
                    format!("queue `{q}` in [{label}] is neither \"fifo\" nor \"latest\""),
                    Some("\"fifo\" serves waiting commands in order of arrival; \"latest\" lets a newer waiting promote supersede older ones"),
                ),
            }
        }
        queue
    }

    /// `[ENV.clusters.*]`, each name unique within the app and each load balancer one cluster's: the clusters
    /// read, how many were named, and whether all were well.
    fn clusters(&mut self, t: &Tbl<'_>, label: &str, (deploy, asg): (&DeploySettings, &AsgKeys), seen: &mut Seen) -> Option<(Vec<Cluster>, usize, bool)> {
        let ct = self.sub_table(t, "clusters", format!("{label}.clusters"))?;
        let mut clusters = Vec::new();
        let mut ok = true;
        let names: Vec<String> = ct.t.iter().map(|(k, _)| k.to_owned()).collect();
        for cname in &names {
            let kspan = self.key_span(&ct, cname);
            let clabel = format!("{label}.clusters.{cname}");
            if let Some(other) = seen.clusters.get(cname) {
                self.error(
                    kspan.clone(),
                    format!("cluster name `{cname}` is already used in [{other}]"),
                    Some("cluster names must be unique within an app; rename one"),
                );
                ok = false;
            }
            seen.clusters.insert(cname.clone(), clabel.to_owned());
            let Some(cl) = self.sub_table(&ct, cname, clabel.clone()) else {
                ok = false;
                continue;
            };
            let name = ClusterName::parse(cname).map_err(|_| {
                self.error(kspan.clone(), format!("cluster name `{cname}` is invalid"), Some("use 1-32 characters of a-z, 0-9 and `-`"))
            });
            match (name, self.cluster(&cl, deploy, asg)) {
                (Ok(name), Some((target, target_span, count, deploy))) => {
                    if let Some(other) = seen.targets.get(target.name()) {
                        self.error(
                            target_span.clone(),
                            format!("{target} is already the load balancer of [{other}]"),
                            Some("a load balancer belongs to one cluster only; give each cluster its own"),
                        );
                        ok = false;
                    }
                    seen.targets.insert(target.name().to_owned(), clabel);
                    let target_at = line_col(self.src, target_span.start);
                    clusters.push(Cluster { name, target, count, deploy, target_at });
                }
                _ => ok = false,
            }
        }
        Some((clusters, names.len(), ok))
    }

    /// Blue/green (dns) needs two clusters or more; in place (no dns), one.
    fn cluster_count_fits(&mut self, t: &Tbl<'_>, label: &str, dns: bool, named: usize) -> bool {
        let anchor = self.key_span(t, "clusters");
        match (dns, named) {
            (_, 0) => {
                self.error(anchor, format!("[{label}] has no clusters"), Some(&format!("add [{label}.clusters.<name>]")));
                false
            }
            (true, 1) => {
                self.error(
                    anchor,
                    format!("[{label}] has dns but only one cluster; blue/green needs two or more"),
                    Some(&format!("add a second cluster under [{label}.clusters], or remove dns to replace in place")),
                );
                false
            }
            (false, n) if n > 1 => {
                self.error(
                    anchor,
                    format!("[{label}] has {n} clusters but no dns; without dns there is one cluster, replaced in place"),
                    Some(&format!("add dns = {{ zone = ..., record = ... }} to [{label}], or keep one cluster")),
                );
                false
            }
            _ => true,
        }
    }

    /// The variables must reach the instances: `ssm:` references need an instance profile to be read at boot, and
    /// all of them must fit in EC2's user data.
    fn vars_fit(&mut self, t: &Tbl<'_>, label: &str, vars: &BTreeMap<String, String>, clusters: &[Cluster]) -> bool {
        let mut ok = true;
        let ssm: Vec<&String> = vars.iter().filter(|(_, v)| v.starts_with("ssm:")).map(|(k, _)| k).collect();
        if let (Some(k), Some(c)) = (ssm.first(), clusters.iter().find(|c| c.deploy.instance_profile.is_none())) {
            let span = self.key_span(t, "vars");
            self.error(
                span,
                format!(
                    "`{k}` in [{label}.vars] is an ssm: reference, but cluster {} has no instance_profile, so its instances cannot read SSM at boot",
                    c.name
                ),
                Some("set instance_profile in [deploy] (or the cluster) to a profile whose role may ssm:GetParameter them"),
            );
            ok = false;
        }
        if let Some(c) = clusters.first() {
            let size = super::user_data_size(vars, c);
            if size > super::USER_DATA_LIMIT {
                let span = self.key_span(t, "vars");
                self.error(
                    span,
                    format!("the variables of [{label}] make {size} bytes of user data, over EC2's {} byte limit", super::USER_DATA_LIMIT),
                    Some("move large values to SSM (ssm:/path) and keep the variables small"),
                );
                ok = false;
            }
        }
        ok
    }

    fn dns(&mut self, env: &Tbl<'_>, label: &str) -> Option<DnsSettings> {
        let t = self.sub_table(env, "dns", format!("{label}.dns"))?;
        if t.t.contains_key("ttl") {
            let span = self.key_span(&t, "ttl");
            self.error(
                span,
                format!("`ttl` in [{label}.dns] has no effect: the live name is an alias, which takes the load balancer's TTL (60 s)"),
                Some("remove it; `settle` says how long a cluster keeps traffic after a switch away from it"),
            );
        }
        self.unknown_keys_except(&t, &["zone", "record", "settle"], &["ttl"]);
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
        let settle = if t.t.contains_key("settle") { self.duration(&t, "settle", SETTLE_RANGE) } else { Some(DEFAULT_SETTLE) };
        if t.t.contains_key("ttl") {
            return None;
        }
        Some(DnsSettings { zone: zone?, record: record?, settle: settle? })
    }

    fn cluster(&mut self, t: &Tbl<'_>, deploy: &DeploySettings, asg: &AsgKeys) -> Option<(LbTarget, Range<usize>, u32, DeploySettings)> {
        let mut allowed = vec!["load_balancer", "target_group", "count"];
        allowed.extend_from_slice(DEPLOY_KEYS);
        self.unknown_keys(t, &allowed);
        let target = self.lb_target(t);
        let count = match self.int(t, "count") {
            Some((n, span)) if !(1..=MAX_COUNT).contains(&n) => {
                self.error(span, format!("count {n} is outside 1..{MAX_COUNT}"), Some(&format!("set how many instances the cluster runs, from 1 to {MAX_COUNT}")));
                None
            }
            Some((n, _)) => Some(n as u32),
            None if !t.t.contains_key("count") => {
                self.missing(t, "count", "add count = <number of instances>");
                None
            }
            None => None,
        };
        let mut settings = self.deploy_settings(t, deploy);
        if let Some((LbTarget::ClassicElb(_), _)) = &target {
            self.classic_health(t, &settings.health);
        }
        let asg = self.asg_keys(t, asg);
        let asg_ok = self.asg_fits(t, &asg, count);
        settings.fleet = asg.fleet.map(|(f, _)| f).unwrap_or_default();
        settings.scaling = asg.scaling;
        settings.rollback_window = asg.rollback_window.map(|(d, _)| d);
        let least = settings.health.least_time();
        if settings.health_timeout < least {
            let span = if t.t.contains_key("health_timeout") { self.span_of(t, "health_timeout") } else { t.anchor.clone().unwrap_or(0..0) };
            self.error(
                span,
                format!(
                    "health_timeout {} of [{}] is shorter than a new instance needs to pass its health check: about {} to boot + {} checks x {} = {}",
                    format_duration(settings.health_timeout),
                    t.name,
                    format_duration(super::BOOT_ALLOWANCE),
                    settings.health.healthy,
                    format_duration(settings.health.interval),
                    format_duration(least)
                ),
                Some(&format!("raise health_timeout to {} or more (10m is usual)", format_duration(least))),
            );
        }
        if let Some(n) = count {
            if u64::from(n) * 2 > u64::from(settings.max_targets) {
                let span = self.span_of(t, "count");
                self.error(
                    span,
                    format!(
                        "count {n} cannot be swapped: old and new instances sit in the load balancer together, 2 x {n} = {} > {} targets it may hold",
                        n * 2,
                        settings.max_targets
                    ),
                    Some("lower count to half the quota, or set max_targets if your load balancer's quota was raised"),
                );
            }
        }
        if let Some((LbTarget::TargetGroup(_), span)) = &target {
            let subnets = settings.lb_subnets();
            if subnets.len() == 1 {
                self.error(
                    span.clone(),
                    format!("[{}] puts an application load balancer in one subnet; an ALB needs subnets in at least two zones", t.name),
                    Some("list two or more lb_subnets (or subnets) in different zones, or leave them empty for the default VPC's"),
                );
            }
        }
        let (target, span) = target?;
        asg_ok.then_some(())?;
        Some((target, span, count?, settings))
    }

    /// `fleet`, `scaling` and `rollback_window` of one table, over what it inherits.
    fn asg_keys(&mut self, t: &Tbl<'_>, base: &AsgKeys) -> AsgKeys {
        let mut k = base.clone();
        if let Some((f, span)) = self.str(t, "fleet") {
            match f.as_str() {
                "asg" => k.fleet = Some((FleetKind::Asg, span)),
                "instances" => k.fleet = Some((FleetKind::Instances, span)),
                _ => self.error(
                    span,
                    format!("fleet `{f}` in [{}] is neither \"asg\" nor \"instances\"", t.name),
                    Some("\"asg\" runs each release as an Auto Scaling group; \"instances\" (the default) launches bare instances"),
                ),
            }
        }
        if let Some(v) = self.duration(t, "rollback_window", ROLLBACK_WINDOW_RANGE) {
            k.rollback_window = Some((v, self.span_of(t, "rollback_window")));
        }
        if let Some(sc) = self.sub_table(t, "scaling", format!("{}.scaling", t.name)) {
            self.unknown_keys(&sc, &["min", "max", "cpu"]);
            k.scaling_at = Some(self.span_of(t, "scaling"));
            for (key, slot, least) in [("min", &mut k.scaling.min, 0), ("max", &mut k.scaling.max, 1)] {
                if let Some((n, span)) = self.int(&sc, key) {
                    if (least..=MAX_COUNT).contains(&n) {
                        *slot = Some(n as u32);
                    } else {
                        self.error(span, format!("scaling {key} {n} in [{}] is outside {least}..{MAX_COUNT}", t.name), Some("give the group's bound in instances"));
                    }
                }
            }
            if let Some((n, span)) = self.int(&sc, "cpu") {
                match u8::try_from(n) {
                    Ok(c) if (1..=100).contains(&c) => k.scaling.cpu = Some(c),
                    _ => self.error(span, format!("scaling cpu {n} in [{}] is outside 1..100", t.name), Some("give the average CPU to track, in percent (60 is usual)")),
                }
            }
        }
        k
    }

    /// A cluster's resolved asg keys: asg settings only on an asg fleet, min <= max, count inside them.
    fn asg_fits(&mut self, t: &Tbl<'_>, k: &AsgKeys, count: Option<u32>) -> bool {
        let asg = matches!(k.fleet, Some((FleetKind::Asg, _)));
        let mut ok = true;
        if !asg {
            let stray = [("scaling", k.scaling_at.clone()), ("rollback_window", k.rollback_window.as_ref().map(|(_, s)| s.clone()))];
            for (key, span) in stray {
                let Some(span) = span else { continue };
                self.error(
                    span,
                    format!("`{key}` applies to asg fleets only, and [{}] runs fleet = \"instances\"", t.name),
                    Some("set fleet = \"asg\" where the cluster's settings are, or remove it"),
                );
                ok = false;
            }
            return ok;
        }
        let (min, max) = (k.scaling.min.or(count), k.scaling.max.or(count));
        let span = k.scaling_at.clone().unwrap_or_else(|| t.anchor.clone().unwrap_or(0..0));
        if let (Some(min), Some(max)) = (min, max) {
            if min > max {
                self.error(span, format!("scaling of [{}]: min {min} is above max {max}", t.name), Some("make min at most max"));
                return false;
            }
            if let Some(n) = count.filter(|n| !(min..=max).contains(n)) {
                let span = self.span_of(t, "count");
                self.error(span, format!("count {n} of [{}] is outside its scaling bounds {min}..{max}", t.name), Some("make count, the first group's size, fit between min and max"));
                ok = false;
            }
        }
        ok
    }

    /// `load_balancer` (a classic ELB) or `target_group` (an ALB's), one of them, with where it was written.
    fn lb_target(&mut self, t: &Tbl<'_>) -> Option<(LbTarget, Range<usize>)> {
        let lb = self.str(t, "load_balancer");
        let tg = self.str(t, "target_group");
        match (lb, tg) {
            (Some(_), Some((_, span))) => {
                self.error(span, format!("[{}] names both load_balancer and target_group", t.name), Some("keep one of them"));
                None
            }
            (Some((n, span)), None) => self.lb_name(n, span.clone(), "load balancer").map(|n| (LbTarget::ClassicElb(n), span)),
            (None, Some((n, span))) => self.lb_name(n, span.clone(), "target group").map(|n| (LbTarget::TargetGroup(n), span)),
            (None, None) => {
                if !t.t.contains_key("load_balancer") && !t.t.contains_key("target_group") {
                    self.missing(t, "load_balancer", "add load_balancer = \"<classic ELB name>\" or target_group = \"<target group name>\"");
                }
                None
            }
        }
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

const TOP_KEYS: &[&str] = &["app", "region", "ledger_table", "build", "test", "bake", "deploy", "env", "notify"];

const DEPLOY_KEYS: &[&str] = &[
    "instance_type",
    "health_timeout",
    "drain",
    "subnets",
    "lb_subnets",
    "security_groups",
    "allow",
    "port",
    "health_path",
    "health",
    "instance_profile",
    "key_name",
    "metadata_tokens",
    "root_volume",
    "max_targets",
    "fleet",
    "scaling",
    "rollback_window",
    "certificate",
    "tls_policy",
    "scheme",
];

/// The region of an ACM certificate ARN (`arn:aws:acm:us-east-1:123456789012:certificate/<id>`), none when `arn`
/// is not one.
fn acm_region(arn: &str) -> Option<&str> {
    let mut p = arn.splitn(6, ':');
    let (arn_, partition, service, region, account, resource) = (p.next()?, p.next()?, p.next()?, p.next()?, p.next()?, p.next()?);
    let id = resource.strip_prefix("certificate/")?;
    let ok = arn_ == "arn"
        && (partition == "aws" || partition.starts_with("aws-"))
        && service == "acm"
        && is_region(region)
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    ok.then_some(region)
}

/// An URL for messages: scheme, host and the first path segment; the rest (tokens of Slack's hook URLs), a query,
/// a fragment and `user:password@` are cut.
fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let mut parts = rest.splitn(3, '/');
    let host = parts.next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    match (parts.next(), parts.next()) {
        (Some(first), Some(_)) => format!("{scheme}://{host}/{first}/…"),
        (Some(first), None) => format!("{scheme}://{host}/{first}"),
        _ => format!("{scheme}://{host}"),
    }
}

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

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else { return false };
    ip.parse::<std::net::Ipv4Addr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= 32)
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

impl Walker<'_> {
    /// `[env.NAME.rollout]`: `steps` (blue/green only; checked by the caller, which knows the topology), `pause`,
    /// `alarms`. `Err` when it has a problem (reported).
    fn rollout(&mut self, env: &Tbl<'_>, label: &str) -> Result<Option<Rollout>, ()> {
        if env.t.get("rollout").is_none() {
            return Ok(None);
        }
        let name = format!("{label}.rollout");
        let Some(t) = self.sub_table(env, "rollout", name.clone()) else { return Err(()) };
        let before = self.diags.len();
        self.unknown_keys(&t, &["steps", "pause", "alarms"]);
        let mut steps = Vec::new();
        let before_steps = self.diags.len();
        if let Some(item) = t.t.get("steps") {
            let span = self.span_of(&t, "steps");
            match item.as_array() {
                None => self.error(span, format!("`steps` in [{name}] must be an array, not {}", item.type_name()), Some("write steps = [10, 50, 100]")),
                Some(arr) => {
                    let mut spans = Vec::new();
                    for v in arr.iter() {
                        let vspan = v.span().unwrap_or_else(|| span.clone());
                        match (v.as_integer(), v.as_str()) {
                            (Some(n), _) if (1..=100).contains(&n) => steps.push(RolloutStep::Percent(n as u8)),
                            (Some(n), _) => self.error(vspan.clone(), format!("step {n} in [{name}] is not a share of 1 to 100 percent"), Some("use whole percentages from 1 to 100")),
                            (None, Some("hold")) => steps.push(RolloutStep::Hold),
                            _ => self.error(vspan.clone(), format!("step `{v}` in [{name}] is neither a percentage nor \"hold\"", v = v.to_string().trim()), Some("write a whole number from 1 to 100, or \"hold\"")),
                        }
                        spans.push(vspan);
                    }
                    if self.diags.len() == before_steps {
                        if let Err((i, message, hint)) = check_steps(&steps) {
                            let at = spans.get(i).cloned().unwrap_or(span);
                            self.error(at, format!("{message} in [{name}]"), Some(&hint));
                        }
                    }
                }
            }
        }
        let pause = if t.t.contains_key("pause") { self.duration(&t, "pause", (Duration::ZERO, MAX_ROLLOUT_PAUSE)) } else { Some(DEFAULT_ROLLOUT_PAUSE) };
        let mut alarms: Vec<String> = Vec::new();
        for (a, span) in self.str_list(&t, "alarms").unwrap_or_default() {
            // CloudWatch alarm names: 1-255 characters, no control characters.
            if a.trim().is_empty() || a.len() > 255 || a.chars().any(char::is_control) {
                self.error(span, format!("alarm name `{a}` in [{name}] is not a CloudWatch alarm name"), Some("give the alarm's exact name (1-255 characters)"));
            } else if alarms.contains(&a) {
                self.error(span, format!("alarm `{a}` is listed twice in [{name}]"), Some("list each alarm once"));
            } else {
                alarms.push(a);
            }
        }
        if alarms.len() > MAX_ROLLOUT_ALARMS {
            let span = self.span_of(&t, "alarms");
            self.error(span, format!("[{name}] lists {} alarms, more than {MAX_ROLLOUT_ALARMS}", alarms.len()), Some("combine them into composite alarms"));
        }
        if self.diags.len() > before {
            return Err(());
        }
        Ok(Some(Rollout { steps, pause: pause.ok_or(())?, alarms }))
    }
}

/// `[env.NAME.hooks]`.
impl Walker<'_> {
    fn hooks(&mut self, env: &Tbl<'_>, label: &str) -> Option<crate::model::hook::HookSettings> {
        let mut out = crate::model::hook::HookSettings::default();
        if env.t.get("hooks").is_none() {
            return Some(out);
        }
        let t = self.sub_table(env, "hooks", format!("{label}.hooks"))?;
        let before = self.diags.len();
        self.unknown_keys(&t, &["before_promote", "before_traffic", "after_traffic", "hook_timeout", "rollback_on_hook_failure"]);
        for key in ["before_promote", "before_traffic", "after_traffic"] {
            let Some((cmd, span)) = self.str(&t, key) else { continue };
            if cmd.contains('\n') || cmd.contains('\0') {
                self.error(span, format!("`{key}` in [{label}.hooks] must be one line"), Some("put a longer hook in a script and run that, e.g. \"./scripts/smoke\""));
                continue;
            }
            let cmd = (!cmd.trim().is_empty()).then_some(cmd);
            match key {
                "before_promote" => out.before_promote = cmd,
                "before_traffic" => out.before_traffic = cmd,
                _ => out.after_traffic = cmd,
            }
        }
        if t.t.get("hook_timeout").is_some() {
            if let Some(d) = self.duration(&t, "hook_timeout", (Duration::from_secs(1), Duration::from_secs(6 * 3600))) {
                out.timeout = d;
            }
        }
        if let Some(item) = t.t.get("rollback_on_hook_failure") {
            match item.as_bool() {
                Some(b) => out.rollback_on_failure = Some(b),
                None => {
                    let span = self.span_of(&t, "rollback_on_hook_failure");
                    self.error(
                        span,
                        format!("`rollback_on_hook_failure` in [{label}.hooks] must be true or false, not {}", item.type_name()),
                        Some("write true or false without quotes"),
                    );
                }
            }
        }
        (self.diags.len() == before).then_some(out)
    }
}

/// The promotion gates of an environment (`requires`, `soak`, `approvals`, `windows`, `auto`).
impl Walker<'_> {
    /// The gates, with each environment `requires` names and where; `None` when one is wrong (reported).
    fn gates(&mut self, t: &Tbl<'_>, label: &str) -> Option<(Gates, Vec<(String, Range<usize>)>)> {
        let before = self.diags.len();
        let mut gates = Gates::default();
        let requires = self.str_list(t, "requires").unwrap_or_default();
        for (r, span) in &requires {
            match EnvName::parse(r) {
                Ok(n) if !gates.requires.contains(&n) => gates.requires.push(n),
                Ok(_) => self.error(span.clone(), format!("`{r}` is listed twice in `requires` of [{label}]"), Some("list each environment once")),
                Err(_) => self.error(span.clone(), format!("`{r}` in `requires` of [{label}] is not an environment name"), Some("name environments of this file, like \"staging\"")),
            }
        }
        if t.t.contains_key("soak") {
            gates.soak = self.duration(t, "soak", SOAK_RANGE);
            if gates.soak.is_some() && requires.is_empty() {
                let span = self.span_of(t, "soak");
                self.error(span, format!("`soak` in [{label}] needs `requires`: it is how long a commit served there"), Some("add requires = [\"staging\"], or remove soak"));
            }
        }
        if let Some((n, span)) = self.int(t, "approvals") {
            match u32::try_from(n) {
                Ok(n) if n <= 100 => gates.approvals = n,
                _ => self.error(span, format!("`approvals` in [{label}] is {n}, outside 0..100"), Some("write how many distinct people must approve, 0 for none")),
            }
        }
        for (w, span) in self.str_list(t, "windows").unwrap_or_default() {
            match Window::parse(&w) {
                Ok(w) => gates.windows.push(w),
                Err(why) => self.error(span, format!("{why} (in [{label}])"), Some("write \"DAYS HH:MM-HH:MM ZONE\", like \"mon-fri 09:00-16:00 Europe/Lisbon\"")),
            }
        }
        if let Some(item) = t.t.get("auto") {
            match item.as_bool() {
                Some(b) => gates.auto = b,
                None => {
                    let span = self.span_of(t, "auto");
                    self.error(span, format!("`auto` in [{label}] must be true or false, not {}", item.type_name()), Some("write true or false without quotes"));
                }
            }
        }
        (self.diags.len() == before).then_some((gates, requires))
    }

    /// Every environment named in a `requires` exists, and no chain of `requires` comes back to where it started.
    fn requires_fit(&mut self, required: &[(EnvName, Range<usize>, Vec<(String, Range<usize>)>)]) -> bool {
        let before = self.diags.len();
        let known: Vec<&str> = required.iter().map(|(n, _, _)| n.as_str()).collect();
        for (env, _, reqs) in required {
            for (r, span) in reqs {
                if r == env.as_str() {
                    self.error(span.clone(), format!("[env.{env}] requires itself"), Some("remove it from `requires`"));
                } else if !known.contains(&r.as_str()) {
                    let hint = match closest(r, &known) {
                        Some(c) => format!("did you mean `{c}`?"),
                        None => format!("name one of: {}", known.join(", ")),
                    };
                    self.error(span.clone(), format!("`requires` of [env.{env}] names `{r}`, which is not an environment of this file"), Some(&hint));
                }
            }
        }
        if self.diags.len() > before {
            return false;
        }
        // A cycle: reported once, at the first environment of it in file order, naming the whole loop.
        let edges: BTreeMap<&str, Vec<&str>> =
            required.iter().map(|(n, _, r)| (n.as_str(), r.iter().map(|(s, _)| s.as_str()).collect())).collect();
        for (env, _, reqs) in required {
            let mut path = vec![env.as_str()];
            if cycle_from(env.as_str(), env.as_str(), &edges, &mut path, &mut Default::default()) {
                let span = reqs.iter().find(|(r, _)| r == path[1]).map(|(_, s)| s.clone()).unwrap_or(0..0);
                self.error(span, format!("`requires` makes a cycle: {}", path.join(" -> ")), Some("no commit could ever enter these environments; remove one of the requirements"));
                return false;
            }
        }
        true
    }
}

/// Whether following `requires` from `at` comes back to `start`; `path` is then the loop.
fn cycle_from<'a>(start: &str, at: &str, edges: &BTreeMap<&'a str, Vec<&'a str>>, path: &mut Vec<&'a str>, seen: &mut std::collections::BTreeSet<&'a str>) -> bool {
    for &n in edges.get(at).map(Vec::as_slice).unwrap_or_default() {
        if n == start {
            path.push(n);
            return true;
        }
        if seen.insert(n) {
            path.push(n);
            if cycle_from(start, n, edges, path, seen) {
                return true;
            }
            path.pop();
        }
    }
    false
}

/// Whether `key` names the AWS managed EBS key (`alias/aws/ebs`, as an alias or an alias ARN).
fn is_default_ebs_key(key: &str) -> bool {
    key == "alias/aws/ebs" || key.ends_with(":alias/aws/ebs")
}

/// The longest health check timeout a classic ELB takes (a target group's: 120 s, `health`'s parse range).
const CLASSIC_HEALTH_TIMEOUT_MAX: Duration = Duration::from_secs(60);

/// What RunInstances would refuse in a root volume, the key it is about and how to fix it. The bounds are the
/// EC2 API Reference's for `EbsBlockDevice` (`VolumeSize`, `Iops`, `Throughput`; as in aws-sdk-ec2 1.274):
/// sizes gp2 1-16,384 GiB, gp3 1-65,536, io1 4-16,384, io2 4-65,536, st1 and sc1 125-16,384, standard 1-1,024;
/// IOPS gp3 3,000-80,000, io1 100-64,000, io2 100-256,000, required for io1 and io2 and taken by no other type;
/// throughput gp3 only, 125-2,000 MiB/s. The ratios are the EBS User Guide's ("Amazon EBS volume types"): gp3 at
/// most 500 IOPS per GiB and 0.25 MiB/s per provisioned IOPS (the 3,000 IOPS and 125 MiB/s baseline come with
/// any size), io1 50 IOPS per GiB, io2 1,000.
pub(crate) fn volume_problem(v: &RootVolume) -> Option<(String, &'static str, String)> {
    let (kind, size) = (v.kind.as_str(), u64::from(v.size_gb));
    let sizes = match kind {
        "gp3" | "io2" => (if kind == "io2" { 4 } else { 1 }, 65_536),
        "io1" => (4, 16_384),
        "st1" | "sc1" => (125, 16_384),
        "standard" => (1, 1_024),
        _ => (1, 16_384),
    };
    if !(sizes.0..=sizes.1).contains(&size) {
        return Some((format!("root volume size {size} GiB is outside {kind}'s {}..{} GiB", sizes.0, sizes.1), "size_gb", format!("give size_gb between {} and {}", sizes.0, sizes.1)));
    }
    let iops_bounds = match kind {
        "gp3" => Some((3_000, 80_000, 500)),
        "io1" => Some((100, 64_000, 50)),
        "io2" => Some((100, 256_000, 1_000)),
        _ => None,
    };
    match (iops_bounds, v.iops.map(u64::from)) {
        (None, Some(_)) => return Some((format!("root volume type {kind} takes no `iops`"), "iops", "remove iops, or use gp3, io1 or io2".into())),
        (Some(_), None) if kind != "gp3" => {
            return Some((format!("root volume type {kind} needs `iops`"), "type", format!("add iops = N to root_volume ({kind}: at least 100)")))
        }
        (Some((least, most, per_gib)), Some(n)) => {
            if !(least..=most).contains(&n) {
                return Some((format!("root volume iops {n} is outside {kind}'s {least}..{most}"), "iops", format!("give iops between {least} and {most}")));
            }
            // gp3's baseline 3,000 IOPS comes with any size; above it, and for io1/io2 always, the ratio holds.
            let allowed = (per_gib * size).max(if kind == "gp3" { 3_000 } else { 0 });
            if n > allowed {
                return Some((
                    format!("root volume iops {n} is more than {kind} allows for {size} GiB ({per_gib} per GiB: {allowed})"),
                    "iops",
                    format!("lower iops to {allowed} or raise size_gb to {}", n.div_ceil(per_gib)),
                ));
            }
        }
        _ => {}
    }
    if let Some(t) = v.throughput.map(u64::from) {
        if kind != "gp3" {
            return Some((format!("root volume type {kind} takes no `throughput`"), "throughput", "remove throughput, or use gp3".into()));
        }
        if !(125..=2_000).contains(&t) {
            return Some((format!("root volume throughput {t} MiB/s is outside gp3's 125..2000"), "throughput", "give throughput between 125 and 2000".into()));
        }
        let iops = v.iops.map_or(3_000, u64::from);
        if t * 4 > iops && t > 125 {
            return Some((
                format!("root volume throughput {t} MiB/s is more than gp3 allows for {iops} IOPS (0.25 MiB/s per IOPS: {})", iops / 4),
                "throughput",
                format!("lower throughput to {} or raise iops to {}", (iops / 4).max(125), t * 4),
            ));
        }
    }
    None
}
