"""``python -m harness.analysis.gate``: the gate command on its own (= ``torchmatrix gate``)."""
import sys

from harness.analysis.gate import main

sys.exit(main())
