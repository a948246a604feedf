"""``torchmatrix merge SHARD_DIR... --out DIR``: join the record folders of a sharded run.

What is refused and what is written: ``harness.shard.merge``.
"""
from harness.shard.merge import merge_shards

NAME = "merge"
HELP = "join the output folders of a sharded run (run --shard K/N) into one store"
DESCRIPTION = ("Join the output folders of `torchmatrix run --shard K/N` (one per shard) into one record file per "
               "environment in --out, in the unsharded case order. Refused, with one line and exit 2 and nothing "
               "written: a missing or incomplete shard, a shard or case given twice, shards of different scenario "
               "contents or splits, records without a shard part. Merging the same shards again gives the same "
               "bytes.")


def add_arguments(parser) -> None:
    parser.add_argument("shards", nargs="+", metavar="SHARD_DIR",
                        help="the output folder of each shard (its --out), e.g. a CI job's artifact")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder for the merged DIR/ENV_LABEL.jsonl (new, or holding an earlier merge of the "
                             "same shards)")


def run(args) -> int:
    return merge_shards(args.shards, args.out)
