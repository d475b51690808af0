"""The vault with real operating-system processes: racing first uses, erasures, and caches.

The children run tests/keyvault/_process_workers.py (``python -m tests.keyvault._process_workers
URL``), each a `KeyVault` driven by JSON commands on stdin and answering on stdout; see that
module for the protocol. The parent hands them the master key as base64 on stdin.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

from keyvault import KeyVault, KeyVaultError, MasterKey, SubjectErasedError
from tests.keyvault._process_workers import AAD, decode, encode
from tests.processes import CommandChild, release

WORKER = "tests.keyvault._process_workers"
TIMEOUT = 60.0
"""The longest any one test waits for its children, in seconds."""


def child_for(url: str, master: MasterKey, name: str) -> CommandChild:
    """A worker on the vault at `url`; the master key reaches it on stdin."""
    return CommandChild(WORKER, url, secret=master.to_base64(), name=name)


@contextmanager
def vault_children(
    url: str, master: MasterKey, names: Sequence[str], deadline: float
) -> Iterator[list[CommandChild]]:
    """Children with the vault open and ready; whatever is still running at the end is killed."""
    started: list[CommandChild] = []
    try:
        started.extend(child_for(url, master, name) for name in names)
        for child in started:
            assert child.message(deadline).get("ready") is True, child.describe()
        yield started
        for child in started:
            child.finish(deadline)
    finally:
        for child in started:
            child.kill()


def ask_all(
    children: Sequence[CommandChild], command: dict[str, Any], deadline: float
) -> list[dict[str, Any]]:
    """The same command run by every child concurrently; their answers in order."""
    for child in children:
        child.submit(command)
    return [child.answer(command, deadline) for child in children]


def opened_by_parent(vault: KeyVault, subject: str, sealed: Sequence[str]) -> list[dict[str, str]]:
    """What `vault` makes of each sealed value, in the children's answer format."""
    results: list[dict[str, str]] = []
    for value in sealed:
        try:
            results.append({"value": encode(vault.open(subject, decode(value), aad=AAD))})
        except KeyVaultError as error:
            results.append({"error": type(error).__name__})
    return results


@pytest.mark.processes
def test_processes_creating_a_subjects_key_at_once_get_one_key(any_url: str) -> None:
    """Processes that seal for a new subject at the same moment all get the same one data key."""
    processes, rounds = 4, 5
    deadline = time.monotonic() + TIMEOUT
    master = MasterKey.generate()
    with KeyVault(any_url, master_key=master) as vault, vault_children(
        any_url, master, [f"sealer{n}" for n in range(processes)], deadline
    ) as sealers:
        for round_ in range(rounds):
            subject = f"subject-{round_}"
            values = [encode(b"secret-value-%d-%d" % (round_, n)) for n in range(processes)]
            answers = release([
                (child, {"op": "seal", "subject": subject, "value": value})
                for child, value in zip(sealers, values, strict=True)
            ], deadline)
            assert all("sealed" in answer for answer in answers), answers
            sealed = [answer["sealed"] for answer in answers]

            # Every value opens in every process, the parent included: one key sealed them all.
            expected = [{"value": value} for value in values]
            for child, opened in zip(sealers, ask_all(
                    sealers, {"op": "open", "subject": subject, "sealed": sealed}, deadline),
                    strict=True):
                assert opened["results"] == expected, child.name
            assert opened_by_parent(vault, subject, sealed) == expected

            # And every process names the same key.
            status = vault.status(subject)
            assert status.state == "active"
            assert status.key_fingerprint is not None
            views = ask_all(sealers, {"op": "status", "subject": subject}, deadline)
            assert [(view["state"], view["fingerprint"]) for view in views] == [
                ("active", status.key_fingerprint)] * processes


@pytest.mark.processes
def test_erase_racing_first_use_leaves_no_usable_key(any_url: str) -> None:
    """Once an erase racing other processes' first uses returned, no process opens
    (KeyErasedError) or seals (SubjectErasedError) for the subject again."""
    processes, race_rounds = 3, 6
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)  # noqa: S311 - picks timings, not a secret
    print(f"race timing seed: {seed}")  # shown with a failure
    deadline = time.monotonic() + TIMEOUT
    master = MasterKey.generate()
    # Round 0 seals before it erases, round 1 erases before it seals (both outcomes, for
    # sure); the other rounds release the eraser and the sealers together.
    modes = ["seal-first", "erase-first"] + ["race"] * race_rounds
    all_sealed: dict[str, list[str]] = {}
    with KeyVault(any_url, master_key=master) as vault, vault_children(
        any_url, master, ["eraser", *(f"sealer{n}" for n in range(processes))], deadline
    ) as everyone:
        eraser, sealers = everyone[0], everyone[1:]
        for round_, mode in enumerate(modes):
            subject = f"subject-{round_}"
            value = encode(b"secret-value-%d" % round_)
            erase = {"op": "erase", "subject": subject}
            seal_loop = {"op": "seal_until_erased", "subject": subject, "value": value,
                         "seconds": 3.0}
            sealed_before: list[str] = []
            if mode == "seal-first":
                answers = release([(child, {"op": "seal", "subject": subject, "value": value})
                                   for child in sealers], deadline)
                assert all("sealed" in answer for answer in answers), answers
                sealed_before = [answer["sealed"] for answer in answers]
                opening = {"op": "open", "subject": subject, "sealed": sealed_before}
                expected = [{"value": value}] * processes
                assert [a["results"] for a in ask_all(everyone, opening, deadline)] == [
                    expected] * len(everyone)
                assert opened_by_parent(vault, subject, sealed_before) == expected
                # The sealers now hold the key in their caches and keep sealing with it.
                answers = release([(eraser, {**erase, "delay": 0.02}),
                                   *((child, seal_loop) for child in sealers)], deadline)
            elif mode == "erase-first":
                answers = [eraser.ask(erase, deadline), *ask_all(sealers, seal_loop, deadline)]
            else:
                # Small random head starts spread the erase over the sealers' first uses.
                answers = release([
                    (eraser, {**erase, "delay": rng.uniform(0.0, 0.004)}),
                    *((child, {**seal_loop, "delay": rng.uniform(0.0, 0.004)})
                      for child in sealers),
                ], deadline)
            erased, loops = answers[0], answers[1:]

            assert erased.get("error") is None, (mode, erased["error"])
            assert erased["already_erased"] is False, (mode, erased)
            for child, loop in zip(sealers, loops, strict=True):
                # Each sealer stopped because the subject was erased, not because time ran out...
                assert loop["error"] == "SubjectErasedError", (mode, child.name, loop["error"])
                # ...and no seal begun after the erase returned succeeded.
                late = [s["started"] - erased["returned"] for s in loop["sealed"]
                        if s["started"] >= erased["returned"]]
                assert late == [], (mode, child.name, "seconds after erase returned")
            sealed = sealed_before + [s["sealed"] for loop in loops for s in loop["sealed"]]
            all_sealed[subject] = sealed
            print(f"round {round_} ({mode}): key held {erased['held_key']}, "
                  f"{len(sealed)} values sealed")
            # A key was destroyed exactly if some process had sealed with it.
            assert erased["held_key"] is bool(sealed), (mode, erased, len(sealed))
            if mode == "seal-first":
                assert erased["held_key"] is True
            if mode == "erase-first":
                assert erased["held_key"] is False

            status = vault.status(subject)
            assert (status.state, status.key_fingerprint) == ("erased", erased["fingerprint"])
            assert (status.key_fingerprint is not None) is erased["held_key"]

            # No process opens anything sealed for the subject, nor seals for it again.
            redacted = [{"error": "KeyErasedError"}] * len(sealed)
            opening = {"op": "open", "subject": subject, "sealed": sealed}
            for child, opened in zip(everyone, ask_all(everyone, opening, deadline),
                                     strict=True):
                assert opened["results"] == redacted, (mode, child.name)
            assert opened_by_parent(vault, subject, sealed) == redacted
            resealing = {"op": "seal", "subject": subject, "value": value}
            assert [a.get("error") for a in ask_all(everyone, resealing, deadline)] == [
                "SubjectErasedError"] * len(everyone), mode
            with pytest.raises(SubjectErasedError) as raised:
                vault.seal(subject, b"secret-value-again", aad=AAD)
            assert type(raised.value) is SubjectErasedError

    # A vault opened afresh agrees: every subject erased, every value redacted.
    with KeyVault(any_url, master_key=master) as fresh:
        for subject, sealed in all_sealed.items():
            assert fresh.status(subject).state == "erased"
            assert opened_by_parent(fresh, subject, sealed) == [
                {"error": "KeyErasedError"}] * len(sealed)


@pytest.mark.processes
def test_erase_in_one_process_evicts_the_key_cached_in_another(any_url: str) -> None:
    """After another process erased a subject, a running process's next open of it fails."""
    deadline = time.monotonic() + TIMEOUT
    master = MasterKey.generate()
    erased_subject, kept_subject = "subject-erased", "subject-kept"
    with KeyVault(any_url, master_key=master) as vault:
        sealed = encode(vault.seal(erased_subject, b"secret-value-1", aad=AAD))
        kept = encode(vault.seal(kept_subject, b"secret-value-2", aad=AAD))
        fingerprint = vault.status(erased_subject).key_fingerprint
        with vault_children(any_url, master, ["holder", "eraser"], deadline) as (holder, eraser):
            pid = holder.proc.pid
            opening = {"op": "open", "subject": erased_subject, "sealed": [sealed, sealed]}
            opening_kept = {"op": "open", "subject": kept_subject, "sealed": [kept]}
            assert holder.ask(opening, deadline)["results"] == [
                {"value": encode(b"secret-value-1")}] * 2
            assert holder.ask(opening_kept, deadline)["results"] == [
                {"value": encode(b"secret-value-2")}]
            assert holder.ask({"op": "cached", "subject": erased_subject}, deadline)["cached"]

            erased = eraser.ask({"op": "erase", "subject": erased_subject}, deadline)
            assert erased.get("error") is None, erased["error"]
            assert (erased["already_erased"], erased["held_key"], erased["fingerprint"]) == (
                False, True, fingerprint)

            # The same process, alive throughout, with the key in its cache until now.
            assert holder.proc.poll() is None
            assert holder.proc.pid == pid
            assert holder.ask(opening, deadline)["results"] == [{"error": "KeyErasedError"}] * 2
            assert holder.ask({"op": "cached", "subject": erased_subject}, deadline)[
                "cached"] is False
            assert holder.ask({"op": "seal", "subject": erased_subject,
                               "value": encode(b"secret-value-3")}, deadline) == {
                "op": "seal", "error": "SubjectErasedError", "pid": pid}
            # The other subject's key is untouched.
            assert holder.ask(opening_kept, deadline)["results"] == [
                {"value": encode(b"secret-value-2")}]
        assert opened_by_parent(vault, erased_subject, [sealed]) == [{"error": "KeyErasedError"}]
        assert vault.status(erased_subject).state == "erased"
        assert vault.status(kept_subject).state == "active"
