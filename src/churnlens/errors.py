"""Exceptions for problems the user can fix; the CLI turns them into a message and an exit code."""


class ChurnlensError(Exception):
    """Bad input or configuration: reported without a traceback, exit code 2."""

    exit_code = 2
