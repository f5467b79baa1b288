#!/bin/sh
# backends/cuda/emu/run_emu_tests.sh — builds tests/test_ops against a CPU
# emulation of the CUDA kernels (gpu_emu.h) and runs `test_ops cuda` with
# the given arguments, without meson. Checks kernel logic on machines without
# a GPU. Usage: run_emu_tests.sh [test_ops args...]
# (A meson build with -Dgpu_emu=true builds the whole engine this way, and
# its cuda suite runs every CUDA test on it.)
# SX_EMU_TEST=tests/test_models.c runs that test program instead (its args
# follow the backend name, e.g. the tiny models of a meson build).
set -e
root=$(cd "$(dirname "$0")/../../.." && pwd)
out=${SX_EMU_OUT:-/tmp/sx-cuda-emu}
mkdir -p "$out"
cd "$root"
cflags="-O1 -g -std=gnu11 -D_GNU_SOURCE -DSX_HAVE_CUDA -I$root"
cxxflags="-O1 -g -std=c++20 -DSX_EMU -I$root -Wall -Wextra -Wno-unknown-pragmas -Wno-unused-function"
libs="-lm -lpthread -lstdc++"
if pkg-config --exists hwloc 2>/dev/null; then cflags="$cflags -DSX_HAVE_HWLOC"; libs="$libs $(pkg-config --libs hwloc)"; fi
# core/ parses JSON (response_format schemas) with cJSON, as the meson build does
cflags="$cflags $(pkg-config --cflags libcjson 2>/dev/null)"; libs="$libs $(pkg-config --libs libcjson 2>/dev/null || echo -lcjson)"
objs=""
for f in backends/cuda/*.cu; do
  b=$(basename "$f" .cu)
  python3 backends/cuda/emu/rewrite_launches.py "$f" "$out/$b.cpp"
  g++ $cxxflags -c "$out/$b.cpp" -o "$out/$b.o"
  objs="$objs $out/$b.o"
done
prog=${SX_EMU_TEST:-tests/test_ops.c}
for f in ir/*.c backends/backend.c backends/sched.c backends/cpu/*.c core/*.c "$prog"; do
  case "$f" in
    *avx512*) extra="-mavx512f -mavx512bw -mavx512vl -mavx2 -mfma -mf16c" ;;
    *avx2*) extra="-mavx2 -mfma -mf16c" ;;
    *) extra="" ;;
  esac
  o="$out/$(echo "$f" | tr / _).o"
  gcc $cflags $extra -c "$f" -o "$o"
  objs="$objs $o"
done
exe="$out/$(basename "$prog" .c)_emu"
g++ -o "$exe" $objs $libs
exec "$exe" cuda "$@"
