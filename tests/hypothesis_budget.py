"""How many examples a Hypothesis test generates: a fixed, derandomized budget in CI, or
LSTM_EXP_HYPOTHESIS_EXAMPLES examples per test for a longer local search."""

import os

from hypothesis import HealthCheck, settings

LOCAL_EXAMPLES = int(os.environ.get("LSTM_EXP_HYPOTHESIS_EXAMPLES", "0"))


def budget(ci_examples: int):
    """Hypothesis settings: `ci_examples` examples, or LSTM_EXP_HYPOTHESIS_EXAMPLES when set."""
    return settings(
        max_examples=LOCAL_EXAMPLES or ci_examples, derandomize=True, database=None, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
