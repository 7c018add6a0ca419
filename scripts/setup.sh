#!/usr/bin/env bash
# Idempotent set-up: both Python environments, the trained model, the database with demo data.
# Fast when nothing changed (each step checks a stamp). Called by `make run` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
UV_VERSION=0.13.9

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# --- the gateway's Python: 3.11 or newer ---------------------------------------------------
gateway_python() {
  for c in python3.13 python3.12 python3.11 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$c"; return 0
    fi
  done
  return 1
}

# --- the engine's Python: exactly 3.10 (Rasa 3.6 installs only on 3.8-3.10) ------------------
engine_python() {
  if python3.10 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1; then
    command -v python3.10; return 0
  fi
  local roots=()
  command -v pyenv >/dev/null 2>&1 && roots+=("$(pyenv root)")
  roots+=("${PYENV_ROOT:-$HOME/.pyenv}")
  for r in "${roots[@]}"; do
    for p in "$r"/versions/3.10*/bin/python3.10; do
      [ -x "$p" ] && { echo "$p"; return 0; }
    done
  done
  return 1
}

PY=$(gateway_python) || die "Python 3.11 or newer is needed for the gateway (install python3.11+)."
PY310=$(engine_python) || die "Python 3.10 is needed for the Rasa engine. Install it, e.g. 'pyenv install 3.10' or your distribution's python3.10 package, or 'uv python install 3.10' and put it on PATH as python3.10."

# --- gateway environment ----------------------------------------------------------------------
want=$(hash_of pyproject.toml <(echo "$PY" "$UV_VERSION"))
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.resonanz-stamp 2>/dev/null)" != "$want" ]; then
  say "Creating the gateway environment (.venv, $("$PY" --version))"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q "uv==$UV_VERSION"
  .venv/bin/uv pip install -q --python .venv/bin/python -e '.[dev]'
  echo "$want" > .venv/.resonanz-stamp
fi
UV=.venv/bin/uv

# --- engine environment -----------------------------------------------------------------------
want=$(hash_of engine-requirements.txt <(echo "$PY310"))
if [ ! -x .venv-engine/bin/rasa ] || [ "$(cat .venv-engine/.resonanz-stamp 2>/dev/null)" != "$want" ]; then
  say "Creating the engine environment (.venv-engine, Python 3.10, rasa 3.6.21) — about a minute"
  [ -x .venv-engine/bin/python ] || "$UV" venv -q -p "$PY310" .venv-engine
  VIRTUAL_ENV="$ROOT/.venv-engine" "$UV" pip install -q -r engine-requirements.txt
  echo "$want" > .venv-engine/.resonanz-stamp
fi

# --- meter photos: OpenCV (from rapidocr-onnxruntime) needs libGL and GLib (Debian packages) ------
if ! .venv/bin/python -c 'import cv2' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    say "Installing libgl1 and libglib2.0-0 (Debian packages) for the meter photo OCR"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgl1 libglib2.0-0 >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgl1 libglib2.0-0 >/dev/null
  else
    say "warning: meter photos cannot be read until libgl1 and libglib2.0-0 are installed (apt-get)"
  fi
fi

# --- model and database -----------------------------------------------------------------------
.venv/bin/resonanz train
.venv/bin/resonanz db upgrade
.venv/bin/resonanz db seed
