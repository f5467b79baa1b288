#!/usr/bin/env bash
# tools/gpu-bundle.sh — builds, here, everything tools/gpu-check.sh runs on a
# GPU machine, into .gpu-bundle/ (ignored by git): a CUDA-only release build
# (nv_archs sm_90 unless SX_NV_ARCHS) and the shared libraries its programs
# need beyond the C and C++ runtimes (cJSON, libmicrohttpd and what that links,
# hwloc). The GPU machine then needs no meson, compiler or -dev package:
# carry .gpu-bundle and run tools/gpu-check.sh there; it finds the bundle,
# runs the tests with tools/run-tests.py (no meson), and falls back to
# building only when there is no bundle.
#
# The CUDA runtime is linked statically (cudart_static), so the GPU machine
# needs only its driver (libcuda), of a CUDA version at least this nvcc's.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bundle=$root/.gpu-bundle
build=$bundle/build
archs=${SX_NV_ARCHS:-sm_90}
export PATH=/usr/local/cuda/bin:$PATH

command -v nvcc > /dev/null || { echo "gpu-bundle: nvcc not found (install the CUDA toolkit)" >&2; exit 1; }
rm -rf "$bundle"
mkdir -p "$bundle/lib"
echo "[gpu-bundle] meson setup ($archs)"
meson setup "$build" "$root" -Dvulkan=disabled -Dhip=disabled -Dcuda=enabled -Dnv_archs="$archs" -Dbuildtype=release -Dsmollm2= \
  > "$bundle/meson-setup.log" 2>&1 || { tail -20 "$bundle/meson-setup.log"; exit 1; }
echo "[gpu-bundle] ninja"
ninja -C "$build" > "$bundle/build.log" 2>&1 || { tail -30 "$bundle/build.log"; exit 1; }
grep -q "SX_HAVE_CUDA" "$build/compile_commands.json" || { echo "gpu-bundle: the build has no CUDA backend" >&2; exit 1; }

# the shared libraries of every program and library in the build, less the
# ones every Linux has (libc, libm, libstdc++, libgcc, the loader)
mapfile -t elfs < <(find "$build" -type f \( -name '*.so' -o -perm -u+x \) ! -name '*.py' ! -name '*.sh' -exec sh -c 'head -c4 "$1" | grep -q ELF && echo "$1"' _ {} \;)
for f in "${elfs[@]}"; do
  LD_LIBRARY_PATH=$build ldd "$f" 2>/dev/null | awk '/=> \// {print $3}'
done | sort -u | while read -r lib; do
  case $(basename "$lib") in
    libc.so*|libm.so*|libstdc++.so*|libgcc_s.so*|ld-linux*|libdl.so*|librt.so*|libpthread.so*|libspecexit.so) ;;
    *) [ "$(dirname "$lib")" = "$build" ] || cp -L "$lib" "$bundle/lib/" ;;
  esac
done

{
  echo "root=$root"
  echo "git=$(cd "$root" && git rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "dirty=$(cd "$root" && git status --short 2>/dev/null | grep -v '^??' | wc -l)"
  echo "archs=$archs"
  echo "nvcc=$(nvcc --version | tail -2 | head -1)"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$bundle/manifest"
rm -f "$bundle/build.log"
echo "[gpu-bundle] $(du -sh "$bundle" | cut -f1) in $bundle ($(ls "$bundle/lib" | wc -l) libraries: $(ls "$bundle/lib" | tr '\n' ' '))"
echo "[gpu-bundle] on the GPU machine: carry .gpu-bundle and run: bash tools/gpu-check.sh \$OUT"
