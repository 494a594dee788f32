"""The Unity backend of stage ``generate`` (``generate.backend: unity``).

- :mod:`.scenario`: params section ``unity`` (:class:`UnityParams`, ``conf/unity.yaml``) and the
  scenario JSON the C# side reads (:class:`UnityScenario`);
- :mod:`.editor`: the Unity editor: where it is, its batch-mode command line, the run;
- :mod:`.gltf`: GLB export of the MakeHuman identities (expressions as morph targets) and the
  background shapes;
- :mod:`.perception`: import of Unity Perception output (SOLO or 0.x) into the embedded renderer's
  layout;
- :mod:`.backend`: the whole backend (:func:`generate_with_unity`) on the embedded renderer's frame
  plan (:mod:`sim2real_faces.render.plan`), with ``generate.post`` applied to the imported images;
- ``python -m sim2real_faces.unity prepare [OUT]``: the GLBs and the scenario JSON for a run by hand.

The Unity project itself (C#) is the repository's ``unity/`` folder; see ``unity/README.md``.
"""

from sim2real_faces.unity.backend import (
    POST_COLUMNS,
    Prepared,
    apply_post_to_images,
    finish_metadata,
    generate_with_unity,
    prepare_unity,
)
from sim2real_faces.unity.editor import (
    EDITOR_ENV,
    EXECUTE_METHOD,
    build_unity_command,
    find_editor,
    run_unity,
)
from sim2real_faces.unity.errors import UnityError, UnityNotFoundError
from sim2real_faces.unity.gltf import GltfExportError
from sim2real_faces.unity.perception import PerceptionFormatError, import_dataset
from sim2real_faces.unity.scenario import (
    SCENARIO_SCHEMA,
    IdentityEntry,
    UnityParams,
    UnityScenario,
    build_scenario,
    read_scenario,
    scenario_to_json,
    write_scenario,
)

__all__ = [
    "EDITOR_ENV",
    "EXECUTE_METHOD",
    "POST_COLUMNS",
    "SCENARIO_SCHEMA",
    "GltfExportError",
    "IdentityEntry",
    "PerceptionFormatError",
    "Prepared",
    "UnityError",
    "UnityNotFoundError",
    "UnityParams",
    "UnityScenario",
    "apply_post_to_images",
    "build_scenario",
    "build_unity_command",
    "find_editor",
    "finish_metadata",
    "generate_with_unity",
    "import_dataset",
    "prepare_unity",
    "read_scenario",
    "run_unity",
    "scenario_to_json",
    "write_scenario",
]
