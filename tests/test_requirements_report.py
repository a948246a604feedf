"""The requirements report of an environment (``harness.scenario.requirements``): the file the
noxfile writes after installing a scenario's ``[environment]`` and ``--with``, read back
inside the run; the installer's message in one line; what an interpreter holds."""
import json
import os

import pytest

from harness.scenario import requirements

# What the installers print when a requirement cannot be resolved against the torch pin
# (captured from pip 23 and uv 0.13, stdout and stderr together, as the noxfile reads them).
PIP_CONFLICT = """\
Processing ./needsnewtorch-1.0-py3-none-any.whl
Requirement already satisfied: torch==1.10.2 in ./pv/lib/python3.9/site-packages (1.10.2)
INFO: pip is looking at multiple versions of torch to determine which version is compatible with other requirements.
ERROR: Cannot install needsnewtorch==1.0 and torch==1.10.2 because these package versions have conflicting dependencies.

The conflict is caused by:
    The user requested torch==1.10.2
    needsnewtorch 1.0 depends on torch>=2

To fix this you could try to:
1. loosen the range of package versions you've specified
2. remove package versions to allow pip attempt to solve the dependency conflict

ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution/
"""
UV_CONFLICT = """\
Using Python 3.9.18 environment at: v
error: No solution found when resolving dependencies
  cause: Because only needsnewtorch==1.0 is available and needsnewtorch==1.0 depends on torch>=2, we can \
conclude that all versions of needsnewtorch depend on torch>=2.
         And because you require torch==1.10.2 and needsnewtorch, we can conclude that your requirements are \
unsatisfiable.
"""


def _report(**kw):
    args = dict(env_label="torch-1.10", requested=["timm", "/abs/my-project"], installed={"timm": "0.9.16"},
                failed=[("/abs/my-project", "No solution found")], torch_version="1.10.2")
    args.update(kw)
    return requirements.make_report(**args)


def test_report_round_trip_through_its_file(tmp_path):
    report = _report()
    assert report == {"env_label": "torch-1.10", "torch": "1.10.2", "python": None,
                      "requested": ["timm", "/abs/my-project"], "installed": {"timm": "0.9.16"}, "chosen": {},
                      "failed": [{"requirement": "/abs/my-project", "reason": "No solution found"}]}
    path = requirements.report_path(str(tmp_path / "out"), "torch-1.10")
    assert os.path.basename(path) == "torch-1.10.requirements.json"
    requirements.write_report(path, report)
    assert requirements.load_report(path) == report
    assert json.loads(open(path, encoding="utf-8").read()) == report
    assert os.listdir(os.path.dirname(path)) == ["torch-1.10.requirements.json"]  # no temporary file left


@pytest.mark.parametrize("text", [None, "", "{not json", "[1, 2]", '{"installed": [1]}', '{"failed": "x"}'])
def test_load_report_is_none_without_a_readable_report(tmp_path, text):
    path = tmp_path / "r.json"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    assert requirements.load_report(str(path)) is None
    assert requirements.load_report(None) is None and requirements.load_report("") is None


def test_current_report_reads_the_file_the_environment_variable_names(tmp_path, monkeypatch):
    monkeypatch.delenv(requirements.REPORT_ENV_VAR, raising=False)
    assert requirements.current_report() is None
    monkeypatch.setenv(requirements.REPORT_ENV_VAR, "")
    assert requirements.current_report() is None
    path = str(tmp_path / "torch-1.10.requirements.json")
    monkeypatch.setenv(requirements.REPORT_ENV_VAR, path)
    assert requirements.current_report() is None  # named but not written
    requirements.write_report(path, _report())
    assert requirements.current_report() == _report()


def test_failed_note_names_every_failure_in_one_short_line():
    assert requirements.failed_note(None) is None
    assert requirements.failed_note(_report(failed=[])) is None
    note = requirements.failed_note(_report(failed=[("transformers==5.0", "No solution found: needs torch>=2"),
                                                    ("timm", "not found in the cache")]))
    assert note == ("not installed in this environment: transformers==5.0 (No solution found: needs torch>=2); "
                    "timm (not found in the cache)")
    # long reasons are cut so that every requirement is still named
    long = requirements.failed_note(_report(failed=[("a-project", "x" * 2000), ("b-project", "y" * 2000)]))
    assert len(long) <= requirements.NOTE_LIMIT_CHARS and "\n" not in long
    assert "a-project (xxx" in long and "b-project (yyy" in long


@pytest.mark.parametrize("output, says, not_says", [
    (PIP_CONFLICT, ["Cannot install needsnewtorch==1.0 and torch==1.10.2", "The conflict is caused by: The user "
                    "requested torch==1.10.2; needsnewtorch 1.0 depends on torch>=2"],
     ["ERROR:", "To fix", "loosen", "ResolutionImpossible", "Processing", "INFO:", ".;"]),
    (UV_CONFLICT, ["No solution found when resolving dependencies", "depends on torch>=2", "requirements are "
                   "unsatisfiable"], ["error:", "Using Python", ".;"]),
])
def test_installer_message_keeps_why_and_drops_the_chatter(output, says, not_says):
    message = requirements.installer_message(output)
    assert "\n" not in message and len(message) <= requirements.MESSAGE_LIMIT_CHARS
    for text in says:
        assert text in message
    for text in not_says:
        assert text not in message


def test_installer_message_without_an_error_line_keeps_the_last_lines_and_is_cut():
    assert requirements.installer_message("") == "the installer failed and said nothing"
    lines = ["line %d" % i for i in range(10)]
    assert requirements.installer_message("\n".join(lines)) == "; ".join(lines[5:])
    message = requirements.installer_message("error: " + "a" * 2000 + "z" * 3000 + " your requirements are "
                                                                                    "unsatisfiable")
    assert len(message) <= requirements.MESSAGE_LIMIT_CHARS and message.startswith("aaa") and " ... zzz" in message
    assert message.endswith("your requirements are unsatisfiable")  # the decisive fact, at the end


def test_installed_versions_lists_this_interpreter_and_extra_versions_what_torch_does_not_need():
    versions = requirements.installed_versions()
    assert versions["pytest"] == pytest.__version__
    assert all(name == requirements.normalize_name(name) for name in versions)
    assert requirements.normalize_name("Typing_Extensions") == "typing-extensions"
    extras = requirements.extra_versions()
    assert extras["pytest"] == pytest.__version__ and extras["timm"] == versions["timm"]  # the tests' extras
    assert not {"torch", "numpy", "typing-extensions"} & set(extras)  # torch needs typing-extensions
    assert requirements.extra_versions(base=("pytest",)).get("pluggy") is None  # pytest needs pluggy
