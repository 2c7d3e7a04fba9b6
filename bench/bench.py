"""The benchmark of `release` (see docs/PERFORMANCE.md): promote of N instances, switch, status of 9 apps x 3
environments, a reused bake; each several times, median reported; and the hand-written baseline (boto3, one
instance at a time) against the same emulator in the same run.

Run it through `bench/run` (or `make bench`), which builds release in release mode and starts the emulator.
Only 127.0.0.1 is ever contacted."""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--release", required=True, help="path to the release binary (release build)")
    p.add_argument("--endpoint", required=True, help="the emulator, e.g. http://127.0.0.1:4599")
    p.add_argument("--sizes", default="10,100,1000", help="promote sizes N")
    p.add_argument("--reps", type=int, default=3, help="repetitions of each measurement (median reported)")
    p.add_argument("--baseline-reps", type=int, default=1, help="repetitions of the baseline for the largest N")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    p.add_argument("--only", default="", help="comma-separated scenario groups to run (promote,switch,status,bake,dashboard,...); "
                   "default: all. A partial run writes to --out like a full one, so point --out elsewhere")
    return p.parse_args()


ARGS = parse_args()
assert ARGS.endpoint.startswith("http://127.0.0.1:"), "the benchmark only talks to the local emulator"
ENV = dict(os.environ)
ENV.update({
    "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
    "AWS_ENDPOINT_URL": ARGS.endpoint, "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true", "CHECKPOINT_DISABLE": "1", "RELEASE_POLL_SECONDS": "1",
})


def client(service):
    return boto3.client(service, endpoint_url=ARGS.endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def reset():
    urllib.request.urlopen(urllib.request.Request(ARGS.endpoint + "/moto-api/reset", method="POST")).read()


def run_release(cwd, *args):
    """Runs release for set-up (not measured); returns its JSON result."""
    proc = subprocess.run([ARGS.release, *args, "--output", "json", "--yes"], cwd=cwd, env=ENV, capture_output=True)
    if proc.returncode != 0:
        sys.exit(f"release {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr.decode()}")
    return json.loads(proc.stdout)


def measured(cwd, *args):
    """Like run_release, with the child's CPU time and peak memory from wait4."""
    start = time.perf_counter()
    proc = subprocess.Popen([ARGS.release, *args, "--output", "json", "--yes"], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Read stdout fully, then reap with wait4 to get this child's rusage.
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"release {' '.join(args)} failed ({code}):\n{err.decode()}")
    return {
        "doc": json.loads(out),
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_mb": usage.ru_maxrss / 1024.0,
    }


def median_of(samples, key):
    return statistics.median(s[key] for s in samples)


def write_pipeline(dir, app, envs):
    os.makedirs(os.path.join(dir, "pipelines"), exist_ok=True)
    os.makedirs(os.path.join(dir, "packer-templates"), exist_ok=True)
    shutil.copy(os.path.join(ROOT, "packer-templates", "app.pkr.hcl"), os.path.join(dir, "packer-templates"))
    text = f'''app = "{app}"
region = "us-east-1"
[build]
command = "true"
artifact = "a.tgz"
[bake]
template = "packer-templates/app.pkr.hcl"
base_ami = "al2023-ami-2023.*-x86_64"
base_owners = ["amazon"]
[deploy]
drain = "0s"
health_timeout = "30m"
max_targets = 2000                  # the bench swaps 1000 for 1000: a raised quota, as validate asks
''' + envs
    with open(os.path.join(dir, "pipelines", f"{app}.toml"), "w") as f:
        f.write(text)


def register_ami(app, sha):
    """A complete bake, registered directly (as the tests may): an AMI with the release tags."""
    ec2 = client("ec2")
    base = ec2.describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": ["al2023-ami-2023.*-x86_64"]}])["Images"][0]["ImageId"]
    inst = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0]["InstanceId"]
    ami = ec2.create_image(InstanceId=inst, Name=f"{app}-{sha[:12]}-bench")["ImageId"]
    ec2.terminate_instances(InstanceIds=[inst])
    ec2.create_tags(Resources=[ami], Tags=[{"Key": "release:app", "Value": app}, {"Key": "release:commit", "Value": sha},
                                          {"Key": "release:bake-key", "Value": "bench" + sha[:8]}])
    return ami


SHA_A = "a" * 40
SHA_B = "b" * 40


def bench_promote(n):
    reset()
    d = tempfile.mkdtemp(prefix=f"bench-promote-{n}-")
    write_pipeline(d, "bench", f'''[env.staging]
vars = {{ APP_ENV = "staging" }}
[env.staging.clusters.staging]
load_balancer = "bench-staging"
count = {n}
''')
    run_release(d, "provision", "--env", "staging")
    register_ami("bench", SHA_A)
    register_ami("bench", SHA_B)
    run_release(d, "promote", SHA_A, "--env", "staging")  # the N old instances
    samples = []
    shas = [SHA_B, SHA_A]
    for i in range(ARGS.reps):
        s = measured(d, "promote", shas[i % 2], "--env", "staging")
        assert len(s["doc"]["new_instances"]) == n and len(s["doc"]["retired_instances"]) == n, s["doc"]
        samples.append(s)
    calls = samples[-1]["doc"]["api_calls"]
    row = {
        "scenario": f"promote N={n}", "n": n, "reps": len(samples),
        "wall_s": median_of(samples, "wall_s"), "cpu_s": median_of(samples, "cpu_s"), "peak_mb": median_of(samples, "peak_mb"),
        "api_calls": calls, "api_calls_total": sum(calls.values()),
        "polls": samples[-1]["doc"]["polls"],
        # Lease renewals (every 30 s) grow with the time a run takes, as polls do: excluded with them.
        "renewals": samples[-1]["doc"].get("renewals", 0),
        "api_calls_excluding_polls": sum(calls.values()) - samples[-1]["doc"]["polls"] - samples[-1]["doc"].get("renewals", 0),
        "phases_s": samples[-1]["doc"].get("seconds", {}),
    }
    # The baseline, in the same run, on the same emulator state shape: N old instances behind the ELB.
    reps = 1 if n == max(SIZES) else min(ARGS.reps, 3)
    reps = max(reps, ARGS.baseline_reps if n == max(SIZES) else reps)
    base = []
    for _ in range(reps):
        base.append(baseline_promote("bench-staging", "bench", n))
    row["baseline"] = {
        "reps": reps,
        "wall_s": statistics.median(b["wall_s"] for b in base),
        "api_calls_total": base[-1]["api_calls_total"],
        "api_calls": base[-1]["api_calls"],
    }
    row["speedup"] = row["baseline"]["wall_s"] / row["wall_s"]
    shutil.rmtree(d, ignore_errors=True)
    return row


def baseline_promote(lb, app, n):
    """How teams do it by hand today: one instance at a time, run -> wait running -> register -> wait healthy ->
    deregister one old -> terminate it. Plain boto3, as a Fabric/Jenkins script would."""
    counts = {}

    def count(**kwargs):
        name = kwargs["event_name"].split(".")
        key = f"{name[1]}:{name[2]}"
        counts[key] = counts.get(key, 0) + 1

    ec2, elb = client("ec2"), client("elb")
    for c in (ec2, elb):
        c.meta.events.register("before-send.*.*", count)
    old = [i["InstanceId"] for i in elb.describe_load_balancers(LoadBalancerNames=[lb])["LoadBalancerDescriptions"][0]["Instances"]]
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]]
    ami = ec2.describe_images(Owners=["self"], Filters=[{"Name": "tag:release:app", "Values": [app]}])["Images"][0]["ImageId"]
    start = time.perf_counter()
    for i in range(n):
        new = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=subnets[i % len(subnets)],
                                TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "baseline", "Value": "1"}]}])["Instances"][0]["InstanceId"]
        while ec2.describe_instances(InstanceIds=[new])["Reservations"][0]["Instances"][0]["State"]["Name"] != "running":
            time.sleep(1)
        elb.register_instances_with_load_balancer(LoadBalancerName=lb, Instances=[{"InstanceId": new}])
        while elb.describe_instance_health(LoadBalancerName=lb, Instances=[{"InstanceId": new}])["InstanceStates"][0]["State"] != "InService":
            time.sleep(1)
        if old:
            victim = old.pop()
            elb.deregister_instances_from_load_balancer(LoadBalancerName=lb, Instances=[{"InstanceId": victim}])
            ec2.terminate_instances(InstanceIds=[victim])
    wall = time.perf_counter() - start
    return {"wall_s": wall, "api_calls": counts, "api_calls_total": sum(counts.values())}


def bench_switch():
    reset()
    d = tempfile.mkdtemp(prefix="bench-switch-")
    write_pipeline(d, "bench", '''[env.prod]
vars = { APP_ENV = "production" }
dns = { zone = "example.com.", record = "bench.example.com." }
[env.prod.clusters.prod1]
load_balancer = "bench-prod1"
count = 4
[env.prod.clusters.prod2]
load_balancer = "bench-prod2"
count = 4
''')
    run_release(d, "provision", "--env", "prod")
    register_ami("bench", SHA_A)
    run_release(d, "promote", SHA_A, "--env", "prod")  # prod2
    run_release(d, "switch", "prod2")
    run_release(d, "promote", SHA_A, "--env", "prod", "--force")  # prod1, without waiting `settle` after the switch
    samples = []
    for i in range(max(ARGS.reps, 5)):
        target = "prod1" if i % 2 == 0 else "prod2"
        s = measured(d, "switch", target)
        assert s["doc"]["changed"] and s["doc"]["api_calls"]["Route 53:ChangeResourceRecordSets"] == 1, s["doc"]
        samples.append(s)
    calls = samples[-1]["doc"]["api_calls"]
    shutil.rmtree(d, ignore_errors=True)
    return {"scenario": "switch prod1 <-> prod2", "reps": len(samples), "wall_s": median_of(samples, "wall_s"),
            "cpu_s": median_of(samples, "cpu_s"), "peak_mb": median_of(samples, "peak_mb"),
            "api_calls": calls, "api_calls_total": sum(calls.values())}


def nine_apps_three_envs(d):
    """9 apps x (dev, staging in place; prod blue/green), each promoted to SHA_A: the status and dashboard scenes."""
    for k in range(1, 10):
        app = f"app{k}"
        write_pipeline(d, app, f'''[env.dev]
vars = {{ APP_ENV = "dev" }}
[env.dev.clusters.{app}-dev]
load_balancer = "{app}-dev"
count = 2
[env.staging]
vars = {{ APP_ENV = "staging" }}
[env.staging.clusters.{app}-staging]
load_balancer = "{app}-staging"
count = 2
[env.prod]
vars = {{ APP_ENV = "production" }}
dns = {{ zone = "example.com.", record = "{app}.example.com." }}
[env.prod.clusters.{app}-blue]
load_balancer = "{app}-blue"
count = 2
[env.prod.clusters.{app}-green]
load_balancer = "{app}-green"
count = 2
''')
    for k in range(1, 10):
        app = f"app{k}"
        register_ami(app, SHA_A)
        for env in ("dev", "staging", "prod"):
            run_release(d, "--app", app, "provision", "--env", env)
            run_release(d, "--app", app, "promote", SHA_A, "--env", env)


def bench_status():
    reset()
    d = tempfile.mkdtemp(prefix="bench-status-")
    nine_apps_three_envs(d)
    samples = []
    for _ in range(max(ARGS.reps, 5)):
        s = measured(d, "status")
        assert len(s["doc"]["apps"]) == 9, s["doc"]
        samples.append(s)
    instances = sum(c["total"] for a in samples[-1]["doc"]["apps"] for e in a["environments"] for c in e["clusters"])
    calls = samples[-1]["doc"]["api_calls"]
    shutil.rmtree(d, ignore_errors=True)
    return {"scenario": "status of 9 apps x 3 environments", "reps": len(samples), "instances": instances,
            "wall_s": median_of(samples, "wall_s"), "cpu_s": median_of(samples, "cpu_s"), "peak_mb": median_of(samples, "peak_mb"),
            "api_calls": calls, "api_calls_total": sum(calls.values())}


def bench_reused_bake():
    reset()
    d = tempfile.mkdtemp(prefix="bench-bake-")
    for f in ["pipelines/hello.toml", "pipelines/hello/Makefile", "pipelines/hello/server.py", "pipelines/hello/test_server.py",
              "packer-templates/app.pkr.hcl"]:
        os.makedirs(os.path.dirname(os.path.join(d, f)), exist_ok=True)
        shutil.copy(os.path.join(ROOT, f), os.path.join(d, f))
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    subprocess.run(git + ["init", "-q"], cwd=d, check=True)
    subprocess.run(git + ["add", "-A"], cwd=d, check=True)
    subprocess.run(git + ["commit", "-qm", "bench"], cwd=d, check=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=d, check=True, capture_output=True, text=True).stdout.strip()
    first = measured(d, "bake", sha)
    samples = []
    for _ in range(max(ARGS.reps, 5)):
        s = measured(d, "bake", sha)
        assert s["doc"]["reused"], s["doc"]
        samples.append(s)
    calls = samples[-1]["doc"]["api_calls"]
    shutil.rmtree(d, ignore_errors=True)
    return {"scenario": "reused bake", "reps": len(samples), "fresh_bake_wall_s": first["wall_s"],
            "wall_s": median_of(samples, "wall_s"), "cpu_s": median_of(samples, "cpu_s"), "peak_mb": median_of(samples, "peak_mb"),
            "api_calls": calls, "api_calls_total": sum(calls.values())}


def bench_gc(n):
    """`gc --plan` over n baked images (registered directly, their snapshots tagged as bakes leave them), with an
    in-place staging and a blue/green prod: the number of AWS calls must not grow with n (apart from pagination)."""
    reset()
    d = tempfile.mkdtemp(prefix=f"bench-gc-{n}-")
    write_pipeline(d, "gcapp", """[env.staging.clusters.gcapp-staging]
load_balancer = "gcapp-staging"
count = 1
[env.prod]
dns = { zone = "example.com.", record = "gcapp.example.com." }
[env.prod.clusters.gcapp-blue]
load_balancer = "gcapp-blue"
count = 1
[env.prod.clusters.gcapp-green]
load_balancer = "gcapp-green"
count = 1
""")
    ec2 = client("ec2")
    shas = ["%040x" % (k + 1) for k in range(n)]
    for sha in shas:
        ami = register_ami("gcapp", sha)
        image = ec2.describe_images(ImageIds=[ami])["Images"][0]
        snaps = [b["Ebs"]["SnapshotId"] for b in image.get("BlockDeviceMappings", []) if "Ebs" in b and "SnapshotId" in b["Ebs"]]
        if snaps:
            ec2.create_tags(Resources=snaps, Tags=[{"Key": "release:app", "Value": "gcapp"}, {"Key": "release:commit", "Value": sha}])
    for env in ("staging", "prod"):
        run_release(d, "provision", "--env", env)
    run_release(d, "promote", shas[0], "--env", "staging")
    run_release(d, "promote", shas[1], "--env", "staging")
    samples = []
    for _ in range(max(ARGS.reps, 5)):
        s = measured(d, "gc", "--plan", "--keep", "3", "--older-than", "0s")
        assert len(s["doc"]["plan"]["images"]) + len(s["doc"]["plan"]["kept"]) == n, s["doc"]["plan"]["summary"]
        samples.append(s)
    doc = samples[-1]["doc"]
    calls = doc["api_calls"]
    shutil.rmtree(d, ignore_errors=True)
    return {"scenario": f"gc --plan of {n} images", "reps": len(samples), "images": n,
            "collectable": len(doc["plan"]["images"]), "kept": len(doc["plan"]["kept"]),
            "wall_s": median_of(samples, "wall_s"), "cpu_s": median_of(samples, "cpu_s"), "peak_mb": median_of(samples, "peak_mb"),
            "api_calls": calls, "api_calls_total": sum(calls.values())}



DASHBOARD_WINDOW_S = 60


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def bench_dashboard():
    """One dashboard over the status scenario's 9 apps x 3 environments, watched by 1 and then by 50 viewers, each
    holding the event stream and reading /api/status and /api/history every second: the AWS calls of the window
    come from /api/health (the poller's counter), so they are the dashboard's whole cost."""
    import threading
    reset()
    d = tempfile.mkdtemp(prefix="bench-dashboard-")
    nine_apps_three_envs(d)
    interval = 5
    proc = subprocess.Popen([ARGS.release, "dashboard", "--listen", "127.0.0.1:0", "--interval", f"{interval}s"], cwd=d, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = proc.stdout.readline().strip().rstrip("/")
    assert url.startswith("http://127.0.0.1:"), url

    def health():
        return json.loads(urllib.request.urlopen(url + "/api/health", timeout=30).read())

    while health()["polls"] < 1:
        time.sleep(0.2)
    results = []
    for viewers in (1, 50):
        stop = threading.Event()
        reads = [0]
        lock = threading.Lock()

        def events():
            with urllib.request.urlopen(url + "/api/events", timeout=60) as r:
                while not stop.is_set():
                    if not r.readline():
                        return

        def reader():
            while not stop.is_set():
                for path in ("/api/status", "/api/history?app=app1"):
                    urllib.request.urlopen(url + path, timeout=30).read()
                    with lock:
                        reads[0] += 1
                stop.wait(1.0)

        threads = [threading.Thread(target=f, daemon=True) for _ in range(viewers) for f in (events, reader)]
        for t in threads:
            t.start()
        while health()["viewers"] < viewers:
            time.sleep(0.1)
        h0, cpu0, t0 = health(), proc_cpu_s(proc.pid), time.perf_counter()
        time.sleep(DASHBOARD_WINDOW_S)
        h1, cpu1, t1 = health(), proc_cpu_s(proc.pid), time.perf_counter()
        stop.set()
        calls = {k: v - h0["api_calls"].get(k, 0) for k, v in h1["api_calls"].items() if v - h0["api_calls"].get(k, 0)}
        total = sum(calls.values())
        results.append({"scenario": f"dashboard, 9 apps x 3 envs, {viewers} viewer(s), {DASHBOARD_WINDOW_S}s", "reps": 1,
                        "wall_s": t1 - t0, "cpu_s": cpu1 - cpu0, "peak_mb": proc_peak_mb(proc.pid), "viewers": h1["viewers"],
                        "api_reads": reads[0], "polls": h1["polls"] - h0["polls"], "interval_s": interval,
                        "calls_per_minute": total * 60.0 / (t1 - t0), "api_calls": calls, "api_calls_total": total})
        # Let the streams close before the next window counts viewers.
        while health()["viewers"] > 0:
            time.sleep(0.2)
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(d, ignore_errors=True)
    return results

def machine():
    def version(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except Exception:
            return "unknown"
    import moto
    return {
        "cpus": os.cpu_count(), "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(), "python": platform.python_version(), "moto": moto.__version__,
        "boto3": boto3.__version__, "rustc": version(["rustc", "--version"]), "packer": version(["packer", "version"]),
        "release": version([ARGS.release, "--version"]),
    }


SIZES = [int(s) for s in ARGS.sizes.split(",")]


def wanted(group):
    return not ARGS.only or group in ARGS.only.split(",")


def main():
    results = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "scenarios": []}
    if wanted("promote"):
        for n in SIZES:
            print(f"bench: promote N={n}", file=sys.stderr, flush=True)
            results["scenarios"].append(bench_promote(n))
    if wanted("switch"):
        print("bench: switch", file=sys.stderr, flush=True)
        results["scenarios"].append(bench_switch())
    if wanted("status"):
        print("bench: status 9x3", file=sys.stderr, flush=True)
        results["scenarios"].append(bench_status())
    if wanted("bake"):
        print("bench: reused bake", file=sys.stderr, flush=True)
        results["scenarios"].append(bench_reused_bake())
    # New scenario groups go here, each behind wanted("<group>").
    if wanted("gc"):
        for n in (20, 200):
            print(f"bench: gc --plan of {n} images", file=sys.stderr, flush=True)
            results["scenarios"].append(bench_gc(n))

    if wanted("dashboard"):
        print("bench: dashboard with 1 and 50 viewers", file=sys.stderr, flush=True)
        results["scenarios"].extend(bench_dashboard())
    os.makedirs(ARGS.out, exist_ok=True)
    with open(os.path.join(ARGS.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(ARGS.out, "results.md"), "w") as f:
        f.write(markdown(results))
    print(markdown(results))


def markdown(r):
    m = r["machine"]
    lines = [
        "# Benchmark results", "",
        "Measured %s on %s cores, %s GiB, kernel %s; %s, %s, moto %s, boto3 %s, %s. Medians; the emulator is moto's server on 127.0.0.1." % (
            r["started"], m["cpus"], m["memory_gb"], m["kernel"], m["release"], m["rustc"], m["moto"], m["boto3"], m["packer"]), "",
        "| scenario | reps | wall (s) | release CPU (s) | peak RSS (MB) | AWS calls | calls excl. polls | baseline wall (s) | baseline calls | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in r["scenarios"]:
        b = s.get("baseline")
        base_wall = "%.2f" % b["wall_s"] if b else ""
        base_calls = str(b["api_calls_total"]) if b else ""
        speedup = "%.1fx" % s["speedup"] if b else ""
        lines.append("| %s | %d | %.3f | %.3f | %.1f | %d | %s | %s | %s | %s |" % (
            s["scenario"], s["reps"], s["wall_s"], s["cpu_s"], s["peak_mb"], s["api_calls_total"],
            s.get("api_calls_excluding_polls", ""), base_wall, base_calls, speedup))
    lines += ["", "Where a promote's wall time goes (last run, seconds per phase):", ""]
    for s in r["scenarios"]:
        if s.get("phases_s"):
            lines.append("- %s: %s" % (s["scenario"], ", ".join("%s %.2f" % kv for kv in sorted(s["phases_s"].items()))))
    lines += ["", "AWS calls by operation:", ""]
    for s in r["scenarios"]:
        lines.append("- %s: %s" % (s["scenario"], ", ".join("%s %d" % kv for kv in sorted(s["api_calls"].items()))))
        if s.get("baseline"):
            lines.append("  - baseline: " + ", ".join("%s %d" % kv for kv in sorted(s["baseline"]["api_calls"].items())))
    for s in r["scenarios"]:
        if "fresh_bake_wall_s" in s:
            lines.append("\nA fresh bake (build, test, Packer, tags) took %.2f s; the reused bake above is the no-op path." % s["fresh_bake_wall_s"])
        if "instances" in s:
            lines.append("\nThe status scenario had %d instances running." % s["instances"])
        if "calls_per_minute" in s:
            lines.append("\n%s: %.1f AWS calls per minute (%d polls every %gs, %d calls), %d viewers who made %d API reads." % (
                s["scenario"], s["calls_per_minute"], s["polls"], s["interval_s"], s["api_calls_total"], s["viewers"], s["api_reads"]))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
