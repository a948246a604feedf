"""``torchmatrix list-models [PATTERN...]``: the model zoo and the model sources.

Without a pattern: the zoo, one line per model, then the sources a scenario can name
models from (``timm:``, ``torchvision:``, ``transformers:`` with the installed version,
and ``package.module:callable``). A pattern with a source's prefix lists that library's
names (``list-models 'timm:*vit*'``), read from the library without building a model; a
pattern that the installed release matches nothing of is said as a run says it (``not in
torchvision 0.11.3: ...``, with the first release that has it where the project knows it).
"""
import fnmatch
import sys
from typing import Sequence

from harness.vocab import ExitCode

NAME = "list-models"
HELP = "list the model zoo and the model sources (timm, torchvision, transformers, your package)"
DESCRIPTION = ("List the zoo's models (globs over names; --faults adds the fault twins) and the sources a scenario "
               "can take models from. With SOURCE:GLOB (e.g. 'timm:*vit*', 'torchvision:*', "
               "'transformers:*ForCausalLM'), list that library's model names as a scenario names them.")


def add_arguments(parser) -> None:
    parser.add_argument("patterns", nargs="*",
                        help="globs over zoo names, or SOURCE:GLOB over a library's names (default: the zoo)")
    parser.add_argument("--faults", action="store_true", help="include the fault twins")


def run(args) -> int:
    return list_models(args.patterns, args.faults)


def _source_lines(print_fn) -> None:
    from harness.sources import library_sources

    print_fn("")
    print_fn("model sources (name models as SOURCE:NAME; list a source's names with list-models 'SOURCE:*'):")
    for prefix, source in library_sources().items():
        version = source.version()
        print_fn("  %-14s %-22s size: %s" % (prefix + ":", version or "not installed here", source.size_axis))
    print_fn("  %-14s %-22s size: the size placeholder of its [inputs] shapes" % ("pkg.module:fn", "your package"))


def list_models(patterns: Sequence[str], include_faults: bool, print_fn=print) -> int:
    """Print name, family, fault flag, default sizes and description (models are not built);
    for SOURCE:GLOB patterns, the library's matching names."""
    import models
    from harness.scenario.releases import NOT_IN_RELEASE_PREFIX, first_release
    from harness.sources import SourceUnavailable, split

    source_patterns = [p for p in patterns if models.is_import_path(p)]
    for pattern in source_patterns:
        if split(pattern)[0] is None:
            print("error: %r: only timm:, torchvision: and transformers: names can be listed; a "
                  "package.module:callable is named in full in a scenario" % pattern, file=sys.stderr)
            return ExitCode.INPUT
    try:
        external = models.list_models(source_patterns) if source_patterns else []
    except SourceUnavailable as exc:
        print("error: %s" % exc, file=sys.stderr)
        return ExitCode.FAILURE
    zoo_patterns = [p for p in patterns if not models.is_import_path(p)]
    names = models.list_models(zoo_patterns or ["*"], include_faults=include_faults) if zoo_patterns or not \
        patterns else []
    missing = [p for p in source_patterns if not any(fnmatch.fnmatchcase(n, p) for n in external)]
    for pattern in missing:  # as a run says it: a fact of this release, dated where the project knows it
        source, inner = split(pattern)
        first = first_release(source.prefix, inner)
        print("%s%s %s: no model matches %r%s" % (
            NOT_IN_RELEASE_PREFIX, source.prefix, source.version(), inner,
            " (first in %s %s)" % (source.prefix, first) if first else ""), file=sys.stderr)
    if not names and not external:
        print("error: no model matches %s (`torchmatrix list-models` lists the zoo and the sources; --faults adds the "
              "fault twins)" % " ".join(patterns), file=sys.stderr)
        return ExitCode.INPUT
    for name in names:
        spec = models.get_spec(name)
        print_fn("%-40s %-16s %-6s sizes=%-14s %s" % (
            name, spec.family, "FAULT" if spec.fault else "", ",".join(str(s) for s in spec.default_sizes),
            spec.description))
    for name in external:
        print_fn(name)
    if not patterns:
        _source_lines(print_fn)
    return ExitCode.OK
