"""``python -m sim2real_faces.unity prepare [OUT]``: the GLBs and the scenario JSON for a run by hand."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from sim2real_faces.humans import ExpressionParams, HumanParams, sample_identities
from sim2real_faces.params import load_params, load_section
from sim2real_faces.render.dataset import GenerateParams
from sim2real_faces.unity.backend import prepare_unity
from sim2real_faces.unity.scenario import UnityParams


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m sim2real_faces.unity prepare [OUT]``: export the GLBs and write the scenario JSON from
    params.yaml (into OUT, default ``unity_run/``) for a run by hand in the Unity editor (unity/README.md)."""
    parser = argparse.ArgumentParser(prog="python -m sim2real_faces.unity")
    parser.add_argument("command", choices=["prepare"])
    parser.add_argument("out", nargs="?", default="unity_run", type=Path)
    args = parser.parse_args(argv)
    params = load_params()
    generate = load_section(GenerateParams, "generate", params)
    unity = load_section(UnityParams, "unity", params)
    humans = load_section(HumanParams, "humans", params)
    expressions = load_section(ExpressionParams, "expressions", params)
    identities = sample_identities(humans, int(params["seed"]))
    out = args.out.absolute()
    prepared = prepare_unity(
        generate, unity, identities, expressions, int(params["seed"]), out, out / "perception"
    )
    print(
        f"{prepared.scenario_json}: {prepared.scenario.iterations} iterations; "
        f"Perception writes to {out / 'perception'}"
    )


if __name__ == "__main__":
    main()
