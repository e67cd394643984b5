"""The pure data work behind the queue: reading files of many formats as text, finding their
encoding, and keeping each text compressed beside its token caches. Nothing here knows the store."""


class Refused(Exception):
    """A file that cannot become training text; `reason` says why, for a person."""

    outcome = "refused"

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Empty(Refused):
    """A file that was read but holds no text worth learning from."""

    outcome = "empty"
