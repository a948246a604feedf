"""Run in a variant's own interpreter and code tree: the scenario's cases as that variant expands them.

``python -m harness.engine.cases SCENARIO [--only AXIS=V,...]...`` prints one JSON object on stdout:
``{"cases": [{"case": {...}, "not_run": null | {"status", "reason"}}], "note": ..., "library_versions": ...}``.
Expansion needs the variant's torch and libraries (a library model a release lacks is ``unsupported``
there, ``harness.scenario.models``), so the coordinator, which runs without torch, asks each variant.
Bad input: the problems on stderr, one a line, exit 2 (``harness.vocab.ExitCode.INPUT``).
"""
import argparse
import json
import os
import sys


def expand_here(scenario_path: str, only) -> dict:
    """The cases of ``scenario_path`` in this environment, the run's note about names this release lacks
    (``harness.scenario.models.missing_note``) and the library versions a run without a requirements
    report records (``requirements.LIBRARY_VERSIONS_ENV_VAR``)."""
    from harness.scenario import models as scenario_models
    from harness.scenario import requirements
    from harness.scenario import spec as scen

    sc = scen.load(scen.resolve_path(scenario_path))
    cases = scen.expand(sc, scen.parse_only(only))
    before = os.environ.get(requirements.LIBRARY_VERSIONS_ENV_VAR)
    notes = []
    scenario_models.before_run(cases, False, notes.append)
    after = os.environ.get(requirements.LIBRARY_VERSIONS_ENV_VAR)
    return {"cases": [{"case": case.to_dict(), "not_run": None if not_run is None else
                       {"status": not_run.status, "reason": not_run.reason}} for case, not_run in cases],
            "note": notes[0] if notes else None,
            "library_versions": after if after != before else None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenario")
    parser.add_argument("--only", action="append", default=[])
    args = parser.parse_args(argv)
    from harness.scenario.spec import ScenarioError
    from harness.vocab import ExitCode

    try:
        out = expand_here(args.scenario, args.only)
    except ScenarioError as exc:
        for problem in exc.problems:
            print("error: %s" % problem, file=sys.stderr)
        return ExitCode.INPUT
    sys.stdout.write(json.dumps(out) + "\n")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
