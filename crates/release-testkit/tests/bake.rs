//! `ops::bake` on the in-memory cloud with simulated time, a scripted Packer and workspace: its writes run in the
//! operation runner, under the lock of the commit's bakes (a second bake of that commit is refused while the first
//! runs, one of another commit is not), and a Ctrl-C stops it at its next wait and releases the lock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use release_core::model::ids::{AmiId, CommitSha};
use release_core::ops::bake::{bake, BakeContext, BakeOptions, BakeOutcome};
use release_core::ports::{tags, BakeRequest, Baker, Export, Image, ImageState, ProgressFn, Workspace};
use release_core::{ErrorKind, Result};
use release_testkit::fixtures::World;
use release_testkit::memory::MemoryCloud;

/// Packer: registers the AMI at once, pending; it becomes available `after` later (never, when `None`).
#[derive(Clone)]
struct ScriptedPacker {
    cloud: MemoryCloud,
    after: Option<Duration>,
    runs: Arc<AtomicUsize>,
}

#[async_trait]
impl Baker for ScriptedPacker {
    async fn version(&self) -> Result<String> {
        Ok("1.11.2".into())
    }

    async fn bake(&self, req: &BakeRequest, _progress: &ProgressFn) -> Result<AmiId> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let ami = self.cloud.register_image(&req.vars["ami_name"], ImageState::Pending);
        if let Some(after) = self.after {
            let (cloud, id) = (self.cloud.clone(), ami.clone());
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                if let Some((_, i)) = cloud.state().images.get_mut(&id) {
                    i.state = ImageState::Available;
                }
            });
        }
        Ok(ami)
    }
}

/// git and the stages: the export is a directory prepared by the test; the stages pass.
struct Checkout;

#[async_trait]
impl Workspace for Checkout {
    async fn resolve(&self, rev: &str) -> Result<CommitSha> {
        CommitSha::parse(rev)
    }

    async fn export(&self, _sha: &CommitSha) -> Result<Export> {
        unreachable!("the test exports by hand")
    }

    async fn subject(&self, sha: &CommitSha) -> Result<String> {
        Ok(format!("commit {}", sha.short()))
    }

    async fn run_stage(&self, _stage: &str, _command: &str, _dir: &Path) -> Result<()> {
        Ok(())
    }
}

/// An export holding the template and the artifact of the `shop` pipeline, and its base AMI registered.
fn export(w: &World, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("release-testkit-bake-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("t.pkr.hcl"), "source \"amazon-ebs\" \"aws\" {}\n").unwrap();
    std::fs::write(dir.join("a.tgz"), "artifact").unwrap();
    let base = AmiId::parse("ami-0a1b2c3d4e5f60718").unwrap();
    let image = Image { id: base.clone(), name: "base".into(), state: ImageState::Available, created: "2026-01-01T00:00:00.000Z".into(), tags: BTreeMap::new(), snapshots: vec![], root_device: None };
    w.cloud.state().images.insert(base, ("amazon".into(), image));
    dir
}

fn sha(c: char) -> CommitSha {
    CommitSha::parse(&c.to_string().repeat(40)).unwrap()
}

fn opts() -> BakeOptions {
    BakeOptions { force: false, emulator_endpoint: None, region: "us-east-1".into() }
}

async fn bake_as(w: &World, release: &release_core::Release, packer: &ScriptedPacker, dir: &Path, commit: char) -> Result<BakeOutcome> {
    let ctx = BakeContext { session: &release.session, workspace: &Checkout, baker: packer };
    bake(&ctx, &w.pipeline, dir, &sha(commit), &opts()).await
}

#[tokio::test(start_paused = true)]
async fn a_bake_holds_its_commits_lock_a_second_bake_of_it_is_refused_and_another_commit_is_not() {
    let w = World::new(1).await;
    let dir = export(&w, "lock");
    let packer = ScriptedPacker { cloud: w.cloud.clone(), after: Some(Duration::from_secs(60)), runs: Default::default() };
    let (alice, bob) = (w.release("alice"), w.release("bob"));
    let (first, (second, other)) = tokio::join!(bake_as(&w, &alice, &packer, &dir, 'a'), async {
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(w.locked(), "the bake holds its lock while its AMI becomes available");
        let second = bake_as(&w, &bob, &packer, &dir, 'a').await;
        let other = bake_as(&w, &bob, &packer, &dir, 'b').await;
        (second, other)
    });
    let first = first.expect("the first bake ends");
    assert!(!first.reused);
    let err = second.expect_err("a second bake of a is refused while the first runs");
    assert_eq!(err.kind(), ErrorKind::LockHeld, "{err}");
    assert!(err.message().starts_with(&format!("{} is being baked by alice since ", sha('a').short())), "{err}");
    assert!(other.expect("b is another commit: its bake does not wait for a's").bake_key != first.bake_key);
    assert_eq!(packer.runs.load(Ordering::SeqCst), 2, "packer ran for a and b, once each");
    let s = w.cloud.state();
    let image = &s.images[&first.ami].1;
    assert_eq!((&image.state, image.tags.get(tags::BAKE_KEY)), (&ImageState::Available, Some(&first.bake_key.to_string())));
    drop(s);
    assert!(!w.locked(), "every bake released its lock");

    // Once it ended, the same bake reuses it (read before any lock is taken).
    let again = bake_as(&w, &bob, &packer, &dir, 'a').await.unwrap();
    assert!(again.reused && again.ami == first.ami, "{again:?}");
    assert_eq!(packer.runs.load(Ordering::SeqCst), 2);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(start_paused = true)]
async fn ctrl_c_stops_a_bake_at_its_next_wait_and_the_next_bake_removes_what_it_left() {
    let w = World::new(1).await;
    let dir = export(&w, "ctrl-c");
    let stuck = ScriptedPacker { cloud: w.cloud.clone(), after: None, runs: Default::default() };
    let (alice, ctrl_c) = w.release_with("alice", None);
    let (stopped, ()) = tokio::join!(bake_as(&w, &alice, &stuck, &dir, 'a'), async {
        tokio::time::sleep(Duration::from_secs(12)).await;
        ctrl_c.signal();
    });
    let err = stopped.expect_err("interrupted while its AMI was pending");
    assert_eq!(err.kind(), ErrorKind::Interrupted, "{err}");
    assert!(!w.locked(), "the lock went with the bake");
    let left: Vec<AmiId> = w.cloud.state().images.values().filter(|(_, i)| i.name.starts_with("shop-aaaaaaaaaaaa-")).map(|(_, i)| i.id.clone()).collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(!w.cloud.state().images[&left[0]].1.tags.contains_key(tags::BAKE_KEY), "never a good bake");
    assert!(w.lines.lock().unwrap().iter().any(|l| l.starts_with("interrupted: stopping bake of aaaaaaaaaaaa and leaving at most an AMI without its bake key")), "{:?}", w.lines.lock().unwrap());

    let packer = ScriptedPacker { cloud: w.cloud.clone(), after: Some(Duration::from_secs(30)), runs: Default::default() };
    let done = bake_as(&w, &w.release("alice"), &packer, &dir, 'a').await.expect("the next bake completes");
    assert_eq!(done.cleaned, left, "it removed the AMI the interrupted bake left");
    assert!(!w.locked());
    std::fs::remove_dir_all(&dir).ok();
}

/// Packer that records the variables it was given, then bakes as [`ScriptedPacker`] does.
struct RecordingPacker {
    inner: ScriptedPacker,
    vars: std::sync::Mutex<Vec<BTreeMap<String, String>>>,
}

#[async_trait]
impl Baker for RecordingPacker {
    async fn version(&self) -> Result<String> {
        self.inner.version().await
    }

    async fn bake(&self, req: &BakeRequest, progress: &ProgressFn) -> Result<AmiId> {
        self.vars.lock().unwrap().push(req.vars.clone());
        self.inner.bake(req, progress).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_shared_bake_hands_packer_the_key_of_its_region_and_of_each_copy() {
    // Packer's kms_key_id is the key of the bake's region only; the copies take theirs from region_kms_key_ids
    // (else their region's default key, which the accounts cannot use).
    let mut w = World::new(1).await;
    w.pipeline.bake.regions = vec!["eu-west-1".into(), "ap-south-1".into()];
    w.pipeline.bake.accounts = vec!["210987654321".into()];
    w.pipeline.bake.kms_keys = [
        ("us-east-1", "arn:aws:kms:us-east-1:123456789012:key/main"),
        ("eu-west-1", "arn:aws:kms:eu-west-1:123456789012:key/eu"),
        ("ap-south-1", "alias/shared-amis"),
    ]
    .into_iter()
    .map(|(r, k)| (r.to_owned(), k.to_owned()))
    .collect();
    let dir = export(&w, "kms");
    let packer = RecordingPacker { inner: ScriptedPacker { cloud: w.cloud.clone(), after: Some(Duration::from_secs(5)), runs: Default::default() }, vars: Default::default() };
    let release = w.release("alice");
    let ctx = BakeContext { session: &release.session, workspace: &Checkout, baker: &packer };
    bake(&ctx, &w.pipeline, &dir, &sha('c'), &opts()).await.expect("the bake ends");
    let vars = packer.vars.lock().unwrap()[0].clone();
    assert_eq!(vars.get("kms_key_id").map(String::as_str), Some("arn:aws:kms:us-east-1:123456789012:key/main"), "{vars:?}");
    assert_eq!(
        vars.get("region_kms_key_ids").map(String::as_str),
        Some("{\"eu-west-1\" = \"arn:aws:kms:eu-west-1:123456789012:key/eu\", \"ap-south-1\" = \"alias/shared-amis\"}"),
        "{vars:?}"
    );
    assert_eq!(vars.get("ami_users").map(String::as_str), Some("[\"210987654321\"]"));
    assert!(!vars.contains_key("encrypt_boot"), "encrypted is the template's default");
    std::fs::remove_dir_all(&dir).ok();
}
