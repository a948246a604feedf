"""The comparative HTML report: ``build_report(paths, out_path, baseline_paths, reference_env, verdicts)``.

One self-contained offline HTML file from any set of record files: inline CSS and
script (``assets/``), inline SVG figures drawn with matplotlib (``figures``, also
written as SVG and PNG under ``figures/`` beside the page), the data as compact
embedded JSON (``payload``, ``datasets``), no network request of any kind. Its 13
sections, in page order (``sections.SECTIONS``, each shown only when it has something
to show): problems, at a glance, the run, compatibility, speed, memory, FLOPs, the
largest batch that fits, per-op profiles, accuracy, failures, every case, and the
comparison with a baseline when one is given. Bad lines are reported as problems (file
and line) in the page and in the returned dict; the good records are still reported.
Never imports torch.

Modules, in the order data flows: ``loader`` (read the records, in parallel when
large), ``frame`` (prepare them; ``rounds``: what several rounds of a case show
together), ``environments``, ``aggregate``, ``compare``, ``basis`` and ``heatmap`` (the
numbers each section shows; ``basis``: which measure a comparison rests on; ``heatmap``:
the relative heatmaps' cells, their measure and their noise), ``drift`` (fp32 output
drift across environments), ``max_batch`` (the largest-batch searches), ``op_compare``
(per-op comparison of profiled cases), ``datasets`` and ``payload`` (the embedded
JSON), ``figures`` and ``flops_figure`` (matplotlib), ``markup`` (HTML pieces and the
page), ``sections`` (one builder per section), ``build`` (``build_report``).
"""
from harness.analysis.report.build import DEFAULT_OUT, build_report

__all__ = ["DEFAULT_OUT", "build_report"]
