#!/usr/bin/env python3
"""tools/gpu-check.sh on the CPU backend with tiny shapes: the GPU script's
plumbing (background model writing, the meson-free test runner, each bench,
the summary, the deadline) checked where CI runs, so that a short GPU lease
is not lost to a bug in the script.

  check_gpu_check.py GPU_CHECK_SH BUILD_DIR WORK_DIR"""
import json
import os
import shutil
import subprocess
import sys

FAILS = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        FAILS.append(msg)


def run(script, build, out, models, deadline, extra_env=None):
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, SX_BACKEND="cpu", SX_BUILD_DIR=build, SX_BENCH_SHAPES="tl llama 2 256 4 2 64 512 2000;tq qwen3 2 256 4 2 64 512 2000", SX_BENCH_MOE="tm 2 256 4 2 64 2000 8 2 128",
               SX_BENCH_TYPES="q4_0 f16", SX_BENCH_P="32", SX_BENCH_N="16", SX_BENCH_R="1", SX_BENCH_LONG_CTX="128",
               SX_PROBLEMS=os.path.join(os.path.dirname(script), "..", "tests", "data", "sumchain_smoke.jsonl"), SX_TEST_JOBS="2",
               SX_MODEL_DIR=models, SX_DEADLINE=str(deadline), SX_EXTRA_TESTS="0", SX_PEAK_BW="1e11")
    env.update(extra_env or {})
    r = subprocess.run(["bash", script, out], env=env, capture_output=True, text=True, timeout=900)
    print("\n".join("  | " + l for l in r.stdout.strip().splitlines()[-12:]))
    return r


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    script, build, work = sys.argv[1:]
    out, models = os.path.join(work, "out"), os.path.join(work, "models")

    r = run(script, build, out, models, 600)
    check(r.returncode == 0, f"gpu-check.sh exits 0 (got {r.returncode}; stderr {r.stderr.strip()[-300:]!r})")
    files = sorted(os.listdir(out)) if os.path.isdir(out) else []
    check(files == ["gpu-check.log", "logs.tar.gz", "summary.json", "summary.txt"],
          f"OUTDIR holds the four files a lease copies back, not the logs: {files}")
    try:
        s = json.load(open(os.path.join(out, "summary.json")))
    except Exception as e:
        check(False, f"summary.json readable: {e}")
        return 1
    t = s.get("tests", {}).get("cpu", {})
    check(t.get("passed", 0) > 0 and t.get("failed") == 0, f"the backend's suite ran through tools/run-tests.py: {t}")
    b = s.get("bench", {})
    check(set(b) == {"tl-q4_0", "tl-q4_0-nographs", "tl-f16", "tq-q4_0", "tq-f16", "tm-q4_0"},
          f"a bench per model and type, graphs off, the MoE model: {sorted(b)}")
    check((s.get("cpu_moe") or {}).get("decode_tok_s", 0) > 0, f"the --cpu-moe bench: {s.get('cpu_moe')}")
    check((s.get("sampled_verify") or {}).get("top_over_full", 0) > 0, f"the sampled verification A/B: {s.get('sampled_verify')}")
    check(len(s.get("offload") or []) >= 1 and all(r.get("decode_tok_s", 0) > 0 for r in s["offload"]), f"the -ngl bench: {s.get('offload')}")
    mo = b.get("tm-q4_0", {})
    check(0 < mo.get("weight_bytes", 0) < mo.get("total_weight_bytes", 0),
          f"the MoE roofline counts the picked experts only: {mo.get('weight_bytes')} of {mo.get('total_weight_bytes')} bytes")
    m = b.get("tl-q4_0", {})
    check(m.get("decode_tok_s", 0) > 0 and m.get("weight_bytes", 0) > 0 and 0 < m.get("roofline_fraction", 0),
          f"roofline row of the main model: {m.get('decode_tok_s')} tok/s x {m.get('weight_bytes')} B = {m.get('roofline_fraction')} of peak")
    v = s.get("verify", {})
    check(v.get("spec_decode_tok_s", 0) > 0 and (v.get("step_cost_in_decode_steps") or 0) > 0, f"EAGLE-3 verify bench: {v}")
    e = s.get("exit_path", {})
    modes = e.get("modes") or {}
    check(sorted(modes) == ["eagle3", "plain", "specexit"] and e.get("n_problems") == 3, f"exit-path bench on the sumchain pair: {sorted(modes)}")
    c = s.get("cont_batching", {})
    check(c.get("outputs_identical") is True and c.get("n_parallel") == 8, f"continuous batching bench: {c}")
    lc = s.get("long_context", {})
    check(lc.get("split_decode_tok_s", 0) > 0 and lc.get("nosplit_decode_tok_s", 0) > 0, f"long-context A/B: {lc}")
    kv = s.get("kv_q8_0", {})
    check(kv.get("q8_0_decode_tok_s", 0) > 0 and 0 < (kv.get("q8_0_kv_bytes") or 0) < (kv.get("f16_kv_bytes") or 0),
          f"q8_0 against f16 KV cache at long context: {kv}")
    kv4 = s.get("kv_q4_0", {})
    check(kv4.get("q4_0_decode_tok_s", 0) > 0 and 0 < (kv4.get("q4_0_kv_bytes") or 0) < (kv.get("q8_0_kv_bytes") or 0),
          f"q4_0 against f16 KV cache at long context: {kv4}")
    kl = s.get("kld_vs_cpu_ref", {})
    check(kl.get("tokens_scored", 0) > 0 and 0 <= kl.get("mean_kld", -1) < 0.01 and kl.get("same_top1", 0) > 0.95,
          f"the backend's next-token distributions against cpu-ref: {kl}")
    for k in ("grammar", "ngram"):
        check((s.get(k) or {}).get("ratio", 0) > 0, f"the {k} A/B bench: {s.get(k)}")
    check(s.get("skipped_for_time") == [] and s.get("status") == 0, f"nothing skipped, status 0: {s.get('skipped_for_time')}")
    check(not os.path.exists(models) or not [f for f in os.listdir(models) if f.endswith(".gguf")], "the synthetic models are removed")

    # a deadline too short for the benchmarks: they are skipped, the summary is still written
    r = run(script, build, out, models, 30, {"SX_SKIP_TESTS": "1"})
    try:
        s = json.load(open(os.path.join(out, "summary.json")))
    except Exception as e:
        s = {}
        check(False, f"summary.json after a short deadline: {e}")
    sk = s.get("skipped_for_time", [])
    check(r.returncode == 0 and "bench bench-tl-q4_0" in sk and "bench exit-sumchain" in sk,
          f"a 30 s deadline skips the benches (each may take up to 90-120 s) and says so: {sk}")
    print(f"{'FAILED' if FAILS else 'all gpu-check dry-run checks passed'}")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
