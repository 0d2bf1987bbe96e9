"""What Hydra cannot return to `main`: it discards the return values of the task and of the sweeper.

The task (a single run's error) and the sweeper (a sweep's exit status) hand their result over here,
and `main` takes it once Hydra returns. Nothing else passes through this module.
"""

_handed: list = []


def hand_over(result: object) -> None:
    """Leaves `result` (an exit status, or the exception that ended a single run) for `main`."""
    _handed.append(result)


def take() -> object:
    """The result handed over last (None if none), clearing what is left."""
    result = _handed[-1] if _handed else None
    _handed.clear()
    return result
