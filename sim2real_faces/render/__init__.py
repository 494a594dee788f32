"""Synthetic frames of MakeHuman faces: headless OpenGL renderer, scene randomizers, frame composition.

- :mod:`.gl`: moderngl on EGL (Mesa llvmpipe) offscreen renderer.
- :mod:`.shapes`: primitive meshes of the background wall.
- :mod:`.randomizers`: the study's randomizers, each with a params dataclass and a seeded sampler.
- :mod:`.scene`: per-frame sampling (no GL) and drawing of a posed human in the sampled scene.
- :mod:`.plan`: the frame plan both backends share: jobs, frame seeds, randomizer streams.
- :mod:`.dataset`: section ``generate`` and the embedded backend: worker processes, PNGs, metadata.
- :mod:`.downscale`: the downscale stage's work: resizing and the contact sheet (its resolution study
  is :mod:`sim2real_faces.faces.resolution`).

Importing this package does not create a GL context; only :class:`.scene.SceneRenderer` does, and it
must never live in a process that also runs MediaPipe.
"""
