#!/usr/bin/env python3
"""Writes the shipped database of tuned parameters (kernels-cache/db/*.json) from mora-tune's JSON
output, as CLBlast builds its database from its tuners' JSON: the database is data generated from
tuning runs, never hand-edited.

  python3 scripts/db-from-tune.py            rewrite every db file from kernels-cache/db/tuning/*.json
  python3 scripts/db-from-tune.py --check    exit 1 (and say which) if a db file is not what the runs give

To ship a run: `mora-tune ... --json > kernels-cache/db/tuning/NAME.json`, add to it
    "ship": {"to": "<db file>", "match": "device" | "arch" | "vendor", "note": "<machine, command, report>"}
and run this script. A kind is shipped when its tuned time beats the default by --min-speedup (a
smaller gain is inside the noise of a tuning run), under the run's device / arch / vendor as "match"
says, for any op and dtype unless "ops" / "dtypes" lists in "ship" narrow it. Files are written in
the order of the run files' names, entries in the order of each run's kinds.
"""
import argparse
import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DB_DIR = os.path.join(HERE, "..", "kernels-cache", "db")


def entries_of(run, path, min_speedup):
    ship = run.get("ship")
    if not isinstance(ship, dict) or "to" not in ship:
        return None, []
    match = ship.get("match", "device")
    if match not in ("device", "arch", "vendor") or not run.get(match):
        sys.exit(f"{path}: ship.match={match!r}: the run must name a non-empty {match}")
    out = []
    for k in run["kinds"]:
        default_ms, tuned_ms = k.get("default_ms", -1), k.get("tuned_ms", -1)
        if not (default_ms > 0 and tuned_ms > 0) or default_ms / tuned_ms < min_speedup:
            continue
        when = run.get("tuned_at", "")[:10]
        source = (f"mora-tune d_in={run['d_in']} d_out={run['d_out']} rhat={run['rhat']} ({run['op']}, {run['dtype']}, "
                  f"{run['tokens']} tokens) on \"{run['device']}\": {default_ms / tuned_ms:.2f}x over the defaults; "
                  f"{when}; {ship.get('note', '')}".rstrip("; "))
        entry = {"backend": run["backend"], match: run[match], "kind": k["kind"]}
        for field, key in (("ops", "op"), ("dtypes", "dtype")):
            if field in ship:
                for value in ship[field]:
                    out.append(dict(entry, **{key: value}, params=k["params"], source=source))
                break
        else:
            out.append(dict(entry, params=k["params"], source=source))
    return ship["to"], out


def render(entries):
    lines = ['{', '  "format": 1,', '  "entries": [']
    for i, e in enumerate(entries):
        lines.append("    " + json.dumps(e, ensure_ascii=False) + ("," if i + 1 < len(entries) else ""))
    lines += ['  ]', '}']
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    ap.add_argument("--min-speedup", type=float, default=1.10, help="ship a kind only above this gain (default 1.10)")
    ap.add_argument("--db-dir", default=DB_DIR, help="the database folder (default kernels-cache/db)")
    args = ap.parse_args()
    files = {}
    for path in sorted(glob.glob(os.path.join(args.db_dir, "tuning", "*.json"))):
        with open(path, encoding="utf-8") as f:
            run = json.load(f)
        target, entries = entries_of(run, path, args.min_speedup)
        if target:
            files.setdefault(target, []).extend(entries)
    if not files:
        sys.exit(f"no tuning run in {args.db_dir}/tuning says where it ships")
    stale = []
    for name, entries in sorted(files.items()):
        path = os.path.join(args.db_dir, name)
        text = render(entries)
        if args.check:
            current = open(path, encoding="utf-8").read() if os.path.exists(path) else None
            if current != text:
                stale.append(name)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            print(f"{path}: {len(entries)} entries")
    if stale:
        print("not generated from kernels-cache/db/tuning (run scripts/db-from-tune.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
