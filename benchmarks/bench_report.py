"""How fast is the HTML report on a large store, and how big is the file? Prints the figures.

Writes a synthetic store of ``--records`` records (seven PyTorch environments, twelve
models with their own size axes, train and eval, five precisions, three checkpointing
modes, CPU and CUDA, five batch sizes, four sizes, every status, raw samples, output
probes; ``tests.analysis.report_synth``), builds the report from it and prints the
build time (of which reading the records: ``load_records`` per file, in parallel
worker processes when the input is large; drawing and writing the matplotlib figures
is included), the CPU time of this process and the file size. Goals: 100,000 records
in under 10 s, a file under 10 MB.

    python benchmarks/bench_report.py [--records 100000] [--out results/bench-report] [--keep]
"""
import argparse
import os
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from harness.analysis.report import build_report  # noqa: E402
from tests.analysis.report_synth import write_synthetic_store  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--out", default=os.path.join(ROOT, "results", "bench-report"),
                        help="folder for the synthetic store and the report (default: %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic store afterwards")
    args = parser.parse_args(argv)
    store = os.path.join(args.out, "store")
    shutil.rmtree(store, ignore_errors=True)
    start = time.perf_counter()
    paths = write_synthetic_store(store, n_records=args.records)
    store_bytes = sum(os.path.getsize(p) for p in paths)
    print("synthetic store: %d records in %d files, %.0f MB, written in %.1f s" % (
        args.records, len(paths), store_bytes / 1e6, time.perf_counter() - start))
    out = os.path.join(args.out, "index.html")
    cpu = time.process_time()
    result = build_report([store], out_path=out)
    cpu = time.process_time() - cpu
    size_mb = result["bytes"] / 1e6
    print("report: %s" % out)
    print("build time: %.2f s (reading records %.2f s, the report itself %.2f s); CPU time of this process "
          "%.2f s (record-parsing worker processes not counted)" % (
        result["seconds"], result["load_seconds"], result["seconds"] - result["load_seconds"], cpu))
    print("file size: %.2f MB (%.0f bytes per record)" % (size_mb, result["bytes"] / max(result["records"], 1)))
    figures = os.path.join(args.out, "figures")
    if os.path.isdir(figures):
        print("figures: %s (%s)" % (figures, ", ".join(sorted(os.listdir(figures)))))
    print("goals: build under 10 s: %s; file under 10 MB: %s" % (
        "met" if result["seconds"] < 10 else "MISSED", "met" if size_mb < 10 else "MISSED"))
    if result["problems"]:
        print("problems: %s" % "; ".join(result["problems"][:5]))
    if not args.keep:
        shutil.rmtree(store, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
