#!/usr/bin/env python3
"""Batch oracle: reads a JSON array of Dockerfile sources on stdin and writes a
JSON array of dumps (each a list of instruction objects, or {"error": msg})."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dump import dump  # noqa: E402


def main():
    srcs = json.load(sys.stdin)
    json.dump([dump(s) for s in srcs], sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
