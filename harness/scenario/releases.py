"""What the project knows of the libraries' releases: when a model name or a config field first
appeared (for the reason of a model an older release lacks), and which library release goes
with which torch (``harness.scenario.requirements.resolve_for_torch`` reads it when a scenario
names a library without a version).

Standard library only: the noxfile reads it before any environment exists. Each entry names
its source; extend a table with the same kind of source, never a guess.
"""
from typing import Dict, Optional, Tuple

#: (library, model name or "ConfigClass.field") -> the first release that has it.
FIRST_RELEASE: Dict[Tuple[str, str], str] = {
    # torchvision's docs, models page: "New in version 0.13" on swin_t/s/b and the multi-weight API.
    ("torchvision", "swin_t"): "0.13.0",
    ("torchvision", "swin_s"): "0.13.0",
    ("torchvision", "swin_b"): "0.13.0",
    # transformers release notes: v4.28.0 "LLaMA", v4.31.0 Llama 2 (grouped-query attention:
    # LlamaConfig.num_key_value_heads), v4.37.0 "Qwen2".
    ("transformers", "LlamaForCausalLM"): "4.28.0",
    ("transformers", "LlamaConfig.num_key_value_heads"): "4.31.0",
    ("transformers", "Qwen2ForCausalLM"): "4.37.0",
}

#: The model libraries of the sources (``harness.sources``: ``timm:``, ``torchvision:``, ``transformers:``):
#: the ones this table chooses a release of per torch.
LIBRARIES = ("timm", "torchvision", "transformers")

#: torch release (major.minor) -> the torchvision release built against it (torchvision's README,
#: "Installation": the compatibility table; each torchvision wheel's metadata pins that torch exactly).
TORCHVISION_FOR_TORCH: Dict[str, str] = {
    "1.10": "0.11.3", "1.11": "0.12.0", "1.12": "0.13.1", "1.13": "0.14.1",
    "2.0": "0.15.2", "2.1": "0.16.2",
}

#: torch release -> the newest timm / transformers release known to run there, as a requirement.
#: Sources, checked on 2026-12-07 in the wheels (`pip download --no-deps transformers==V`: the
#: wheel's METADATA "Requires-Dist: torch...; extra == 'torch'" and the import gate in
#: transformers/utils/import_utils.py, "Disabling PyTorch because PyTorch >= X is required"):
#: - transformers 4.47.1 is the last whose metadata admits torch 1.x (4.48.0 on: torch>=2.0) and it
#:   has no import gate: torch 1.11, 1.12, 1.13;
#: - 4.49.0 for torch 2.0: 4.50 and 4.51 have no gate (4.52.0 on: PyTorch >= 2.1) but import
#:   torch.compiler, which came in torch 2.1, with every model module (checked 2026-12-07 by
#:   importing GPT2LMHeadModel, BertForSequenceClassification, LlamaForCausalLM and Qwen2ForCausalLM
#:   with torch 2.0.1: 4.51.3 and 4.50.3 raise "module 'torch' has no attribute 'compiler'", 4.49.0
#:   and 4.48.3 import; `nox -s matrix -- byo` runs them);
#: - 4.55.4 is the last whose metadata admits 2.1 (4.56.0 on: torch>=2.2; 5.0 gates >= 2.2, 5.10
#:   >= 2.4, 5.20 >= 2.6): torch 2.1;
#: - torch 1.10: timm 0.9.16 (timm 1.x passes use_reentrant to torch.utils.checkpoint, which 1.10
#:   lacks; 1.11 has it) and transformers 4.30.2 (its metadata: torch>=1.9,!=1.12.0), both run by
#:   the tests' torch 1.10 environment (`nox -s tests` installs this table's row). timm 1.0.31's
#:   metadata asks for Python >= 3.10 and any torch: 1.11 and later take the newest the installer
#:   resolves. The rows from 1.11 to 2.1 run in `nox -s matrix -- byo` and `-- newer_names`.
#: Releases not listed take the newest the installer resolves against the pinned torch.
NEWEST_FOR_TORCH: Dict[str, Dict[str, str]] = {
    "1.10": {"timm": "timm==0.9.16", "transformers": "transformers==4.30.2"},
    "1.11": {"transformers": "transformers==4.47.1"},
    "1.12": {"transformers": "transformers==4.47.1"},
    "1.13": {"transformers": "transformers==4.47.1"},
    "2.0": {"transformers": "transformers==4.49.0"},
    "2.1": {"transformers": "transformers==4.55.4"},
}


#: How the reason of a model whose name or ``[config]`` field the environment's library release
#: lacks begins: ``not in torchvision 0.11.3: no model 'swin_t' (first in torchvision 0.13.0)``
#: (``harness.sources.base.NotInRelease``); the record's status is ``unsupported``.
NOT_IN_RELEASE_PREFIX = "not in "


def is_not_in_release(reason: Optional[str]) -> bool:
    """True for the reason of a model that the environment's library release lacks (an
    ``unsupported`` record's, a ``--dry-run`` line's); the analysis side may call it (no torch)."""
    return bool(reason) and reason.startswith(NOT_IN_RELEASE_PREFIX)


def first_release(library: str, what: str) -> Optional[str]:
    """The first release of ``library`` with ``what`` (a model name or ``Config.field``), or None."""
    return FIRST_RELEASE.get((library, what))
