"""A variant: a Python with its torch plus a code tree, and where its records go.

Standard library only (the coordinator runs without torch).
"""
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from harness.fileio import REPO_ROOT
from harness.record.schema import Case
from harness.scenario.spec import NotRun

#: How long a variant may take to expand a scenario (it imports torch and the model sources).
EXPAND_TIMEOUT_S = 600.0


class VariantError(Exception):
    """A variant that cannot take part (its interpreter fails, its scenario is bad input there); the
    message names the variant and says why."""

    def __init__(self, message: str, problems: Optional[List[str]] = None):
        super().__init__(message)
        self.problems = problems or []


@dataclass
class Variant:
    """One side of every comparison the run makes.

    ``label`` names its record file (``OUT/<label>.jsonl``) and the ``env_label`` of its records;
    ``python`` runs its workers, in the code tree ``root`` (first on ``PYTHONPATH``, the working
    folder); ``env`` is added to their environment (a requirements report, ``ab``'s counting steps).
    """

    label: str
    python: str = sys.executable
    root: str = REPO_ROOT
    env: Dict[str, str] = field(default_factory=dict)
    out_path: str = ""
    #: the cases as this variant expands them (``expand``), in scenario order
    cases: List[Tuple[Case, Optional[NotRun]]] = field(default_factory=list)

    def process_env(self) -> Dict[str, str]:
        """The environment of a process of this variant: ours, its ``env``, its root first on the path."""
        env = dict(os.environ)
        env.update(self.env)
        paths = [self.root, os.getcwd()] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        return env

    @classmethod
    def from_file(cls, path: str) -> "Variant":
        """A variant described by a JSON file (``{"label", "python", "root"?, "env"?}``, as the noxfile's
        matrix sessions write them); ``VariantError`` names what is wrong."""
        try:
            with open(path, encoding="utf-8") as fh:
                doc = json.load(fh)
        except (OSError, ValueError) as exc:
            raise VariantError("variant file %s: %s" % (path, exc)) from None
        if not isinstance(doc, dict) or not isinstance(doc.get("label"), str) or not isinstance(doc.get("python"), str):
            raise VariantError("variant file %s: expected an object with string 'label' and 'python'" % path)
        env = doc.get("env") or {}
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise VariantError("variant file %s: 'env' must map names to strings" % path)
        return cls(doc["label"], doc["python"], doc.get("root") or REPO_ROOT, dict(env))

    def expand(self, scenario_path: str, only: List[str]) -> Dict:
        """Ask this variant's own interpreter and code for the scenario's cases (``harness.engine.cases``);
        sets ``cases`` and returns the rest of its answer (``note``, ``library_versions``)."""
        cmd = [self.python, "-m", "harness.engine.cases", scenario_path]
        for item in only:
            cmd += ["--only", item]
        try:
            proc = subprocess.run(cmd, cwd=self.root, env=self.process_env(), capture_output=True, text=True,
                                  timeout=EXPAND_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise VariantError("%s: cannot list its cases with %s: %s" % (self.label, self.python, exc)) from None
        if proc.returncode != 0:
            errors = [line[len("error: "):] for line in proc.stderr.splitlines() if line.startswith("error: ")]
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise VariantError("%s: listing its cases failed (exit %d): %s" % (self.label, proc.returncode,
                                                                              "; ".join(errors) or tail), errors)
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        try:
            doc = json.loads(lines[-1])
        except (IndexError, ValueError):
            raise VariantError("%s: no case list in its answer: %s" % (self.label, proc.stdout[-300:])) from None
        self.cases = [(Case(**item["case"]), None if item["not_run"] is None else NotRun(**item["not_run"]))
                      for item in doc["cases"]]
        return doc
