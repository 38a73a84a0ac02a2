"""Errors a user can act on: each prints as one line and exits with its own code."""

import click


class SertuneError(click.ClickException):
    """Base class: click prints ``Error: <message>`` and exits with ``exit_code``."""

    exit_code = 1


class CorpusError(SertuneError):
    """Missing, corrupt or misnamed audio; a folder in no known layout; a bad manifest."""

    exit_code = 3

    @classmethod
    def check(cls, where, checks: list[tuple[bool, str]]) -> None:
        """Raise for the first (ok, problem) that is not ok: one line naming ``where``."""
        for ok, problem in checks:
            if not ok:
                raise cls(f"{where}: {problem}")


class StoreError(SertuneError):
    """A feature store that is missing, incomplete, corrupt or of another schema."""

    exit_code = 4


class ResultsError(SertuneError):
    """A results file that is missing, malformed or of the wrong schema."""

    exit_code = 5


class BaselineMissingError(ResultsError):
    """A report asked for without any N_att = 1 rows to compare against."""

    exit_code = 6


class TrialError(SertuneError):
    """Trials that failed for good (after Ray's retries), e.g. a dead worker every time."""

    exit_code = 7


class ConfigError(SertuneError):
    """A configuration or search-space file that cannot be used."""

    exit_code = 2


class StorageError(SertuneError):
    """Storage that cannot be used: no such bucket, access denied, endpoint unreachable."""

    exit_code = 9
