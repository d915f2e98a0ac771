"""Who the caller is, as the public events say it: the CRM asked by caller ID and by id."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.customers import create_customer, delete_customer
from crm_core.schemas import CustomerIn
from cti_server.integrations.customers import CrmCustomers
from cti_server.integrations.events import Customer

NUMBER = "+8613800000077"
SHARED = "+8613800000088"


@pytest.mark.asyncio
async def test_the_crm_names_one_customer_or_nobody(
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
        for name in ("Bo", "Cy"):  # one number, two people: not for an integration to choose
            await create_customer(
                session,
                CustomerIn.model_validate({"name": name, "phones": [{"number": SHARED}]}),
                "CN",
            )
        gone = await create_customer(session, CustomerIn.model_validate({"name": "Di"}), "CN")
        await delete_customer(session, gone.id)
    customers = CrmCustomers(crm, "CN")
    found = await customers.by_caller_id("13800000077")  # as a Chinese trunk presents it
    assert found is not None
    assert (found.id, found.name) == (ann.id, "Ann")
    assert await customers.by_id(ann.id) == Customer(id=ann.id, name="Ann", tier="gold")
    assert await customers.by_caller_id(SHARED) is None
    assert await customers.by_caller_id("+8613900000000") is None
    assert await customers.by_id(gone.id) is None
    assert await customers.by_id(999_999) is None
