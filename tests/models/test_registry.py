"""The registry: zoo names, globs and fault twins, and the one hook through which names with a
colon reach the model sources (``register_source_resolver``); the zoo itself knows no source."""
import pytest

import models

FAULT = "attention_mask_dtype_fault_tiny"


class Recorder:
    """A resolver that answers ``mine:NAME`` with the zoo's ``NAME`` and records what it was asked."""

    def __init__(self):
        self.asked = []

    def matching(self, pattern):
        self.asked.append(("matching", pattern))
        return ["mine:cbam_classifier_tiny"] if pattern == "mine:*" else []

    def get_spec(self, name, options=None):
        self.asked.append(("get_spec", name, options))
        return models.get_spec(name.partition(":")[2])


@pytest.fixture
def resolver():
    """Swap in ``Recorder`` (or none, with ``resolver(None)``) and put the registered one back after."""
    previous = models.register_source_resolver(None)
    try:
        yield lambda r: models.register_source_resolver(r)
    finally:
        models.register_source_resolver(previous)


def test_globs_match_zoo_names_and_fault_twins_only_when_asked_or_named():
    tiny = models.list_models("*_tiny")
    assert "cbam_classifier_tiny" in tiny and FAULT not in tiny
    assert FAULT in models.list_models("*_tiny", include_faults=True)
    assert models.list_models([FAULT]) == [FAULT] and models.get_spec(FAULT).fault


def test_an_unknown_name_is_bad_input_with_close_names():
    with pytest.raises(ValueError, match="did you mean cbam_classifier"):
        models.get_spec("cbam_classifier_huge")


def test_a_name_with_a_colon_needs_a_registered_source_resolver(resolver):
    resolver(None)
    with pytest.raises(ValueError, match="no source resolver is registered: import harness.sources"):
        models.get_spec("timm:resnet18")
    with pytest.raises(ValueError, match="no source resolver"):
        models.list_models(["timm:*"])
    assert models.list_models(["cbam_classifier_tiny"]) == ["cbam_classifier_tiny"]  # the zoo needs none


def test_names_with_a_colon_go_to_the_registered_resolver_and_only_those(resolver):
    mine = Recorder()
    assert resolver(mine) is None  # register returns the resolver it replaces
    assert models.list_models(["mine:*", "cbam_classifier_tiny"]) == ["cbam_classifier_tiny",
                                                                      "mine:cbam_classifier_tiny"]
    net = models.create_model("mine:cbam_classifier_tiny", None, {"config": {}})
    assert isinstance(net, models.ZooModel) and type(net) is type(models.create_model("cbam_classifier_tiny"))
    assert mine.asked == [("matching", "mine:*"), ("get_spec", "mine:cbam_classifier_tiny", {"config": {}})]
    assert resolver(None) is mine
