"""A FastAPI service on `AsyncEventStore`: register a customer, read them, erase them, and give
them their data (GDPR Art. 15).

Run it (``pip install fastapi uvicorn``)::

    SHREDSTORE_MASTER_KEY_FILE=master.key uvicorn examples.fastapi_service:app

    curl -X POST localhost:8000/customers -H 'content-type: application/json' \\
         -d '{"customer_id": "42", "name": "Ada", "email": "ada@example.org", "plan": "pro"}'
    curl localhost:8000/customers/42                # the customer, rebuilt from their events
    curl localhost:8000/customers/42/export         # Art. 15: everything held about them
    curl -X DELETE localhost:8000/customers/42      # Art. 17: crypto-shredded
    curl localhost:8000/customers/42                # name and e-mail now read as redacted

`create_app(url, master_key)` builds the app for any store URL (tests/test_fastapi_example.py
drives it in process through httpx). Every request awaits the store; none blocks the event
loop. The export is written by `shredstore.audit.write_export` in one of the store's worker
threads, and recorded in the ``$access`` stream before it reveals anything.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from keyvault import KeyProvider, MasterKey
from shredstore import (
    NO_STREAM,
    REDACTED,
    AsyncEventStore,
    Event,
    PersonalData,
    SubjectId,
    UnknownSubjectError,
    WrongExpectedVersion,
)
from shredstore.audit import write_export


class CustomerRegistered(Event, type_name="example.api.CustomerRegistered"):
    customer_id: SubjectId
    name: Annotated[str, PersonalData()]
    email: Annotated[str, PersonalData(replacement="erased@invalid")]
    plan: str


class PlanChanged(Event, type_name="example.api.PlanChanged"):
    plan: str


class Registration(BaseModel):
    customer_id: str
    name: str
    email: str
    plan: str = "basic"


def create_app(url: str, master_key: KeyProvider) -> FastAPI:
    """The service, on the store at `url`."""
    store = AsyncEventStore(url, master_key=master_key)
    for event in (CustomerRegistered, PlanChanged):
        if store.registry.find(event.__event_type__) is None:
            store.registry.register(event)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with store:
            yield

    app = FastAPI(title="customers", lifespan=lifespan)

    @app.post("/customers", status_code=201)
    async def register(body: Registration) -> dict[str, Any]:
        event = CustomerRegistered(customer_id=body.customer_id, name=body.name,
                                   email=body.email, plan=body.plan)
        try:
            result = await store.append(f"customer-{body.customer_id}", [event],
                                        expected_version=NO_STREAM)
        except WrongExpectedVersion:
            raise HTTPException(409, "this customer is registered already") from None
        return {"customer_id": body.customer_id, "position": result.positions[0]}

    @app.put("/customers/{customer_id}/plan")
    async def change_plan(customer_id: str, plan: str) -> dict[str, Any]:
        stream = f"customer-{customer_id}"
        version = await store.stream_version(stream)
        if version == 0:
            raise HTTPException(404, "no such customer")
        await store.append(stream, [PlanChanged(plan=plan)], expected_version=version)
        return {"customer_id": customer_id, "plan": plan}

    @app.get("/customers/{customer_id}")
    async def read(customer_id: str) -> dict[str, Any]:
        customer: dict[str, Any] = {}
        async for record in store.read_stream(f"customer-{customer_id}"):
            event = record.event
            if isinstance(event, CustomerRegistered):
                customer = {"customer_id": event.customer_id, "plan": event.plan,
                            "name": None if event.name is REDACTED else event.name,
                            "email": event.email,
                            "redacted": sorted(record.redacted_fields)}
            elif isinstance(event, PlanChanged):
                customer["plan"] = event.plan
        if not customer:
            raise HTTPException(404, "no such customer")
        return customer

    @app.delete("/customers/{customer_id}")
    async def erase(customer_id: str, request_id: str | None = None) -> dict[str, Any]:
        if await store.stream_version(f"customer-{customer_id}") == 0:
            raise HTTPException(404, "no such customer")
        receipt = await store.erase_subject(customer_id, reason="Art. 17 request",
                                            request_id=request_id)
        return {"customer_id": customer_id, "erased": True,
                "key_fingerprint": receipt.key_fingerprint}

    @app.get("/customers/{customer_id}/export")
    async def export(customer_id: str) -> dict[str, Any]:
        out = io.StringIO()
        try:
            await store.run(write_export, store.sync, customer_id, out, actor="api",
                            purpose="Art. 15 request")
        except UnknownSubjectError:
            raise HTTPException(404, "no such customer") from None
        exported: dict[str, Any] = json.loads(out.getvalue())
        return exported

    return app


def _app_from_environment() -> FastAPI | None:
    key_file = os.environ.get("SHREDSTORE_MASTER_KEY_FILE")
    if key_file is None:
        return None
    return create_app(os.environ.get("SHREDSTORE_URL", "sqlite:///customers.db"),
                      MasterKey.from_file(key_file))


app = _app_from_environment()
"""The app uvicorn serves (with SHREDSTORE_MASTER_KEY_FILE set; SHREDSTORE_URL optional)."""
