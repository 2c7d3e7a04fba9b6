//! `release gc` against the emulator: what it removes and keeps is read back from EC2 (images, snapshots,
//! instances) and the ledger; rollback still works afterwards; `--plan` changes nothing; a crash mid-way converges.

use std::collections::BTreeSet;

use release_e2e::{AwsView, Emulator, Project};

/// Every snapshot of this account: (id, tags).
async fn snapshots(aws: &AwsView) -> Vec<(String, std::collections::BTreeMap<String, String>)> {
    let out = aws.ec2.describe_snapshots().owner_ids("self").send().await.unwrap();
    let mut v: Vec<_> = out
        .snapshots()
        .iter()
        .map(|s| (s.snapshot_id().unwrap().to_owned(), s.tags().iter().map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned())).collect()))
        .collect();
    v.sort();
    v
}

/// The app's images by commit: commit -> (ami, snapshots).
async fn images_by_commit(aws: &AwsView) -> std::collections::BTreeMap<String, (String, Vec<String>)> {
    aws.own_images()
        .await
        .into_iter()
        .filter(|i| i.tags.iter().any(|(k, v)| k == "release:app" && v == "hello"))
        .map(|i| (i.tags.iter().find(|(k, _)| *k == "release:commit").map(|(_, v)| v.clone()).unwrap_or_default(), (i.id, i.snapshots)))
        .collect()
}

fn commit_of(i: &release_e2e::Ec2Instance) -> String {
    i.tags["release:commit"].clone()
}

#[tokio::test]
async fn gc_keep_2_after_8_bakes_removes_exactly_what_nothing_needs_and_rollback_still_works_twice() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    // Eight real bakes through Packer: a..h.
    let mut shas = vec![a.clone(), b.clone()];
    for label in ["v3", "v4", "v5", "v6", "v7", "v8"] {
        shas.push(project.bake_new(&emu, label));
    }
    let [a, b, c, d, e, f, g, h] = <[String; 8]>::try_from(shas.clone()).unwrap();
    let ok = |args: &[&str]| {
        project.release(&emu, args).assert_ok();
    };
    // staging (in place): a, b, c, e live in turn, then a rollback back to c. Live history: a b c.
    for sha in [&a, &b, &c, &e] {
        ok(&["promote", sha, "--env", "staging"]);
    }
    ok(&["rollback", "--env", "staging", "--yes"]);
    // prod (blue/green): c on prod2, switched to; d on prod1, switched to; f on prod2, switched to, rolled back
    // (a switch back to d on prod1). Live history: c d; prod2 still runs f.
    ok(&["promote", &c, "--env", "prod", "--yes"]);
    ok(&["switch", "prod2", "--yes"]);
    ok(&["promote", &d, "--env", "prod", "--yes", "--force"]);
    ok(&["switch", "prod1", "--yes"]);
    ok(&["promote", &f, "--env", "prod", "--yes", "--force"]);
    ok(&["switch", "prod2", "--yes"]);
    ok(&["rollback", "--env", "prod", "--yes"]);
    let running: BTreeSet<String> = aws.app_instances("hello").await.iter().filter(|i| i.state == "running").map(commit_of).collect();
    assert_eq!(running, [c.clone(), d.clone(), f.clone()].into_iter().collect::<BTreeSet<_>>(), "staging runs c, prod1 d, prod2 f");

    // An orphan: the app's tag, in no load balancer, of no release, of no operation.
    let base = aws.own_images().await.into_iter().find(|i| i.tags.iter().any(|(k, v)| k == "release:commit" && *v == a)).unwrap().id;
    let orphan = aws
        .ec2
        .run_instances()
        .image_id(&base)
        .min_count(1)
        .max_count(1)
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                .tags(aws_sdk_ec2::types::Tag::builder().key("release:app").value("hello").build())
                .build(),
        )
        .send()
        .await
        .unwrap()
        .instances()[0]
        .instance_id()
        .unwrap()
        .to_owned();

    // With the default --older-than (14d) every image is young: nothing would go, and the plan says why each stays.
    let young = project.release(&emu, &["gc", "--keep", "2", "--plan", "--output", "json"]).assert_ok().json();
    assert_eq!(young["plan"]["images"].as_array().unwrap().len(), 0, "{young}");
    assert_eq!(young["plan"]["kept"].as_array().unwrap().len(), 8);

    // `images` says why each image stays (gc's defaults: --keep 3, --older-than 14d).
    let images = project.release(&emu, &["images", "--output", "json"]).assert_ok().json();
    let verdict = |sha: &str| images["images"].as_array().unwrap().iter().find(|i| i["commit"] == sha).unwrap()["gc"].as_str().unwrap().to_owned();
    assert!(verdict(&d).starts_with("kept: running in prod/prod1; live in prod"), "{}", verdict(&d));
    assert!(verdict(&e).starts_with("kept: younger than 14d"), "{}", verdict(&e));
    let table = project.release(&emu, &["images"]).assert_ok().stdout.clone();
    assert!(table.lines().next().unwrap().ends_with("GC") && table.contains("rollback target of staging (2nd previous)"), "{table}");

    // With --older-than 0s only the keep rules decide.
    let before = emu.state();
    let before_images = images_by_commit(&aws).await;
    let plan = project.release(&emu, &["gc", "--keep", "2", "--older-than", "0s", "--plan", "--output", "json"]);
    plan.assert_ok();
    before.assert_same(&emu.state(), "gc --plan");
    let doc = plan.json();
    let p = &doc["plan"];
    let removed: BTreeSet<String> = p["images"].as_array().unwrap().iter().map(|i| i["commit"].as_str().unwrap().to_owned()).collect();
    // Kept: running c (staging), d (prod1), f (prod2); staging's rollback targets b, a (live c); prod's target c
    // (live d); the 2 commits baked last g, h. Collectable: e only (rolled away from in staging, runs nowhere).
    assert_eq!(removed, [e.clone()].into_iter().collect::<BTreeSet<_>>(), "{}", serde_json::to_string_pretty(p).unwrap());
    let reasons = |sha: &str| -> Vec<String> {
        p["kept"].as_array().unwrap().iter().find(|k| k["commit"] == sha).map(|k| k["reasons"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()).collect()).unwrap_or_default()
    };
    assert!(reasons(&a).contains(&"rollback target of staging (2nd previous)".to_owned()), "{:?}", reasons(&a));
    assert!(reasons(&b).contains(&"rollback target of staging (previous)".to_owned()), "{:?}", reasons(&b));
    assert!(reasons(&c).contains(&"running in staging/staging".to_owned()) && reasons(&c).contains(&"rollback target of prod (previous)".to_owned()), "{:?}", reasons(&c));
    assert!(reasons(&d).contains(&"running in prod/prod1".to_owned()) && reasons(&d).contains(&"live in prod".to_owned()), "{:?}", reasons(&d));
    assert!(reasons(&f).contains(&"running in prod/prod2".to_owned()), "{:?}", reasons(&f));
    assert!(reasons(&g).iter().any(|r| r == "newest bake of one of the 2 commits baked last (#2)"), "{:?}", reasons(&g));
    assert!(reasons(&h).iter().any(|r| r == "newest bake of one of the 2 commits baked last (#1)"), "{:?}", reasons(&h));
    assert_eq!(p["instances"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect::<Vec<_>>(), vec![orphan.as_str()]);
    // Bounded: one describe each of snapshots, images and instances, whatever the number of images.
    let calls = &doc["api_calls"];
    assert_eq!(calls["EC2:DescribeImages"], 1, "{calls}");
    assert_eq!(calls["EC2:DescribeSnapshots"], 1, "{calls}");
    assert_eq!(calls["EC2:DescribeInstances"], 1, "{calls}");
    let text = project.release(&emu, &["gc", "--keep", "2", "--older-than", "0s", "--plan"]).assert_ok().stdout.clone();
    assert!(text.contains("rollback target of staging (2nd previous)") && text.ends_with("nothing was changed (--plan)\n"), "{text}");

    let rows_before = aws.ledger("release-ledger").await.len();
    // Apply, without --yes (no terminal): images go, the orphan instance is only listed.
    let run = project.release(&emu, &["gc", "--keep", "2", "--older-than", "0s", "--output", "json"]);
    run.assert_ok();
    let report = run.json();
    assert_eq!(report["removed_images"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["instances_left"][0], orphan.as_str());
    let after = images_by_commit(&aws).await;
    let gone: BTreeSet<&String> = before_images.keys().filter(|k| !after.contains_key(*k)).collect();
    assert_eq!(gone, [&e].into_iter().collect::<BTreeSet<_>>(), "exactly e's AMI is gone");
    let snaps: BTreeSet<String> = snapshots(&aws).await.into_iter().map(|s| s.0).collect();
    for (commit, (ami, s)) in &before_images {
        for snap in s {
            assert_eq!(snaps.contains(snap), commit != &e, "snapshot {snap} of {ami} ({commit})");
        }
    }
    assert!(!before_images[&e].1.is_empty(), "e's AMI had snapshots to delete");
    assert!(aws.app_instances("hello").await.iter().any(|i| i.id == orphan && i.state == "running"), "the orphan is left without --yes");
    // The ledger: one gc record naming what it removed; every earlier record is still there.
    let ledger = aws.ledger("release-ledger").await;
    let gc: Vec<_> = ledger.iter().filter(|r| r["action"] == "gc").collect();
    assert_eq!(gc.len(), 1, "{ledger:#?}");
    assert_eq!(gc[0]["outcome"], "succeeded");
    assert_eq!(gc[0]["removed_images"], "1 items", "{:?}", gc[0]);
    assert_eq!(ledger.len(), rows_before + 1, "gc adds its record and deletes no ledger row");
    let history = project.release(&emu, &["history", "--env", "prod", "--limit", "1", "--output", "json"]).assert_ok().json();
    assert_eq!(history["records"][0]["action"], "gc", "{history}");
    assert_eq!(history["records"][0]["removed_images"][0], before_images[&e].0.as_str(), "{history}");

    // With --yes the orphan goes too; a second gc then finds nothing to do.
    let yes = project.release(&emu, &["gc", "--keep", "2", "--older-than", "0s", "--yes", "--output", "json"]).assert_ok().json();
    assert_eq!(yes["terminated"][0], orphan.as_str(), "{yes}");
    assert!(aws.app_instances("hello").await.iter().any(|i| i.id == orphan && i.state == "terminated"));
    let again = project.release(&emu, &["gc", "--keep", "2", "--older-than", "0s", "--yes"]).assert_ok().stdout.clone();
    assert!(again.contains("removed 0 image(s)") && again.contains("nothing to remove"), "{again}");

    // Rollback works twice in staging (to b, then a) and once more in prod (to c), all from kept images.
    for want in [&b, &a] {
        ok(&["rollback", "--env", "staging", "--yes"]);
        let live = aws.running("hello", "staging").await;
        assert!(live.len() == 2 && live.iter().all(|i| &commit_of(i) == want));
    }
    ok(&["rollback", "--env", "prod", "--yes", "--force"]);
    assert!(aws.running("hello", "prod2").await.iter().all(|i| commit_of(i) == c), "prod rolled back to c, promoted from its kept AMI");
}

#[tokio::test]
async fn kill_9_in_the_middle_of_gc_then_a_rerun_converges_with_no_orphan_snapshot() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let c = project.bake_new(&emu, "v3");
    let d = project.bake_new(&emu, "v4");
    let aws = AwsView::new(&emu).await;
    let before = images_by_commit(&aws).await;
    // keep 1: only d (baked last) stays; a, b, c go. The process dies right after deregistering the first.
    let crashed = project.release_env(&emu, &[("RELEASE_TEST_CRASH_AT", "deregistered")], &["gc", "--keep", "1", "--older-than", "0s"]);
    assert_ne!(crashed.code, 0, "{crashed:?}");
    let mid = images_by_commit(&aws).await;
    assert_eq!(mid.len(), 3, "one image deregistered before the crash");
    let held: BTreeSet<String> = mid.values().flat_map(|(_, s)| s.clone()).collect();
    let app_snaps: Vec<String> = snapshots(&aws).await.into_iter().filter(|(_, t)| t.get("release:app").map(String::as_str) == Some("hello")).map(|s| s.0).collect();
    let orphans: Vec<&String> = app_snaps.iter().filter(|s| !held.contains(*s)).collect();
    assert!(!orphans.is_empty(), "the crash left the deregistered image's snapshots");
    // The dead run's locks: held until their lease runs out, or broken by `unlock` (its process is gone).
    let locked = project.release(&emu, &["gc", "--keep", "1", "--older-than", "0s"]);
    assert_eq!(locked.code, 5, "{locked:?}");
    for env in ["prod", "staging"] {
        project.release(&emu, &["unlock", "--env", env]).assert_ok();
    }
    let plan = project.release(&emu, &["gc", "--keep", "1", "--older-than", "0s", "--plan", "--output", "json"]).assert_ok().json();
    assert_eq!(plan["plan"]["snapshots"].as_array().unwrap().len(), orphans.len(), "{plan}");
    project.release(&emu, &["gc", "--keep", "1", "--older-than", "0s"]).assert_ok();
    let end = images_by_commit(&aws).await;
    assert_eq!(end.keys().collect::<Vec<_>>(), vec![&d]);
    let left: Vec<String> = snapshots(&aws).await.into_iter().filter(|(_, t)| t.get("release:app").map(String::as_str) == Some("hello")).map(|s| s.0).collect();
    assert_eq!(left.iter().collect::<BTreeSet<_>>(), end[&d].1.iter().collect::<BTreeSet<_>>(), "no orphan snapshot");
    for (commit, (_, s)) in &before {
        if commit != &d {
            assert!(s.iter().all(|x| !left.contains(x)), "{commit}");
        }
    }
    let ledger = aws.ledger("release-ledger").await;
    let outcomes: Vec<&str> = ledger.iter().filter(|r| r["action"] == "gc").map(|r| r["outcome"].as_str()).collect();
    assert_eq!(outcomes.len(), 2, "{ledger:#?}");
    assert!(outcomes.contains(&"abandoned") && outcomes.contains(&"succeeded"), "{outcomes:?}");
    let _ = (a, b, c);
    println!("gc kill -9 points tried on the emulator: 1 (after the first deregistration); orphan snapshots found and deleted: {}", orphans.len());
}

#[tokio::test]
async fn gc_bad_input_is_refused_with_no_change() {
    let emu = Emulator::start();
    let (project, _, _) = Project::baked_demo(&emu);
    let before = emu.state();
    for (args, code, line) in [
        (vec!["gc", "--keep", "0"], 2, "error: --keep must be at least 1 (the target of the next rollback); the default is 3"),
        (vec!["gc", "--older-than", "two weeks"], 2, "error: --older-than: `two weeks` is not a duration; give a duration like 14d, 36h or 0s"),
        (vec!["gc", "--app", "nope"], 3, ""),
    ] {
        let run = project.release(&emu, &args);
        assert_eq!(run.code, code, "{args:?}: {run:?}");
        if !line.is_empty() {
            assert_eq!(run.error_line(), line);
        }
        let json = project.release(&emu, &[args.clone(), vec!["--output", "json"]].concat());
        assert_eq!(json.json()["ok"], false, "{args:?}");
    }
    before.assert_same(&emu.state(), "bad gc input");
}

#[tokio::test]
async fn copies_in_other_regions_follow_their_source_on_the_emulator() {
    let emu = Emulator::start();
    let project = Project::demo_repo();
    let text = project.read("pipelines/hello.toml");
    project.write("pipelines/hello.toml", &text.replace("[deploy]", "regions = [\"eu-west-1\"]\n\n[deploy]"));
    project.commit("copy bakes to eu-west-1");
    let a = project.git(&["rev-parse", "HEAD"]);
    project.release(&emu, &["provision", "--env", "staging"]).assert_ok();
    project.release(&emu, &["bake", &a]).assert_ok();
    let b = project.bake_new(&emu, "v2");
    // What the real-AWS source does (ami_regions, tags copied): a tagged copy of each bake in eu-west-1.
    let copies = release_e2e::boto3(
        &emu,
        "src = client('ec2'); dst = boto3.client('ec2', endpoint_url=E, region_name='eu-west-1', aws_access_key_id='test', aws_secret_access_key='test')\n\
         out = {}\n\
         for i in src.describe_images(Owners=['self'], Filters=[{'Name': 'tag:release:app', 'Values': ['hello']}])['Images']:\n\
         \x20   c = dst.copy_image(SourceImageId=i['ImageId'], SourceRegion='us-east-1', Name=i['Name'])['ImageId']\n\
         \x20   dst.create_tags(Resources=[c], Tags=[t for t in i['Tags'] if t['Key'].startswith('release:')])\n\
         \x20   out[[t['Value'] for t in i['Tags'] if t['Key'] == 'release:commit'][0]] = c\n\
         print(json.dumps(out))",
    );
    let copies: std::collections::BTreeMap<String, String> = serde_json::from_str(copies.trim()).unwrap();
    assert_eq!(copies.len(), 2);
    let plan = project.release(&emu, &["gc", "--keep", "1", "--older-than", "0s", "--plan"]).assert_ok().stdout.clone();
    assert!(plan.contains(&format!("remove {} (in eu-west-1) {}", copies[&a], &a[..12])), "{plan}");
    assert!(plan.contains(&format!("keep   {} (in eu-west-1) {}", copies[&b], &b[..12])), "{plan}");
    let run = project.release(&emu, &["gc", "--keep", "1", "--older-than", "0s", "--output", "json"]).assert_ok().json();
    assert_eq!(run["removed_images"].as_array().unwrap().len(), 2, "a and its copy: {run}");
    assert_eq!(run["api_calls"]["EC2:DescribeImages"], 2, "one describe per region, under the locks: {}", run["api_calls"]);
    let left = release_e2e::boto3(
        &emu,
        "dst = boto3.client('ec2', endpoint_url=E, region_name='eu-west-1', aws_access_key_id='test', aws_secret_access_key='test')\n\
         print(json.dumps(sorted(i['ImageId'] for i in dst.describe_images(Owners=['self'])['Images'])))",
    );
    assert_eq!(serde_json::from_str::<Vec<String>>(left.trim()).unwrap(), vec![copies[&b].clone()], "only b's copy is left in eu-west-1");
    let home: Vec<String> = images_by_commit(&AwsView::new(&emu).await).await.into_keys().collect();
    assert_eq!(home, vec![b.clone()]);
}

#[tokio::test]
async fn a_real_kill_9_while_gc_deletes_then_a_rerun_leaves_no_orphan_snapshot() {
    let emu = Emulator::start();
    let (project, _, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    // Volume where a real bake is not the point: 40 more bakes registered directly, tagged (snapshots too) as bakes
    // leave them, after the real bakes a and b: the last of them is the one --keep 1 keeps.
    release_e2e::boto3(
        &emu,
        "ec2 = client('ec2')\n\
         base = ec2.describe_images(Owners=['amazon'], Filters=[{'Name': 'name', 'Values': ['al2023-ami-2023.*-x86_64']}])['Images'][0]['ImageId']\n\
         for k in range(40):\n\
         \x20   i = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1)['Instances'][0]['InstanceId']\n\
         \x20   a = ec2.create_image(InstanceId=i, Name='hello-old-%d' % k)['ImageId']\n\
         \x20   ec2.terminate_instances(InstanceIds=[i])\n\
         \x20   snaps = [m['Ebs']['SnapshotId'] for m in ec2.describe_images(ImageIds=[a])['Images'][0]['BlockDeviceMappings'] if 'Ebs' in m]\n\
         \x20   ec2.create_tags(Resources=[a] + snaps, Tags=[{'Key': 'release:app', 'Value': 'hello'}, {'Key': 'release:commit', 'Value': '%040x' % (k + 1)}, {'Key': 'release:bake-key', 'Value': 'old%d' % k}])",
    );
    let with_snaps = |imgs: &[release_e2e::OwnImage]| -> BTreeSet<String> { imgs.iter().flat_map(|i| i.snapshots.clone()).collect() };
    let all = aws.own_images().await;
    assert_eq!(all.len(), 42);
    // SIGKILL in the middle of the deletions (where exactly varies; the test above kills at the worst point).
    let bg = project.background(&emu.url(), &[], &["gc", "--keep", "1", "--older-than", "0s"]);
    bg.wait_for("[5/", std::time::Duration::from_secs(60));
    bg.signal("KILL");
    let killed = bg.finish(std::time::Duration::from_secs(10));
    assert_ne!(killed.code, 0, "{killed:?}");
    let mid = aws.own_images().await;
    assert!(mid.len() < 42 && mid.len() > 1, "killed in the middle: {} images left", mid.len());
    for env in ["prod", "staging"] {
        project.release(&emu, &["unlock", "--env", env]).assert_ok();
    }
    project.release(&emu, &["gc", "--keep", "1", "--older-than", "0s"]).assert_ok();
    let end = aws.own_images().await;
    assert_eq!(end.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), vec!["hello-old-39"], "only the bake made last is left");
    assert!(all.iter().any(|i| i.tags.iter().any(|(k, v)| k == "release:commit" && *v == b)), "b was there to remove");
    let snaps: BTreeSet<String> = snapshots(&aws).await.into_iter().filter(|(_, t)| t.get("release:app").map(String::as_str) == Some("hello")).map(|s| s.0).collect();
    assert_eq!(snaps, with_snaps(&end), "no snapshot of the app without its image");
    println!("gc killed with SIGKILL after {} of 41 deletions; the re-run removed the rest, orphan snapshots left: 0", 42 - mid.len());
}

#[tokio::test]
async fn a_backup_tools_snapshot_of_a_release_volume_is_never_collected_and_a_bakes_orphan_snapshot_still_is() {
    let emu = Emulator::start();
    let (project, a, b) = Project::baked_demo(&emu);
    let aws = AwsView::new(&emu).await;
    project.release(&emu, &["promote", &a, "--env", "staging"]).assert_ok();
    let instance = aws.running("hello", "staging").await[0].id.clone();
    // What backup tools do with a release instance: Data Lifecycle Manager snapshots its volume copying the volume's
    // tags (CopyTags); AWS Backup makes an image of it, copying the instance's tags onto the image and its snapshots.
    let made = release_e2e::boto3(
        &emu,
        &format!(
            "ec2 = client('ec2')\n\
             vol = ec2.describe_volumes(Filters=[{{'Name': 'attachment.instance-id', 'Values': ['{instance}']}}])['Volumes'][0]\n\
             tags = [t for t in vol.get('Tags', []) if not t['Key'].startswith('aws:')]\n\
             dlm = ec2.create_snapshot(VolumeId=vol['VolumeId'], Description='Created for policy: policy-0123 schedule: daily', TagSpecifications=[{{'ResourceType': 'snapshot', 'Tags': tags}}])['SnapshotId']\n\
             itags = [t for t in ec2.describe_instances(InstanceIds=['{instance}'])['Reservations'][0]['Instances'][0]['Tags'] if not t['Key'].startswith('aws:')]\n\
             ami = ec2.create_image(InstanceId='{instance}', Name='AwsBackup_{instance}_0001')['ImageId']\n\
             snaps = [m['Ebs']['SnapshotId'] for m in ec2.describe_images(ImageIds=[ami])['Images'][0]['BlockDeviceMappings'] if 'Ebs' in m]\n\
             ec2.create_tags(Resources=[ami] + snaps, Tags=itags)\n\
             print(json.dumps({{'dlm': dlm, 'volume_tags': {{t['Key']: t['Value'] for t in tags}}, 'backup_ami': ami, 'backup_snaps': snaps}}))"
        ),
    );
    let made: serde_json::Value = serde_json::from_str(made.trim()).unwrap();
    let dlm = made["dlm"].as_str().unwrap().to_owned();
    let backup_ami = made["backup_ami"].as_str().unwrap().to_owned();
    let backup_snaps: Vec<String> = made["backup_snaps"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect();
    assert_eq!(made["volume_tags"]["release:app"], "hello", "the launched volume carries the app's tag, so its copy does: {made}");
    assert_eq!(aws.snapshot_tags(&dlm).await.get("release:app").map(String::as_str), Some("hello"));
    // A snapshot that truly is a bake's: b's image deregistered by a gc that was killed before deleting its snapshots.
    let (b_ami, b_snaps) = images_by_commit(&aws).await[&b].clone();
    assert!(!b_snaps.is_empty());
    aws.ec2.deregister_image().image_id(&b_ami).send().await.unwrap();

    let before = emu.state();
    let plan = project.release(&emu, &["gc", "--keep", "1", "--older-than", "0s", "--plan", "--output", "json"]).assert_ok().json();
    before.assert_same(&emu.state(), "gc --plan");
    let p = &plan["plan"];
    let listed: BTreeSet<String> = p["snapshots"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(listed, b_snaps.iter().cloned().collect::<BTreeSet<_>>(), "exactly b's snapshots are orphans, not the backup's: {p}");
    assert!(p["images"].as_array().unwrap().iter().all(|i| i["ami"] != backup_ami.as_str()), "{p}");
    let kept = p["kept"].as_array().unwrap().iter().find(|k| k["ami"] == backup_ami.as_str()).expect("the backup image is listed as kept");
    assert!(kept["reasons"][0].as_str().unwrap().starts_with("not a bake"), "{kept}");

    project.release(&emu, &["gc", "--keep", "1", "--older-than", "0s", "--yes"]).assert_ok();
    let left: BTreeSet<String> = snapshots(&aws).await.into_iter().map(|s| s.0).collect();
    assert!(left.contains(&dlm), "the backup tool's snapshot is still in EC2");
    assert!(backup_snaps.iter().all(|s| left.contains(s)), "the backup image's snapshots are still in EC2");
    assert!(aws.own_images().await.iter().any(|i| i.id == backup_ami), "the backup image is still registered");
    assert!(b_snaps.iter().all(|s| !left.contains(s)), "b's orphan snapshots were deleted");
    let gc = aws.ledger("release-ledger").await.into_iter().find(|r| r["action"] == "gc").expect("a gc record");
    assert_eq!(gc["outcome"], "succeeded", "{gc:?}");
}
