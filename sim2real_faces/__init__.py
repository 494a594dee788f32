"""Sim2Real facial-expression recognition: synthetic faces in, real-photo accuracy out."""

CLASSES: tuple[str, ...] = ("angry", "crying", "happy")
