"""Errors that are shown to the user as they are: one line, naming the bad value and what is allowed."""


class ReimagineError(ValueError):
    """A user-facing error; hosts show its message without a traceback."""


class ParamError(ReimagineError):
    """A parameter value outside what the schema allows."""

    def __init__(self, name: str, value: object, allowed: str):
        self.name = name
        self.value = value
        self.allowed = allowed
        super().__init__(f"{name}={value!r} is not allowed: {allowed}")


class ModelNotAvailableError(ReimagineError):
    """A model that is neither on disk nor downloadable right now."""


class JobInterrupted(ReimagineError):
    """The user interrupted the job; images made so far are kept."""
