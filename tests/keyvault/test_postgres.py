"""The vault contract on PostgreSQL, and what scrub does to the key table's file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from keyvault import KeyVault, MasterKey
from tests.keyvault.contract import VaultContract, raw


class TestPostgresVault(VaultContract):
    @pytest.fixture
    def url(self, postgres_url: str) -> str:
        return postgres_url


def relation_file(url: str) -> Path:
    """The data file of the key table (needs a superuser, and a local server)."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CHECKPOINT")
            directory = conn.exec_driver_sql("SHOW data_directory").scalar_one()
            relative = conn.exec_driver_sql(
                "SELECT pg_relation_filepath('keyvault_subjects')").scalar_one()
    finally:
        engine.dispose()
    return Path(directory) / relative


def test_scrub_removes_an_erased_key_from_the_table_file(postgres_url: str) -> None:
    """An erased key's bytes linger in the table file until scrub rewrites it."""
    with KeyVault(postgres_url, master_key=MasterKey.generate()) as vault:
        for i in range(20):
            vault.seal(f"subject-{i}", b"x")
        ((wrapped,),) = raw(postgres_url, "SELECT wrapped_key FROM keyvault_subjects "
                                          "WHERE subject_id = 'subject-7'")
        if not os.access(relation_file(postgres_url), os.R_OK):
            pytest.skip("the server's data directory is not readable by this user")
        vault.erase("subject-7")
        assert wrapped in relation_file(postgres_url).read_bytes()  # a dead tuple remains
        assert "VACUUM FULL" in " ".join(vault.scrub().lines())
        assert wrapped not in relation_file(postgres_url).read_bytes()
