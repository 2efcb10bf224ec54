#!/usr/bin/env bash
# The recorded theory-mode experiment (README.md of this folder), through the sweep alone: the grid
# of qcnn.experiments.grids.klp19_theory_configs (the CNN; the theory preset on eps {0.01, 0.1} x
# delta {0.01, 0.1}; the one-option ablation from notebook mode at eps 0.01 and 0.1, delta 0.01,
# with tomography values under the preset's and the exact normaliser; the preset with exact signs
# and with gradient_on=quantum at delta 0.01 and 0.1; the gradient read-out alone at delta 0.1 and
# with the estimated norm; notebook mode on the four cells; the preset with eta = 0.1 shots), seeds
# 1-3 (the eta run: seed 1), and the CNN's weights under both forward passes at the end. One BLAS
# thread per run and unsharded (--shards 1), as every recorded run; the number of workers does
# not change the numbers. Resumable: rerun it to continue.
# Run from the repository root.
set -euo pipefail
OUT=${OUT:-runs/klp19-theory}
WORKERS=${WORKERS:-2}
export QCNN_DATA_DIR=${QCNN_DATA_DIR:-../shared/data/mnist}
resume=()
if [ -d "$OUT" ]; then resume=(--resume); fi
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
  python -m qcnn.experiments.sweep --grid klp19-theory --replicate-seeds 2 3 --shards 1 \
    --workers "$WORKERS" --out "$OUT" "${resume[@]}"
# the whole grid's results.json (with the CNN's forward-pass evaluations) once it is complete,
# else the finished runs so far
if [ -f "$OUT/results.json" ]; then records=("$OUT/results.json"); else records=("$OUT"/runs/*/run.json); fi
# (the second edition: the folder's first-edition record stays, these runs are added to it)
python experiments/klp19-theory/make_tables.py experiments/klp19-theory \
  experiments/klp19-theory/results.json --second "${records[@]}"
