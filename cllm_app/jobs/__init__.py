"""Background jobs: each runs in its own process; its state and progress live in the store,
so the window never freezes and a reloaded window re-attaches."""
