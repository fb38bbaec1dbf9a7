"""Exceptions for problems the user can fix; the CLI turns them into a message and an exit code."""


class ChurnlensError(Exception):
    """Bad input or configuration: reported without a traceback, exit code 2."""

    exit_code = 2


VALIDATED = "validated tables (churnlens.validate(frames), or read from files by the config)"


def expect(value, kind: type, what: str) -> None:
    """Refuse an argument of the wrong kind at a public entry point (e.g. raw DataFrames
    where validated tables belong) with a message saying what belongs there, rather than an
    AttributeError deep inside."""
    if not isinstance(value, kind):
        raise ChurnlensError(f"{what}, not {type(value).__name__}")
