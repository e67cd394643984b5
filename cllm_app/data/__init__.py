"""The pure data work: reading files of many formats and web pages as text, finding their
encoding, and keeping each text compressed beside its token caches. Nothing here knows the
store or Flask."""


class Refused(Exception):
    """A file that cannot become training text; `reason` says why, for a person."""

    outcome = "refused"

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Empty(Refused):
    """A file that was read but holds no text worth learning from."""

    outcome = "empty"
