"""The trained CNN's weights under the quantum forward pass, in both modes (no training).

    python experiments/klp19-theory/cnn_forward.py CNN_RUN_DIR OUT.json

CNN_RUN_DIR is a finished CNN run of the sweep (``model.npz`` and ``run.json``). Evaluates its
weights on the 10,000 test images under the configurations the klp19-theory sweep uses when its
grid ends (:func:`qcnn.experiments.grids.forward_configs`: notebook and theory mode at eps 0.01
and 0.1, C 10, sigma 0.5; gradients play no part), one BLAS thread as the sweep, and writes
``{"runs": [...]}`` (the sweep's ``cnn-weights-quantum-forward`` records) to OUT.json
atomically. ``make_tables.py`` reads that file like the others. This is the same evaluation the
sweep runs; it exists so that the record does not wait for the whole grid.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from qcnn.experiments.grids import forward_configs
from qcnn.experiments.runner import load_data, quantum_forward_run
from qcnn.io import atomic_write_json
from qcnn.models import build_model
from qcnn.nn.parallel import one_blas_thread


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    run_dir, out = Path(argv[0]), Path(argv[1])
    record = json.loads((run_dir / "run.json").read_text())
    if record["model"] != "cnn":
        raise SystemExit(f"{run_dir}: not a CNN run (model {record['model']!r})")
    data = load_data(None, None, None, record["dataset"].get("name", "mnist"))
    arch = record.get("arch", "paper")
    cnn = build_model(arch, None, seed=record["seed"], input_shape=data.shape, classes=data.classes)
    cnn.load(run_dir / "model.npz")
    runs = []
    for cfg in forward_configs("klp19-theory", "paper"):
        with one_blas_thread():
            runs.append(quantum_forward_run(cnn, record, cfg, data, arch))
        mode = "theory" if cfg.ipe == "amplitude_estimation" else "notebook"
        acc = 100 * runs[-1]["test_accuracy"]
        print(f"{mode} mode, eps {cfg.eps:g}: {acc:.2f} %", file=sys.stderr)
    atomic_write_json(out, {"dataset": data.info, "runs": runs})
    print(f"wrote {out} ({len(runs)} evaluations)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
