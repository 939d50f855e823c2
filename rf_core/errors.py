"""Exception types raised by rf_core; command wrappers turn them into one-line errors."""


class RFError(Exception):
    """A data or runtime error: the command exits 1 with this message."""


class BadRecord(RFError):
    """An input line that is not a valid record of the expected kind."""

    def __init__(self, lineno: int, message: str):
        super().__init__(f"line {lineno}: {message}")
        self.lineno = lineno
        self.reason = message


class UsageError(RFError):
    """A mistake in how the command was called (a flag, an option's value, a plugin name):
    the command exits 2 with this message. Library code and plugins raise it; only the command
    layer knows about click."""


class BadOption(UsageError):
    """A plugin option's value that the plugin can judge only once it runs (a LoRA target
    the model does not have): a usage error, exit 2. The message names the option."""


class UnknownPlugin(UsageError):
    """A plugin name that no installed plugin registered (a usage error, exit 2)."""

    def __init__(self, kind: str, name: str, installed: list[str], notes: list[str] = ()):
        names = ", ".join(sorted(installed)) or "none"
        super().__init__(f"unknown {kind} {name!r}; installed: {names}"
                         + "".join(f"; {note}" for note in notes))
        self.kind = kind
        self.name = name
