#!/usr/bin/env python3
"""BuildKit's parser (PyPI `dockerfile`) as an oracle: prints berth's JSON dump format.

Usage: dump.py FILE|-   -> prints the JSON array, or {"error": "..."} and exits 1.
"""
import json
import sys

import dockerfile


def dump(src: str):
    try:
        cmds = dockerfile.parse_string(src)
    except dockerfile.GoParseError as e:
        return {"error": str(e)}
    except (UnicodeDecodeError, SystemError, ValueError) as e:
        # BuildKit produced a string that is not UTF-8 (e.g. a flag cut inside
        # a multi-byte character): the Python wrapper cannot return it.
        return {"unsupported": repr(e)}
    out = []
    for c in cmds:
        out.append({
            "cmd": c.cmd,
            "sub_cmd": c.sub_cmd,
            "json": c.json,
            "original": c.original,
            "start_line": c.start_line,
            "end_line": c.end_line,
            "flags": list(c.flags),
            "value": list(c.value),
            "heredocs": [{"name": h.name, "content": h.content} for h in c.heredocs],
        })
    return out


def main():
    path = sys.argv[1]
    data = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()
    res = dump(data.decode("utf-8", "surrogateescape"))
    print(json.dumps(res, ensure_ascii=False, indent=1))
    return 1 if isinstance(res, dict) else 0


if __name__ == "__main__":
    sys.exit(main())
