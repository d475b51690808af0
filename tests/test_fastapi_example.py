"""examples/fastapi_service.py, in process through httpx's ASGI transport, on each backend:
register, read, change, export (Art. 15, recorded in $access), erase (Art. 17), read redacted;
and no request blocks the event loop."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

from keyvault import MasterKey
from shredstore import EventStore
from tests.store.test_async import in_loop

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fastapi_service.py"


def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_service_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_service_registers_reads_exports_and_erases(any_url: str) -> None:
    app = example().create_app(any_url, MasterKey.generate())

    # Made before the loop runs: a client builds its TLS context (certificates read from
    # disk) when it is made, which is the test's own blocking work, not the service's.
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                               base_url="http://service", trust_env=False)

    @in_loop
    async def scenario() -> None:
        async with app.router.lifespan_context(app), client:
            ada = {"customer_id": "42", "name": "Ada", "email": "ada@example.org",
                   "plan": "pro"}
            created = await client.post("/customers", json=ada)
            assert created.status_code == 201, created.text
            assert (await client.post("/customers", json=ada)).status_code == 409
            # Requests at once, as a service has them.
            others = await asyncio.gather(*(client.post("/customers", json={
                "customer_id": f"c{n}", "name": f"N{n}", "email": f"{n}@example.org"})
                for n in range(10)))
            assert {r.status_code for r in others} == {201}
            assert (await client.put("/customers/42/plan", params={"plan": "team"})
                    ).status_code == 200
            read: dict[str, Any] = (await client.get("/customers/42")).json()
            assert read == {"customer_id": "42", "plan": "team", "name": "Ada",
                            "email": "ada@example.org", "redacted": []}
            exported = (await client.get("/customers/42/export")).json()
            assert exported["state"] == "active"
            assert exported["access_record"] is not None  # recorded before revealing
            assert exported["events"][0]["personal"] == {
                "name": "Ada", "email": "ada@example.org"}
            erased = await client.delete("/customers/42", params={"request_id": "REQ-1"})
            assert erased.json()["erased"] is True
            after = (await client.get("/customers/42")).json()
            assert after["name"] is None
            assert after["email"] == "erased@invalid"
            assert after["redacted"] == ["email", "name"]
            gone = (await client.get("/customers/42/export")).json()
            assert gone["state"] == "erased"
            assert "ada@example.org" not in str(gone)
            assert (await client.get("/customers/nobody")).status_code == 404
            assert (await client.delete("/customers/nobody")).status_code == 404

    scenario()
    with EventStore(any_url) as store:  # the log itself verifies after all of it
        assert store.verify().ok
