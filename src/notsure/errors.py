"""Exceptions the CLI turns into one clear line on stderr and exit code 2."""


class NotsureError(Exception):
    """Base class for errors caused by the user's input or configuration, not by a bug."""


class DataError(NotsureError, ValueError):
    """A data file is missing, malformed or inconsistent; the message names the file and place."""


class ConfigError(NotsureError, ValueError):
    """An option or argument is out of range or inconsistent with the data."""


class FetchError(NotsureError):
    """Downloading a dataset failed; the message says how to place the files by hand."""
