#!/usr/bin/env bash
# tools/gpu-check.sh OUTDIR — the one prepared run for a machine with an NVIDIA
# GPU, sized for a short lease (one H200, a few minutes): it works to a
# deadline (SX_DEADLINE seconds, default 420) in order of importance, skips
# what no longer fits, and always writes its summary.
#
#   0. the build: a bundle made beforehand by tools/gpu-bundle.sh and carried
#      (.gpu-bundle: needs nothing on the GPU machine but its driver), else
#      meson + ninja there (needs meson, ninja, nvcc, cJSON, libmicrohttpd)
#   1. synthetic-weight models with the layer shapes of Llama-3-8B and
#      Qwen3-8B in Q4_0, Q4_K, F16 and IQ4_XS, and an EAGLE-3 draft of Llama-3-8B's
#      shape (32000-token draft vocabulary), written in the background while
#      the tests run (tools/mkmodel.c; 8 layers unless SX_BENCH_LAYERS=full)
#   2. the backend's test suite (op conformance for every op and dtype, golden
#      tokens of the tiny models and of the trained sumchain pair, speculative
#      greedy == plain greedy, continuous batching, batch invariance), run
#      without meson (tools/run-tests.py)
#   3. the roofline bench: the Llama-3-8B-shaped Q4_0 model, prefill -p 512 and
#      decode -n 128, 3 repetitions; decode tok/s x weight bytes against the
#      peak memory bandwidth (SX_PEAK_BW, default 4.8e12 B/s for an H200)
#   4. EAGLE-3 verify batches: that model with its random draft, speculative
#      decode (16-node trees, nearly nothing accepted) against plain decode,
#      in one run: the cost of a drafted and verified step in decode steps
#   5. the exit path: the trained sumchain pair on the held-out problems,
#      plain / EAGLE-3 / SpecExit: accuracy, tokens and time; and the
#      backend's next-token distributions against cpu-ref's on README.md
#      (`specexit perplexity`: KL divergence, same top token, PPL ratio)
#   6. CUDA graphs off (SPECEXIT_CUDA_GRAPHS=0) against on, continuous batching
#      (8 sessions, `bench -np 8`), decode after SX_BENCH_LONG_CTX (8192)
#      prompt tokens with ATTENTION's split-K and without
#      (SPECEXIT_CUDA_ATTN_SPLIT=0), and there the KV cache in f16 against q8_0
#      and q4_0 (`bench -ctk f16,q8_0,q4_0`: decode speed and cache bytes), layer offload
#      (-ngl: half the blocks, all blocks, the whole model), a split over two
#      devices (the GPU opened twice), decoding under a grammar (whole rows
#      read back) and prompt lookup (--spec ngram), each against its baseline
#   7. the op matrix in full (test_ops --full), attention conformance and
#      batch invariance under each forced attention plan, TOP_K under each
#      launch plan, the other models'
#      benches, a Qwen3-30B-A3B-shaped MoE model (its roofline counts the
#      picked experts only; then with --cpu-moe), the NVRTC compile check
#
# OUTDIR gets few files, so that a lease's copy-back takes them all:
#   summary.txt (what a person reads), summary.json (every number),
#   gpu-check.log (progress), logs.tar.gz (every log and bench JSON).
# Exit status: non-zero when the build or a test failed; a bench failing or
# a step skipped for time is reported in the summary.
#
# Knobs (environment):
#   SX_DEADLINE      seconds for the whole run (default 420)
#   SX_BACKEND       default cuda (cpu or vulkan: a dry run of this script)
#   SX_BUILD_DIR     a configured build to use as is (no bundle, no build)
#   SX_NV_ARCHS      architectures when it builds (default sm_90)
#   SX_BENCH_LAYERS  "full" (32 / 36 layers) or a number (default 8: the
#                    same per-layer shapes, so the same bandwidth fraction)
#   SX_BENCH_TYPES   default "q4_0 q4_k f16 iq4_xs"
#   SX_BENCH_SHAPES  "name arch layers embd heads kv_heads head_dim ff vocab;..."
#                    (default: Llama-3-8B and Qwen3-8B)
#   SX_BENCH_MOE     "name layers embd heads kv_heads head_dim vocab experts used ff_exp"
#                    of a qwen3moe model benched last (default: Qwen3-30B-A3B's
#                    shape with SX_BENCH_LAYERS layers; "none" skips it)
#   SX_BENCH_P, SX_BENCH_N, SX_BENCH_R  prompt, generated tokens, repetitions
#                    (default 512, 128, 3)
#   SX_BENCH_LONG_CTX prompt tokens of the long-context bench (default 8192; 0 skips)
#   SX_PROBLEMS      problems of the exit-path bench (default tests/data/sumchain_heldout.jsonl)
#   SX_PEAK_BW       bytes/s of the roofline (default 4.8e12)
#   SX_TEST_JOBS     tests run at once (default 8)
#   SX_SKIP_TESTS=1  benchmarks only;  SX_EXTRA_TESTS=0  no step-7 tests
#   SX_MODEL_DIR     where the synthetic models go (default /tmp/specexit-gpu-models)
set -uo pipefail

out=${1:?usage: tools/gpu-check.sh OUTDIR}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$out/work
rm -rf "$work"
mkdir -p "$work"
t_start=$(date +%s)
deadline=$((t_start + ${SX_DEADLINE:-420}))
backend=${SX_BACKEND:-cuda}
layers=${SX_BENCH_LAYERS:-8}
types=${SX_BENCH_TYPES:-q4_0 q4_k f16 iq4_xs}
archs=${SX_NV_ARCHS:-sm_90}
peak=${SX_PEAK_BW:-4.8e12}
long_ctx=${SX_BENCH_LONG_CTX:-8192}
bp=${SX_BENCH_P:-512} bn=${SX_BENCH_N:-128} br=${SX_BENCH_R:-3}
problems=${SX_PROBLEMS:-$root/tests/data/sumchain_heldout.jsonl}
jobs=${SX_TEST_JOBS:-8}
models=${SX_MODEL_DIR:-/tmp/specexit-gpu-models}
status=0
skipped=()

log() { echo "[gpu-check $(($(date +%s) - t_start))s] $*" | tee -a "$out/gpu-check.log"; }
left() { echo $((deadline - $(date +%s))); }
# fits SECONDS NAME: true when a third of SECONDS (a step's time limit; most
# take far less) still fits before the deadline, less 15 s for the summary;
# else notes NAME as skipped for time
fits() {
  if [ $(($(left) - 15)) -ge $(($1 / 3)) ]; then return 0; fi
  skipped+=("$2"); log "skipped for time: $2 (needs up to $1 s, $(left) s left)"; return 1
}
# cap SECONDS: a timeout of at most SECONDS that ends 15 s before the deadline
cap() { local l=$(($(left) - 15)); [ "$l" -lt "$1" ] && echo $((l > 5 ? l : 5)) || echo "$1"; }

finish() {
  # ---- summary (always) ----
  python3 - "$work" "$peak" "$long_ctx" "$backend" "$status" "$(($(date +%s) - t_start))" "$(IFS='|'; echo "${skipped[*]:-}")" "${main_key:-none}" \
    > "$out/summary.txt" 2> "$work/summary.err" <<'PY' || log "summary failed (see summary.err in logs.tar.gz)"
import glob, json, os, sys
work, peak, long_ctx, backend, status, secs, skipped, main = sys.argv[1:9]
peak = float(peak)
S = {"backend": backend, "status": int(status), "seconds": int(secs), "skipped_for_time": [s for s in skipped.split("|") if s]}

def load(name):
    try:
        return json.load(open(os.path.join(work, name)))
    except Exception:
        return None

S["devices"] = load("devices.json")
print("specexit gpu-check: backend %s, %s s, status %s" % (backend, secs, status))
for f in sorted(glob.glob(os.path.join(work, "tests-*.json"))):
    t = load(os.path.basename(f))
    if not t:
        continue
    key = os.path.basename(f)[6:-5]
    S.setdefault("tests", {})[key] = {k: t[k] for k in ("passed", "failed", "skipped", "not_run")}
    S["tests"][key]["failures"] = [x["name"] for x in t["tests"] if x["result"] == "fail"]
    print("tests %-14s %d passed, %d failed, %d skipped, %d not run%s" % (key, t["passed"], t["failed"], t["skipped"], t["not_run"],
          (": FAILED " + " ".join(S["tests"][key]["failures"])) if t["failed"] else ""))
for f in sorted(glob.glob(os.path.join(work, "step-*.rc"))):
    name = os.path.basename(f)[5:-3]
    rc = open(f).read().strip()
    S.setdefault("steps", {})[name] = rc
    print("test  %-40s %s" % (name, "ok" if rc == "0" else "skipped (77)" if rc == "77" else "FAILED (exit %s)" % rc))

rows = []
for f in sorted(glob.glob(os.path.join(work, "bench-*.json"))):
    j = load(os.path.basename(f))
    name = os.path.basename(f)[6:-5]
    if not j:
        continue
    c = j["configs"][0]
    tg, pp = c["decode_tok_s"]["mean"], c["prefill_tok_s"]["mean"]
    wb, npar = j.get("active_weight_bytes") or j.get("weight_bytes", 0), j.get("n_params", 0) # MoE: only the picked experts are read
    r = dict(device=c.get("device", "?"), quant=j.get("quant"), weight_bytes=wb, total_weight_bytes=j.get("weight_bytes", 0), decode_tok_s=tg, prefill_tok_s=pp,
             decode_bytes_per_s=wb * tg, roofline_fraction=wb * tg / peak, ms_per_token=1e3 / tg if tg else 0,
             ideal_ms_per_token=1e3 * wb / peak, prefill_tflops=2.0 * npar * pp / 1e12, peak_rss_bytes=j.get("peak_rss_bytes"))
    rows.append((name, r))
    S.setdefault("bench", {})[name] = r
print("\nroofline: weight bytes x decode tok/s vs peak %.2f TB/s (every weight read once per token; KV and" % (peak / 1e12))
print("activation traffic not counted, so the fraction is a lower bound)")
print("%-28s %-6s %9s %10s %9s %9s %8s %8s %9s" % ("model", "quant", "weights", "decode", "ms/tok", "ideal", "GB/s", "of peak", "prefill"))
for name, r in rows:
    print("%-28s %-6s %7.2fGB %7.1ft/s %9.2f %9.2f %8.0f %7.1f%% %7.0ft/s (%.1f TFLOP/s)" % (
        name, r["quant"], r["weight_bytes"] / 1e9, r["decode_tok_s"], r["ms_per_token"], r["ideal_ms_per_token"],
        r["decode_bytes_per_s"] / 1e9, 100 * r["roofline_fraction"], r["prefill_tok_s"], r["prefill_tflops"]))
if rows:
    print("device: %s" % rows[0][1]["device"])
S["main_model"] = main
d = dict(rows)
on, off = d.get(main), d.get(main + "-nographs")
if on and off and off["decode_tok_s"]:
    S["graphs_on_off_decode"] = on["decode_tok_s"] / off["decode_tok_s"]
    print("\nCUDA graphs: decode %.1f t/s on, %.1f off: on/off %.3f" % (on["decode_tok_s"], off["decode_tok_s"], S["graphs_on_off_decode"]))

st, sf = load("sampled-top-%s.json" % main), load("sampled-full-%s.json" % main)
if st and sf:
    def spec_tg(j):
        c = next((c for c in j["configs"] if c.get("speedup_vs_spec_none") is not None), j["configs"][-1])
        return c["decode_tok_s"]["mean"]
    S["sampled_verify"] = dict(top_decode_tok_s=spec_tg(st), full_decode_tok_s=spec_tg(sf), top_over_full=spec_tg(st) / spec_tg(sf) if spec_tg(sf) else None)
    print("\nsampled EAGLE-3 (temp 0.6, top-k 20): reading the 64 largest logits %.1f t/s, whole rows %.1f t/s: x%.3f" % (
        S["sampled_verify"]["top_decode_tok_s"], S["sampled_verify"]["full_decode_tok_s"], S["sampled_verify"]["top_over_full"] or 0))

v = load("verify-%s.json" % main)
if v:
    cs = v["configs"]
    plain = next((c for c in cs if c.get("speedup_vs_spec_none") is None), cs[0])
    spec = next((c for c in cs if c.get("speedup_vs_spec_none") is not None), None)
    if spec:
        al = spec.get("accept_len_mean", 0) or 0
        ratio = spec["speedup_vs_spec_none"]
        # a speculative step yields al tokens; its cost in plain decode steps is al / ratio
        S["verify"] = dict(plain_decode_tok_s=plain["decode_tok_s"]["mean"], spec_decode_tok_s=spec["decode_tok_s"]["mean"],
                           accept_len_mean=al, speedup_vs_spec_none=ratio, step_cost_in_decode_steps=al / ratio if ratio else None)
        print("\nEAGLE-3 verify batches (%s, random draft): plain %.1f t/s, speculative %.1f t/s at %.2f tokens"
              " per step: a draft+verify step costs %.2f decode steps" % (main, S["verify"]["plain_decode_tok_s"], S["verify"]["spec_decode_tok_s"],
              al, S["verify"]["step_cost_in_decode_steps"] or 0))

e = load("exit-sumchain.json")
if e:
    S["exit_path"] = {"n_problems": e.get("n_problems"), "device": e.get("device"), "modes": e.get("modes")}
    print("\nexit path (sumchain, %s problems, %s):" % (e.get("n_problems"), e.get("device")))
    for m, r in (e.get("modes") or {}).items():
        print("  %-12s accuracy %.3f  tokens %7.1f  accept %.2f  %.2f s  tokens/eagle3 %.2f  time/eagle3 %.2f" % (
            m, r["accuracy"], r["mean_generated_tokens"], r["accept_len_mean"], r["total_seconds"], r["tokens_vs_eagle3"], r["time_vs_eagle3"]))

for f in sorted(glob.glob(os.path.join(work, "par-*.json"))):
    j = load(os.path.basename(f))
    if not j:
        continue
    S["cont_batching"] = {k: j.get(k) for k in ("n_parallel", "n_gen", "throughput_ratio", "mean_sequences_per_pass", "outputs_identical")}
    S["cont_batching"]["take_turns_tok_s"] = j["take_turns"]["aggregate_tok_s"]["mean"]
    S["cont_batching"]["batched_tok_s"] = j["cont_batching"]["aggregate_tok_s"]["mean"]
    print("\ncontinuous batching (%d sessions x %d tokens): take turns %.1f t/s, batched %.1f t/s: x%.2f, %.2f sequences per pass,"
          " outputs identical: %s" % (j["n_parallel"], j["n_gen"], S["cont_batching"]["take_turns_tok_s"], S["cont_batching"]["batched_tok_s"],
          j["throughput_ratio"], j["mean_sequences_per_pass"], j["outputs_identical"]))

c = next((load(os.path.basename(f)) for f in sorted(glob.glob(os.path.join(work, "cpumoe-*.json")))), None)
if c:
    r = c["configs"][0]
    S["cpu_moe"] = dict(model=c.get("model"), device_weight_bytes=r.get("device_weight_bytes"), weight_bytes=c.get("weight_bytes"),
                        decode_tok_s=r["decode_tok_s"]["mean"], prefill_tok_s=r["prefill_tok_s"]["mean"])
    print("\n--cpu-moe (experts on the CPU): %.2f of %.2f GB on the GPU: decode %.1f t/s, prefill %.0f t/s" % (
        (r.get("device_weight_bytes") or 0) / 1e9, (c.get("weight_bytes") or 0) / 1e9, S["cpu_moe"]["decode_tok_s"], S["cpu_moe"]["prefill_tok_s"]))

o = load("offload-%s.json" % main)
if o:
    S["offload"] = [dict(n_gpu_layers=c.get("n_gpu_layers"), device_weight_bytes=c.get("device_weight_bytes"),
                         decode_tok_s=c["decode_tok_s"]["mean"], prefill_tok_s=c["prefill_tok_s"]["mean"]) for c in o["configs"]]
    print("\nlayer offload (%s): " % main + ", ".join("-ngl %d (%.2f GB on the GPU): decode %.1f t/s, prefill %.0f t/s" % (
        r["n_gpu_layers"], (r["device_weight_bytes"] or 0) / 1e9, r["decode_tok_s"], r["prefill_tok_s"]) for r in S["offload"]))

def dec(name):
    j = load(name)
    try:
        return j["configs"][0]["decode_tok_s"]["mean"], j["configs"][0]["prefill_tok_s"]["mean"]
    except Exception:
        return None
sp, ns = dec("long-split.json"), dec("long-nosplit.json")
if sp and ns and ns[0]:
    S["long_context"] = dict(prompt_tokens=int(long_ctx), split_decode_tok_s=sp[0], nosplit_decode_tok_s=ns[0], split_over_nosplit=sp[0] / ns[0],
                             long_over_short=sp[0] / on["decode_tok_s"] if on else None)
    print("\nsplit-K attention (decode after %s tokens): %.1f t/s split, %.1f t/s one block per head: split/none %.3f" % (
        long_ctx, sp[0], ns[0], sp[0] / ns[0]))
kv = load("long-kv.json")
if kv and len(kv.get("configs", [])) == 3: # f16, q8_0, q4_0
    a, c = kv["configs"][0], kv["configs"][2]
    S["kv_q4_0"] = dict(prompt_tokens=int(long_ctx), f16_decode_tok_s=a["decode_tok_s"]["mean"], q4_0_decode_tok_s=c["decode_tok_s"]["mean"],
                        decode_ratio=c["decode_tok_s"]["mean"] / a["decode_tok_s"]["mean"] if a["decode_tok_s"]["mean"] else None,
                        f16_kv_bytes=a.get("kv_cache_bytes"), q4_0_kv_bytes=c.get("kv_cache_bytes"))
    print("\nKV cache q4_0 vs f16 (decode after %s tokens): %.1f vs %.1f t/s (x%.3f), cache %.1f vs %.1f MiB" % (
        long_ctx, S["kv_q4_0"]["q4_0_decode_tok_s"], S["kv_q4_0"]["f16_decode_tok_s"], S["kv_q4_0"]["decode_ratio"] or 0,
        (c.get("kv_cache_bytes") or 0) / 2**20, (a.get("kv_cache_bytes") or 0) / 2**20))
if kv and len(kv.get("configs", [])) >= 2:
    a, b = kv["configs"][:2]
    S["kv_q8_0"] = dict(prompt_tokens=int(long_ctx), f16_decode_tok_s=a["decode_tok_s"]["mean"], q8_0_decode_tok_s=b["decode_tok_s"]["mean"],
                        decode_ratio=b["decode_tok_s"]["mean"] / a["decode_tok_s"]["mean"] if a["decode_tok_s"]["mean"] else None,
                        f16_kv_bytes=a.get("kv_cache_bytes"), q8_0_kv_bytes=b.get("kv_cache_bytes"))
    print("\nKV cache q8_0 vs f16 (decode after %s tokens): %.1f vs %.1f t/s (x%.3f), cache %.1f vs %.1f MiB" % (
        long_ctx, S["kv_q8_0"]["q8_0_decode_tok_s"], S["kv_q8_0"]["f16_decode_tok_s"], S["kv_q8_0"]["decode_ratio"] or 0,
        (b.get("kv_cache_bytes") or 0) / 2**20, (a.get("kv_cache_bytes") or 0) / 2**20))
kl = load("kld-sumchain.json")
if kl and len(kl.get("configs", [])) == 2:
    r, b = kl["configs"]
    S["kld_vs_cpu_ref"] = dict(model="sumchain", tokens_scored=b["tokens_scored"], ppl=b["ppl"], ref_ppl=r["ppl"], ppl_ratio=b["ppl_ratio"],
                               mean_kld=b["mean_kld"], p99_kld=b["p99_kld"], max_kld=b["max_kld"], same_top1=b["same_top1"])
    print("\nnext-token distributions against cpu-ref (sumchain, %d positions): mean KLD %.3g, 99%% %.3g, max %.3g, same top 1 %.2f%%, PPL x%.5f" % (
        b["tokens_scored"], b["mean_kld"], b["p99_kld"], b["max_kld"], 100 * b["same_top1"], b["ppl_ratio"]))
# A/B benches of one run: the second configuration against the first
for name, what in (("split", "split over two devices (the GPU opened twice) vs one"), ("grammar", "under a grammar (whole rows read) vs none"),
                   ("ngram", "prompt lookup (--spec ngram) vs plain")):
    j = load("%s-%s.json" % (name, main))
    if j and len(j.get("configs", [])) == 2:
        a, b = j["configs"]
        ta, tb = a["decode_tok_s"]["mean"], b["decode_tok_s"]["mean"]
        S[name] = dict(base_decode_tok_s=ta, decode_tok_s=tb, ratio=tb / ta if ta else None, accept_len_mean=b.get("accept_len_mean"))
        print("\n%s: decode %.1f vs %.1f t/s (x%.3f)" % (what, tb, ta, S[name]["ratio"] or 0))
if S["skipped_for_time"]:
    print("\nskipped for time: " + "; ".join(S["skipped_for_time"]))
json.dump(S, open(os.path.join(os.path.dirname(work), "summary.json"), "w"), indent=1)
PY
  cat "$out/summary.txt" | tee -a "$out/gpu-check.log"
  log "done in $(($(date +%s) - t_start)) s, status $status"
  cp "$out/gpu-check.log" "$work/" 2> /dev/null
  tar -C "$out" -czf "$out/logs.tar.gz" work && rm -rf "$work"
  [ -n "${models_made:-}" ] && rm -f "$models"/*.gguf
  exit $status
}

log "repository $root, backend $backend, output $out, deadline in $(left) s"
{ nvidia-smi 2>&1 || echo "nvidia-smi not available"; } > "$work/nvidia-smi.txt"
(cd "$root" && git rev-parse HEAD 2>/dev/null && git status --short 2>/dev/null) > "$work/git.txt" 2>&1

# ---- 0. the build ----
export PATH=/usr/local/cuda/bin:$PATH
root_from=""
if [ -n "${SX_BUILD_DIR:-}" ]; then
  build=$SX_BUILD_DIR
  log "using the build in $build"
elif [ -f "$root/.gpu-bundle/manifest" ]; then
  build=$root/.gpu-bundle/build
  cp "$root/.gpu-bundle/manifest" "$work/bundle-manifest.txt"
  root_from=$(sed -n 's/^root=//p' "$root/.gpu-bundle/manifest")
  # the bundle's libraries that this machine lacks (cJSON, libmicrohttpd, ...)
  mkdir -p "$work/lib"
  for l in "$root"/.gpu-bundle/lib/*; do
    [ -e "$l" ] || continue
    ldconfig -p 2> /dev/null | grep -q "/$(basename "$l")\$" || ln -sf "$l" "$work/lib/"
  done
  export LD_LIBRARY_PATH=$work/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  # the CLI finds its default model under the source path it was built in
  if [ "$root_from" != "$root" ] && [ ! -e "$root_from" ]; then
    mkdir -p "$(dirname "$root_from")" 2> /dev/null && ln -s "$root" "$root_from" 2> /dev/null
  fi
  log "prebuilt bundle: $(tr '\n' ' ' < "$root/.gpu-bundle/manifest"); libraries taken from it: $(ls "$work/lib" | tr '\n' ' ')"
else
  build=$root/build-gpu-check
  if [ ! -d "$build" ]; then
    meson setup "$build" "$root" -Dvulkan=disabled -Dhip=disabled -Dcuda=enabled -Dnv_archs="$archs" -Dbuildtype=release \
      > "$work/meson-setup.log" 2>&1 || { log "meson setup failed: $(grep -iE 'error|not found' "$work/meson-setup.log" | head -3 | tr '\n' ' ')"; status=1; finish; }
  fi
  if ! timeout "$(cap 300)" ninja -C "$build" > "$work/build.log" 2>&1; then
    log "build failed (see build.log)"; tail -30 "$work/build.log"; status=1; finish
  fi
  grep -iE "warning" "$work/build.log" | grep -E "backends/cuda|tests/test_cuda" > "$work/build-warnings-cuda.txt" || true
  log "build ok ($(wc -l < "$work/build-warnings-cuda.txt") warnings in CUDA sources)"
fi
if [ ! -x "$build/specexit" ]; then log "no specexit program in $build"; status=1; finish; fi
"$build/specexit" devices --json > "$work/devices.json" 2> "$work/devices.err" || log "specexit devices failed: $(head -2 "$work/devices.err")"
runtests() { # NAME DEADLINE_EPOCH runner-args...: the tests through tools/run-tests.py
  local name=$1 dl=$2
  shift 2
  python3 "$root/tools/run-tests.py" "$build" -j "$jobs" --deadline "$dl" --json "$work/tests-$name.json" --log-dir "$work/tests-$name" \
    ${root_from:+--root-from "$root_from" --root-to "$root"} "$@" > "$work/tests-$name.txt" 2>&1
  local rc=$?
  log "tests $name: $(tail -1 "$work/tests-$name.txt")"
  grep -E '^FAIL ' "$work/tests-$name.txt" | head -10 | while read -r l; do log "  $l"; done
  [ $rc = 0 ] || status=1
}
# step NAME SECONDS COMMAND...: one test program, its exit status in step-NAME.rc
step() {
  local name=$1 secs=$2
  shift 2
  fits "$secs" "$name" || return 0
  timeout "$(cap "$secs")" "$@" > "$work/step-$name.log" 2>&1
  local rc=$?
  echo $rc > "$work/step-$name.rc"
  log "$name: exit $rc: $(tail -1 "$work/step-$name.log")"
  case $rc in 0|77) ;; *) status=1 ;; esac
}

# ---- 1. synthetic models, in the background ----
if [ -n "${SX_BENCH_SHAPES:-}" ]; then
  IFS=';' read -ra shapes <<< "$SX_BENCH_SHAPES"
else
  l1=32 l2=36
  if [ "$layers" != full ]; then l1=$layers l2=$layers; fi
  # name arch layers embd heads kv_heads head_dim ff vocab
  shapes=("llama3-8b llama $l1 4096 32 8 128 14336 128256" "qwen3-8b qwen3 $l2 4096 32 8 128 12288 151936")
fi
mkdir -p "$models" && models_made=1
declare -A mpid mpath
make_model() { # name arch layers embd heads kvh hd ff vocab type
  nice -n 5 "$build/specexit-mkmodel" --arch "$2" --type "${10}" --layers "$3" --embd "$4" --heads "$5" --kv-heads "$6" --head-dim "$7" --ff "$8" \
    --ctx 16384 --seed 7 --vocab "$9" -o "$models/$1-${10}.gguf" > "$work/mkmodel-$1-${10}.log" 2>&1
}
# the mixture-of-experts model (first type only), written after the others
moe_shape=${SX_BENCH_MOE:-qwen3-30b-a3b $( [ "$layers" = full ] && echo 48 || echo "$layers" ) 2048 32 4 128 151936 128 8 768}
if [ "$moe_shape" != none ]; then
  set -- $moe_shape
  moe_key=$1-${types%% *}
  mpath[$moe_key]=$models/$moe_key.gguf
  (
    for p in "${mpid[@]}"; do while kill -0 "$p" 2> /dev/null; do sleep 1; done; done
    nice -n 5 "$build/specexit-mkmodel" --arch qwen3moe --type "${types%% *}" --layers "$2" --embd "$3" --heads "$4" --kv-heads "$5" \
      --head-dim "$6" --ff $(( $9 * ${10} )) --experts "$8" --experts-used "$9" --ff-exp "${10}" --ctx 16384 --seed 7 --vocab "$7" \
      -o "${mpath[$moe_key]}" > "$work/mkmodel-$moe_key.log" 2>&1
  ) & mpid[$moe_key]=$!
fi
first=${shapes[0]%% *}
main_layers=$(echo "${shapes[0]}" | awk '{print $3}')
first_type=${types%% *}
for s in "${shapes[@]}"; do
  set -- $s
  for type in $types; do
    mpath[$1-$type]=$models/$1-$type.gguf
    make_model $s "$type" & mpid[$1-$type]=$!
  done
done
# the EAGLE-3 draft of the first shape (as for Llama-3-8B: one layer, 32000-token draft vocabulary)
draft=$models/$first-eagle3.gguf
(
  set -- ${shapes[0]}
  wait_for=${mpid[$first-$first_type]}
  while kill -0 "$wait_for" 2> /dev/null; do sleep 1; done
  dv=$(( $9 < 32000 ? $9 / 2 : 32000 ))
  nice -n 5 "$build/specexit-mkmodel" --arch eagle3 --target "${mpath[$first-$first_type]}" --type f16 --heads "$5" --kv-heads "$6" \
    --head-dim "$7" --ff "$8" --draft-vocab "$dv" --own-embd --seed 11 -o "$draft" > "$work/mkmodel-eagle3.log" 2>&1
) & draft_pid=$!
log "writing $(( ${#shapes[@]} * $(echo $types | wc -w) )) models ($([ -n "${SX_BENCH_SHAPES:-}" ] && echo "shapes as given" || echo "$layers layers")) and a draft in the background"
model_ready() { # KEY: waits for its writer (in this shell: not in $(...)); sets $model when the model exists
  local p=${mpid[$1]:-}
  model=""
  [ -n "$p" ] && wait "$p" 2> /dev/null
  [ -s "${mpath[$1]:-/nonexistent}" ] && model=${mpath[$1]}
  [ -n "$model" ]
}

# ---- 2. the backend's suite ----
if [ "${SX_SKIP_TESTS:-0}" != 1 ]; then
  # leave ~40% of the run for the benchmarks
  runtests "$backend" $(( $(date +%s) + ($(left) - 15) * 55 / 100 )) --suite "$backend"
fi

# bench_cfg OUTNAME SECONDS ENV... -- ARGS...: one `specexit bench --json`
bench() {
  local name=$1 secs=$2 envs=()
  shift 2
  while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  fits "$secs" "bench $name" || return 0
  if timeout "$(cap "$secs")" env "${envs[@]}" "$build/specexit" bench --backend "$backend" --json "$@" > "$work/$name.json" 2> "$work/$name.log"; then
    log "bench $name: $(grep -vE '^\s*$' "$work/$name.log" | tail -1 | sed 's/^\[bench\] //' | cut -c1-200)"
  else
    log "bench $name FAILED (see $name.log): $(tail -1 "$work/$name.log" | cut -c1-200)"; rm -f "$work/$name.json"
  fi
}

# ---- 3. the roofline bench ----
main_key=$first-$first_type
model_ready "$main_key" || log "the $main_key model was not written (see mkmodel-$main_key.log)"
main_model=$model
[ -n "$main_model" ] && bench "bench-$main_key" 120 -- -m "$main_model" -p "$bp" -n "$bn" -r "$br"

# ---- 4. EAGLE-3 verify batches ----
wait "$draft_pid" 2> /dev/null
if [ -n "$main_model" ] && [ -s "$draft" ]; then
  bench "verify-$main_key" 120 -- -m "$main_model" -md "$draft" --spec eagle3 -p 64 -n "$bn" -r "$br" --ignore-eos
else
  log "no EAGLE-3 draft for the verify bench (see mkmodel-eagle3.log)"
fi

# ---- 5. the exit path on the trained sumchain pair ----
if [ -f "$root/models/sumchain/target.gguf" ] && [ -f "$problems" ]; then
  bench "exit-sumchain" 90 -- -m "$root/models/sumchain/target.gguf" -md "$root/models/sumchain/draft.gguf" --problems "$problems" \
    --modes plain,eagle3,specexit
fi

# ---- 5b. quality: the backend's next-token distributions against the CPU reference (KL divergence, one run) ----
if [ -f "$root/models/sumchain/target.gguf" ] && fits 60 "kld-sumchain"; then
  if timeout "$(cap 60)" "$build/specexit" perplexity -m "$root/models/sumchain/target.gguf" -f "$root/README.md" -c 256 --chunks 8 \
      --backend "cpu-ref,$backend" --json > "$work/kld-sumchain.json" 2> "$work/kld-sumchain.log"; then
    log "kld-sumchain: $(grep -E '^\[perplexity\] chunk' "$work/kld-sumchain.log" | tail -1)"
  else
    log "kld-sumchain FAILED (see kld-sumchain.log): $(tail -1 "$work/kld-sumchain.log" | cut -c1-200)"; rm -f "$work/kld-sumchain.json"
  fi
fi

# ---- 6. graphs, continuous batching, long context ----
if [ -n "$main_model" ]; then
  bench "bench-$main_key-nographs" 90 SPECEXIT_CUDA_GRAPHS=0 -- -m "$main_model" -p "$bp" -n "$bn" -r "$br"
  bench "par-$main_key" 90 -- -m "$main_model" -np 8 -p 32 -n 64 -r 2
  if [ "$long_ctx" != 0 ]; then
    bench "long-split" 90 -- -m "$main_model" -p "$long_ctx" -n 64 -r 2
    bench "long-nosplit" 90 SPECEXIT_CUDA_ATTN_SPLIT=0 -- -m "$main_model" -p "$long_ctx" -n 64 -r 2
    bench "long-kv" 120 -- -m "$main_model" -ctk f16,q8_0,q4_0 -p "$long_ctx" -n 64 -r 2
  fi
  # sampled EAGLE-3 verification (Qwen3's recommended sampling): the 64 largest logits per row read back, against whole rows
  if [ -s "$draft" ]; then
    bench "sampled-top-$main_key" 90 -- -m "$main_model" -md "$draft" --spec eagle3 -p 64 -n 64 -r 2 --temp 0.6 --top-k 20 --top-p 0.95
    bench "sampled-full-$main_key" 90 SPECEXIT_SAMPLE_FULL=1 -- -m "$main_model" -md "$draft" --spec eagle3 -p 64 -n 64 -r 2 --temp 0.6 --top-k 20 \
      --top-p 0.95
  fi
  # layer offload: half the blocks on the CPU, all blocks (output on the CPU), the whole model
  bench "offload-$main_key" 120 -- -m "$main_model" -ngl "$((main_layers / 2)),$main_layers,$((main_layers + 1))" -p 128 -n 32 -r 1
  # a split by blocks over two devices (here the GPU opened twice: the cost of the residual's crossing), against one
  [ "$backend" != cpu ] && bench "split-$main_key" 90 -- -m "$main_model" --backend "$backend,$backend:0/$backend:0" -p 128 -n 64 -r 2
  # constrained output: every row read whole (the vocabulary crosses the bus) and filtered on the host, against none
  bench "grammar-$main_key" 90 -- -m "$main_model" --grammar 'root ::= [a-z ]+' -p 64 -n 64 -r 2
  # prompt lookup (no draft) against plain decoding: on random weights nearly nothing is accepted, so this is its overhead
  bench "ngram-$main_key" 90 -- -m "$main_model" --spec ngram -p 64 -n 64 -r 2
fi

# ---- 7. more tests, the other models ----
if [ "${SX_SKIP_TESTS:-0}" != 1 ] && [ "${SX_EXTRA_TESTS:-1}" != 0 ]; then
  xf=$root/tests/xfail/$backend.txt
  step "test_ops-$backend-full" 150 "$build/tests/test_ops" "$backend" --full ${xf:+--xfail "$xf"}
  for split in all 0; do
    step "attention-split-$split" 90 env SPECEXIT_CUDA_ATTN_SPLIT=$split "$build/tests/test_ops" "$backend" --full --op ATTENTION
    step "batch-invariance-split-$split" 90 env SPECEXIT_CUDA_ATTN_SPLIT=$split "$build/tests/test_batch_invariance" "$backend"
  done
  for plan in passes block 37; do # TOP_K (sampling from the top 64 of a vocabulary) under each launch plan
    step "top-k-$plan" 60 env SPECEXIT_CUDA_TOPK=$plan "$build/tests/test_ops" "$backend" --full --op TOP_K
  done
fi
for s in "${shapes[@]}"; do
  set -- $s
  for type in $types; do
    key=$1-$type
    [ "$key" = "$main_key" ] && continue
    model_ready "$key" || { log "the $key model was not written (see mkmodel-$key.log)"; continue; }
    p=$model
    bench "bench-$key" 90 -- -m "$p" -p "$bp" -n "$bn" -r "$br"
    rm -f "$p"
  done
done
if [ -n "${moe_key:-}" ]; then # mixture of experts: all the experts on the device, then with --cpu-moe
  if model_ready "$moe_key"; then
    bench "bench-$moe_key" 90 -- -m "$model" -p "$bp" -n "$bn" -r "$br"
    bench "cpumoe-$moe_key" 90 -- -m "$model" --cpu-moe -p 128 -n 32 -r 1
    rm -f "$model"
  else
    log "the $moe_key model was not written (see mkmodel-$moe_key.log)"
  fi
fi
if [ "${SX_SKIP_TESTS:-0}" != 1 ] && [ "$backend" = cuda ]; then
  fits 120 "cuda-compile suite" && runtests cuda-compile $(( $(date +%s) + $(cap 120) )) --suite cuda-compile
fi
# writers still running (skipped models) are stopped
for p in "${mpid[@]}" "$draft_pid"; do kill "$p" 2> /dev/null; done
wait 2> /dev/null
finish
