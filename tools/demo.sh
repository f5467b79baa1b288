#!/usr/bin/env bash
# tools/demo.sh — the README's first command: set up, build, and run the main
# job. Today that is a chat generation with SmolLM2-135M-Instruct on the CPU,
# with its statistics; it becomes the SpecExit generation on the embedded
# reasoning model once that model ships (see the README's status).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
meson setup build >/dev/null 2>&1 || meson setup build --reconfigure >/dev/null
ninja -C build
./build/specexit devices
echo
./build/specexit run -m models/SmolLM2-135M-Instruct.Q4_1.gguf \
  -p "${1:-Explain in three sentences why the sky is blue.}" -n 128 --temp 0 "${@:2}"
