"""The CRM's own settings: it is configured by whoever embeds it (the CTI server, a script)."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network

from pydantic import BaseModel, ConfigDict, Field

from crm_core.cases import CaseSla
from crm_core.value import ValuePolicy


class LoginSettings(BaseModel):
    """How sign-ins (the desktop's form and ``POST /api/tokens`` alike) are throttled.

    Each failure is counted for the account and for the address it came from; the answer to a
    failure waits ``first_delay_seconds``, doubled with every further failure of either (up to
    ``max_delay_seconds``). An account locks after ``account_lockout_after`` failures, an
    address after ``address_lockout_after`` (higher: a call centre's agents often share one
    address), for ``lockout_minutes``; counts are forgotten ``forget_minutes`` after the last
    failure. A locked account or address is answered as a wrong password is, after as long."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    first_delay_seconds: float = Field(0.5, gt=0, le=10)
    max_delay_seconds: float = Field(8.0, gt=0, le=60)
    account_lockout_after: int = Field(10, ge=3, le=1000)
    address_lockout_after: int = Field(100, ge=3, le=100_000)
    lockout_minutes: float = Field(15.0, gt=0, le=24 * 60)
    forget_minutes: float = Field(15.0, gt=0, le=24 * 60)
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = Field(
        (IPv4Network("127.0.0.1/32"), IPv6Network("::1/128")),
        description="proxies (e.g. nginx) whose X-Forwarded-For names the client's address; "
        "loopback by default, as deploy/nginx runs: else every user would share its address",
    )


class CrmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default_region: str = Field("CN", pattern=r"^[A-Z]{2}$", description="for national numbers")
    value: ValuePolicy = Field(default_factory=ValuePolicy)
    case_sla: CaseSla = Field(default_factory=CaseSla)
    token_days: float = Field(30.0, gt=0, le=3650, description="API tokens expire after this")
    login: LoginSettings = Field(default_factory=LoginSettings)
