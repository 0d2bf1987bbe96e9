"""The one class of user error, printed by the entry point as a single line."""


class ConfigError(ValueError):
    """A configuration value or an input that lstm_exp cannot accept.

    Args:
        key: the dotted config key at fault, e.g. ``model.units``.
        received: the value that was given.
        allowed: what would have been accepted, in words.

    Example:
        >>> str(ConfigError("model.units", [4, -1], "a list of positive integers"))
        'model.units must be a list of positive integers. Received: model.units=[4, -1]'
    """

    def __init__(self, key: str, received: object, allowed: str):
        self.key, self.received, self.allowed = key, received, allowed
        super().__init__(f"{key} must be {allowed}. Received: {key}={_short(received)}")


def _short(value: object, limit: int = 120) -> str:
    # One line, whatever the value: long literals are cut so the message stays readable.
    text = repr(value) if isinstance(value, str) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
