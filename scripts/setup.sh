#!/usr/bin/env bash
# Set up everything the bot needs on a fresh Debian/Ubuntu machine: FFmpeg from the OS,
# then a virtual environment in .venv with the Python packages. With --tests, also
# PostgreSQL's server programs (the tests run every store on SQLite and on PostgreSQL,
# in a throwaway cluster: scripts/pg_scratch.sh). Safe to run again; it only installs
# what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
command -v ffmpeg >/dev/null 2>&1 || packages+=(ffmpeg)
# Debian and Ubuntu ship Python without ensurepip: `python3 -m venv` needs python3-venv.
python3 -c 'import ensurepip' >/dev/null 2>&1 || packages+=(python3-venv)
if [ "${1:-}" = "--tests" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  packages+=(postgresql)
fi
if [ ${#packages[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -q
  $sudo apt-get install -y -q "${packages[@]}"
fi

# A .venv without pip (left by a try before python3-venv was installed) is made anew.
.venv/bin/python -m pip --version >/dev/null 2>&1 || python3 -m venv --clear .venv
# torch first, pinned, as the CPU build: PyPI's torch for Linux is the CUDA one, several
# GB of wheels that sentence-transformers would otherwise pull in. A CPU wheel pip can
# already find (its find-links) is taken offline; otherwise PyTorch's CPU index serves it.
torch_index=(--extra-index-url https://download.pytorch.org/whl/cpu)
if .venv/bin/python -m pip install -q --dry-run --no-index --no-deps "torch==2.13.0+cpu" >/dev/null 2>&1; then
  torch_index=()
fi
.venv/bin/python -m pip install -q torch==2.13.0 "${torch_index[@]}"
.venv/bin/python -m pip install -q -e ".[dev]"
