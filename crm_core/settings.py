"""The CRM's own settings: it is configured by whoever embeds it (the CTI server, a script)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from crm_core.cases import CaseSla
from crm_core.value import ValuePolicy


class CrmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default_region: str = Field("CN", pattern=r"^[A-Z]{2}$", description="for national numbers")
    value: ValuePolicy = Field(default_factory=ValuePolicy)
    case_sla: CaseSla = Field(default_factory=CaseSla)
