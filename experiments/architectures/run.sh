#!/usr/bin/env bash
# The recorded architectures experiment (README.md of this folder): every architecture of
# qcnn.models trained 2 epochs on full MNIST (paper optimizer: SGD lr 0.01, no momentum, batch 64),
# classical and quantized at the paper preset (eps 0.01, C 10, sigma 0.5, delta 0.01), seed 1;
# then the resource report of every quantum layer, the pictures of visualize, and the table.
# One training per command, each under the shared CPU lock of the machine (COMMON.md).
# Run from the repository root; DATASET=fashion-mnist (with the files available) repeats it on
# Fashion-MNIST for the paper network and LeNet-5 (ARCHS="paper lenet5").
set -euo pipefail
DATASET=${DATASET:-mnist}
OUT=${OUT:-runs/architectures-$DATASET}
ARCHS=${ARCHS:-paper lenet5 lenet5-1998 alexnet-small inception-small}
RESULTS=${RESULTS:-experiments/architectures/results-$DATASET}
export QCNN_DATA_DIR=${QCNN_DATA_DIR:-../shared/data/mnist}
lock() { flock -s /tmp/qcnn-cpu.lock "$@"; }
mkdir -p "$RESULTS"
for arch in $ARCHS; do
  for model in cnn qcnn; do
    if [ ! -f "$OUT/$arch-$model/results.json" ]; then
      echo "$(date -Is) training $arch $model"
      lock python -m qcnn.experiments.mnist --arch "$arch" --dataset "$DATASET" --model "$model" \
        --epochs 2 --seed 1 --quiet --out "$OUT/$arch-$model" | tail -3
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
python experiments/architectures/make_table.py "$OUT" "$RESULTS"
