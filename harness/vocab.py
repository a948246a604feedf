"""The project's shared words, defined once: case axes and their values, record
statuses, verdict kinds and values, exit codes. The precisions' names come from their
table, ``harness.precisions``, where each precision is declared.

Both sides import this module (the runner on Python 3.9 + PyTorch 1.10, the analysis
side without torch), so it holds names and tuples only: standard library, no I/O.
"""
import enum
import re

from harness import precisions as _precisions

# --- a case ---------------------------------------------------------------------------

MODES = ("train", "eval")
#: The precision axis's values, from the one table of what each precision is
#: (``harness.precisions``), re-exported here beside the other axes' words.
PRECISIONS = _precisions.NAMES
#: Unit roundoff of the arithmetic each precision runs in (autocast: its low dtype). New code
#: reads ``harness.precisions``; this re-export serves ``harness.analysis.gate.rules``.
UNIT_ROUNDOFF = _precisions.UNIT_ROUNDOFF
#: Gradient-checkpointing modes: off, torch.utils.checkpoint with use_reentrant=True / False. The zoo
#: spells the same tuple as its own API (``models.CHECKPOINT_MODES``): this module stays standard
#: library only and the zoo imports no harness module; a test holds the two equal.
CHECKPOINTS = ("none", "reentrant", "non_reentrant")
DEVICES = ("cpu", "cuda")
#: Which kernel ``scaled_dot_product_attention`` may use: ``default`` leaves the choice to torch;
#: the others allow that one backend only (``harness.runner.sdpa``), where the build has it.
SDPA_BACKENDS = ("default", "math", "flash", "efficient", "cudnn")
#: The ``batch_size`` value that asks for a search instead of a batch: the largest batch size that fits the
#: scenario's memory cap (``[max_batch]``; ``harness.runner.batch_search``). Never a normal case's batch.
MAX_BATCH = "max"
#: Why a largest-batch search stopped where it did: a probe needed more than the cap, a probe ran out of
#: memory, the ``[max_batch]`` limit fitted, or a probe ended otherwise (error, unsupported, crashed, timeout).
MAX_BATCH_LIMITS = ("cap", "oom", "limit", "failed")
#: The axes of a case, in key order. A case key joins their values; see ``harness.scenario.spec.Case``.
#: ``python_optimized``: the worker runs under ``python -O`` (asserts removed).
CASE_AXES = ("model", "mode", "batch_size", "size", "precision", "checkpoint", "device",
             "channels_last", "compile", "sdpa_backend", "python_optimized")

# --- a record -------------------------------------------------------------------------

#: ``ok``; ``unsupported`` (this build or device cannot run the combination); ``error``
#: (the model raised); ``crashed`` (the worker died); ``timeout``; ``oom``; ``skipped``
#: (the model declares the size invalid).
STATUSES = ("ok", "unsupported", "error", "crashed", "timeout", "oom", "skipped")
#: Statuses that say the case could not run here, as opposed to failed.
NOT_RUN_STATUSES = ("unsupported", "skipped")
#: Behaviour checks of an ok case (``harness.runner.checks``): the first two always run (train,
#: eval), the others when the scenario's ``[checks]`` table asks.
CHECKS = ("params_updated", "eval_buffers", "deterministic", "leak")

#: The environment variable naming a JSON file ``{case key: step seconds}`` that decides which cases the
#: instruction pass counts (``harness.runner.instruction_pass``): ``ab`` writes the base's steps for the
#: head's counting round, so both sides count the same cases.
COUNT_STEPS_FROM_ENV = "TORCHMATRIX_COUNT_STEPS_FROM"

#: The key of pytest-benchmark's ``extra_info`` under which ``harness.pytest_plugin`` saves a case's whole
#: record, and from which ``harness.analysis.pytest_benchmark`` reads it back.
PYTEST_BENCHMARK_RECORD_KEY = "torchmatrix_record"

#: The words that open an accuracy note where the calibrated rule cannot judge (its expected error is too
#: large to tell a fault from rounding: ``harness.runner.accuracy.judgeable``): the record's
#: ``accuracy.passed`` is then None, never True, and its ``failures`` hold the notes with the figures.
ACCURACY_NOT_JUDGED = "not judged: this precision cannot compute these values here"

# --- the gate -------------------------------------------------------------------------

#: What a verdict is about, in order of severity.
VERDICT_KINDS = ("status", "accuracy", "memory", "time")
#: The case key of the gate's run-wide verdict (kind ``time``): the geometric mean of every
#: compared case's time ratio in one environment. Not a case: no case key has this form.
AGGREGATE_CASE_KEY = "(all cases)"
#: What a verdict says. ``lost``: the evidence a verdict rests on, present on the baseline, is missing on
#: the candidate (an instruction count whose counting crashed or timed out, a tensor peak that
#: disappeared): it fails like a regression, because a gate that falls back to weaker evidence can be
#: passed by breaking the stronger one.
VERDICTS = ("regressed", "lost", "improved", "unchanged", "inconclusive", "not_comparable", "new", "vanished")
#: The verdicts that fail the gate (exit code 1).
FAILING_VERDICTS = ("regressed", "lost")


#: The extras of a case (``harness.runner.extras``): what runs after its timed samples, in that order; none
#: can fail the case. Named here so the analysis side can read them without importing the runner.
EXTRA_NAMES = ("flops", "tensor_peak", "profile", "checks", "references", "task")

#: What an environment (variant) label may hold: it names a record file in the output folder.
ENV_LABEL_RE = re.compile(r"^[A-Za-z0-9+_-][A-Za-z0-9.+_-]*$")


class ExitCode(enum.IntEnum):
    """Exit status of every command (``run``, ``report``, ``gate``, ``ab``, ...)."""

    #: done; for the gate: nothing regressed
    OK = 0
    #: the command ran and found a failure: a regression (gate, ab) or a run that could not go on
    FAILURE = 1
    #: bad input (a file, key or value); nothing was written
    INPUT = 2
    #: a bug in torchmatrix; the traceback goes to stderr
    INTERNAL = 3
    #: stopped by Ctrl-C (128 + SIGINT); every finished record is kept
    INTERRUPTED = 130
