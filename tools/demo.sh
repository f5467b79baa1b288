#!/usr/bin/env bash
# tools/demo.sh — the README's first command: set up, build, and run the main
# job: a SpecExit generation on the embedded sumchain reasoning model (target
# + EAGLE-3 draft with exit signals, models/sumchain), printing the answer,
# the thinking it kept, where and why it exited, and what that saved against
# full thinking. Without the embedded model it falls back to a SmolLM2 chat.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
meson setup build >/dev/null 2>&1 || meson setup build --reconfigure >/dev/null
ninja -C build
./build/specexit devices
echo
if [ -s models/sumchain/target.gguf ] && [ -s models/sumchain/draft.gguf ]; then
  ./build/specexit run -p "${1:-What is 17+5+38+9+64+23?}" --temp 0 -n 1024 --compare "${@:2}"
else
  ./build/specexit run -m models/SmolLM2-135M-Instruct.Q4_1.gguf \
    -p "${1:-Explain in three sentences why the sky is blue.}" -n 128 --temp 0 "${@:2}"
fi
