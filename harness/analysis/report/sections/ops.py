"""The per-op section: profiled cases compared op by op between environments (or with the baseline),
and a link to every profiled case's trace folder. ``op_compare`` prepares the data; ``assets/ops.js``
draws it."""
from typing import Optional

from harness.analysis.report import op_compare
from harness.analysis.report.markup import esc, json_script
from harness.analysis.report.sections.context import Context, Part


def ops(ctx: Context) -> Optional[Part]:
    """The comparisons and the profiled cases; None when no record has a profile."""
    profs = op_compare.profiles(ctx.df, ctx.page_dir)
    if not profs:
        return None
    base = ctx.baseline.frame if ctx.baseline is not None else None
    comps = op_compare.comparisons(ctx.df, ctx.envs, ctx.ref, base, ctx.page_dir)
    blocks = [json_script("tm-ops", op_compare.ops_json(comps, profs))]
    body = '<div data-tm-ops data-src="tm-ops"></div>'
    if comps:
        blocks.append(json_script("tm-op-changes", op_compare.changes_json(comps)))
        body += ('<h3>Every op change</h3><div id="tm-table-ops" data-tm-table data-src="tm-op-changes" '
                 'data-page-size="25"></div>')
    intro = ("Cases run under torch.profiler after their timed samples ([profile] in the scenario, or run --profile). "
             "For a case profiled in two environments, each is compared with the reference environment (%s); with "
             "baseline records, the baseline's profile with the candidate's. Self time per profiled step, the largest "
             "changes first; \u2014: not among that side's heaviest ops. Each trace folder opens in TensorBoard's "
             "PyTorch Profiler tab (nox -s tensorboard), each trace file in Perfetto." % esc(ctx.ref))
    return Part(body, intro, blocks=tuple(blocks))
