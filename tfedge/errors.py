"""tfedge's errors are the device package's: one hierarchy, one set of exit codes (see the README).

BudgetNotMet (exit 4) is raised for these budgets only: `tfedge convert --min-cosine / --min-top1-agreement /
--max-abs-error` (tfedge.convert.verify.BUDGETS; `auto` when no candidate meets them), `tfedge edgetpu check`
and `compile --require-full`, and `tfedge-run verify` when the stored sample's output differs. A budget with
nothing to check it against (`--verify-count 0`) is BadInput (exit 2), never skipped.
"""

from tfedge_device.errors import (  # noqa: F401
    BAD_INPUT,
    BUDGET,
    ENVIRONMENT,
    INTERNAL,
    OK,
    BadInput,
    BudgetNotMet,
    EnvironmentMissing,
    TfedgeError,
    report,
)
