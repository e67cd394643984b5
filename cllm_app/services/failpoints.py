"""Named points where a test can inject a failure.

Multi-step changes (rename, duplicate, delete, restore, growing layers) call
`failpoint(name)` between their steps; tests arm each name in turn and check
that everything is as it was before. Unarmed, a failpoint is a set lookup.
"""

from collections.abc import Iterator
from contextlib import contextmanager

_armed: set[str] = set()


class InjectedFailure(RuntimeError):
    pass


def failpoint(name: str) -> None:
    if name in _armed:
        raise InjectedFailure(f"injected failure at {name}")


@contextmanager
def armed(name: str) -> Iterator[None]:
    _armed.add(name)
    try:
        yield
    finally:
        _armed.discard(name)
