"""The layout of the zoo: model files share blocks only through underscore modules.

A model file (``models/<name>.py``) may import the shared blocks (``models/_*.py``), never
another model file; the shared modules import no model file either. Checked on the
source with ``ast``, so nothing is imported to check it.
"""
import ast
import os

import models

MODELS_DIR = os.path.dirname(os.path.abspath(models.__file__))
MODULES = sorted(f[:-3] for f in os.listdir(MODELS_DIR) if f.endswith(".py") and f != "__init__.py")
MODEL_FILES = [m for m in MODULES if not m.startswith("_")]
SHARED_FILES = [m for m in MODULES if m.startswith("_")]


def _zoo_imports(source: str, filename: str = "<source>"):
    """(line, name) of every ``models`` submodule that ``source``, a file in ``models/``, imports."""
    tree = ast.parse(source, filename=filename)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "models" and len(parts) > 1:
                    found.append((node.lineno, parts[1]))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from .x import y
                base = (node.module or "").split(".")[0]
                names = [base] if base else [alias.name for alias in node.names]
            elif node.module == "models":
                names = [alias.name for alias in node.names if alias.name in MODULES]
            elif node.module and node.module.startswith("models."):
                names = [node.module.split(".")[1]]
            else:
                names = []
            found.extend((node.lineno, name) for name in names)
    return found


def _imported_zoo_modules(module: str):
    with open(os.path.join(MODELS_DIR, module + ".py"), encoding="utf-8") as f:
        return _zoo_imports(f.read(), module + ".py")


def test_the_zoo_has_model_files_and_shared_modules():
    assert {"attention", "hsifusion", "sharp", "mswr", "wavediff", "cswin", "llm_decoder"} <= set(MODEL_FILES)
    assert {"_attention", "_base", "_layers", "_registry", "_spectral", "_wavelets"} <= set(SHARED_FILES)


def test_model_files_never_import_each_other():
    offences = ["models/%s.py:%d imports models.%s" % (module, line, name)
                for module in MODEL_FILES for line, name in _imported_zoo_modules(module)
                if not name.startswith("_")]
    assert not offences, "model files may import only models._* modules:\n" + "\n".join(offences)


def test_shared_modules_import_no_model_file():
    offences = ["models/%s.py:%d imports models.%s" % (module, line, name)
                for module in SHARED_FILES for line, name in _imported_zoo_modules(module)
                if not name.startswith("_")]
    assert not offences, "models._* modules may not depend on a model file:\n" + "\n".join(offences)


def test_the_import_check_sees_every_form_of_import():
    # The checker itself: absolute, from-package, submodule and relative forms.
    source = ("import models.cswin\nfrom models import mswr, _layers\nfrom models.attention import attend\n"
              "from . import wavediff\nfrom .hsifusion import SHARP\nfrom models._base import ZooModel\n")
    names = [name for _, name in _zoo_imports(source)]
    assert names == ["cswin", "mswr", "_layers", "attention", "wavediff", "hsifusion", "_base"]


def test_checkpoint_modes_are_the_words_of_the_records_axis():
    # The zoo spells its own tuple (it imports no harness module) and harness.vocab, standard library
    # only, cannot import the zoo: the two spellings are held equal here.
    from harness.vocab import CHECKPOINTS

    assert models.CHECKPOINT_MODES == CHECKPOINTS
