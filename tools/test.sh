#!/usr/bin/env bash
# tools/test.sh — the README's test command: set up, build (release,
# ASan/UBSan, and the cuda backend on the CPU emulation of CUDA), run every
# suite that can run here. GPU suites skip (77) without a device. Prints
# meson's results; .ci/run adds the summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
MODEL=$PWD/models/SmolLM2-135M-Instruct.Q4_1.gguf

echo "[test] release build"
meson setup build --reconfigure -Dsmollm2="$MODEL" >/dev/null 2>&1 || meson setup build -Dsmollm2="$MODEL" >/dev/null
ninja -C build
meson test -C build --print-errorlogs --num-processes 2 || true

echo "[test] sanitizer build (clang, ASan + UBSan)"
CC=clang meson setup build-asan --reconfigure -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized \
  -Dsmollm2="$MODEL" >/dev/null 2>&1 || \
  CC=clang meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized -Dsmollm2="$MODEL" >/dev/null
ninja -C build-asan
# under the sanitizers: the unit and fuzz suites and the CPU model/op tests
# (lavapipe under ASan would take hours; the Vulkan suites ran above)
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
meson test -C build-asan --print-errorlogs --num-processes 2 --logbase asan-unit --suite unit --suite fuzz --suite server || true
meson test -C build-asan --print-errorlogs --num-processes 2 --logbase asan-cpu ops-cpu models-cpu spec-qwen3-cpu ref-tiny-cpu cont-batching-cpu || true

echo "[test] the cuda suite on the CPU emulation of the CUDA runtime (the kernels' logic, no GPU)"
# -Dgpu_emu=true: backends/cuda/*.cu compiled as C++ against backends/cuda/emu/gpu_emu.h; every test of the
# cuda suite (ops, tiny-model goldens, SmolLM2 greedy text and logits, speculation, batching) runs on it
meson setup build-emu --reconfigure -Dgpu_emu=true -Dvulkan=disabled -Dhip=disabled -Dsmollm2="$MODEL" >/dev/null 2>&1 || \
  meson setup build-emu -Dgpu_emu=true -Dvulkan=disabled -Dhip=disabled -Dsmollm2="$MODEL" >/dev/null
ninja -C build-emu
meson test -C build-emu --print-errorlogs --num-processes 2 --logbase emu-cuda --suite cuda || true
