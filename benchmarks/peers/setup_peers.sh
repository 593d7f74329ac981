#!/usr/bin/env bash
# Create a SEPARATE virtualenv for the peer SNN libraries used by bench_peers.py.
# These peers are never dependencies of spikejax.
#
# Full usage (from the repository root):
#   bash benchmarks/peers/setup_peers.sh            # creates benchmarks/peers/.venv (gitignored)
#   PEERS_VENV=/some/where bash benchmarks/peers/setup_peers.sh
#
# Installs a CPU-only torch (torch==2.13.0+cpu; a CPU wheel is on pip's find-links), then snnTorch,
# Norse and Spyx, each separately so that one failure does not stop the others.  Torch is
# pinned through a constraints file so that no peer can pull another torch or the CUDA
# (nvidia-*) packages.  The outcome of each install (version, or the exact pip error) is
# written to <venv>/install_log/<name>.log and summarised in <venv>/install_status.txt
# (inside the gitignored venv, so nothing machine-specific lands in the repository).
set -u -o pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${PEERS_VENV:-$HERE/.venv}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
LOGDIR="$VENV/install_log"
STATUS="$VENV/install_status.txt"

echo "== creating $VENV with $($PY --version 2>&1)"
"$PY" -m venv "$VENV" || { echo "venv creation failed"; exit 1; }
mkdir -p "$LOGDIR"
: > "$STATUS"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install --upgrade pip wheel setuptools >"$LOGDIR/pip.log" 2>&1 || true

# 1. torch, CPU only.  Pinning the local label '+cpu' makes pip accept only the CPU build (which
#    has no nvidia-* dependencies); it must be reachable to pip: a wheel on PIP_FIND_LINKS (as
#    here), or an index holding CPU builds given as TORCH_INDEX_URL (used as an extra index).
echo "== torch"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0+cpu}"
EXTRA=()
[ -n "${TORCH_INDEX_URL:-}" ] && EXTRA=(--extra-index-url "$TORCH_INDEX_URL")
if python -m pip install "${EXTRA[@]}" "$TORCH_SPEC" numpy >"$LOGDIR/torch.log" 2>&1; then
  TV="$(python -c 'import torch; print(torch.__version__)')"
  echo "torch: OK $TV" | tee -a "$STATUS"
else
  echo "torch: pip install $TORCH_SPEC FAILED; pip's error:" | tee -a "$STATUS"
  grep -E "ERROR|error:" "$LOGDIR/torch.log" | tail -n 15 | tee -a "$STATUS"
  echo "  (put a CPU wheel on PIP_FIND_LINKS or set TORCH_INDEX_URL; the peers below would pull a CUDA torch, so stop)" | tee -a "$STATUS"
  exit 1
fi
if python -m pip list 2>/dev/null | grep -qi '^nvidia-'; then
  echo "WARNING: CUDA (nvidia-*) packages were installed:" | tee -a "$STATUS"
  python -m pip list 2>/dev/null | grep -i '^nvidia-' | tee -a "$STATUS"
fi
# Every later install is constrained to exactly this torch build (no CUDA pulls, no upgrade).
CONSTRAINTS="$VENV/constraints.txt"
echo "torch==$TV" > "$CONSTRAINTS"

install_peer() {  # install_peer NAME IMPORT_NAME PIP_SPEC...
  local name="$1" mod="$2"; shift 2
  echo "== $name"
  if python -m pip install -c "$CONSTRAINTS" "$@" >"$LOGDIR/$name.log" 2>&1; then
    local v
    v="$(python -c "import importlib.metadata as m; print(m.version('$name'))" 2>&1)"
    if python -c "import $mod" >>"$LOGDIR/$name.log" 2>&1; then
      echo "$name: OK $v" | tee -a "$STATUS"
    else
      echo "$name: INSTALLED $v but 'import $mod' FAILED:" | tee -a "$STATUS"
      tail -n 5 "$LOGDIR/$name.log" | tee -a "$STATUS"
    fi
  else
    echo "$name: pip install FAILED; pip's error:" | tee -a "$STATUS"
    grep -E "ERROR|error:" "$LOGDIR/$name.log" | tail -n 15 | tee -a "$STATUS"
  fi
}

install_peer snntorch snntorch snntorch
install_peer norse norse norse
install_peer spyx spyx spyx

if python -m pip list 2>/dev/null | grep -qi '^nvidia-'; then
  echo "WARNING: CUDA (nvidia-*) packages are present in $VENV" | tee -a "$STATUS"
fi
echo "== versions"
python - <<'PYEOF' | tee -a "$STATUS"
import importlib.metadata as m
for p in ("torch", "snntorch", "norse", "spyx", "jax", "jaxlib", "dm-haiku", "flax", "optax", "numpy"):
    try:
        print(f"  {p} {m.version(p)}")
    except m.PackageNotFoundError:
        print(f"  {p} (not installed)")
PYEOF
echo "done; status in $STATUS"
