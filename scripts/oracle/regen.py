#!/usr/bin/env python3
"""Regenerates the golden dumps of testdata/dockerfile/cases/*.Dockerfile with
BuildKit's parser (PyPI `dockerfile` 3.4): writes testdata/dockerfile/golden/NAME.json.

Run: python3 scripts/oracle/make_corpus.py && python3 scripts/oracle/regen.py
"""
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dump import dump  # noqa: E402

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "testdata", "dockerfile")
os.makedirs(os.path.join(root, "golden"), exist_ok=True)
n = 0
for path in sorted(glob.glob(os.path.join(root, "cases", "*.Dockerfile"))):
    name = os.path.basename(path)[: -len(".Dockerfile")]
    src = open(path, "rb").read().decode("utf-8")
    if "\0" in src:
        sys.exit(f"{path}: NUL bytes cannot go through the oracle")
    out = dump(src)
    with open(os.path.join(root, "golden", name + ".json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    n += 1
print(f"{n} golden files written")
