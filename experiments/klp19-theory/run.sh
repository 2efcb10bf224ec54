#!/usr/bin/env bash
# The recorded theory-mode experiment (README.md of this folder): one training per command, each
# under the shared CPU lock of the machine (COMMON.md), until the grid is done; the last command
# also evaluates the trained CNN under both forward passes and writes the summaries.
# Resumable: rerun it with the same OUT to continue.
set -euo pipefail
OUT=${OUT:-runs/klp19-theory}
export QCNN_DATA_DIR=${QCNN_DATA_DIR:-../shared/data/mnist}
for _ in $(seq 1 40); do
  resume=()  # a non-empty --out is only continued with --resume (issue 9)
  if [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then resume=(--resume); fi
  line=$(flock -s /tmp/qcnn-cpu.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
    python -m qcnn.experiments.sweep --grid klp19-theory --replicate-seeds 2 3 --shards 2 \
      --max-runs 1 --quiet --out "$OUT" "${resume[@]}" | tail -1)
  echo "$(date -Is) $line"
  case "$line" in *"runs left"*) ;; *) break ;; esac
done
