//! The floors of release-core, read from its source (`use crate::…` and `crate::…` paths), as ARCHITECTURE.md
//! states them:
//!
//! - model <- ports <- engine <- observe <- steps <- ops <- lib.rs: a module imports only its own floor and those
//!   below it;
//! - no cycle among the modules (a module is `floor::name`: `engine::runner`, `ops::switch`; a module's own
//!   submodules, like `ops::switch::rollout`, are part of it);
//! - an operation never imports another operation (what two need lives a floor down);
//! - only steps and the engine call a port that changes the world (launch, register, submit, put_record, ...):
//!   operations, views and the facade see the cloud read-only;
//! - only the engine waits (sleeps on the clock): every other floor waits through the runner's `Op`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const FLOORS: [&str; 6] = ["model", "ports", "engine", "observe", "steps", "ops"];

/// The calls of a port that change the world, as `.port.method(`.
const WRITES: &[(&str, &[&str])] = &[
    ("fleet", &["launch", "terminate"]),
    ("balancer", &["create", "configure", "register", "deregister"]),
    ("firewall", &["create_group", "authorize", "revoke"]),
    ("dns", &["create_zone", "submit"]),
    ("ledger", &["create_table", "put_record", "put_record_with_lock", "index_env"]),
    ("lock", &["acquire", "renew", "release", "break_lock"]),
    ("queue", &["enqueue", "update_ticket", "remove_ticket"]),
    ("images", &["tag", "deregister", "delete_snapshot"]),
    ("baker", &["bake"]),
    ("hooks", &["start"]),
    ("templates", &["ensure_template", "create_version", "delete_versions"]),
    ("groups", &["create", "attach", "detach", "set_capacity", "suspend", "resume", "tag", "untag", "put_cpu_policy", "delete"]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `ops::switch` for `src/ops/switch/rollout.rs`; `lib` for `src/lib.rs`; `ports` for `src/ports/mod.rs`.
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src()).unwrap().with_extension("");
    let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    match parts.as_slice() {
        [one] => one.clone(),
        [floor, rest @ ..] if rest.first().is_some_and(|r| r == "mod") => floor.clone(),
        [floor, name, ..] => format!("{floor}::{name}"),
        _ => unreachable!(),
    }
}

fn floor_of(module: &str) -> usize {
    let top = module.split("::").next().unwrap();
    FLOORS.iter().position(|f| *f == top).unwrap_or(FLOORS.len())
}

/// The source without comments (doc comments name modules of other floors on purpose).
fn code(text: &str) -> String {
    text.lines().map(|l| l.split("//").next().unwrap()).collect::<Vec<_>>().join("\n")
}

/// The modules a file's code names, as `floor::name` (or `floor` alone), from `crate::a::b` and `use crate::a::{b, c}`.
fn uses(text: &str) -> BTreeSet<String> {
    let code = code(text);
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let path: String = rest.chars().take_while(|c| c.is_alphanumeric() || "_:{, \n".contains(*c)).collect();
        let mut segs = path.split("::");
        let floor = segs.next().unwrap_or_default().trim().to_owned();
        if !FLOORS.contains(&floor.as_str()) {
            continue;
        }
        match segs.next().map(str::trim) {
            Some(group) if group.starts_with('{') => {
                for name in group.trim_start_matches('{').split(',') {
                    let name = name.trim().split("::").next().unwrap_or_default();
                    if name.chars().next().is_some_and(|c| c.is_lowercase()) && name != "self" {
                        out.insert(format!("{floor}::{name}"));
                    }
                }
            }
            Some(name) if name.chars().next().is_some_and(|c| c.is_lowercase()) && floor != "ports" => {
                out.insert(format!("{floor}::{name}"));
            }
            _ => {
                out.insert(floor);
            }
        }
    }
    out
}

fn sources() -> Vec<(PathBuf, String, String)> {
    let mut all = Vec::new();
    files(&src(), &mut all);
    all.sort();
    all.into_iter().map(|p| (p.clone(), module_of(&p), std::fs::read_to_string(&p).unwrap())).collect()
}

#[test]
fn imports_point_down_only() {
    let mut wrong = Vec::new();
    for (path, module, text) in sources() {
        let own = floor_of(&module);
        for used in uses(&text) {
            if floor_of(&used) > own {
                wrong.push(format!("{} ({module}, floor {}) uses {used}", path.display(), FLOORS.get(own).unwrap_or(&"lib")));
            }
        }
    }
    assert!(wrong.is_empty(), "imports that point up a floor:\n{}", wrong.join("\n"));
}

#[test]
fn operations_never_import_each_other() {
    let mut wrong = Vec::new();
    for (path, module, text) in sources() {
        if !module.starts_with("ops::") {
            continue;
        }
        for used in uses(&text) {
            if used.starts_with("ops::") && used != module {
                wrong.push(format!("{} ({module}) uses {used}", path.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "operations importing operations:\n{}", wrong.join("\n"));
}

#[test]
fn no_cycle_among_modules() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (_, module, text) in sources() {
        let edges = graph.entry(module.clone()).or_default();
        for used in uses(&text) {
            if used != module && !module.starts_with(&format!("{used}::")) {
                edges.insert(used);
            }
        }
    }
    // Depth-first search for a back edge; the cycle is printed as found.
    fn visit(n: &str, g: &BTreeMap<String, BTreeSet<String>>, stack: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            return Some(stack[i..].iter().cloned().chain([n.to_owned()]).collect());
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_owned());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(cycle) = visit(n, &graph, &mut Vec::new(), &mut done) {
            panic!("a cycle among release-core's modules: {}", cycle.join(" -> "));
        }
    }
    assert!(graph.len() > 20, "the source was read ({} modules)", graph.len());
}

#[test]
fn only_steps_and_the_engine_change_the_world() {
    let mut wrong = Vec::new();
    for (path, module, text) in sources() {
        if module.starts_with("steps") || module.starts_with("engine") || module.starts_with("ports") {
            continue;
        }
        let code = code(&text);
        for (port, methods) in WRITES {
            for m in *methods {
                let call = format!(".{port}.{m}(");
                for (n, line) in code.lines().enumerate() {
                    if line.contains(&call) {
                        wrong.push(format!("{}:{} ({module}) calls {port}.{m}", path.display(), n + 1));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "writes outside steps and the engine:\n{}", wrong.join("\n"));
}

#[test]
fn only_the_engine_waits() {
    // Every wait is the engine's (`Op::pause`, `Op::nap`, `Op::sleep_through`, the queue's, the deliveries'): on the
    // `Clock` port, so that it runs in simulated time in tests, and a run's signals and lost lock can end it.
    let mut wrong = Vec::new();
    for (path, module, text) in sources() {
        if module.starts_with("engine") {
            continue;
        }
        for (n, line) in code(&text).lines().enumerate() {
            if line.contains(".sleep(") || line.contains("::sleep(") {
                wrong.push(format!("{}:{} ({module}) sleeps", path.display(), n + 1));
            }
        }
    }
    assert!(wrong.is_empty(), "waits outside the engine (use Op::pause, Op::nap or Op::sleep_through):\n{}", wrong.join("\n"));
}

#[test]
fn the_checks_see_what_they_check() {
    // The reader of paths finds what a known file imports: a test of the test.
    let found = uses("use crate::engine::runner::Op;\nuse crate::model::{ids, ledger::Record};\nlet x = crate::steps::dns::flip(op);\n// crate::ops::gc is named in a comment");
    let want: BTreeSet<String> = ["engine::runner", "model::ids", "model::ledger", "steps::dns"].into_iter().map(String::from).collect();
    assert_eq!(found, want);
    assert_eq!(module_of(&src().join("ops/switch/rollout.rs")), "ops::switch");
    assert_eq!(module_of(&src().join("ports/mod.rs")), "ports");
    assert_eq!(module_of(&src().join("lib.rs")), "lib");
    assert!(floor_of("ops::gc") > floor_of("steps::dns") && floor_of("lib") > floor_of("ops::gc"));
}
