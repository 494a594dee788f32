"""Seconds per phase-2 epoch of a CNN, with and without online augmentation.

    python benchmarks/train.py [--model mobilenetv2] [--n 1172] [--epochs 2] [--input-size N]

Trains ``--model`` with the params of ``train.<model>`` (params.yaml) on ``--n`` random training
crops (speed depends on the architecture and sizes, not on the pixels) for ``--epochs`` phase-2
epochs, twice: ``augment.online: true`` (the whole network on fresh augmentations every epoch) and
``online: false, copies: 0`` (the top on cached trunk outputs). Prints seconds per phase-2 epoch,
the one-off costs (trunk features, phase 1), the CPU model, its AVX flags and the load average
(other processes on the machine slow every figure down). ``ONEDNN_MAX_CPU_ISA=AVX2 python
benchmarks/train.py`` estimates an AVX2-only machine on an AVX-512 one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim2real_faces import CLASSES


def cpu_description() -> dict[str, object]:
    """CPU model name, its AVX flags, core count and the 1-minute load average."""
    model, flags = platform.processor(), []
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                model = value.strip()
            if key.strip() == "Flags":
                flags = sorted(f for f in value.split() if f.startswith("avx"))
    except (OSError, subprocess.CalledProcessError):
        pass
    return {
        "model": model,
        "avx": flags,
        # oneDNN's ISA cap: ONEDNN_MAX_CPU_ISA=AVX2 makes an AVX-512 machine run TensorFlow's
        # convolutions as an AVX2-only one would (the slower machines of this kind)
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "default"),
        "cores": os.cpu_count(),
        "load_1min": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenetv2", choices=["mobilenetv2", "vgg16"])
    parser.add_argument("--n", type=int, default=1215, help="training crops (default: the default split's)")
    parser.add_argument("--n-val", type=int, default=265)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--input-size", type=int, default=None, help="override train.<model>.input_size")
    args = parser.parse_args(argv)

    from sim2real_faces.params import load_section
    from sim2real_faces.training import CnnParams, train_cnn

    params = load_section(CnnParams, f"train.{args.model}")
    size = args.input_size or params.input_size
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.n + args.n_val, size, size, 3), dtype=np.uint8)
    y = [CLASSES[i % len(CLASSES)] for i in range(len(x))]
    results = {"cpu": cpu_description(), "model": args.model, "input_size": size, "n_train": args.n}
    for label, online, copies in (("online", True, params.augment.copies), ("cached", False, 0)):
        run = dataclasses.replace(
            params,
            input_size=size,
            augment=dataclasses.replace(params.augment, online=online, copies=copies),
            phase1=dataclasses.replace(params.phase1, max_epochs=1),
            phase2=dataclasses.replace(params.phase2, max_epochs=args.epochs, patience=args.epochs),
        )
        _, metrics = train_cnn(
            args.model, x[: args.n], y[: args.n], x[args.n :], y[args.n :], run, seed=0, progress=False
        )
        results[label] = {
            k: metrics["seconds"].get(k) for k in ("augment", "trunk_features", "phase2_per_epoch")
        }
    results["load_1min_after"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
