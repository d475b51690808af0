"""The global options: ``--url``, ``--vault-url``, ``--master-key-file``, ``--master-key``,
``--json``, ``-q`` and ``-v``, taken before the command's name and after it alike.

Before the name, the group reads them with their environment variables and the configuration
file (`settings`) into the `Settings` every command gets; after it, each one given overrides
what the group read. The precedence is: an option (after the name, then before it) > its
environment variable > the configuration file > the default.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from shredstore.cli.output import note
from shredstore.cli.settings import Settings, find_config, load_config
from shredstore.store import DEFAULT_URL

__all__ = ["CONFIG", "apply_verbosity", "command_options", "group_options", "settings_from"]

CONFIG = "shredstore.config"
"""Where the root context's `meta` holds the configuration file's defaults."""

_KEY_HELP = ("File holding the base64 master key, mode 600, or an envelope key file of a KMS "
             "(or SHREDSTORE_MASTER_KEY_FILE).")
_SPEC_HELP = ("The master key in a KMS: kms:aws-kms:<key ARN> or "
              "kms:vault-transit:<URL>/<mount>/<key> (docs/kms.md); or file:PATH (or "
              "SHREDSTORE_MASTER_KEY, which may also hold the key itself in base64).")
_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--url",), {"envvar": "SHREDSTORE_URL", "metavar": "URL",
                  "help": f"Database URL of the event store (or SHREDSTORE_URL; default "
                          f"{DEFAULT_URL})."}),
    (("--vault-url",), {"envvar": "SHREDSTORE_VAULT_URL", "metavar": "URL",
                        "help": "Database URL of the key vault, if not the event store's (or "
                                "SHREDSTORE_VAULT_URL)."}),
    (("--master-key-file",), {"envvar": "SHREDSTORE_MASTER_KEY_FILE", "help": _KEY_HELP,
                              "type": click.Path(dir_okay=False, path_type=Path)}),
    (("--master-key", "master_key"), {"envvar": "SHREDSTORE_MASTER_KEY", "metavar": "SPEC",
                                      "help": _SPEC_HELP, "show_envvar": False}),
    (("--json", "as_json"), {"is_flag": True, "help": "Results as JSON: one object per line."}),
    (("-q", "--quiet"), {"is_flag": True, "help": "Only results and errors: no progress, no "
                                                  "notes."}),
    (("-v", "--verbose"), {"count": True, "help": "More detail on stderr (-vv: debugging)."}),
]
_HANDLER = "shredstore-cli"
_RANK = {ParameterSource.COMMANDLINE: 0, ParameterSource.ENVIRONMENT: 1,
         ParameterSource.DEFAULT_MAP: 2}


def group_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate the root group with the global options and ``--config``."""
    for decls, attrs in reversed(_OPTIONS):
        command = click.option(*decls, **attrs)(command)
    return click.option(
        "--config", envvar="SHREDSTORE_CONFIG", is_eager=True, expose_value=False,
        type=click.Path(dir_okay=False, exists=True, path_type=Path), callback=_read_config,
        help="The configuration file (default: the nearest shredstore.toml, or pyproject.toml "
             "with [tool.shredstore]; or SHREDSTORE_CONFIG).")(command)


def command_options() -> list[click.Option]:
    """The global options as a command or subgroup takes them after its name: each one given
    overrides the group's."""
    return [click.Option(decls, callback=_override, expose_value=False,
                         **{name: value for name, value in attrs.items()
                            if name not in ("envvar", "show_envvar")})
            for decls, attrs in _OPTIONS]


def settings_from(ctx: click.Context, params: dict[str, Any]) -> Settings:
    """The root group's `Settings`: its options, their variables, the configuration file."""
    spec = _master_key(ctx, params["master_key"], params["master_key_file"])
    config = ctx.meta.get(CONFIG, (None, {}))[0]
    return Settings(url=params["url"] or DEFAULT_URL, vault_url=params["vault_url"],
                    master_key_spec=spec, as_json=params["as_json"],
                    verbosity=params["verbose"] - params["quiet"], config=config)


def apply_verbosity(settings: Settings, *, default: int = logging.WARNING) -> None:
    """Send shredstore's and keyvault's log records to this run's stderr, from the level
    ``-q`` (errors only) or ``-v`` (``-vv``: debugging) ask for, else from `default`."""
    level = (logging.ERROR if settings.quiet else default if settings.verbosity == 0 else
             min(default, logging.INFO if settings.verbosity == 1 else logging.DEBUG))
    for name in ("shredstore", "keyvault"):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == _HANDLER]:
            logger.removeHandler(old)
        handler = _Notes()
        handler.set_name(_HANDLER)
        handler.setLevel(level)
        handler.setFormatter(logging.Formatter("shredstore: %(message)s"))
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > level:
            logger.setLevel(level)


class _Notes(logging.Handler):
    """Log records as notes on this run's stderr, never stuck to a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            note(self.format(record))
        except Exception:  # noqa: BLE001 - logging's own rule: a record never raises
            self.handleError(record)


def _read_config(ctx: click.Context, _param: click.Parameter, path: Path | None) -> None:
    found = path if path is not None else find_config(Path.cwd())
    ctx.meta[CONFIG] = (found, load_config(found) if found is not None else {})


def _master_key(ctx: click.Context, spec: str | None, key_file: Path | None) -> str | None:
    """The master key's specification, from the highest-ranked source: on the command line,
    ``--master-key`` then ``--master-key-file``; then their variables; then the file."""
    candidates = []
    for order, (name, value) in enumerate((("master_key", spec),
                                           ("master_key_file", key_file))):
        source = ctx.get_parameter_source(name)
        if value is None or source not in _RANK:
            continue
        text = str(value) if name == "master_key" else f"file:{value}"
        if name == "master_key" and source is not ParameterSource.ENVIRONMENT:
            _check_spec(text)
        candidates.append((_RANK[source], order, text))
    return min(candidates)[2] if candidates else None


def _check_spec(text: str) -> None:
    if not text.startswith(("kms:", "file:")):
        raise click.UsageError("--master-key takes kms:<KMS key> or file:PATH; never put a key "
                               "itself on a command line (use a file, or SHREDSTORE_MASTER_KEY)")


def _override(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """A global option given after the command's name: it overrides the group's."""
    if param.name is None or ctx.get_parameter_source(param.name) is not \
            ParameterSource.COMMANDLINE:
        return
    settings: Settings = ctx.ensure_object(Settings)
    match param.name:
        case "master_key":
            _check_spec(value)
            settings = replace(settings, master_key_spec=value)
        case "master_key_file":
            settings = replace(settings, master_key_spec=f"file:{value}")
        case "quiet":
            settings = replace(settings, verbosity=-1)
        case "verbose":
            settings = replace(settings, verbosity=max(settings.verbosity, 0) + value)
        case _:
            settings = replace(settings, **{param.name: value})
    ctx.obj = settings
