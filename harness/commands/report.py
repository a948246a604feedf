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
    parser.add_argument("--upgrade", nargs=2, metavar=("FROM", "TO"),
                        help="the pair of environments of the upgrade section (default: the oldest and the newest)")
    parser.add_argument("--markdown", metavar="FILE",
                        help="also write the upgrade (FROM to TO) as Markdown for a pull request comment")
    parser.add_argument("--verdicts",
                        help="the gate's verdicts JSON (torchmatrix gate --json), for the comparison section")


def run(args) -> int:
    from harness.analysis.load import InputError
    from harness.analysis.report import build_report
    from harness.analysis.report.upgrade import PR_COMMENT_CHARS

    markdown = getattr(args, "markdown", None)
    if markdown and os.path.isdir(markdown):
        print("error: --markdown %s is a folder: name the Markdown file to write (e.g. %s)" % (
            markdown, os.path.join(markdown, "upgrade.md")), file=sys.stderr)
        return ExitCode.INPUT
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
                            verdicts=verdicts, upgrade=getattr(args, "upgrade", None), markdown_path=markdown)
    except InputError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return ExitCode.INPUT
    except OSError as exc:  # the output's folder cannot be made or written
        print("error: cannot write the report to %s: %s" % (args.out, exc.strerror or exc), file=sys.stderr)
        return ExitCode.INPUT
    for problem in info.get("problems", []):
        print("warning: %s" % problem, file=sys.stderr)
    print("report: %s (%d records, %.1f s)" % (info["out_path"], info["records"], info["seconds"]))
    if markdown:
        print("upgrade: %s (%d characters; a pull request comment holds %d)" % (
            markdown, info["markdown_chars"], PR_COMMENT_CHARS))
    return ExitCode.OK
