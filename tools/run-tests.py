#!/usr/bin/env python3
"""Runs the tests of a configured meson build directory without meson: for a
build made on one machine and run on another (tools/gpu-bundle.sh), where the
meson found there may be another version, or missing.

  run-tests.py BUILD_DIR [--suite S ...] [--name N ...] [--root-from OLD --root-to NEW]
               [-j N] [--deadline EPOCH_SECONDS] [--json FILE] [--log-dir DIR] [--list]

Reads BUILD_DIR/meson-info/intro-tests.json (written by `meson setup`), runs
every test whose suite is one of --suite (meson's "project:suite" or plain
"suite"; all when none is given) or whose name is one of --name, N at a time
(-j, default 1; meson's default is the core count), with the test's
environment, working directory and timeout. With
--root-from/--root-to, every occurrence of OLD in the commands, environments
and working directories is replaced with NEW (the build was moved). A test
runs in its workdir, else in BUILD_DIR, as in meson. Exit status 77 is a
skip, as in meson. A test that would start after --deadline, or is still
running then (it is stopped), is reported as not run, not as failed.

Prints a line per test and ends with `N passed, N failed, N skipped`
(+ `, N not run` when the deadline cut the list); exit status 1 when a test
failed, else 0."""
import concurrent.futures
import json
import os
import threading
import subprocess
import sys
import time


def args_of(argv):
    o = {"jobs": 1, "suite": [], "name": [], "root_from": None, "root_to": None, "deadline": None, "json": None, "log_dir": None, "list": False}
    if not argv or argv[0].startswith("-"):
        sys.exit(__doc__)
    o["build"] = argv[0]
    i = 1
    while i < len(argv):
        a = argv[i]
        if a == "--list":
            o["list"] = True
            i += 1
            continue
        if i + 1 >= len(argv):
            sys.exit(f"run-tests.py: {a} needs a value")
        v = argv[i + 1]
        if a in ("--suite", "--name"):
            o[a[2:]].append(v)
        elif a in ("--root-from", "--root-to", "--json", "--log-dir"):
            o[a[2:].replace("-", "_")] = v
        elif a == "-j":
            o["jobs"] = max(1, int(v))
        elif a == "--deadline":
            o["deadline"] = float(v)
        else:
            sys.exit(f"run-tests.py: unknown option {a}")
        i += 2
    return o


def suite_match(test_suites, wanted):
    for s in test_suites:
        if s in wanted or s.split(":", 1)[-1] in wanted:
            return True
    return False


def main():
    o = args_of(sys.argv[1:])
    path = os.path.join(o["build"], "meson-info", "intro-tests.json")
    try:
        tests = json.load(open(path))
    except (OSError, ValueError) as e:
        print(f"run-tests.py: cannot read {path}: {e}")
        return 2

    def fix(s):
        if s is None or not o["root_from"] or not o["root_to"]:
            return s
        return s.replace(o["root_from"], o["root_to"])

    chosen = [t for t in tests if (not o["suite"] and not o["name"]) or suite_match(t["suite"], o["suite"]) or t["name"] in o["name"]]
    if o["list"]:
        for t in chosen:
            print(f"{t['name']}  ({', '.join(t['suite'])})")
        return 0
    if o["log_dir"]:
        os.makedirs(o["log_dir"], exist_ok=True)
    counts = {"ok": 0, "fail": 0, "skip": 0, "not run": 0}
    lock = threading.Lock()

    def run_one(t):
        name = t["name"]
        now = time.time()
        if o["deadline"] is not None and now >= o["deadline"]:
            with lock:
                counts["not run"] += 1
                print(f"NOT RUN {name} (deadline)", flush=True)
            return {"name": name, "suite": t["suite"], "result": "not run", "duration": 0.0}
        env = dict(os.environ)
        for k, v in (t.get("env") or {}).items():
            env[k] = fix(v)
        timeout = t.get("timeout") or 30
        if timeout <= 0:
            timeout = None
        by_deadline = False
        if o["deadline"] is not None:
            left = max(1.0, o["deadline"] - now)
            by_deadline = timeout is None or left < timeout
            timeout = left if by_deadline else timeout
        cmd = [fix(c) for c in t["cmd"]]
        t0 = time.time()
        try:
            r = subprocess.run(cmd, env=env, cwd=fix(t.get("workdir")) or o["build"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=timeout)
            rc, output = r.returncode, r.stdout
        except subprocess.TimeoutExpired as e:
            rc, output = None, (e.stdout or b"") + f"\n[run-tests] timed out after {timeout:.0f} s\n".encode()
            if by_deadline:  # stopped by the deadline, not by its own timeout: not run to the end, not failed
                output += b"[run-tests] stopped at the deadline\n"
        except OSError as e:
            rc, output = -1, f"[run-tests] cannot start {cmd[0]}: {e}\n".encode()
        dt = time.time() - t0
        result = "ok" if rc == 0 else "skip" if rc == 77 else "not run" if rc is None and by_deadline else "fail"
        text = output.decode("utf-8", "replace")
        if o["log_dir"]:
            with open(os.path.join(o["log_dir"], name.replace("/", "_") + ".log"), "w") as f:
                f.write(f"$ {' '.join(cmd)}\n{text}")
        tail = text.strip().splitlines()[-1] if text.strip() else ""
        with lock:
            counts[result] += 1
            print(f"{result.upper():4} {name} ({dt:.1f} s, exit {rc}): {tail[:160]}", flush=True)
            if result == "fail":
                for line in text.strip().splitlines()[-25:]:
                    print(f"     | {line}")
        return {"name": name, "suite": t["suite"], "result": result, "exit": rc, "duration": round(dt, 2), "tail": tail[:400]}

    with concurrent.futures.ThreadPoolExecutor(max_workers=o["jobs"]) as pool:
        results = list(pool.map(run_one, chosen))
    summary = f"{counts['ok']} passed, {counts['fail']} failed, {counts['skip']} skipped"
    if counts["not run"]:
        summary += f", {counts['not run']} not run"
    if o["json"]:
        with open(o["json"], "w") as f:
            json.dump({"tests": results, "passed": counts["ok"], "failed": counts["fail"], "skipped": counts["skip"],
                       "not_run": counts["not run"]}, f, indent=1)
    print(summary)
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
