#!/usr/bin/env bash
# riemexp's set-up and runner: the first call makes .venv and installs everything.
#
#   ./dev.sh train dataset=spirals     riemexp train (any riemexp command works: sweep, plot-metric, ...)
#   ./dev.sh test [PYTEST ARGS]        the whole test suite (on every CPU, at most 4: pytest-xdist)
#   ./dev.sh setup                     only the set-up
#   ./dev.sh lock                      rewrite constraints-dev.txt from the current .venv
#
# torch: on a machine without an NVIDIA GPU the set-up installs a CPU build of torch (a torch
# wheel already in pip's find-links, else PyTorch's CPU index); with a GPU, the default build from
# PyPI. torch is not pinned in pyproject.toml. Set RIEMEXP_TORCH_SPEC (e.g. "torch==2.5.1") and
# RIEMEXP_TORCH_INDEX (a pip index URL) to choose yourself. PYTHON picks the interpreter (3.10+).
# Other packages: constraints-dev.txt pins the versions the suite was last tested with, applied
# when the interpreter is the Python version it names (else pip resolves freshly).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
VENV=${RIEMEXP_VENV:-.venv}
PYTHON=${PYTHON:-python3}
pip_() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }

has_nvidia_gpu() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }

install_torch() {
  if "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then return; fi
  local spec=${RIEMEXP_TORCH_SPEC:-torch}
  if [ -n "${RIEMEXP_TORCH_INDEX:-}" ]; then
    echo "dev.sh: installing $spec from $RIEMEXP_TORCH_INDEX" >&2
    pip_ install "$spec" --index-url "$RIEMEXP_TORCH_INDEX" --extra-index-url https://pypi.org/simple
  elif has_nvidia_gpu; then
    echo "dev.sh: NVIDIA GPU found: installing $spec (CUDA build) from PyPI" >&2
    pip_ install "$spec"
  else
    local wheels
    wheels=$(mktemp -d)
    # a torch wheel that pip can already see without an index (find-links) is taken first
    if pip_ download --no-index --no-deps --only-binary=:all: -d "$wheels" "$spec" >/dev/null 2>&1; then
      echo "dev.sh: no GPU: installing the local torch wheel $(basename "$wheels"/torch-*.whl)" >&2
      pip_ install "$wheels"/torch-*.whl
    else
      echo "dev.sh: no GPU: installing a CPU build of $spec from PyTorch's CPU index" >&2
      pip_ install "$spec" --index-url https://download.pytorch.org/whl/cpu \
        --extra-index-url https://pypi.org/simple
    fi
    rm -rf "$wheels"
  fi
}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
      echo "dev.sh: riemexp needs Python 3.10 or newer; $PYTHON is $("$PYTHON" --version 2>&1)" >&2
      exit 2
    }
    echo "dev.sh: creating $VENV" >&2
    "$PYTHON" -m venv "$VENV"
  fi
  local stamp="$VENV/.riemexp-installed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints-dev.txt -nt "$stamp" ]; then
    install_torch
    echo "dev.sh: installing riemexp and its test tools into $VENV" >&2
    local lock=() have want
    have=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    want=$(sed -n 's/^# python //p' constraints-dev.txt 2>/dev/null)
    if [ "$have" = "$want" ]; then lock=(-c constraints-dev.txt); else
      echo "dev.sh: constraints-dev.txt is for Python $want, this is $have: resolving versions freshly" >&2
    fi
    pip_ install -e ".[test]" "${lock[@]}"
    touch "$stamp"
  fi
}

# pytest-xdist's -n for the suite: one worker per available CPU, at most 4 (the tests start
# processes of their own); none on a single CPU, when the arguments choose (-n, -p no:xdist) or
# debug in this process (--pdb, --trace). RIEMEXP_TEST_WORKERS sets the number.
test_workers() {
  local arg
  for arg in "$@"; do
    case "$arg" in -n | -n* | --numprocesses* | no:xdist | -pno:xdist | --pdb | --trace) return ;; esac
  done
  local n=${RIEMEXP_TEST_WORKERS:-$("$VENV/bin/python" -c 'import os; n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(); print(min(n or 1, 4))')}
  if [ "$n" -gt 1 ]; then echo "-n $n"; fi
}

case "${1:-}" in
  "" | -h | --help)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    ;;
  setup)
    setup
    ;;
  lock)
    setup
    {
      sed -n '1,3p' constraints-dev.txt
      echo "# python $("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
      "$VENV/bin/python" -m pip --disable-pip-version-check freeze --exclude-editable |
        grep -v -e '^#' -e '^torch[ =@]' -e '^nvidia-' -e '^triton[ =]'
    } > constraints-dev.txt.new && mv constraints-dev.txt.new constraints-dev.txt
    ;;
  test)
    shift
    setup
    exec "$VENV/bin/python" -m pytest $(test_workers "$@") "$@"
    ;;
  *)
    setup
    exec "$VENV/bin/riemexp" "$@"
    ;;
esac
