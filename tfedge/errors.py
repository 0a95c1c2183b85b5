"""tfedge's errors are the device package's: one hierarchy, one set of exit codes (see the README)."""

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
