"""The torchmatrix model zoo: compact re-implementations of the seed audits' models."""
from models._base import CHECKPOINT_MODES, UnsupportedError, ZooModel, check_checkpoint_mode, checkpoint_call
from models._registry import ModelSpec, create_model, get_spec, is_import_path, list_models, register_model
from models._seeded import SeededGenerator, init_parameters

__all__ = [
    "CHECKPOINT_MODES", "ModelSpec", "SeededGenerator", "UnsupportedError", "ZooModel",
    "check_checkpoint_mode", "checkpoint_call", "create_model", "get_spec", "init_parameters",
    "is_import_path", "list_models", "register_model",
]
