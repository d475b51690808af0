"""The command line's shared manners: the version, global options before or after the
command's name, the configuration file and the precedence of settings, ``--json`` on every
command that reports, colour, ``-q`` / ``-v``, the verifying key of a signing key, and the
exit codes of bad input."""

from __future__ import annotations

import json
import logging
from importlib import metadata
from pathlib import Path
from typing import Any

import click
import pytest

import keyvault
import shredstore as package
from keyvault import MasterKey
from shredstore import EventStore
from shredstore.cli import cli
from tests.cli.runner import Ran, shredstore
from tests.shredding.events import CustomerRegistered


def erased_log(url: str, master: Path) -> str:
    """c-1 held, c-2 erased."""
    with EventStore(url, master_key=MasterKey.from_file(master)) as store:
        for subject in ("c-1", "c-2"):
            store.append(f"customer-{subject}", [CustomerRegistered(
                customer_id=subject, name="Ann Example", email="ann@example.org",
                credit_limit=1)])
        store.erase_subject("c-2", request_id="REQ-9")
    return url


def json_lines(result: Ran) -> list[dict[str, Any]]:
    """Every line of stdout, each one JSON object."""
    assert result.stdout.strip(), result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


# --- the version -----------------------------------------------------------------------------


def test_the_version_is_the_distributions_everywhere() -> None:
    installed = metadata.version("shredstore")
    assert package.__version__ == keyvault.__version__ == installed
    assert shredstore("--version").stdout == f"shredstore {installed}\n"


# --- global options, before or after the command's name ---------------------------------------


def test_global_options_are_taken_after_the_command_name(tmp_path: Path,
                                                         master_file: Path) -> None:
    url = erased_log(f"sqlite:///{tmp_path / 'e.db'}", master_file)
    before = shredstore("--url", url, "--json", "status", "c-2")
    after = shredstore("status", "c-2", "--url", url, "--json")
    assert before.returncode == after.returncode == 0, after.stderr
    assert json_lines(before) == json_lines(after)
    assert json_lines(after)[0]["state"] == "erased"
    nested = shredstore("keys", "rotate-master", "--url", url, "--master-key-file",
                        str(master_file), "--new-key-file", str(tmp_path / "missing.key"))
    assert nested.returncode == 2
    assert "missing.key" in nested.stderr


def test_every_command_and_group_takes_the_global_options() -> None:
    def walk(command: click.Command, path: str) -> None:
        names = {option for param in command.params for option in param.opts}
        assert {"--url", "--vault-url", "--master-key-file", "--master-key", "--json", "-q",
                "-v"} <= names, path
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(cli, "shredstore")


def test_an_option_after_the_name_wins_over_one_before_and_the_environment(
        tmp_path: Path) -> None:
    where = {name: f"sqlite:///{tmp_path / name}.db" for name in ("before", "after", "env")}
    ran = shredstore("--url", where["before"], "init", "--url", where["after"],
                     env={"SHREDSTORE_URL": where["env"]})
    assert ran.returncode == 0, ran.stderr
    assert [p.name for p in tmp_path.glob("*.db")] == ["after.db"]


def test_a_master_key_itself_is_refused_on_the_command_line_before_or_after(
        sqlite_url: str) -> None:
    key = MasterKey.generate().to_base64()
    for args in (("--master-key", key, "status", "c-1"), ("status", "c-1", "--master-key", key)):
        ran = shredstore(*args, url=sqlite_url)
        assert ran.returncode == 2
        assert "never put a key itself on a command line" in ran.stderr
        assert key not in ran.stdout + ran.stderr


# --- the configuration file --------------------------------------------------------------------


def test_the_nearest_configuration_file_names_the_store_and_the_key(
        tmp_path: Path, master_file: Path) -> None:
    project = tmp_path / "project"
    (project / "deep" / "er").mkdir(parents=True)
    (project / "secrets").mkdir()
    master_file.rename(project / "secrets" / "master.key")
    (project / "shredstore.toml").write_text(
        'url = "sqlite:///data/events.db"\nmaster-key-file = "secrets/master.key"\n')
    (project / "data").mkdir()
    erased_log(f"sqlite:///{project / 'data' / 'events.db'}", project / "secrets" / "master.key")
    ran = shredstore("--json", "export", "c-1", cwd=project / "deep" / "er")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["subject"] == "c-1"  # opened: the key was found too


def test_pyproject_tool_shredstore_is_read_and_other_pyprojects_are_passed_over(
        tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.shredstore]\nurl = "sqlite:///top.db"\n')
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "pyproject.toml").write_text('[project]\nname = "other"\n')
    assert shredstore("init", cwd=inner).returncode == 0
    assert (tmp_path / "top.db").exists()
    assert not list(inner.glob("*.db"))


def test_precedence_option_then_environment_then_file_then_default(tmp_path: Path) -> None:
    (tmp_path / "shredstore.toml").write_text('url = "sqlite:///file.db"\n')
    env = {"SHREDSTORE_URL": f"sqlite:///{tmp_path / 'env.db'}"}
    shredstore("init", "--url", f"sqlite:///{tmp_path / 'option.db'}", cwd=tmp_path, env=env)
    shredstore("init", cwd=tmp_path, env=env)
    shredstore("init", cwd=tmp_path)
    (tmp_path / "shredstore.toml").unlink()
    shredstore("init", cwd=tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.db")) == [
        "env.db", "file.db", "option.db", "shredstore.db"]


def test_config_and_shredstore_config_name_the_file(tmp_path: Path) -> None:
    named = tmp_path / "settings" / "prod.toml"
    named.parent.mkdir()
    named.write_text('url = "sqlite:///prod.db"\n')
    assert shredstore("--config", str(named), "init", cwd=tmp_path).returncode == 0
    assert (named.parent / "prod.db").exists()
    named.write_text('url = "sqlite:///other.db"\n')
    assert shredstore("init", cwd=tmp_path,
                      env={"SHREDSTORE_CONFIG": str(named)}).returncode == 0
    assert (named.parent / "other.db").exists()


@pytest.mark.parametrize(("text", "said"), [
    ('colour = "blue"\n', "unknown setting 'colour'"),
    ("url = 5\n", "url must be a non-empty string"),
    ('master-key = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0cw=="\n',
     "never write a key itself into a configuration file"),
    ("url = [\n", "not valid TOML"),
])
def test_a_bad_configuration_file_is_one_line_and_exit_2(tmp_path: Path, text: str,
                                                        said: str) -> None:
    (tmp_path / "shredstore.toml").write_text(text)
    ran = shredstore("status", "c-1", cwd=tmp_path)
    assert ran.returncode == 2
    assert len(ran.stderr.splitlines()) == 1
    assert said in ran.stderr
    assert "c2VjcmV0" not in ran.stderr


def test_the_configured_receipts_folder_and_signing_key_are_used(
        tmp_path: Path, master_file: Path) -> None:
    url = erased_log(f"sqlite:///{tmp_path / 'e.db'}", master_file)
    assert shredstore("keys", "new-signing-key", "--out", str(tmp_path / "k.pem")).returncode \
        == 0
    (tmp_path / "shredstore.toml").write_text(
        f'url = "{url}"\nreceipts = "proof"\nsigning-key-file = "k.pem"\n')
    ran = shredstore("--json", "erase", "c-1", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    receipt = Path(json_lines(ran)[0]["receipt"])
    assert receipt.parent == tmp_path / "proof"
    assert "signature valid" in shredstore("receipt", "verify", str(receipt)).stdout


# --- --json on every command that reports -------------------------------------------------------


def test_every_reporting_command_answers_in_json(tmp_path: Path, master_file: Path) -> None:
    url = erased_log(f"sqlite:///{tmp_path / 'e.db'}", master_file)
    key = tmp_path / "sign.pem"
    runs = {
        "init": shredstore("--json", "init", url=url),
        "status": shredstore("--json", "status", "c-1", url=url),
        "verify": shredstore("--json", "verify", url=url, master=master_file),
        "reconcile": shredstore("--json", "reconcile", url=url),
        "scrub": shredstore("--json", "scrub", url=url),
        "keys new-signing-key": shredstore("--json", "keys", "new-signing-key", "--out",
                                           str(key)),
        "keys public-key": shredstore("--json", "keys", "public-key", "--signing-key-file",
                                      str(key)),
        "keys new-master": shredstore("--json", "keys", "new-master", "--out",
                                      str(tmp_path / "new.key")),
        "receipt from-ledger": shredstore("--json", "receipt", "from-ledger", "c-2",
                                          "--receipts", str(tmp_path / "r"),
                                          "--signing-key-file", str(key), url=url),
        "sagas list": shredstore("--json", "sagas", "list", url=url),
        "erase": shredstore("--json", "erase", "c-1", "--dry-run", url=url),
    }
    receipt = next((tmp_path / "r").glob("*.json"))
    runs["receipt verify"] = shredstore("--json", "receipt", "verify", str(receipt))
    runs["keys rotate-master"] = shredstore("--json", "keys", "rotate-master",
                                            "--new-key-file", str(tmp_path / "new.key"),
                                            url=url, master=master_file)
    shapes = {name: json_lines(ran)[0] for name, ran in runs.items() if name != "sagas list"}
    assert all(ran.returncode == 0 for ran in runs.values()), {
        name: ran.stderr for name, ran in runs.items() if ran.returncode}
    assert shapes["init"] == {"result": "ready", "restored_triggers": []}
    assert shapes["status"]["state"] == "active"
    assert shapes["status"]["events"] == 1
    assert shapes["verify"]["ok"] is True
    assert shapes["verify"]["unauthenticated"] == 0
    assert shapes["reconcile"]["changed"] is False
    assert shapes["keys public-key"]["key_id"] == shapes["keys new-signing-key"]["key_id"]
    assert shapes["keys public-key"]["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert shapes["receipt verify"]["ok"] is True
    assert shapes["keys rotate-master"]["rewrapped"] == 1
    assert runs["sagas list"].stdout == ""  # one object per saga: none
    report = shredstore("--json", "report", "--out", str(tmp_path / "r.html"), url=url)
    assert json.loads(report.stderr)["integrity"] == "intact"  # stdout is for the document
    export = shredstore("--json", "export", "c-1", url=url, master=tmp_path / "new.key")
    assert json.loads(export.stderr) == {"subject": "c-1", "events": 1, "out": None}


def test_a_failing_check_in_json_is_still_exit_1(tmp_path: Path) -> None:
    receipt = tmp_path / "forged.json"
    receipt.write_text("{}")
    ran = shredstore("--json", "receipt", "verify", str(receipt))
    assert ran.returncode == 1
    assert json.loads(ran.stdout)["ok"] is False


def test_the_demo_says_it_has_no_json() -> None:
    ran = shredstore("demo", "--json")
    assert ran.returncode == 2
    assert "no JSON output" in ran.stderr


# --- colour, -q, -v -------------------------------------------------------------------------


def test_verdicts_are_coloured_on_a_terminal_only_and_never_with_no_color(
        tmp_path: Path, master_file: Path) -> None:
    url = erased_log(f"sqlite:///{tmp_path / 'e.db'}", master_file)
    coloured = shredstore("status", "c-2", url=url, color=True)
    assert "\x1b[" in coloured.stdout
    assert "erased" in click.unstyle(coloured.stdout)
    assert "\x1b[" not in shredstore("status", "c-2", url=url).stdout  # piped
    assert "\x1b[" not in shredstore("status", "c-2", url=url, color=True,
                                     env={"NO_COLOR": "1"}).stdout
    assert "\x1b[" not in shredstore("--json", "status", "c-2", url=url, color=True).stdout


def test_quiet_drops_progress_and_keeps_results(tmp_path: Path, master_file: Path) -> None:
    url = erased_log(f"sqlite:///{tmp_path / 'e.db'}", master_file)
    requests = tmp_path / "requests.csv"
    requests.write_text("subject\n" + "".join(f"c-{n}\n" for n in range(1, 11)))
    loud, quiet = (shredstore(*flags, "erase", "--dry-run", "--allow-unknown", "--from-file",
                              str(requests), url=url) for flags in ((), ("-q",)))
    assert "checking: 10/10" in loud.stderr  # progress, off a terminal: a line per tenth
    assert "checking:" not in quiet.stderr
    assert quiet.stdout == loud.stdout
    assert len(quiet.stdout.splitlines()) >= 10


def test_verbose_shows_the_librarys_log_records(sqlite_url: str, master_file: Path) -> None:
    erased_log(sqlite_url, master_file)
    logger = logging.getLogger("shredstore.test")

    @cli.command("log-probe", hidden=True)
    def probe() -> None:  # what a library module logs while a command runs
        logger.info("an informational record")
        logger.debug("a debugging record")

    try:
        plain, verbose, debug = (shredstore(*flags, "log-probe", url=sqlite_url)
                                 for flags in ((), ("-v",), ("-vv",)))
    finally:
        del cli.commands["log-probe"]
    assert "informational" not in plain.stderr
    assert "informational" in verbose.stderr
    assert "debugging" not in verbose.stderr
    assert "debugging" in debug.stderr


# --- the verifying key ---------------------------------------------------------------------


def test_public_key_prints_what_receipt_verify_takes(tmp_path: Path, master_file: Path) -> None:
    url = erased_log(f"sqlite:///{tmp_path / 'e.db'}", master_file)
    key = tmp_path / "sign.pem"
    shredstore("keys", "new-signing-key", "--out", str(key))
    printed = shredstore("keys", "public-key", "--signing-key-file", str(key))
    assert printed.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in printed.stdout
    public = tmp_path / "sign.pub"
    public.write_text(printed.stdout)
    shredstore("receipt", "from-ledger", "c-2", "--receipts", str(tmp_path / "r"),
               "--signing-key-file", str(key), url=url)
    receipt = next((tmp_path / "r").glob("*.json"))
    checked = shredstore("receipt", "verify", str(receipt), "--public-key", str(public))
    assert checked.returncode == 0
    assert "signature valid" in checked.stdout
    to_file = shredstore("keys", "public-key", "--signing-key-file", str(key), "--out",
                         str(tmp_path / "out.pub"))
    assert (tmp_path / "out.pub").read_text() == printed.stdout
    assert to_file.returncode == 0


# --- exit codes of bad input --------------------------------------------------------------------


@pytest.mark.parametrize("subject", ["", "a\nb", "x" * 201])
@pytest.mark.parametrize("command", [("status",), ("erase",), ("export",),
                                     ("receipt", "from-ledger"), ("report", "--subject")])
def test_a_bad_subject_id_is_a_usage_error(sqlite_url: str, subject: str,
                                           command: tuple[str, ...]) -> None:
    ran = shredstore(*command, subject, url=sqlite_url)
    assert ran.returncode == 2
    assert "a subject id is a non-empty string" in ran.stderr
    assert len(ran.stderr.splitlines()) == 1


def test_a_file_that_is_not_a_database_is_a_usage_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("these are not the tables you are looking for\n" * 100)
    ran = shredstore("status", "c-1", url=f"sqlite:///{text}")
    assert ran.returncode == 2
    assert "not a database" in ran.stderr


def test_until_before_since_and_purpose_without_reveal_are_refused(sqlite_url: str) -> None:
    shredstore("init", url=sqlite_url)
    backwards = shredstore("report", "--since", "2026-02-01", "--until", "2026-01-01",
                           url=sqlite_url)
    assert backwards.returncode == 2
    assert "is before --since" in backwards.stderr
    purpose = shredstore("report", "--purpose", "audit", url=sqlite_url)
    assert purpose.returncode == 2
    assert "add --reveal" in purpose.stderr


# --- shell completion (docs/cli.md) --------------------------------------------------------------


def test_shell_completion_completes_commands_and_options() -> None:
    script = shredstore(env={"_SHREDSTORE_COMPLETE": "bash_source"})
    assert "_shredstore_completion()" in script.stdout
    words = shredstore(env={"_SHREDSTORE_COMPLETE": "bash_complete",
                            "COMP_WORDS": "shredstore status --j", "COMP_CWORD": "2"})
    assert words.stdout.splitlines() == ["plain,--json"]
    words = shredstore(env={"_SHREDSTORE_COMPLETE": "bash_complete",
                            "COMP_WORDS": "shredstore ke", "COMP_CWORD": "1"})
    assert words.stdout.splitlines() == ["plain,keys"]


def test_erasure_results_are_coloured_by_verdict(tmp_path: Path, master_file: Path) -> None:
    url = erased_log(f"sqlite:///{tmp_path / 'e.db'}", master_file)
    ran = shredstore("erase", "c-1", "c-2", "nobody", "--receipts", str(tmp_path / "r"),
                     url=url, color=True)
    lines = ran.stdout.splitlines()
    magenta, red = "\x1b[35m", "\x1b[31m"
    assert lines[0].startswith(f"c-1: {magenta}")
    assert click.unstyle(lines[0]).startswith("c-1: erased;")
    assert lines[1].startswith(f"c-2: {magenta}")
    assert click.unstyle(lines[1]).startswith("c-2: already erased;")
    assert lines[2].startswith(f"nobody: {red}")
    assert click.unstyle(lines[2]).startswith("nobody: unknown subject:")
    assert "\x1b[" not in shredstore("erase", "c-1", "--receipts", str(tmp_path / "r"),
                                     url=url).stdout
