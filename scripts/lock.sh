#!/usr/bin/env bash
# Refresh requirements.lock: resolve the project's dependencies (every extra, test tools
# included) in a throwaway venv and write the exact versions. scripts/setup.sh installs from the
# lock, so a fresh machine gets the environment the tests passed on, not whatever was released
# since. Run it when you change a dependency in pyproject.toml, then run the tests and commit
# both files:
#   bash scripts/lock.sh && bash scripts/setup.sh --dev && .venv/bin/python -m pytest
# torch is left out of the lock: setup.sh installs the CPU wheel torch==2.13.0 first.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --upgrade pip
"$tmp/venv/bin/pip" install --quiet "torch==2.13.0"
"$tmp/venv/bin/pip" install --quiet ".[dev]"
{
  echo "# The resolved environment the tests pass on (Python $("$tmp/venv/bin/python" -c 'import platform; print(platform.python_version())')),"
  echo "# written by scripts/lock.sh on $(date -u +%Y-%m-%d); scripts/setup.sh installs it."
  echo "# torch==2.13.0 (the CPU wheel) is installed first by setup.sh and is not listed here."
  "$tmp/venv/bin/pip" freeze --all --exclude-editable \
    | grep -v -E '^(torch|nlpcurriculum)(==| @)' | LC_ALL=C sort -f
} > requirements.lock.tmp
mv requirements.lock.tmp requirements.lock
echo "lock: requirements.lock has $(grep -vc '^#' requirements.lock) pins"
