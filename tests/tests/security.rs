//! Secrets stay references, and the printed IAM policy is exactly enough.

use release_e2e::{boto3, AwsView, Emulator, Project};

const SECRET: &str = "pl4nted-s3cret-value-7c1e";

#[tokio::test]
async fn a_planted_secret_never_appears_in_output_logs_arguments_user_data_or_the_ledger() {
    let emu = Emulator::start();
    boto3(&emu, &format!("client('ssm').put_parameter(Name='/hello/staging/database-url', Value='{SECRET}', Type='SecureString')"));
    // The secret is really there to be found: the grep below could fail.
    let stored = boto3(&emu, "print(client('ssm').get_parameter(Name='/hello/staging/database-url', WithDecryption=True)['Parameter']['Value'])");
    assert_eq!(stored.trim(), SECRET);

    let project = Project::demo_repo();
    let tools = tempfile::tempdir().unwrap();
    let args_log = tools.path().join("packer-args.log");
    let wrapper = tools.path().join("packer");
    std::fs::write(&wrapper, format!("#!/bin/sh\necho \"$@\" >> {}\nexec packer \"$@\"\n", args_log.display())).unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let env = [("PACKER", wrapper.to_str().unwrap()), ("RELEASE_LOG", "trace")];
    let sha = project.git(&["rev-parse", "HEAD"]);
    let mut seen = String::new();
    for args in [
        vec!["provision", "--env", "staging", "-vv"],
        vec!["bake", &sha, "-vv", "--output", "json"],
        vec!["promote", &sha, "--env", "staging", "-vv", "--output", "json"],
        vec!["status", "-vv", "--output", "json"],
        vec!["history", "-vv", "--output", "json"],
        vec!["images", "-vv"],
    ] {
        let run = project.release_env(&emu, &env, &args);
        run.assert_ok();
        seen.push_str(&run.stdout);
        seen.push_str(&run.stderr);
    }
    let aws = AwsView::new(&emu).await;
    let instances = aws.app_instances("hello").await;
    assert_eq!(instances.len(), 2);
    let mut user_data = String::new();
    for i in &instances {
        user_data.push_str(&aws.user_data(&i.id).await);
    }
    assert!(user_data.contains("--name '/hello/staging/database-url'"), "the reference is there, resolved at boot");
    let ledger = format!("{:?}", aws.ledger("release-ledger").await);
    let packer_args = std::fs::read_to_string(&args_log).unwrap();
    assert!(packer_args.contains("-var"), "packer ran: {packer_args}");
    let mut found = 0;
    for (what, text) in [("output and logs", &seen), ("user data", &user_data), ("ledger", &ledger), ("packer arguments", &packer_args)] {
        if text.contains(SECRET) {
            found += 1;
            eprintln!("the secret leaked into {what}");
        }
    }
    println!("planted secret searched in output, logs, user data, ledger and packer arguments: found {found} times");
    assert_eq!(found, 0);
}

#[tokio::test]
async fn the_printed_policy_is_enough_and_removing_a_permission_fails_clearly() {
    let project = Project::demo_repo();
    // `iam-policy --offline` needs no AWS: the split policy is known before the emulator starts.
    let policy = release_e2e::release(project.path(), None, &["iam-policy", "--offline", "--output", "json"]);
    policy.assert_ok();
    let n_parts = policy.json()["policies"].as_array().unwrap().len();
    // moto enforces IAM after the harness's warm-up requests and the IAM calls below: a user, a key and a policy for
    // the admin; a user, a key and each part of the policy for the deployer.
    let free = (Emulator::WARM_UP_REQUESTS + 5 + n_parts as u32).to_string();
    let shim = rust_sdk_signature_shim();
    let emu = Emulator::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", free.as_str()), ("PYTHONPATH", shim.path().to_str().unwrap())]);
    // moto's signature check under IAM enforcement rejects a Rust SDK request whose form body holds a space (a
    // tag value, here the commit subject that bake writes); real AWS does not. A subject without one avoids it.
    project.git(&["commit", "-q", "--amend", "-m", "demo"]);
    // moto authorises every action against resource "*" and evaluates no conditions (see its iam/access_control.py),
    // so here each statement's resource becomes "*" and conditions go: what this proves is that the printed actions
    // are enough and each matters; the resource scoping only real AWS can check. The deployer gets every part of
    // the split policy, each under its own name, as a role gets the managed policies.
    let mut parts = policy.json()["policies"].clone();
    for part in parts.as_array_mut().unwrap() {
        for st in part["document"]["Statement"].as_array_mut().unwrap() {
            st["Resource"] = "*".into();
            st.as_object_mut().unwrap().remove("Condition");
        }
    }
    assert!(parts.as_array().unwrap().len() >= 2, "release's and Packer's statements are apart: {parts}");
    let policy_file = project.path().join("policies.json");
    std::fs::write(&policy_file, serde_json::to_string_pretty(&parts).unwrap()).unwrap();
    let keys = boto3(
        &emu,
        &format!(
            "iam = client('iam')\n\
             out = {{}}\n\
             admin = [{{'name': 'admin', 'document': {{'Version': '2012-10-17', 'Statement': [{{'Effect': 'Allow', 'Action': '*', 'Resource': '*'}}]}}}}]\n\
             for user, parts in [('admin', admin), ('deployer', json.load(open('{}')))]:\n\
             \x20   iam.create_user(UserName=user)\n\
             \x20   k = iam.create_access_key(UserName=user)['AccessKey']\n\
             \x20   for part in parts:\n\
             \x20       iam.put_user_policy(UserName=user, PolicyName=part['name'], PolicyDocument=json.dumps(part['document']))\n\
             \x20   out[user] = [k['AccessKeyId'], k['SecretAccessKey']]\n\
             print(json.dumps(out))",
            policy_file.display()
        ),
    );
    let keys: serde_json::Value = serde_json::from_str(keys.trim()).unwrap();
    let key = |u: &str, i: usize| keys[u][i].as_str().unwrap().to_owned();
    let (dk, ds) = (key("deployer", 0), key("deployer", 1));
    let deployer = [("AWS_ACCESS_KEY_ID", dk.as_str()), ("AWS_SECRET_ACCESS_KEY", ds.as_str())];
    let admin = AwsView::with_keys(&emu, &key("admin", 0), &key("admin", 1)).await;

    // Unknown credentials are refused: enforcement is on.
    let stranger = project.release(&emu, &["provision", "--env", "staging"]);
    assert_eq!(stranger.code, 6, "{stranger:?}");

    // With exactly the printed policy: provision, bake (Packer included), promote.
    let sha = project.git(&["rev-parse", "HEAD"]);
    project.release_env(&emu, &deployer, &["provision", "--env", "staging"]).assert_ok();
    project.release_env(&emu, &deployer, &["bake", &sha]).assert_ok();
    project.release_env(&emu, &deployer, &["promote", &sha, "--env", "staging"]).assert_ok();
    let old = admin.elb_members("hello-staging").await;
    assert_eq!(old.len(), 2);

    // Without one permission: the promote stops with AccessDenied and puts everything back.
    let doc = std::fs::read_to_string(&policy_file).unwrap().replace("\"elasticloadbalancing:RegisterInstancesWithLoadBalancer\",", "");
    std::fs::write(&policy_file, &doc).unwrap();
    let (ak, asec) = (key("admin", 0), key("admin", 1));
    boto3(
        &emu,
        &format!(
            "iam = client('iam', '{ak}', '{asec}')\n\
             for part in json.load(open('{}')):\n\
             \x20   iam.put_user_policy(UserName='deployer', PolicyName=part['name'], PolicyDocument=json.dumps(part['document']))",
            policy_file.display()
        ),
    );
    let pipeline = project.read("pipelines/hello.toml");
    project.write("pipelines/hello.toml", &pipeline.replace("APP_ENV = \"staging\"", "APP_ENV = \"staging-2\""));
    let denied = project.release_env(&emu, &deployer, &["promote", &sha, "--env", "staging"]);
    // Denied is an AWS failure (exit 6), and the environment was put back.
    assert_eq!(denied.code, 6, "{denied:?}");
    assert!(denied.error_line().contains("elb RegisterInstancesWithLoadBalancer: AccessDenied"), "{}", denied.stderr);
    assert!(denied.error_line().contains("the 2 new instance(s) were removed and staging serves what it served before"), "{}", denied.stderr);
    assert_eq!(admin.elb_members("hello-staging").await, old, "the old fleet still serves");
    println!("IAM enforcement: provision, bake and promote passed with the printed policy; without RegisterInstancesWithLoadBalancer: {}", denied.error_line());
}

/// A `sitecustomize` for moto_server (on its PYTHONPATH): moto checks a signature over the form body it re-encodes
/// from the parsed form as botocore does, spaces as `+`, where the Rust SDK sent `%20` (both are valid; real AWS
/// checks the bytes sent). For the Rust SDK's requests it re-encodes the SDK's way, so that a value holding a
/// space (a security group's description) verifies as it does on AWS. Other clients (boto3, Packer) are untouched.
fn rust_sdk_signature_shim() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sitecustomize.py"),
        "import urllib.parse\n\
         from moto.iam import access_control as _ac\n\
         _create = _ac.IAMRequestBase._create_aws_request\n\
         def _create_as_sent(self):\n\
         \x20   if not self._body and self._data and 'aws-sdk-rust' in (self._headers.get('User-Agent') or ''):\n\
         \x20       pairs = [(k, v) for k, vs in self._data.items() for v in (vs if isinstance(vs, list) else [vs])]\n\
         \x20       self._body = urllib.parse.urlencode(pairs, safe='', quote_via=urllib.parse.quote).encode()\n\
         \x20   return _create(self)\n\
         _ac.IAMRequestBase._create_aws_request = _create_as_sent\n",
    )
    .unwrap();
    dir
}

/// IAM action names for the operations the call counter saw (`Route 53:ChangeResourceRecordSets`, ...).
fn iam_action(op: &str) -> String {
    let (service, name) = op.split_once(':').unwrap();
    let prefix = match service {
        "EC2" => "ec2",
        "Elastic Load Balancing" | "Elastic Load Balancing v2" => "elasticloadbalancing",
        "Route 53" => "route53",
        "DynamoDB" => "dynamodb",
        "STS" => "sts",
        other => panic!("unexpected service {other}"),
    };
    format!("{prefix}:{name}")
}

#[tokio::test]
async fn every_call_any_command_makes_is_in_the_policy() {
    // moto cannot check Route53 under IAM enforcement (it answers SignatureDoesNotMatch to every signed Route53
    // request, boto3's too), so switch, status and rollback are checked here instead: every operation the call
    // counter saw in a whole life of the demo must be an action the printed policy allows.
    let emu = Emulator::start();
    let project = Project::demo_repo();
    let policy: serde_json::Value = serde_json::from_str(&release_e2e::release(project.path(), None, &["iam-policy", "--offline", "--output", "json"]).stdout).unwrap();
    let allowed: std::collections::BTreeSet<String> = policy["policies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["document"]["Statement"].as_array().unwrap().iter())
        .flat_map(|s| s["Action"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()))
        .collect();
    let a = project.git(&["rev-parse", "HEAD"]);
    project.write("pipelines/hello/VERSION", "2\n");
    let b = project.commit("v2");
    // Two more bakes, so that gc --keep 1 removes one (c: it runs nowhere, d was baked after it).
    project.write("pipelines/hello/VERSION", "3\n");
    let c = project.commit("v3");
    project.write("pipelines/hello/VERSION", "4\n");
    let d = project.commit("v4");
    let mut seen = std::collections::BTreeSet::new();
    for args in [
        vec!["provision", "--env", "staging"],
        vec!["provision", "--env", "prod"],
        vec!["bake", &a],
        vec!["bake", &b],
        vec!["promote", &a, "--env", "staging"],
        vec!["promote", &a, "--env", "prod", "--yes"],
        vec!["switch", "prod2", "--yes"],
        vec!["promote", &b, "--env", "prod", "--yes", "--force"],
        vec!["switch", "prod1", "--yes"],
        vec!["rollback", "--env", "prod", "--yes"],
        vec!["status"],
        vec!["history"],
        vec!["images"],
        vec!["bake", &c],
        vec!["bake", &d],
        vec!["gc", "--plan"],
        vec!["gc", "--keep", "1", "--older-than", "0s", "--yes"],
        vec!["unlock", "--env", "prod"],
    ] {
        let mut args = args.clone();
        args.extend(["--output", "json"]);
        let run = project.release(&emu, &args);
        run.assert_ok();
        for op in run.json()["api_calls"].as_object().unwrap().keys() {
            // A transaction needs no action of its own: its writes are governed by PutItem and DeleteItem.
            match op.as_str() {
                "DynamoDB:TransactWriteItems" => seen.extend(["dynamodb:PutItem".to_owned(), "dynamodb:DeleteItem".to_owned()]),
                _ => {
                    seen.insert(iam_action(op));
                }
            }
        }
    }
    let missing: Vec<&String> = seen.iter().filter(|a| !allowed.contains(*a)).collect();
    println!("actions used by a whole life of the demo: {}; missing from the policy: {missing:?}", seen.len());
    assert!(seen.contains("route53:ChangeResourceRecordSets") && seen.contains("dynamodb:PutItem"), "{seen:?}");
    assert!(seen.contains("ec2:DeregisterImage") && seen.contains("ec2:DeleteSnapshot") && seen.contains("ec2:DescribeSnapshots"), "gc removed c: {seen:?}");
    assert!(missing.is_empty(), "the policy lacks {missing:?}");
}

#[tokio::test]
async fn pass_role_names_the_role_iam_says_the_instance_profile_holds() {
    // Terraform and CDK name an instance profile's role differently from the profile: the policy must name the
    // role, which only IAM knows.
    let emu = Emulator::start();
    let project = Project::demo_repo();
    let pipeline = project.read("pipelines/hello.toml");
    project.write("pipelines/hello.toml", &pipeline.replace("instance_profile = \"hello-app\"", "instance_profile = \"hello-web\""));
    boto3(
        &emu,
        "iam = client('iam')\n\
         iam.create_role(RoleName='hello-web-role-8f2c', Path='/deploy/', AssumeRolePolicyDocument=json.dumps({'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Principal': {'Service': 'ec2.amazonaws.com'}, 'Action': 'sts:AssumeRole'}]}))\n\
         iam.create_instance_profile(InstanceProfileName='hello-web')\n\
         iam.add_role_to_instance_profile(InstanceProfileName='hello-web', RoleName='hello-web-role-8f2c')",
    );
    let pass_role = |doc: &serde_json::Value| -> Vec<String> {
        doc["policies"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["document"]["Statement"].as_array().unwrap().iter())
            .filter(|s| s["Sid"] == "PassRole")
            .flat_map(|s| match &s["Resource"] {
                serde_json::Value::Array(list) => list.iter().map(|r| r.as_str().unwrap().to_owned()).collect(),
                one => vec![one.as_str().unwrap().to_owned()],
            })
            .collect()
    };
    let run = project.release(&emu, &["iam-policy", "--output", "json"]);
    run.assert_ok();
    let doc = run.json();
    assert_eq!(pass_role(&doc), ["arn:aws:iam::123456789012:role/deploy/hello-web-role-8f2c"], "{doc}");
    let whole = doc["policy"].to_string();
    assert!(whole.contains("role/deploy/hello-web-role-8f2c") && !whole.contains("role/hello-web\""), "{whole}");
    assert_eq!(doc["notes"], serde_json::json!([]));
    assert_eq!(doc["pass_roles"]["hello-web"], serde_json::json!(["arn:aws:iam::123456789012:role/deploy/hello-web-role-8f2c"]));
    assert!(!run.stderr.contains("note:"), "{}", run.stderr);

    // A profile IAM does not know: the policy is still printed, with the guess, and says so.
    project.write("pipelines/hello.toml", &pipeline.replace("instance_profile = \"hello-app\"", "instance_profile = \"hello-gone\""));
    let missing = project.release(&emu, &["iam-policy", "--output", "json"]);
    missing.assert_ok();
    assert_eq!(pass_role(&missing.json()), ["arn:aws:iam::*:role/hello-gone"]);
    let note = missing.json()["notes"][0].as_str().unwrap().to_owned();
    assert!(note.starts_with("instance profile hello-gone: its role was not looked up (iam GetInstanceProfile: NoSuchEntity"), "{note}");
    assert!(missing.stderr.contains(&format!("note: {note}")), "{}", missing.stderr);
    // --offline asks nothing and says so.
    let offline = release_e2e::release(project.path(), None, &["iam-policy", "--offline"]);
    offline.assert_ok();
    assert!(offline.stderr.contains("note: instance profile hello-gone: its role was not looked up (--offline)"), "{}", offline.stderr);
    println!("iam:PassRole with the profile's real role: {:?}; unknown profile: {note}", pass_role(&doc));
}
