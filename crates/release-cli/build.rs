//! Stamps the binary with the git commit it was built from (`release --version`): a deploy tool is asked "which
//! build did this" after the fact. Outside a git checkout (a source tarball) the commit is `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned()).filter(|s| !s.is_empty())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=RELEASE_GIT_COMMIT={commit}");
    // Run again when HEAD moves: a commit (the branch's ref file) or a checkout (HEAD itself).
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        let common = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]);
        if let (Some(common), Some(head_ref)) = (common, git(&["symbolic-ref", "-q", "HEAD"])) {
            let loose = format!("{common}/{head_ref}");
            println!("cargo:rerun-if-changed={loose}");
            // A ref packed by `git gc` lives in packed-refs instead, and only then is that file watched: git reads
            // a loose ref first, and packed-refs changes whenever any branch of any worktree is packed (`git gc
            // --auto` after a commit elsewhere), which would relink this binary under running e2e tests for nothing.
            if !std::path::Path::new(&loose).exists() {
                println!("cargo:rerun-if-changed={common}/packed-refs");
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
