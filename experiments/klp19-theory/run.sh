#!/usr/bin/env bash
# The recorded theory-mode experiment (README.md of this folder): two trainings per command (two
# worker processes, one BLAS thread each, two shards each), each command under the shared CPU
# lock of the machine (COMMON.md), until the grid is done; the last command also evaluates the
# trained CNN under both forward passes and writes the summaries. Resumable: rerun it with the
# same OUT to continue.
set -euo pipefail
OUT=${OUT:-runs/klp19-theory}
export QCNN_DATA_DIR=${QCNN_DATA_DIR:-../shared/data/mnist}
for _ in $(seq 1 40); do
  line=$(flock -s /tmp/qcnn-cpu.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
    python -m qcnn.experiments.sweep --grid klp19-theory --replicate-seeds 2 3 --shards 2 \
      --workers 2 --max-runs 2 --quiet --out "$OUT" | tail -1)
  echo "$(date -Is) $line"
  case "$line" in *"runs left"*) ;; *) break ;; esac
  sleep 60  # a window for the exclusive-lock benchmarks of the machine (COMMON.md)
done
