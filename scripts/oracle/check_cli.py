#!/usr/bin/env python3
"""Compares `berth dockerfile parse --format json FILE` with BuildKit's parser
(PyPI `dockerfile` 3.4) on Dockerfiles: the corpus by default, or the files
given. Exit 1 on any disagreement.

Usage: check_cli.py BERTH_BINARY [FILE...]
"""
import glob
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dump import dump  # noqa: E402

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
berth = sys.argv[1]
files = sys.argv[2:] or sorted(glob.glob(os.path.join(root, "testdata", "dockerfile", "cases", "*.Dockerfile")))
bad = 0
for path in files:
    src = open(path, "rb").read().decode("utf-8", "surrogateescape")
    want = dump(src)
    if isinstance(want, dict) and "unsupported" in want:
        continue
    p = subprocess.run([berth, "dockerfile", "parse", "--format", "json", path], capture_output=True)
    if isinstance(want, dict):
        ok = p.returncode != 0
    else:
        ok = p.returncode == 0 and json.loads(p.stdout) == want
    if not ok:
        bad += 1
        print(f"DISAGREE {path}: rc={p.returncode}\n  oracle: {json.dumps(want)[:500]}\n  berth:  {p.stdout[:500]!r}")
print(f"{len(files) - bad} passed, {bad} failed")
sys.exit(1 if bad else 0)
