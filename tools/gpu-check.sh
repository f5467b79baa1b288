#!/usr/bin/env bash
# tools/gpu-check.sh OUTDIR — the one prepared run for a machine with an NVIDIA
# GPU (sized for one H200 and well under 10 minutes):
#   1. builds with CUDA only (meson + ninja, nv_archs=sm_90 unless SX_NV_ARCHS)
#   2. runs the cuda suite (op conformance, tiny-model goldens on cuda), the
#      NVRTC compile check and the model (golden) suites, then the attention
#      conformance and batch-invariance tests once per forced attention plan
#      (SPECEXIT_CUDA_ATTN_SPLIT=all, =0)
#   3. writes synthetic-weight models with the layer shapes of Llama-3-8B and
#      Qwen3-8B in Q4_0, Q4_K and F16 (tools/mkmodel.c) and benchmarks each with
#      `specexit bench --backend cuda -p 512 -n 128 -r 3 --json`
#      and the Llama-3-8B-shaped Q4_0 model once more with CUDA graphs off
#      (SPECEXIT_CUDA_GRAPHS=0; everything else runs with the default, on),
#      then at long context: decode of 64 tokens after a SX_BENCH_LONG_CTX
#      (8192) token prompt, with ATTENTION's split-K (the default) and
#      without (SPECEXIT_CUDA_ATTN_SPLIT=0)
#      and continuous batching: 8 sessions at once, combined passes against
#      taking turns (`specexit bench -np 8`, on the same Q4_0 model)
#   4. writes a roofline summary: weight bytes x decode tok/s against the
#      peak memory bandwidth (SX_PEAK_BW, default 4.8e12 B/s for an H200),
#      and the decode tok/s ratios of graphs on / off and, at long context,
#      of split-K on / off (and long / short context decode).
# Everything (JSON, logs, summary) goes to OUTDIR. Exit status: non-zero when
# the build or a test failed; benchmarks failing are reported in the summary.
#
# Knobs (environment):
#   SX_BENCH_LAYERS  layers per synthetic model: "full" (32 / 36, the real
#                    depth; ~5 min of single-threaded weight generation per
#                    model) or a number (default 8: same per-layer shapes, so
#                    the same bandwidth ratio; about 1/4 of the time and disk)
#   SX_BENCH_TYPES   default "q4_0 q4_k f16"
#   SX_BUILD_DIR     default build-gpu-check (under the repository root)
#   SX_NV_ARCHS      default sm_90
#   SX_PEAK_BW       bytes/s for the roofline, default 4.8e12
#   SX_BENCH_LONG_CTX prompt tokens of the long-context decode bench, default
#                    8192 (0: skip it)
#   SX_SKIP_TESTS=1  benchmarks only
set -uo pipefail

out=${1:?usage: tools/gpu-check.sh OUTDIR}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
build=${SX_BUILD_DIR:-$root/build-gpu-check}
layers=${SX_BENCH_LAYERS:-8}
types=${SX_BENCH_TYPES:-q4_0 q4_k f16}
archs=${SX_NV_ARCHS:-sm_90}
peak=${SX_PEAK_BW:-4.8e12}
long_ctx=${SX_BENCH_LONG_CTX:-8192}
models=$out/models
status=0
t_start=$(date +%s)

log() { echo "[gpu-check $(($(date +%s) - t_start))s] $*" | tee -a "$out/gpu-check.log"; }

log "repository $root, build $build, output $out"
{ nvidia-smi 2>&1 || echo "nvidia-smi not available"; } > "$out/nvidia-smi.txt"
(cd "$root" && git rev-parse HEAD 2>/dev/null && git status --short 2>/dev/null) > "$out/git.txt" 2>&1

# ---- 1. build ----
export PATH=/usr/local/cuda/bin:$PATH
if [ ! -d "$build" ]; then
  meson setup "$build" "$root" -Dvulkan=disabled -Dhip=disabled -Dcuda=enabled -Dnv_archs="$archs" -Dbuildtype=release \
    > "$out/meson-setup.log" 2>&1 || { log "meson setup failed (see meson-setup.log)"; exit 1; }
else
  meson configure "$build" -Dnv_archs="$archs" > "$out/meson-setup.log" 2>&1
fi
if ! timeout 300 ninja -C "$build" > "$out/build.log" 2>&1; then
  log "build failed (see build.log)"; tail -30 "$out/build.log"; exit 1
fi
grep -iE "warning" "$out/build.log" | grep -E "backends/cuda|tests/test_cuda" > "$out/build-warnings-cuda.txt" || true
log "build ok ($(wc -l < "$out/build-warnings-cuda.txt") warnings in CUDA sources)"
"$build/specexit" devices --json > "$out/devices.json" 2>&1 || true

# ---- 2. tests ----
if [ "${SX_SKIP_TESTS:-0}" != 1 ]; then
  for suite in cuda cuda-compile model; do
    if timeout 420 meson test -C "$build" --suite "$suite" --print-errorlogs > "$out/test-$suite.log" 2>&1; then
      log "suite $suite: ok ($(grep -E '^(Ok|Skipped|Fail):' "$out/test-$suite.log" | tr -s ' ' | tr '\n' ' '))"
    elif grep -q "No suitable tests defined" "$out/test-$suite.log"; then
      log "suite $suite: no tests defined"
    else
      log "suite $suite: FAILED (see test-$suite.log)"; status=1
    fi
    [ -f "$build/meson-logs/testlog.json" ] && cp "$build/meson-logs/testlog.json" "$out/testlog-$suite.json"
  done
  # the op matrix once more in full (bigger matmuls, 300 past KV slots)
  timeout 300 "$build/tests/test_ops" cuda --full --xfail "$root/tests/xfail/cuda.txt" > "$out/test-ops-cuda-full.log" 2>&1
  rc=$?
  case $rc in
    0) log "test_ops cuda --full: $(tail -1 "$out/test-ops-cuda-full.log")" ;;
    77) log "test_ops cuda --full skipped: $(tail -1 "$out/test-ops-cuda-full.log")" ;;
    *) log "test_ops cuda --full FAILED (rc $rc): $(tail -1 "$out/test-ops-cuda-full.log")"; status=1 ;;
  esac
  # ATTENTION's two launch plans forced in turn (the runs above used the
  # automatic choice): split-K everywhere it can, and never; conformance of
  # the attention cases and bit-for-bit batch invariance under each
  for split in all 0; do
    for t in "test_ops cuda --full --op ATTENTION" "test_batch_invariance cuda"; do
      args=($t)
      name=${args[0]}-split-$split
      timeout 180 env SPECEXIT_CUDA_ATTN_SPLIT=$split "$build/tests/${args[0]}" "${args[@]:1}" > "$out/$name.log" 2>&1
      rc=$?
      case $rc in
        0) log "$t (SPECEXIT_CUDA_ATTN_SPLIT=$split): $(tail -1 "$out/$name.log")" ;;
        77) log "$t (SPECEXIT_CUDA_ATTN_SPLIT=$split) skipped: $(tail -1 "$out/$name.log")" ;;
        *) log "$t (SPECEXIT_CUDA_ATTN_SPLIT=$split) FAILED (rc $rc): $(tail -1 "$out/$name.log")"; status=1 ;;
      esac
    done
  done
fi

# ---- 3. synthetic models and benchmarks ----
mkdir -p "$models"
vocab_llama=() vocab_qwen=()
if "$build/specexit-mkmodel" --help 2>&1 | grep -q -- "--vocab"; then
  vocab_llama=(--vocab 128256) vocab_qwen=(--vocab 151936)
else
  log "note: specexit-mkmodel has no --vocab option: models use its small built-in vocabulary (no 128k/152k lm_head)"
fi
llama_layers=32 qwen_layers=36
if [ "$layers" != full ]; then llama_layers=$layers qwen_layers=$layers; fi
# name arch layers embd heads kv_heads head_dim ff
shapes=("llama3-8b llama $llama_layers 4096 32 8 128 14336" "qwen3-8b qwen3 $qwen_layers 4096 32 8 128 12288")

make_model() { # name arch layers embd heads kvh hd ff type -> path
  local name=$1 arch=$2 nl=$3 embd=$4 nh=$5 nkv=$6 hd=$7 ff=$8 type=$9
  local path="$models/$name-L$nl-$type.gguf" extra=()
  if [ "$arch" = llama ]; then extra=("${vocab_llama[@]}"); else extra=("${vocab_qwen[@]}"); fi
  "$build/specexit-mkmodel" --arch "$arch" --type "$type" --layers "$nl" --embd "$embd" --heads "$nh" --kv-heads "$nkv" \
    --head-dim "$hd" --ff "$ff" --ctx 4096 --seed 7 "${extra[@]}" -o "$path" > "$path.log" 2>&1 && echo "$path"
}

bench_one() { # path tag [VAR=value...] (environment of the bench run)
  local path=$1 tag=$2
  shift 2
  if timeout 240 env "$@" "$build/specexit" bench -m "$path" --backend cuda -p 512 -n 128 -r 3 --json > "$out/bench-$tag.json" 2> "$out/bench-$tag.log"; then
    log "bench $tag: $(grep -E 'rep 3/3' "$out/bench-$tag.log" | tail -1 | sed 's/^\[bench\] //')"
  else
    log "bench $tag FAILED (see bench-$tag.log)"; rm -f "$out/bench-$tag.json"
  fi
}

# long-context decode: -n 64 after a prompt of long_ctx tokens, -r 2; its
# JSON goes to long-TAG.json (not a roofline row: KV reads dominate there)
bench_long() { # path tag [VAR=value...] (environment of the bench run)
  local path=$1 tag=$2
  shift 2
  if timeout 180 env "$@" "$build/specexit" bench -m "$path" --backend cuda -p "$long_ctx" -n 64 -r 2 --json > "$out/long-$tag.json" 2> "$out/long-$tag.log"; then
    log "bench $tag (decode after $long_ctx tokens): $(grep -E 'rep 2/2' "$out/long-$tag.log" | tail -1 | sed 's/^\[bench\] //')"
  else
    log "bench $tag FAILED (see long-$tag.log)"; rm -f "$out/long-$tag.json"
  fi
}

# continuous batching: 8 sessions decoding at the same time, their passes
# combined into one forward pass against taking turns (bench -np); JSON in
# par-TAG.json, with outputs_identical (batching must not change a token)
bench_par() { # path tag
  if timeout 180 "$build/specexit" bench -m "$1" --backend cuda -np 8 -p 32 -n 64 -r 2 --json > "$out/par-$2.json" 2> "$out/par-$2.log"; then
    log "bench $2 (8 sessions): $(tail -1 "$out/par-$2.log")"
  else
    log "bench $2 (8 sessions) FAILED (see par-$2.log)"; rm -f "$out/par-$2.json"
  fi
}

# graphs A/B: the same bench of one model with SPECEXIT_CUDA_GRAPHS=0 (the run
# above had the default, graphs on); the summary prints the decode ratio.
# split-K A/B on the same model at long context: ATTENTION's default plan
# (split-K where one block per head and query leaves SMs idle) against
# SPECEXIT_CUDA_ATTN_SPLIT=0 (one block per head and query, as before)
ab_tag=llama3-8b-q4_0
bench_model() { # path tag
  bench_one "$1" "$2"
  if [ "$2" = "$ab_tag" ]; then
    bench_one "$1" "$2-nographs" SPECEXIT_CUDA_GRAPHS=0
    bench_par "$1" "$2"
    if [ "$long_ctx" != 0 ]; then
      bench_long "$1" "$2-split"
      bench_long "$1" "$2-nosplit" SPECEXIT_CUDA_ATTN_SPLIT=0
    fi
  fi
}
case " $types " in *" q4_0 "*) ;; *) log "note: q4_0 not in SX_BENCH_TYPES: no graphs on/off comparison" ;; esac

if [ "$layers" = full ]; then
  # one model at a time: a full-depth F16 model is ~16 GB of disk and RAM
  for s in "${shapes[@]}"; do
    set -- $s
    for type in $types; do
      log "writing $1 $type ($3 layers)"
      p=$(make_model "$@" "$type") || { log "mkmodel failed for $1 $type"; continue; }
      bench_model "$p" "$1-$type"
      rm -f "$p"
    done
  done
else
  # shallow models: write them all in parallel (mkmodel is single-threaded)
  log "writing $(( ${#shapes[@]} * $(echo $types | wc -w) )) models of $layers layers in parallel"
  pids=()
  for s in "${shapes[@]}"; do
    for type in $types; do
      (set -- $s; make_model "$@" "$type" > /dev/null) & pids+=($!)
    done
  done
  for p in "${pids[@]}"; do wait "$p" || log "a mkmodel run failed (see $models/*.log)"; done
  for s in "${shapes[@]}"; do
    set -- $s
    for type in $types; do
      p="$models/$1-L$3-$type.gguf"
      [ -f "$p" ] && bench_model "$p" "$1-$type"
    done
  done
  rm -f "$models"/*.gguf
fi

# ---- 4. roofline summary ----
python3 - "$out" "$peak" "$ab_tag" "$long_ctx" <<'PY' > "$out/roofline.txt" 2>&1 || log "roofline summary failed (see roofline.txt)"
import glob, json, os, sys
out, peak, ab, long_ctx = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = []
for f in sorted(glob.glob(os.path.join(out, "bench-*.json"))):
    try:
        j = json.load(open(f))
    except Exception as e:
        rows.append((os.path.basename(f), None, str(e)))
        continue
    c = j["configs"][0]
    tg, pp = c["decode_tok_s"]["mean"], c["prefill_tok_s"]["mean"]
    wb, npar = j.get("weight_bytes", 0), j.get("n_params", 0)
    bw = wb * tg  # every weight byte read once per decoded token
    rows.append((os.path.basename(f)[6:-5], dict(device=c.get("device", "?"), quant=j.get("quant"), weight_gb=wb / 1e9,
                 decode=tg, prefill=pp, bw=bw, frac=bw / peak, ms=1e3 / tg if tg else 0,
                 ideal_ms=1e3 * wb / peak, tflops=2.0 * npar * pp / 1e12), None))
print("roofline: weight bytes x decode tok/s vs peak %.2f TB/s (decode reads every weight once per token;" % (peak / 1e12))
print("KV-cache and activation traffic are not counted, so the fraction is a lower bound)\n")
print("%-24s %-6s %9s %10s %9s %9s %8s %8s %9s" % ("model", "quant", "weights", "decode", "ms/tok", "ideal", "GB/s", "of peak", "prefill"))
for name, r, err in rows:
    if r is None:
        print("%-24s error: %s" % (name, err)); continue
    print("%-24s %-6s %7.2fGB %7.1ft/s %9.2f %9.2f %8.0f %7.1f%% %7.0ft/s (%.1f TFLOP/s)" % (
        name, r["quant"], r["weight_gb"], r["decode"], r["ms"], r["ideal_ms"], r["bw"] / 1e9, 100 * r["frac"], r["prefill"], r["tflops"]))
if rows:
    print("\ndevice: %s" % next((r["device"] for _, r, _ in rows if r), "?"))
on, off = (next((r for name, r, _ in rows if name == n and r), None) for n in (ab, ab + "-nographs"))
if on and off and off["decode"]:
    print("\nCUDA graphs (%s): decode %.1f t/s on, %.1f t/s off: on/off %.3f; prefill on/off %.3f" % (
        ab, on["decode"], off["decode"], on["decode"] / off["decode"], on["prefill"] / off["prefill"] if off["prefill"] else 0))
else:
    print("\nCUDA graphs (%s): no on/off comparison (a bench is missing or failed)" % ab)
def decode_of(path):
    try:
        c = json.load(open(path))["configs"][0]
        return c["decode_tok_s"]["mean"], c["prefill_tok_s"]["mean"]
    except Exception:
        return None
for f in sorted(glob.glob(os.path.join(out, "par-*.json"))):
    try:
        j = json.load(open(f))
        print("\ncontinuous batching (%s, %d sessions x %d tokens): take turns %.1f t/s, batched %.1f t/s: x%.2f, %.2f sequences"
              " per pass, outputs identical: %s" % (os.path.basename(f)[4:-5], j["n_parallel"], j["n_gen"],
              j["take_turns"]["aggregate_tok_s"]["mean"], j["cont_batching"]["aggregate_tok_s"]["mean"], j["throughput_ratio"],
              j["mean_sequences_per_pass"], j["outputs_identical"]))
    except Exception as e:
        print("\ncontinuous batching: %s unreadable: %s" % (os.path.basename(f), e))
if long_ctx != "0":
    sp, ns = (decode_of(os.path.join(out, "long-%s-%s.json" % (ab, x))) for x in ("split", "nosplit"))
    if sp and ns and ns[0]:
        print("\nsplit-K attention (%s, decode after %s tokens): %.1f t/s split, %.1f t/s one block per head: split/none %.3f"
              " (prefill %.0f / %.0f t/s)" % (ab, long_ctx, sp[0], ns[0], sp[0] / ns[0], sp[1], ns[1]))
        if on and on["decode"]:
            print("long / short context decode (split-K): %.3f (short: -p 512 above)" % (sp[0] / on["decode"]))
    else:
        print("\nsplit-K attention (%s at %s tokens): no on/off comparison (a bench is missing or failed)" % (ab, long_ctx))
PY
cat "$out/roofline.txt" | tee -a "$out/gpu-check.log"
log "done in $(($(date +%s) - t_start)) s, status $status"
exit $status
