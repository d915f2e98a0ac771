"""The customer the IVR identified, as the public events say it: the CRM read by id (who a
caller ID names is the caller identification's, tests/unit/ivr/test_caller_identification.py)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.customers import create_customer, delete_customer
from crm_core.schemas import CustomerIn
from cti_server.integrations.customers import CrmCustomers
from cti_server.integrations.events import Customer

NUMBER = "+8613800000077"


@pytest.mark.asyncio
async def test_the_crm_names_the_customer_of_an_id_or_nobody(
    crm: async_sessionmaker[AsyncSession],
) -> None:
    async with crm() as session, session.begin():
        ann = await create_customer(
            session,
            CustomerIn.model_validate(
                {"name": "Ann", "phones": [{"number": NUMBER}], "tier_override": "gold"}
            ),
            "CN",
        )
        gone = await create_customer(session, CustomerIn.model_validate({"name": "Di"}), "CN")
        await delete_customer(session, gone.id)
    customers = CrmCustomers(crm)
    assert await customers.by_id(ann.id) == Customer(id=ann.id, name="Ann", tier="gold")
    assert await customers.by_id(gone.id) is None
    assert await customers.by_id(999_999) is None
