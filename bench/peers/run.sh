#!/usr/bin/env bash
# recur vs PyTorch, ONNX Runtime and tract on identical weights, in one run (see README.md).
#
#   bench/peers/run.sh [--threads N] [--seconds S] [--rounds R] [--out DIR] [--lengths 18,112]
#                      [--python PY] [--recur BIN] [--no-tract]
#
#   --threads N   threads for PyTorch and ONNX Runtime, and for recur's f32/f16/int8 rows
#                 (recur uses at most 2: one per direction); default 1
#   --seconds S   timed seconds per row and length, split over the rounds; default 2
#   --rounds R    interleaved rounds (the rows' order rotates each round); default 3
#   --out DIR     model files, OUT/recur, peers.json and peers.md; default bench/peers/out
#   --python PY   interpreter with torch, onnxruntime, onnx, safetensors, numpy;
#                 default $PYTHON, else python3
#   --recur BIN   use this recur binary instead of `cargo build --release -p recur`
#   --no-tract    skip building and timing tract
#
# Builds recur (release) and the tract timer (bench/peers/tract, its own workspace and target
# dir), writes the model with make_model.py unless DIR already has it, imports the GRU into
# DIR/recur with `recur import-torch`, then runs compare.py, which checks every system's output
# against PyTorch's and times them all. The Markdown table goes to stdout and DIR/peers.md,
# every number to DIR/peers.json.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
THREADS=1 SECONDS_=2 ROUNDS=3 OUT="$HERE/out" LENGTHS=18,112
PY="${PYTHON:-python3}" RECUR="" TRACT=1

while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --seconds) SECONDS_="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --lengths) LENGTHS="$2"; shift 2 ;;
    --python) PY="$2"; shift 2 ;;
    --recur) RECUR="$2"; shift 2 ;;
    --no-tract) TRACT=0; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (try --help)" >&2; exit 64 ;;
  esac
done
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
log() { echo "run.sh: $*" >&2; }

"$PY" -c 'import torch, onnxruntime, onnx, safetensors, numpy' 2>/dev/null || {
  log "$PY lacks a package: pip install torch onnxruntime onnx safetensors numpy"; exit 1; }

# recur
if [ -z "$RECUR" ]; then
  log "building recur (cargo build --release -p recur)"
  (cd "$ROOT" && cargo build --release -p recur >&2)
  TD="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
        "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
  RECUR="$TD/release/recur"
fi
[ -x "$RECUR" ] || { log "no recur binary at $RECUR"; exit 1; }

# tract (its own workspace, lock file and target dir; a failure only drops the tract row)
TRACT_ARGS=(--tract-error "skipped (--no-tract)")
if [ "$TRACT" = 1 ]; then
  log "building the tract timer (bench/peers/tract; log in $OUT/tract-build.log)"
  if CARGO_TARGET_DIR="$HERE/tract/target" cargo build --release --locked \
       --manifest-path "$HERE/tract/Cargo.toml" >"$OUT/tract-build.log" 2>&1; then
    TRACT_ARGS=(--tract "$HERE/tract/target/release/peers-tract")
  else
    TRACT_ARGS=(--tract-error "build failed: $(grep -m1 '^error' "$OUT/tract-build.log" || tail -n1 "$OUT/tract-build.log")")
    log "tract build failed; continuing without it (see $OUT/tract-build.log)"
  fi
fi

# the model, once per DIR (same seed, same weights for every system)
if [ ! -f "$OUT/esc.onnx" ] || [ ! -f "$OUT/check.npz" ] || [ ! -f "$OUT/gru.safetensors" ] \
   || [ ! -f "$OUT/esc.pt" ] || [ ! -f "$OUT/head.safetensors" ]; then
  log "writing the model (make_model.py $OUT)"
  "$PY" "$HERE/make_model.py" "$OUT" >&2
fi
"$RECUR" import-torch --cell gru --state-dict "$OUT/gru.safetensors" --out "$OUT/recur" >&2

exec "$PY" "$HERE/compare.py" --dir "$OUT" --recur "$RECUR" --python "$PY" \
  --threads "$THREADS" --seconds "$SECONDS_" --rounds "$ROUNDS" --lengths "$LENGTHS" \
  "${TRACT_ARGS[@]}"
