#!/usr/bin/env python3
"""backends/cuda/emu/rewrite_launches.py IN.cu OUT.cpp — turns each CUDA
launch `kernel<<<grid, block, shmem, stream>>>(args);` of a kernel source into
`sx_emu_launch(grid, block, shmem, stream, [&] { kernel(args); });`, the one
piece of CUDA syntax a C++ compiler cannot read, so the source compiles
against gpu_emu.h. Everything else is left byte for byte."""
import re
import sys

LAUNCH = re.compile(r'([A-Za-z_][\w:]*(?:<[^<>;]*>)?)<<<(.*?)>>>\((.*?)\);', re.S)

src = open(sys.argv[1]).read()
out, n = LAUNCH.subn(r'sx_emu_launch(\2, [&] { \1(\3); });', src)
if '<<<' in out:
    sys.exit(f'{sys.argv[1]}: a launch this script cannot rewrite is left')
with open(sys.argv[2], 'w') as f:
    f.write(f'#line 1 "{sys.argv[1]}"\n' if n else '')
    f.write(out)
