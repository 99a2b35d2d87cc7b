"""Tools that build, train and evaluate the shipped models (``cuntong models …``).

They sit above ``edge`` so evaluation can run the terminal's real vision pipeline; nothing in
the terminal or the cloud imports them.
"""

#: What other packages may use: ``cli`` (the launcher's ``cuntong models`` sub-commands).
__all__ = ["cli"]
