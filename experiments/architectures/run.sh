#!/usr/bin/env bash
# The recorded architectures experiment (README.md of this folder): every architecture of
# qcnn.models trained 2 epochs on full MNIST, classical and quantized at the paper preset
# (eps 0.01, C 10, sigma 0.5, delta 0.01), seed 1; then the resource report of every quantum
# layer, the pictures of visualize, and the table. Optimizer: the paper's SGD (lr 0.01, batch 64)
# without momentum for the paper network, with momentum 0.9 for the others (with the paper's
# plain SGD, LeNet-5 reaches only 95.8 % in 2 epochs; README.md).
# One training per command, each under the shared CPU lock of the machine (COMMON.md).
# Run from the repository root; DATASET=fashion-mnist (with the files available) repeats it on
# Fashion-MNIST for the paper network and LeNet-5 (ARCHS="paper lenet5").
set -euo pipefail
DATASET=${DATASET:-mnist}
OUT=${OUT:-runs/architectures-$DATASET}
ARCHS=${ARCHS:-paper lenet5 lenet5-1998 alexnet-small inception-small}
RESULTS=${RESULTS:-experiments/architectures/results-$DATASET}
export QCNN_DATA_DIR=${QCNN_DATA_DIR:-../shared/data/mnist}
lock() { flock -s "${QCNN_CPU_LOCK:-${TMPDIR:-/tmp}/qcnn-cpu.lock}" "$@"; }
momentum() { case "$1" in paper) echo 0 ;; *) echo 0.9 ;; esac; }
mkdir -p "$RESULTS"
for arch in $ARCHS; do
  for model in cnn qcnn; do
    if [ ! -f "$OUT/$arch-$model/results.json" ]; then
      echo "$(date -Is) training $arch $model"
      lock python -m qcnn.experiments.mnist --arch "$arch" --dataset "$DATASET" --model "$model" \
        --epochs 2 --seed 1 --momentum "$(momentum "$arch")" --quiet --out "$OUT/$arch-$model" \
        | tail -3
    fi
  done
  weights=$(ls "$OUT/$arch-qcnn"/qcnn-*/model.npz)
  if [ ! -f "$OUT/$arch-resources/resources.json" ]; then
    # exit status 2: the quantized network has no quantum layer (lenet5-1998's tanh convs)
    lock python -m qcnn.experiments.resources --arch "$arch" --dataset "$DATASET" \
      --weights "$weights" --images 512 --quiet --out "$OUT/$arch-resources" || true
  fi
  if [ ! -f "$RESULTS/figures/$arch/visualize.json" ]; then
    lock python -m qcnn.experiments.visualize --weights "$(ls "$OUT/$arch-cnn"/cnn-*/model.npz)" \
      --dataset "$DATASET" --filters 4 --steps 60 --images 2000 --quiet \
      --out "$RESULTS/figures/$arch"
  fi
done
# LeNet-5 with the paper's plain SGD too: the evidence for the momentum above
if [ "$DATASET" = mnist ]; then
  for model in cnn qcnn; do
    if [ ! -f "$OUT/lenet5-plain-sgd-$model/results.json" ]; then
      lock python -m qcnn.experiments.mnist --arch lenet5 --model "$model" --epochs 2 --seed 1 \
        --momentum 0 --quiet --out "$OUT/lenet5-plain-sgd-$model" | tail -3
    fi
  done
fi
python experiments/architectures/make_table.py "$OUT" "$RESULTS"
