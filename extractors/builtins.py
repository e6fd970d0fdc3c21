"""The built-in extractors, declared once: the registry and the weights registry both load them from here.

Importing a module registers its extractor (and its learned weights); neither registry imports the other, so
there is no import circle. A new extractor is one file plus one line here.
"""

from __future__ import annotations

import importlib

#: Modules imported to populate the registry. A new extractor is one file plus one line here.
BUILTIN_MODULES = (
    "extractors.logmel",
    "extractors.linear_spectrogram",
    "extractors.egemaps",
    "extractors.face_hog",
    "extractors.affwild2_va",
    "extractors.r2plus1d",
    "extractors.wav2vec2",
    "extractors.vggish",
    "extractors.openface",
    "extractors.vggm_face",
    "extractors.bert",
    "extractors.videomae",
    "extractors.resnet18_spectrogram",
    "extractors.trill",
    "extractors.facenet",
    "extractors.resnet_face",
    "extractors.mtcnn",  # not an extractor: the face stage's detector, imported so its weights are registered
)


def load() -> None:
    """Import every built-in module (idempotent: Python imports each once)."""
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
