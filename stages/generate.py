"""Stage ``generate``: render the synthetic dataset (data/synthetic/raw: images/, metadata.csv).

Params: ``seed`` (root of every random choice), ``humans`` (who, and their textures), ``expressions``
(which presets make each class, intensity, tears), ``generate`` (this stage: backend, counts, size,
workers, randomizers, sky/ground ambient, fill light, skin and eye shading, shadow maps), ``unity``
(only with ``generate.backend: unity``).

- ``backend: embedded``: MakeHuman people rendered headless by :mod:`sim2real_faces.render` in
  ``generate.workers`` processes; same params -> byte-identical PNGs for any number of workers.
- ``backend: unity``: the Unity Perception project renders the same scenario
  (:func:`sim2real_faces.unity.generate_with_unity`) into the same layout.
"""

from __future__ import annotations

import time

from sim2real_faces.humans import (
    ExpressionParams,
    HumanParams,
    sample_identities,
    validate_expression_params,
    validate_human_params,
)
from sim2real_faces.params import ParamsError, load_params, load_section
from sim2real_faces.paths import SYNTH_RAW
from sim2real_faces.render.dataset import GenerateParams, write_dataset


def main() -> None:
    params = load_params()
    out_dir = SYNTH_RAW
    if "seed" not in params or not isinstance(params["seed"], int):
        raise ParamsError("params.yaml needs an integer top-level 'seed' (the root of every random choice).")
    seed = int(params["seed"])
    gen = load_section(GenerateParams, "generate", params)
    humans = load_section(HumanParams, "humans", params)
    expressions = load_section(ExpressionParams, "expressions", params)
    # every section is checked before the first frame is rendered
    gen.validate()
    validate_human_params(humans)
    validate_expression_params(expressions)
    identities = sample_identities(humans, seed)
    if gen.backend == "unity":
        from sim2real_faces.humans.expressions import require_presets
        from sim2real_faces.unity import UnityParams, generate_with_unity

        require_presets(expressions, "generate.backend = unity")

        unity = load_section(UnityParams, "unity", params)
        generate_with_unity(
            generate=gen,
            unity=unity,
            identities=identities,
            expressions=expressions,
            seed=seed,
            out_dir=out_dir,
        )
        return
    start = time.perf_counter()
    table = write_dataset(out_dir, gen, identities, expressions, seed)
    seconds = time.perf_counter() - start
    print(
        f"generate: {len(table)} images ({gen.width}x{gen.height}, {len(identities)} identities, "
        f"{table['class'].nunique()} classes) in {seconds:.0f} s ({len(table) / seconds:.2f} img/s, "
        f"{gen.workers} workers) -> {out_dir}"
    )


if __name__ == "__main__":
    from sim2real_faces.cli import run_stage

    run_stage(main)
