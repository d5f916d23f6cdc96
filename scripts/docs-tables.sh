#!/usr/bin/env bash
# Rewrites the parameter tables of docs/kernels.md (between its "mora-gen --list-params --markdown"
# markers) from a build's mora-gen: the tables are generated from codegen/kernels.c, never edited
# by hand. test_tools fails when they differ.
#   bash scripts/docs-tables.sh [BUILD_DIR]     (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
tables=$("$build/mora-gen" --list-params --markdown)
python3 - docs/kernels.md "$tables" <<'PY'
import sys
path, tables = sys.argv[1], sys.argv[2].strip()
text = open(path, encoding="utf-8").read()
begin, end = "<!-- mora-gen --list-params --markdown: begin -->", "<!-- mora-gen --list-params --markdown: end -->"
i, j = text.index(begin) + len(begin), text.index(end)
open(path, "w", encoding="utf-8").write(text[:i] + "\n" + tables + "\n" + text[j:])
PY
echo "docs/kernels.md: tables rewritten from $build/mora-gen"
