#!/usr/bin/env python3
"""Writes the exit settings a draft's signals were tuned for into its GGUF
(eagle3.exit.conf / .progress / .remain / .alpha, see core/eagle3.h). The
engine uses them unless the command line says otherwise. Tune them on a
development set (never the held-out problems):

  specexit bench -m target.gguf -md draft.gguf --problems tests/data/sumchain_dev.jsonl \\
      --modes eagle3,specexit --exit-alpha 0.3 --exit-conf 0.7
  python tools/train/set_exit_defaults.py draft.gguf --conf 0.7 --alpha 0.3
"""
import argparse
import os
import sys

import gguf
from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("draft")
    ap.add_argument("--conf", type=float)
    ap.add_argument("--progress", type=float)
    ap.add_argument("--remain", type=float)
    ap.add_argument("--alpha", type=float)
    a = ap.parse_args()
    reader = gguf.GGUFReader(a.draft, "r")
    arch = reader.fields["general.architecture"]
    if bytes(arch.parts[arch.data[0]]).decode() != "eagle3":
        sys.exit(f"{a.draft}: not an eagle3 draft")
    new = {}
    for k in ("conf", "progress", "remain", "alpha"):
        v = getattr(a, k)
        if v is not None:
            new[f"eagle3.exit.{k}"] = MetadataDetails(gguf.GGUFValueType.FLOAT32, float(v))
    tmp = a.draft + ".tmp"
    writer = gguf.GGUFWriter(tmp, arch="eagle3", endianess=reader.endianess)
    copy_with_new_metadata(reader, writer, new, [])
    del reader
    os.replace(tmp, a.draft)
    print(f"{a.draft}: " + ", ".join(f"{k} = {v.value}" for k, v in new.items()))


if __name__ == "__main__":
    main()
