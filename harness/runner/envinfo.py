"""The environment fingerprint every record carries, and the backend flags the runner pins.

The flags matter because their defaults changed between releases: TF32 matmul was on
by default until 1.12, so "fp32" on an Ampere GPU meant different arithmetic on 1.11
and 1.12. The runner sets them from the scenario instead of inheriting defaults.
"""
import hashlib
import platform
import subprocess
import sys
from typing import Dict, Optional

import numpy as np
import torch

from harness.fileio import REPO_ROOT
from harness.scenario import requirements


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(path: Optional[str] = None) -> Optional[str]:
    """The git commit of the project at ``path`` (default: this package), or None."""
    here = path or REPO_ROOT
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def apply_backend_flags(flags: Dict) -> Dict:
    """Set the numerics/speed flags explicitly; return what is now in force."""
    if hasattr(torch.backends, "cuda") and hasattr(torch.backends.cuda, "matmul"):
        torch.backends.cuda.matmul.allow_tf32 = bool(flags.get("allow_tf32", False))
    torch.backends.cudnn.allow_tf32 = bool(flags.get("allow_tf32", False))
    torch.backends.cudnn.benchmark = bool(flags.get("cudnn_benchmark", False))
    deterministic = bool(flags.get("deterministic", False))
    torch.backends.cudnn.deterministic = deterministic
    if hasattr(torch, "use_deterministic_algorithms"):
        try:
            torch.use_deterministic_algorithms(deterministic, warn_only=True)
        except TypeError:  # warn_only arrived in 1.11
            torch.use_deterministic_algorithms(deterministic)
    return current_backend_flags()


def current_backend_flags() -> Dict:
    matmul = getattr(getattr(torch.backends, "cuda", None), "matmul", None)
    return {
        "allow_tf32_matmul": bool(getattr(matmul, "allow_tf32", False)),
        "allow_tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "deterministic": bool(torch.backends.cudnn.deterministic),
    }


def environment(device: str = "cpu") -> Dict:
    """Versions, device and flags of this process; ``fingerprint`` keys comparability.

    In an environment with a requirements report (``harness.scenario.requirements.current_report``),
    also ``extra_packages`` (name -> version installed beside torch, part of the
    fingerprint), ``extra_failed`` (the requirements that could not be installed) and
    ``extra_chosen`` (which release of each model library was asked for and why)."""
    cuda_ok = torch.cuda.is_available()
    device_name = _cpu_name()
    if device == "cuda" and cuda_ok:
        device_name = torch.cuda.get_device_name(0)
    cudnn = torch.backends.cudnn.version() if cuda_ok and torch.backends.cudnn.is_available() else None
    info = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cuda": torch.version.cuda if cuda_ok else None,
        "cuda_build": torch.version.cuda,
        "cudnn": cudnn,
        "device": device,
        "device_name": device_name,
        "cpu": _cpu_name(),
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "optimize": sys.flags.optimize,
        "git_commit": git_commit(),
        "backend": current_backend_flags(),
    }
    ident = "|".join(str(info[k]) for k in ("torch", "python", "device", "device_name", "cuda"))
    report = requirements.current_report()
    if report is not None:
        # what the scenario's [environment] and --with installed beside torch (the noxfile's report)
        info["extra_packages"] = dict(sorted(report.get("installed", {}).items()))
        info["extra_failed"] = [str(f.get("requirement")) for f in report.get("failed", []) if isinstance(f, dict)]
        info["extra_chosen"] = {str(name): {key: str(entry[key]) for key in ("requirement", "version", "why")
                                            if entry.get(key) is not None}
                                for name, entry in sorted(report.get("chosen", {}).items()) if isinstance(entry, dict)}
        if info["extra_packages"]:  # environments without extras keep their fingerprint
            ident += "|" + ",".join("%s==%s" % pair for pair in info["extra_packages"].items())
    info["fingerprint"] = hashlib.sha1(ident.encode("utf-8")).hexdigest()[:12]
    return info
