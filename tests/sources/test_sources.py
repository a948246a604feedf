"""The source table and its resolution (``harness.sources``): which names a source answers, bad
input kept apart from a library that cannot be used here, and the one hook into the zoo."""
import os
import subprocess
import sys

import pytest

import harness.sources as sources
import models

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAME = "tmx_example_nets.nets:build"
INPUTS = {"x": {"shape": ["batch", "size", 16]}, "ids": {"shape": ["batch", "size"], "dtype": "int64", "high": 9}}


@pytest.fixture
def fresh_specs(monkeypatch):
    monkeypatch.setattr(sources, "_SPECS", {})  # specs are cached per process


def test_importing_the_sources_registers_them_with_the_zoo():
    # In a fresh interpreter: the zoo alone answers no colon name; after `import harness.sources` it does.
    code = ("import sys, models\n"
            "try:\n    models.get_spec(%r)\nexcept ValueError as exc:\n    print('before:', exc)\n"
            "import harness.sources\n"
            "print('after:', type(models.get_spec(%r, {'inputs': %r})).__name__)\n" % (NAME, NAME, INPUTS))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "before: model %r comes from a model source" % NAME in proc.stdout
    assert "after: ExternalSpec" in proc.stdout


def test_the_registered_resolver_is_the_sources_own():
    previous = models.register_source_resolver(None)
    models.register_source_resolver(previous)
    assert previous is sources.RESOLVER
    assert previous.get_spec is sources.get_spec and previous.matching is sources.matching


def test_split_names_the_library_sources_only():
    assert list(sources.library_sources()) == ["timm", "torchvision", "transformers"]
    source, inner = sources.split("timm:vit_tiny_patch16_224")
    assert source.prefix == "timm" and inner == "vit_tiny_patch16_224"
    assert sources.split(NAME) == (None, NAME)  # a user's package.module:callable
    assert sources.matching("tmx_example_nets.nets:*") == []  # only a library's names can be listed


def test_specs_are_cached_per_name_and_options(fresh_specs):
    one = models.get_spec(NAME, {"inputs": INPUTS})
    assert models.get_spec(NAME, {"inputs": dict(INPUTS)}) is one
    assert models.get_spec(NAME, {"inputs": INPUTS, "config": {"width": 8}}) is not one


def test_an_inputs_table_for_a_library_model_is_bad_input(fresh_specs):
    with pytest.raises(ValueError, match="an \\[inputs\\] table is for a plain nn.Module"):
        sources.get_spec("torchvision:resnet18", {"inputs": INPUTS})


def test_a_library_that_does_not_import_is_unavailable_not_bad_input(monkeypatch, fresh_specs):
    monkeypatch.setitem(sys.modules, "timm", None)  # what `import timm` meets where timm is not installed
    with pytest.raises(sources.SourceUnavailable, match="cannot import timm") as err:
        models.get_spec("timm:resnet18")
    assert isinstance(err.value, models.UnsupportedError) and not isinstance(err.value, ValueError)
    with pytest.raises(sources.SourceUnavailable, match="cannot import timm"):
        models.list_models(["timm:*"])


def test_list_models_says_what_this_release_lacks_as_a_run_does(capsys):
    from harness.commands.list_models import list_models
    from harness.sources import library_sources
    from harness.vocab import ExitCode

    lines = []
    assert list_models(["timm:resnet18", "timm:resnet_nope*"], False, print_fn=lines.append) == ExitCode.OK
    assert lines == ["timm:resnet18"]
    assert capsys.readouterr().err == "not in timm %s: no model matches 'resnet_nope*'\n" % (
        library_sources()["timm"].version())
    tv = library_sources()["torchvision"]
    if "swin_t" not in tv.names():  # torchvision before 0.13: the table dates it
        assert list_models(["torchvision:swin_t"], False, print_fn=lines.append) == ExitCode.INPUT
        assert "not in torchvision %s: no model matches 'swin_t' (first in torchvision 0.13.0)\n" % tv.version() in \
            capsys.readouterr().err
