"""What every command shares: the global options after its name, defaults from the
configuration file, the check that its text is UTF-8, and one line and an exit code for
whatever escapes it.

Every command is a `Command` under a `Group`: it takes the global options (`globals`) after
its name too; its options' defaults come from the configuration file where it names them
(`Context`); before it runs, its arguments, options and environment values are checked to be
valid UTF-8 text (a non-UTF-8 byte arrives from the operating system as a lone surrogate,
which no database, file or terminal can take), and whatever `ShredstoreError`,
`KeyVaultError`, `OSError` or `UnicodeError` escapes it becomes one line on stderr and its
exit code: all in one place, for every command.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

import keyvault
from shredstore.cli.globals import CONFIG, apply_verbosity, command_options
from shredstore.cli.settings import Settings
from shredstore.errors import ConfigurationError, ShredstoreError, StoreUnavailable

__all__ = ["EXIT_PROBLEM", "EXIT_USAGE", "Command", "Context", "Group", "RootGroup",
           "fail"]

EXIT_PROBLEM = 1
"""The command ran and found a problem (tampering, a failed erasure, a missing receipt)."""
EXIT_USAGE = 2
"""A usage or configuration error: one line on stderr, never a traceback."""


class Context(click.Context):
    """A context whose options default to the configuration file's values (by parameter
    name, in every command), after their environment variables."""

    def lookup_default(self, name: str, call: bool = True) -> Any:
        value = super().lookup_default(name, call)  # type: ignore[call-overload]
        if value is None:
            value = self.meta.get(CONFIG, (None, {}))[1].get(name)
        return value


class Command(click.Command):
    """A command that takes the global options after its name, and refuses text that is not
    valid UTF-8 before it runs."""

    context_class = Context

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(command_options())

    def invoke(self, ctx: click.Context) -> Any:
        _refuse_bad_text(ctx)
        with _errors():
            apply_verbosity(ctx.ensure_object(Settings))
            return super().invoke(ctx)


class Group(click.Group):
    """A command group whose commands and subgroups take the global options, check their
    text and turn errors into one line and an exit code (see the module's docstring)."""

    context_class = Context
    command_class = Command
    group_class = type  # subgroups are Group too
    takes_global_options = True
    """False for the root group, which declares them with their variables (`globals`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.takes_global_options:
            self.params.extend(command_options())

    def invoke(self, ctx: click.Context) -> Any:
        _refuse_bad_text(ctx)
        with _errors():
            return super().invoke(ctx)


class RootGroup(Group):
    """The ``shredstore`` group: it declares the global options itself, with their
    variables, and says what is wrong with a configuration file in one line."""

    takes_global_options = False

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except ConfigurationError as error:
            fail(EXIT_USAGE, error)


def fail(code: int, error: Exception | str) -> NoReturn:
    """Say `error` on one line of stderr and exit with `code`."""
    text = " ".join(str(error).split())  # one line
    click.echo(f"shredstore: {text.encode('utf-8', 'backslashreplace').decode('utf-8')}",
               err=True)
    sys.exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    """Whatever the library or the system raises becomes one line and an exit code."""
    try:
        yield
    except click.UsageError as error:  # a subcommand's bad option: one line, as the rest
        fail(EXIT_USAGE, error.format_message())
    except (ConfigurationError, StoreUnavailable, keyvault.VaultConfigurationError,
            keyvault.WrongMasterKeyError, keyvault.VaultUnavailable, keyvault.RotationError,
            keyvault.KmsError) as error:
        fail(EXIT_USAGE, error)
    except (ShredstoreError, keyvault.KeyVaultError) as error:
        fail(EXIT_PROBLEM, error)
    except UnicodeError:
        fail(EXIT_USAGE, "text that is not valid UTF-8 (an argument, an environment value "
             "or a file's content)")
    except OSError as error:
        where = f": {error.filename}" if error.filename is not None else ""
        fail(EXIT_USAGE, f"{error.strerror or type(error).__name__}{where}")


def _refuse_bad_text(ctx: click.Context) -> None:
    """Exit 2 if an argument, option or environment value of `ctx` is not valid UTF-8.

    Names the parameter, never its value.
    """
    for param in ctx.command.params:
        if param.name is not None and not _is_text(ctx.params.get(param.name)):
            name = param.opts[0] if isinstance(param, click.Option) else \
                param.human_readable_name
            fail(EXIT_USAGE, f"{name}: not valid UTF-8 text (ids, reasons and file names "
                 "must be UTF-8)")


def _is_text(value: object) -> bool:
    if isinstance(value, tuple | list):
        return all(_is_text(item) for item in value)
    if isinstance(value, str | Path):
        try:
            str(value).encode("utf-8")
        except UnicodeEncodeError:
            return False
    return True
