"""Errors that are the user's to fix: they end a program with one clear line, never a traceback."""


class UserError(Exception):
    """Bad input from the user (a file, a flag, a config key, a busy port). Exit status 2."""

    exit_code = 2


class ConfigError(UserError):
    """A configuration file or flag that does not fit the typed configuration."""


class DataError(UserError):
    """A data file (training data, labels, CSV) that is missing or malformed."""
