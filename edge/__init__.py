"""edge: see docs/architecture.md for where it sits."""

#: What other packages may use: the agent (the launcher runs it), the device identity, and
#: the vision pipeline (``modeltools`` evaluates it). Everything else is the agent's own.
__all__ = ["agent", "identity", "vision"]
