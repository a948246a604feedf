"""The torchmatrix model zoo: compact re-implementations of the seed audits' models.

One file per model (``attention.py``, ``mswr.py``, ``sharp.py``...) holds its own blocks,
the model, a frozen config per size and its registrations; what several models share
lives in underscore modules, and model files import only those, never each other
(``tests/models/test_model_layout.py``):

* ``_base``: the ``ZooModel`` interface, checkpoint modes and ``checkpoint_call``;
* ``_registry``: names to factories, globs, and the one hook through which names with a
  colon reach the model sources (``register_source_resolver``; the harness's
  ``harness.sources`` fills it);
* ``_seeded``: version-stable random numbers and parameter initialisation;
* ``_attention``: ``attend`` (SDPA with the 1.10 fallback), masks, head and window
  layouts, top-k key attention;
* ``_layers``: the float32-safe LayerNorms and a token MLP;
* ``_wavelets``: the orthonormal Haar transform;
* ``_spectral``: the RGB-to-31-band tasks, their metrics and ``SpectralReconstructionModel``;
* ``_tokens``: the induction-copy token task of the language models.

The zoo stands alone: it imports torch and numpy, never the harness nor the sources
(``tests/test_layering.py``).
"""
from models._base import CHECKPOINT_MODES, UnsupportedError, ZooModel, check_checkpoint_mode, checkpoint_call, image_hw
from models._registry import (
    ModelSpec,
    SourceResolver,
    create_model,
    get_spec,
    is_import_path,
    list_models,
    register_model,
    register_source_resolver,
)
from models._seeded import SeededGenerator, init_parameters

__all__ = [
    "CHECKPOINT_MODES", "ModelSpec", "SeededGenerator", "SourceResolver", "UnsupportedError", "ZooModel",
    "check_checkpoint_mode", "checkpoint_call", "create_model", "get_spec", "image_hw", "init_parameters",
    "is_import_path", "list_models", "register_model", "register_source_resolver",
]
