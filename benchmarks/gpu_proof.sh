#!/usr/bin/env bash
# `make gpu-proof [DRY_RUN=1]`: choose a Python for the GPU proof, then run benchmarks/gpu_proof.py.
#
# The Python is the first of these that works (each rejected one is reported, with why):
#   1. $GPU_PROOF_PYTHON when set: used as given.
#   2. The carried virtual environment $GPU_PROOF_VENV (default .venv): reused when its Python
#      imports what hw2 needs and, except for a dry run, its torch sees a CUDA device.
#   3. A virtual environment built at $GPU_PROOF_BUILD_VENV (default build/gpu-proof-venv) over
#      the first interpreter of $GPU_PROOF_CANDIDATES that passes the same check. Nothing is
#      downloaded: the venv's .pth file puts that interpreter's site-packages and this checkout
#      on its path, which takes a second or two. A rerun reuses it.
# When none works it says so for each and exits 1 without running anything.
#
# Environment: DRY_RUN=1 for the tiny CPU-capable run; GPU_PROOF_OUT (output folder, default
# build/gpu-proof or build/gpu-proof-dry-run); GPU_PROOF_ARGS (more arguments for the script).
set -u
cd "$(dirname "$0")/.." || exit 1
repo=$(pwd)
started=$(date +%s.%N)

case "${DRY_RUN:-0}" in
  1|true|yes|on) dry=1 ;;
  *) dry=0 ;;
esac
venv=${GPU_PROOF_VENV:-.venv}
build_venv=${GPU_PROOF_BUILD_VENV:-build/gpu-proof-venv}
candidates=${GPU_PROOF_CANDIDATES:-"python3 /opt/torch/.venv/bin/python3 /usr/local/bin/python3 /usr/bin/python3"}

# Prints nothing and returns 0 when interpreter $1 can run the proof; else prints why.
check_python() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "not found"
    return 1
  fi
  "$1" - "$dry" <<'EOF' 2>&1
import importlib.util, sys
# What hw2 imports: torch is imported (it must load and may need to see CUDA); the others are
# only looked up, which is much faster than importing them.
missing = [m for m in ("matplotlib", "numpy", "sklearn", "torchvision", "tqdm")
           if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"cannot import {', '.join(missing)}")
try:
    import torch
except Exception as err:  # ImportError, or a broken binary
    sys.exit(f"cannot import torch: {err}")
if sys.argv[1] != "1" and not torch.cuda.is_available():
    sys.exit(f"its torch {torch.__version__} sees no CUDA device")
EOF
}

elapsed() { awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

python=""
choice=""
if [ -n "${GPU_PROOF_PYTHON:-}" ]; then
  if why=$(check_python "$GPU_PROOF_PYTHON"); then
    python=$GPU_PROOF_PYTHON
    choice="given by GPU_PROOF_PYTHON"
  else
    echo "gpu-proof: GPU_PROOF_PYTHON=$GPU_PROOF_PYTHON cannot run the proof: $why" >&2
    exit 1
  fi
fi
if [ -z "$python" ]; then
  if why=$(check_python "$venv/bin/python"); then
    python=$venv/bin/python
    choice="reused the carried $venv"
  else
    echo "gpu-proof: $venv/bin/python not usable: $why" >&2
  fi
fi
if [ -z "$python" ] && why=$(check_python "$build_venv/bin/python"); then
  python=$build_venv/bin/python
  choice="reused $build_venv, built by an earlier run"
fi
if [ -z "$python" ]; then
  for cand in $candidates; do
    if ! why=$(check_python "$cand"); then
      echo "gpu-proof: $cand not usable: $why" >&2
      continue
    fi
    rm -rf "$build_venv"
    if ! "$cand" -m venv --without-pip "$build_venv" >/dev/null 2>&1; then
      echo "gpu-proof: $cand -m venv failed; using $cand itself, with this checkout on PYTHONPATH" >&2
      export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
      python=$cand
      choice="used $cand directly (venv creation failed)"
      break
    fi
    site=$("$build_venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    # The candidate's package folders (their own .pth files processed too), then this checkout.
    "$cand" -c 'import site, sys
dirs = site.getsitepackages() + [p for p in sys.path if p.endswith("-packages")]
for d in dict.fromkeys(dirs):
    print(f"import site; site.addsitedir({d!r})")' >"$site/gpu-proof-base.pth"
    echo "$repo" >>"$site/gpu-proof-base.pth"
    if why=$(check_python "$build_venv/bin/python"); then
      python=$build_venv/bin/python
      choice="built $build_venv over the packages of $cand"
      break
    fi
    echo "gpu-proof: the venv built over $cand does not work: $why" >&2
  done
fi
if [ -z "$python" ]; then
  echo "gpu-proof: no usable Python: neither the carried $venv nor a venv built over one of" \
       "[$candidates] can import torch and hw2's dependencies$([ "$dry" = 1 ] || echo ' with a CUDA device')." \
       "Carry a working venv, set GPU_PROOF_PYTHON, or run 'make install' where a package index is reachable." >&2
  exit 1
fi
echo "gpu-proof: Python $python ($choice; ready after $(elapsed) s)"

args=(--started-at "$started" --python-choice "$choice" --python-seconds "$(elapsed)")
[ "$dry" = 1 ] && args+=(--dry-run)
[ -n "${GPU_PROOF_OUT:-}" ] && args+=(--out "$GPU_PROOF_OUT")
# shellcheck disable=SC2086  # GPU_PROOF_ARGS is a list of words on purpose
exec "$python" -m benchmarks.gpu_proof "${args[@]}" ${GPU_PROOF_ARGS:-}
