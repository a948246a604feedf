"""``torchmatrix report RESULTS...``: the comparative HTML report (analysis side)."""
import json
import os
import sys

from harness.vocab import ExitCode

NAME = "report"
HELP = "build the HTML report from record files (analysis side)"


def add_arguments(parser) -> None:
    parser.add_argument("results", nargs="+", help="record files or folders of them")
    parser.add_argument("--out", default=os.path.join("results", "report", "index.html"),
                        help="the HTML file to write (default results/report/index.html); figures go beside it")
    parser.add_argument("--baseline", nargs="+", help="baseline record files or folders, for the comparison section")
    parser.add_argument("--reference-env", help="environment label speeds are relative to (default: newest torch)")
    parser.add_argument("--verdicts",
                        help="the gate's verdicts JSON (torchmatrix gate --json), for the comparison section")


def run(args) -> int:
    from harness.analysis.load import InputError
    from harness.analysis.report import build_report

    if os.path.isdir(args.out):
        print("error: --out %s is a folder: name the HTML file to write (e.g. %s)" % (
            args.out, os.path.join(args.out, "index.html")), file=sys.stderr)
        return ExitCode.INPUT
    try:
        verdicts = None
        if args.verdicts:
            try:
                with open(args.verdicts, encoding="utf-8") as fh:
                    doc = json.load(fh)
            except (OSError, ValueError) as exc:
                raise InputError("%s: cannot read the verdicts JSON (%s)" % (args.verdicts, exc)) from None
            verdicts = doc.get("verdicts") if isinstance(doc, dict) else doc
            if not isinstance(verdicts, list) or not all(isinstance(v, dict) for v in verdicts):
                raise InputError("%s: not a verdicts JSON of `torchmatrix gate --json` (expected a list of verdict "
                                 "objects under \"verdicts\")" % args.verdicts)
        info = build_report(args.results, args.out, baseline_paths=args.baseline, reference_env=args.reference_env,
                            verdicts=verdicts)
    except InputError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return ExitCode.INPUT
    except OSError as exc:  # the output's folder cannot be made or written
        print("error: cannot write the report to %s: %s" % (args.out, exc.strerror or exc), file=sys.stderr)
        return ExitCode.INPUT
    for problem in info.get("problems", []):
        print("warning: %s" % problem, file=sys.stderr)
    print("report: %s (%d records, %.1f s)" % (info["out_path"], info["records"], info["seconds"]))
    return ExitCode.OK
