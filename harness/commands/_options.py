"""The options ``run`` and ``matrix`` share: which cases, how the output is treated, what is added."""


def add_case_options(parser, resume_help: str) -> None:
    """``--resume``/``--append``, ``--only``, ``--instructions``, ``--shard``, ``--shard-durations``,
    ``--profile`` (``resume_help``: what ``--resume`` runs for this command)."""
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help=resume_help)
    mode.add_argument("--append", action="store_true",
                      help="append to the output as is, rounds numbered after those it holds; default moves earlier "
                           "records to previous/")
    parser.add_argument("--only", action="append", default=[], metavar="AXIS=V1,V2",
                        help="keep cases whose AXIS matches one of the values (globs allowed); repeatable")
    parser.add_argument("--instructions", action="store_true",
                        help="also count each ok case's instructions under valgrind (callgrind), as [measure] "
                             "instructions = true does, after the timed rounds: deterministic figures for the gate's "
                             "time verdicts")
    parser.add_argument("--shard", metavar="K/N",
                        help="run only shard K of N (counted from 1): the cases split into N shards of about equal "
                             "estimated cost, the same split in every job for an unchanged scenario; each record "
                             "says its shard. Give each shard its own --out; `torchmatrix merge` joins them")
    parser.add_argument("--shard-durations", metavar="STORE",
                        help="with --shard: balance by the seconds each case took in STORE (its records' duration_s; "
                             "a record file or a folder of them, e.g. an earlier run) instead of the cost model "
                             "(batch x size, x3 for train); every shard's job must give the same STORE")
    parser.add_argument("--profile", action="append", default=[], metavar="AXIS=V[,V];AXIS=V",
                        help="also record a torch.profiler trace of the matching cases after their timed samples, "
                             "as a [profile] table's cases do (keys and values of an [[exclude]] table, e.g. "
                             "'model=cbam*;precision=bf16;mode=train'); traces go to OUT/profiles/LABEL/; "
                             "repeatable")
