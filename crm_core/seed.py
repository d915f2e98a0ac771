"""A realistic CRM data set for demos and benchmarks, seeded fast and reproducibly.

:func:`seed_crm` adds ``customers`` customers to a migrated CRM database, with everything a
contact center sees about them:

* people (about 60 % with Chinese, 40 % with English names) and about 3 % organisations
  ("山西煤业有限公司", "Acme Trading Ltd"), a few people being contacts of one of them;
* one or two phone numbers each: Chinese mobiles mostly, landlines (010, 021, 0351...), a few
  British and American numbers. Every number is generated as a person would type it (national,
  ``+86``, ``0086``, spaces, dashes, brackets) and stored as :func:`crm_core.phones.to_e164`
  normalizes it; a small fraction are family landlines shared by two customers;
* e-mail addresses (about half), a language, tags, consent flags, a unique account number;
* orders and a few refunds over the last two years, spread like real spend (lognormal: the top
  20 % of customers bring about 80 % of it), with each customer's tier and RFM scores computed
  by :func:`crm_core.value.score_customer` exactly as :func:`crm_core.valuation.recompute_value`
  would, and stored in the customer row;
* past calls for about 30 % of customers (answered, abandoned, IVR-only) and a few complaint
  cases (open, assigned, resolved) linked to one of them;
* a few calls of the last hour (today) handed over between the demo's agents, with their chain
  of parties (:data:`HANDED_OVER_CALLS`: a blind, an attended, and both one after the other), so
  that a customer's timeline shows who had a call for how long and the wallboard's "Agents
  today" has figures from the start. A party is tied to the user with its extension when the
  database already has one (else it is known by its extension and member name).

Rows are generated in Python and written with SQLAlchemy Core bulk inserts (executemany), a
batch of customers and all their rows per transaction, with ids assigned here after the
largest existing ones: seeding into a database that already holds data adds to it. PostgreSQL's
id sequences are moved past the new rows afterwards and statistics are refreshed (ANALYZE).

Seeding is deterministic: the same ``seed``, ``now`` and starting database give the same rows.
The digits of a number come from the id of its phone row (a bijection), so numbers do not
collide by chance, also when seeding twice into one database: Chinese mobiles and landlines
with 8-digit local numbers never (below ten million phone rows), the rarer kinds (Taiyuan's
7-digit numbers, British and American ones) very rarely. Seed into a database nobody else
writes to meanwhile: the ids are chosen before the rows are inserted.
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import pickle
import random
import re
import struct
import sys
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import accumulate
from typing import Any

import phonenumbers
from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crm_core.cases import CaseSla
from crm_core.dedup import name_keys
from crm_core.models import (
    CaseInteraction,
    ComplaintCase,
    Customer,
    CustomerNameKey,
    Email,
    Interaction,
    InteractionParty,
    Phone,
    Transaction,
    User,
)
from crm_core.phones import to_e164
from crm_core.value import Purchase, ValuePolicy, score_customer

__all__ = ["SeedReport", "seed_crm"]

BATCH_SIZE = 10_000
"""Customers per transaction (with all their phones, transactions, interactions...)."""

_TABLES: tuple[Table, ...] = tuple(
    model.__table__  # type: ignore[misc]
    for model in (
        Customer,
        Phone,
        Email,
        Transaction,
        Interaction,
        InteractionParty,
        ComplaintCase,
        CaseInteraction,
    )
)
(
    _CUSTOMERS,
    _PHONES,
    _EMAILS,
    _TRANSACTIONS,
    _INTERACTIONS,
    _PARTIES,
    _CASES,
    _CASE_LINKS,
) = _TABLES
_SERIAL_TABLES = _TABLES[:-1]  # every table but case_interactions has an integer id
_NAME_KEYS: Table = CustomerNameKey.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class SeedReport:
    """What one :func:`seed_crm` call added, and how long it took."""

    customers: int
    """Customer rows added, organisations included."""
    organisations: int
    phones: int
    transactions: int
    interactions: int
    cases: int
    seconds: float
    tiers: dict[str, int]
    """How many of the added customers are in each tier."""


# -- names ----------------------------------------------------------------------------------

# The most common Chinese surnames, most common first, with their pinyin (for e-mail addresses)
# and a rough weight so that 王, 李 and 张 dominate as they do in reality.
_SURNAMES: tuple[tuple[str, str], ...] = (
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"),
    ("杨", "yang"), ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"),
    ("徐", "xu"), ("孙", "sun"), ("马", "ma"), ("朱", "zhu"), ("胡", "hu"),
    ("郭", "guo"), ("何", "he"), ("高", "gao"), ("林", "lin"), ("罗", "luo"),
    ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song"), ("唐", "tang"),
    ("许", "xu"), ("韩", "han"), ("冯", "feng"), ("邓", "deng"), ("曹", "cao"),
    ("彭", "peng"), ("曾", "zeng"), ("肖", "xiao"), ("田", "tian"), ("董", "dong"),
    ("袁", "yuan"), ("潘", "pan"), ("于", "yu"), ("蒋", "jiang"), ("蔡", "cai"),
    ("余", "yu"), ("杜", "du"), ("叶", "ye"), ("程", "cheng"), ("苏", "su"),
    ("魏", "wei"), ("吕", "lv"), ("丁", "ding"), ("任", "ren"), ("沈", "shen"),
    ("姚", "yao"), ("卢", "lu"), ("姜", "jiang"), ("崔", "cui"), ("钟", "zhong"),
    ("谭", "tan"), ("陆", "lu"), ("汪", "wang"), ("范", "fan"), ("金", "jin"),
    ("欧阳", "ouyang"), ("司马", "sima"), ("诸葛", "zhuge"),
)  # fmt: skip
_SURNAME_CUM_WEIGHTS = tuple(accumulate(range(len(_SURNAMES) + 20, 20, -1)))
_GIVEN_CHARS = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超霞平刚辉玲桂华建国红文云飞鹏宇浩然子涵欣怡梓萱"
    "雨轩博文思远佳琪晨曦俊杰嘉怡一鸣志强秀英婷婷小龙海燕春梅晓东丹阳宏亮慧敏"
)
_FIRST_NAMES = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William",
    "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Charles", "Karen", "Daniel", "Emily", "Matthew", "Olivia", "Anthony", "Sophie", "Mark",
    "Emma", "Paul", "Charlotte", "Steven", "Amelia", "Andrew", "Grace", "George", "Hannah",
    "Oliver", "Chloe", "Harry", "Lucy", "Jack", "Isabella", "Kevin", "Laura", "Brian", "Rachel",
    "Peter", "Helen", "Edward", "Alice",
)  # fmt: skip
_LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Wilson",
    "Taylor", "Anderson", "Thomas", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White",
    "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Green", "Baker", "Adams", "Nelson", "Hill", "Campbell", "Mitchell", "Roberts",
    "Carter", "Phillips", "Evans", "Turner", "Parker", "Collins", "Edwards", "Stewart",
    "Morris", "Murphy", "Cook", "Rogers", "Morgan", "Cooper",
)  # fmt: skip
_ORG_PLACES = (
    "山西", "北京", "上海", "广东", "浙江", "江苏", "深圳", "杭州", "四川", "湖北", "山东",
    "天津", "重庆", "福建", "河南", "南京",
)  # fmt: skip
_ORG_TRADES = (
    "煤业", "贸易", "科技", "物流", "电子", "实业", "建设", "医药", "食品", "纺织", "能源",
    "汽车", "餐饮", "机械", "化工", "软件",
)  # fmt: skip
_ORG_FORMS = ("有限公司", "有限公司", "股份有限公司", "集团有限公司")
_ORG_WORDS = (
    "Acme", "Globex", "Initech", "Northwind", "Contoso", "Pioneer", "Summit", "Harbour",
    "Redwood", "Silverline", "Blue River", "Evergreen", "Orient", "Golden Gate", "Dragon",
)  # fmt: skip
_ORG_KINDS = (
    "Trading", "Logistics", "Foods", "Electronics", "Consulting", "Holdings", "Pharma",
    "Textiles", "Machinery", "Software",
)  # fmt: skip
_ORG_SUFFIXES = ("Ltd", "Ltd", "Co., Ltd", "Inc.", "LLC", "plc", "GmbH")

_TAGS = (
    "newsletter", "wholesale", "online-shop", "retail", "vip-candidate", "repeat-buyer",
    "price-sensitive", "prefers-callback", "mandarin", "cantonese", "english", "b2b",
    "loyalty-card", "app-user", "complained-before", "high-return-rate",
)  # fmt: skip
_NOTES = (
    "Prefers calls after 18:00.",
    "首选普通话。",
    "Asks for invoices by e-mail.",
    "老客户, 请优先处理。",
    "Hard of hearing: speak slowly.",
    "Do not call on weekends.",
)
_MAIL_DOMAINS_ZH = ("example.cn", "mail.example.cn", "example.com.cn")
_MAIL_DOMAINS_EN = ("example.com", "example.org", "mail.example.net")

# -- phone numbers ----------------------------------------------------------------------------

_MOBILE_PREFIXES = (
    "130", "131", "132", "133", "134", "135", "136", "137", "138", "139", "150", "151",
    "152", "153", "155", "156", "157", "158", "159", "166", "176", "177", "178", "180",
    "181", "182", "183", "185", "186", "187", "188", "189", "191", "199",
)  # fmt: skip
"""Chinese mobile prefixes the seeder uses (valid in phonenumbers; 198 is left unused)."""
_LANDLINE_AREAS = (
    ("10", 8), ("10", 8), ("21", 8), ("21", 8), ("20", 8), ("755", 8), ("571", 8),
    ("28", 8), ("27", 8), ("25", 8), ("351", 7),
)  # fmt: skip
"""(area code, digits of the local number): Beijing and Shanghai twice as likely."""
_GB_MOBILE = ("7400", "7412", "7500", "7723", "7800", "7890", "7939", "7956")
"""British mobile ranges where every 6-digit tail is a valid number (phonenumbers)."""
_US_AREAS = ("212", "415", "646", "310", "617", "206", "312")


def _scramble(value: int, width: int, salt: int) -> str:
    """A bijection of ``value mod 10**width`` onto ``width`` digits that looks random.

    Two affine steps (multipliers coprime with 10) around a digit reversal: ids 1, 2, 3 give
    unrelated numbers, and distinct ids below ``10**width`` give distinct numbers.
    """
    modulus = 10**width
    mixed = (value * 7_919_371 + salt) % modulus
    reversed_digits = int(f"{mixed:0{width}d}"[::-1])
    return f"{(reversed_digits * 3_779_713 + 12_345_679) % modulus:0{width}d}"


def _idd_prefix(region: str) -> str | None:
    """How people in ``region`` dial abroad ("00", "011"), if it is a plain prefix."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        return None
    pattern = metadata.international_prefix or ""
    preferred = metadata.preferred_international_prefix
    for prefix in (preferred, "00", "011"):
        if prefix and re.fullmatch(pattern, prefix):
            return prefix
    return None


@dataclass(frozen=True)
class _Number:
    """A generated number: its country, national significant number, and digit groups."""

    country: str  # "CN", "GB", "US"
    code: str  # country calling code
    nsn: str
    groups: tuple[str, ...]  # the nsn in the groups people write it in
    landline: bool

    @property
    def e164(self) -> str:
        return f"+{self.code}{self.nsn}"

    def national_forms(self) -> list[str]:
        """How someone in the number's own country writes it."""
        g = self.groups
        if self.country == "CN" and self.landline:
            area, local = g[0], "".join(g[1:])
            return [
                f"0{area}-{local}",
                f"(0{area}) {' '.join(g[1:])}",
                f"0{area} {local}",
                f"0{area}{local}",
            ]
        if self.country == "CN":
            return [self.nsn, " ".join(g), "-".join(g)]
        if self.country == "GB":
            return [f"0{g[0]} {g[1]}", f"0{self.nsn}"]
        return [f"({g[0]}) {g[1]}-{g[2]}", f"{g[0]}-{g[1]}-{g[2]}", f"1 {' '.join(g)}"]

    def international_forms(self, idd: str | None) -> list[str]:
        """The number with its country code: "+86 ...", "+86-...", and "0086 ..." forms."""
        spaced = " ".join(self.groups)
        forms = [self.e164, f"+{self.code} {spaced}", f"+{self.code}-{'-'.join(self.groups)}"]
        if self.country == "GB":
            forms.append(f"+44 (0){spaced}")
        if idd is not None:
            forms += [f"{idd}{self.code}{self.nsn}", f"{idd} {self.code} {spaced}"]
        return forms


# -- generation -------------------------------------------------------------------------------


@dataclass
class _Ids:
    """The next free id of each table."""

    customer: int
    phone: int
    email: int
    transaction: int
    interaction: int
    party: int
    case: int


@dataclass
class _Batch:
    customers: list[dict[str, Any]] = field(default_factory=list)
    name_keys: list[dict[str, Any]] = field(default_factory=list)
    phones: list[dict[str, Any]] = field(default_factory=list)
    emails: list[dict[str, Any]] = field(default_factory=list)
    transactions: list[dict[str, Any]] = field(default_factory=list)
    interactions: list[dict[str, Any]] = field(default_factory=list)
    parties: list[dict[str, Any]] = field(default_factory=list)
    cases: list[dict[str, Any]] = field(default_factory=list)
    case_links: list[dict[str, Any]] = field(default_factory=list)
    organisations: int = 0
    tiers: Counter[str] = field(default_factory=Counter)

    def rows(self) -> list[tuple[Table, list[dict[str, Any]]]]:
        """Each table's rows, in an order that satisfies the foreign keys."""
        return [
            (_CUSTOMERS, self.customers),
            (_NAME_KEYS, self.name_keys),
            (_PHONES, self.phones),
            (_EMAILS, self.emails),
            (_TRANSACTIONS, self.transactions),
            (_INTERACTIONS, self.interactions),
            (_PARTIES, self.parties),
            (_CASES, self.cases),
            (_CASE_LINKS, self.case_links),
        ]


_DAY = timedelta(days=1)
_HISTORY_DAYS = 730  # transactions and calls lie within the last two years
_QUEUES = ("sales", "support", "billing", "support", "support", "vip")
_DISPOSITIONS = (
    "resolved", "resolved", "resolved", "info_given", "info_given", "order_placed",
    "callback_requested", "escalated", "complaint",
)  # fmt: skip
_CASE_CATEGORIES = ("billing", "delivery", "product", "staff", "service")  # cases.CATEGORIES
_CASE_SUMMARIES = {
    "billing": "Refund promised but not received",
    "delivery": "快递延误超过一周",
    "product": "Item broken on arrival",
    "staff": "对客服态度不满意",
    "service": "Promised call back never came",
}
_HOTLINE = "4008001234"
DEMO_DESKS = (
    ("1001", "Demo agent"),
    ("1901", "Virtual agent 1901"),
    ("1902", "Virtual agent 1902"),
    ("1903", "Virtual agent 1903"),
)
"""The demo's agents (extension, queue member name) that the handed-over calls go between."""
HANDED_OVER_CALLS: tuple[tuple[str, ...], ...] = (
    ("blind",),
    ("attended",),
    ("attended", "blind"),
    ("blind",),
    ("attended",),
    ("blind", "attended"),
)
"""The hand-overs after the first answer of each seeded handed-over call, in seeding order."""
_HANDED_OVER_WITHIN = timedelta(hours=1)


class _Generator:
    """Generates customers batch by batch from one random stream; ids continue across batches."""

    def __init__(
        self,
        seed: int,
        region: str,
        policy: ValuePolicy,
        now: datetime,
        ids: _Ids,
        *,
        desk_users: dict[str, int] | None = None,
    ) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - demo data, not secrets
        # the handed-over calls draw from a stream of their own: the rest of the data set is
        # the same with or without them
        self.handover_rng = random.Random(f"handed-over {seed}")  # noqa: S311
        self.handed_over = list(HANDED_OVER_CALLS)
        self.desk_users = desk_users or {}
        self.region = region
        self.policy = policy
        self.now = now
        self.ids = ids
        self.salt = (seed * 2_654_435_761) % 10**8
        self.idd = _idd_prefix(region)
        self.sla = CaseSla()
        self._family_line: tuple[_Number, int] | None = None  # (home landline, its owner)
        self._orgs: list[int] = []  # recent organisations, for their contacts

    # -- one batch ---------------------------------------------------------------------------

    def batch(self, count: int) -> _Batch:
        batch = _Batch()
        for _ in range(count):
            self._customer(batch)
        return batch

    def _customer(self, batch: _Batch) -> None:
        rng = self.rng
        customer_id = self.ids.customer
        self.ids.customer += 1
        organisation = rng.random() < 0.03
        organisation_id = None
        if organisation:
            batch.organisations += 1
            chinese = rng.random() < 0.7
            name = self._org_name(chinese)
            mail_local = f"service.{customer_id}"
            self._orgs = [*self._orgs[-19:], customer_id]
        else:
            chinese = rng.random() < 0.6
            name, mail_local = self._person_name(chinese, customer_id)
            if self._orgs and rng.random() < 0.06:
                organisation_id = rng.choice(self._orgs)
        if chinese:
            language = "en" if rng.random() < 0.05 else "zh"
        else:
            language = "zh" if rng.random() < 0.15 else "en"

        numbers = self._phones(batch, customer_id, chinese, organisation)
        has_email = rng.random() < (0.8 if organisation else 0.5)
        if has_email:
            domains = _MAIL_DOMAINS_ZH if chinese else _MAIL_DOMAINS_EN
            address = f"{mail_local}@{rng.choice(domains)}"
            batch.emails.append(
                {"id": self.ids.email, "customer_id": customer_id, "address": address}
            )
            self.ids.email += 1

        purchases, first_purchase = self._transactions(batch, customer_id, organisation)
        override = "platinum" if organisation and rng.random() < 0.05 else None
        score = score_customer(purchases, self.now, self.policy, override)
        batch.tiers[score.tier] += 1
        if first_purchase is None:
            created = self.now - rng.uniform(1, 1500) * _DAY
        else:
            created = first_purchase - rng.uniform(0, 400) * _DAY
        tags = sorted(set(rng.sample(_TAGS, rng.choice((0, 1, 1, 2, 2, 3)))))
        if organisation:
            tags = sorted({*tags, "b2b"})
        kind = "organisation" if organisation else "person"
        batch.name_keys.extend(
            {"customer_id": customer_id, "key": key} for key in sorted(name_keys(name, kind))
        )
        batch.customers.append(
            {
                "id": customer_id,
                "kind": kind,
                "name": name,
                "organisation_id": organisation_id,
                "account_number": f"A{customer_id:09d}",
                "language": language,
                "tags": tags,
                "consent": {
                    "marketing": rng.random() < 0.4,
                    "recording": rng.random() < 0.92,
                    "sms": rng.random() < 0.5,
                    "email": has_email and rng.random() < 0.6,
                },
                "notes": rng.choice(_NOTES) if rng.random() < 0.03 else "",
                "tier": score.tier,
                "tier_override": override,
                "tier_reason": score.reason[:200],
                "recency_score": score.recency,
                "frequency_score": score.frequency,
                "monetary_score": score.monetary,
                "lifetime_value": Decimal(f"{score.lifetime_value:.2f}"),
                "merged_into_id": None,
                "created_at": created,
                "updated_at": self.now,
            }
        )
        if rng.random() < 0.3:
            self._interactions(batch, customer_id, score.tier, numbers)

    def _person_name(self, chinese: bool, customer_id: int) -> tuple[str, str]:
        """A name and the local part of the person's e-mail address."""
        rng = self.rng
        if chinese:
            surname, pinyin = rng.choices(_SURNAMES, cum_weights=_SURNAME_CUM_WEIGHTS)[0]
            given = "".join(rng.choices(_GIVEN_CHARS, k=1 if rng.random() < 0.3 else 2))
            return surname + given, f"{pinyin}.{customer_id}"
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        return f"{first} {last}", f"{first[0].lower()}.{last.lower()}.{customer_id}"

    def _org_name(self, chinese: bool) -> str:
        rng = self.rng
        if chinese:
            return rng.choice(_ORG_PLACES) + rng.choice(_ORG_TRADES) + rng.choice(_ORG_FORMS)
        return f"{rng.choice(_ORG_WORDS)} {rng.choice(_ORG_KINDS)} {rng.choice(_ORG_SUFFIXES)}"

    # -- phones ------------------------------------------------------------------------------

    def _phones(
        self, batch: _Batch, customer_id: int, chinese: bool, organisation: bool
    ) -> list[str]:
        """One or two numbers of the customer's own, sometimes a family landline too."""
        rng = self.rng
        foreign = rng.random() < (0.005 if chinese else 0.12)
        landline = rng.random() < (0.8 if organisation else 0.12)
        home = "work" if organisation else "home"
        first = self._new_number(0, foreign=foreign, landline=landline)
        numbers = [(first, home if first.landline else "mobile")]
        if rng.random() < 0.35:
            second = self._new_number(
                1, foreign=False, landline=not landline and rng.random() < 0.6
            )
            label = rng.choice((home, "work")) if second.landline else "mobile"
            numbers.append((second, label))
        if not organisation:
            family = self._family_line
            if family is not None and family[1] != customer_id and rng.random() < 0.015:
                # the landline of the previous family home, shared: it takes the place of
                # a second number, so that everyone still has one or two
                numbers = [numbers[0], (family[0], "home")]
                self._family_line = None
            else:
                for number, label in numbers:
                    if label == "home":
                        self._family_line = (number, customer_id)
        stored: list[str] = []
        for number, label in numbers:
            e164 = self._store_form(number)
            if e164 in stored:
                continue
            stored.append(e164)
            batch.phones.append(
                {"id": self.ids.phone, "customer_id": customer_id, "e164": e164, "label": label}
            )
            self.ids.phone += 1
        return stored

    def _new_number(self, offset: int, *, foreign: bool, landline: bool) -> _Number:
        """A number nobody has yet: its digits come from the id of the phone row it gets.

        ``offset`` is the number's place among the customer's new rows (their ids follow
        ``self.ids.phone``); distinct ids give distinct digits within each kind of number.
        """
        rng = self.rng
        key = self.ids.phone + offset
        if foreign and rng.random() < 0.5:
            tail = _scramble(key, 6, self.salt)
            prefix = rng.choice(_GB_MOBILE)
            return _Number("GB", "44", prefix + tail, (prefix, tail), landline=False)
        if foreign:
            area = rng.choice(_US_AREAS)
            local = _scramble(key, 7, self.salt)
            exchange = str(rng.randint(2, 9)) + local[:2]
            line = local[3:]
            return _Number("US", "1", area + exchange + line, (area, exchange, line), landline=True)
        if landline:
            area, digits = rng.choice(_LANDLINE_AREAS)
            local = str(rng.randint(2, 7)) + _scramble(key, digits - 1, self.salt)
            return _Number("CN", "86", area + local, (area, local[:-4], local[-4:]), landline=True)
        prefix = rng.choice(_MOBILE_PREFIXES)
        tail = _scramble(key, 8, self.salt)
        return _Number("CN", "86", prefix + tail, (prefix, tail[:4], tail[4:]), landline=False)

    def _store_form(self, number: _Number) -> str:
        """Type the number the way a person would, and store what to_e164 makes of it."""
        forms = number.international_forms(self.idd)
        if number.country == self.region:
            forms += number.national_forms() * 2  # people mostly write their own numbers so
        raw = self.rng.choice(forms)
        e164 = to_e164(raw, self.region)
        if e164 != number.e164:  # the generator's formats are wrong, not the data
            raise AssertionError(f"{raw!r} normalizes to {e164}, expected {number.e164}")
        return e164

    # -- value -------------------------------------------------------------------------------

    def _transactions(
        self, batch: _Batch, customer_id: int, organisation: bool
    ) -> tuple[list[Purchase], datetime | None]:
        """Orders (and a few refunds) over the last two years; lognormal spend per customer."""
        rng = self.rng
        if rng.random() < 0.08:
            return [], None
        annual = rng.lognormvariate(math.log(320.0), 1.45) * (6.0 if organisation else 1.0)
        first_days = rng.uniform(20, _HISTORY_DAYS)
        if rng.random() < 0.7:  # still active
            last_days = rng.uniform(0, min(first_days, 60))
        else:  # lapsed some time ago
            last_days = rng.uniform(0, first_days)
        span_years = max(first_days - last_days, 30.0) / 365.0
        total = annual * span_years
        ticket = rng.lognormvariate(math.log(260.0), 0.5)
        count = max(1, min(40, round(total / ticket)))
        if count == 1:
            days = [last_days]
        else:
            days = [first_days, last_days]
            days += [rng.uniform(last_days, first_days) for _ in range(count - 2)]
        weights = [rng.expovariate(1.0) for _ in range(count)]
        scale = total * 100 / sum(weights)
        purchases: list[Purchase] = []
        now = self.now
        first_at: datetime | None = None
        for day, weight in zip(days, weights, strict=True):
            cents = max(100, round(weight * scale))
            at = now - day * _DAY
            first_at = at if first_at is None or at < first_at else first_at
            self._transaction(batch, customer_id, "order", cents, at)
            purchases.append(Purchase(at=at, amount=cents / 100))
            if rng.random() < 0.03:
                refund = -max(100, round(cents * rng.choice((0.2, 0.5, 1.0))))
                refund_at = min(now, at + rng.uniform(1, 20) * _DAY)
                self._transaction(batch, customer_id, "refund", refund, refund_at)
                purchases.append(Purchase(at=refund_at, amount=refund / 100))
        return purchases, first_at

    def _transaction(
        self, batch: _Batch, customer_id: int, kind: str, cents: int, at: datetime
    ) -> None:
        transaction_id = self.ids.transaction
        self.ids.transaction += 1
        batch.transactions.append(
            {
                "id": transaction_id,
                "customer_id": customer_id,
                "kind": kind,
                "amount": Decimal(cents).scaleb(-2),
                "currency": "CNY",
                "at": at,
                "external_ref": f"{'ORD' if kind == 'order' else 'RFD'}-{transaction_id:010d}",
            }
        )

    # -- calls and complaints ----------------------------------------------------------------

    def _interactions(self, batch: _Batch, customer_id: int, tier: str, numbers: list[str]) -> None:
        if self.handed_over:
            self._handed_over_call(batch, customer_id, numbers, self.handed_over.pop(0))
        rng = self.rng
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            days_ago = rng.uniform(0.1, _HISTORY_DAYS)
            batch.interactions.append(self._call(customer_id, tier, numbers, days_ago))
        if rng.random() < 0.015:  # a complaint: its call, then the case, recent unless resolved
            status = rng.choice(("open", "assigned", "resolved", "resolved"))
            days_ago = (
                rng.uniform(15, _HISTORY_DAYS) if status == "resolved" else rng.uniform(0.1, 10)
            )
            call = self._call(customer_id, tier, numbers, days_ago, complaint=True)
            batch.interactions.append(call)
            self._case(batch, customer_id, call, status)

    def _call(
        self,
        customer_id: int,
        tier: str,
        numbers: list[str],
        days_ago: float,
        *,
        complaint: bool = False,
    ) -> dict[str, Any]:
        rng = self.rng
        interaction_id = self.ids.interaction
        self.ids.interaction += 1
        arrived = self.now - days_ago * _DAY
        roll = 1.0 if complaint else rng.random()
        kind = "abandoned" if roll < 0.12 else "ivr_only" if roll < 0.22 else "inbound_call"
        queue: str | None = "vip" if tier == "platinum" else rng.choice(_QUEUES)
        ivr_ended = arrived + timedelta(seconds=rng.uniform(8, 90))
        queued_at = offered_at = answered_at = None
        survey = None
        if kind == "ivr_only":
            ended = ivr_ended + timedelta(seconds=rng.uniform(5, 60))
            disposition = "self_service"
            path = ["welcome", "main_menu", rng.choice(("balance", "order_status", "hours"))]
            queue = None
        else:
            queued_at = ivr_ended
            wait = timedelta(seconds=rng.expovariate(1 / 45))
            path = ["welcome", "main_menu", queue or "support"]
            if kind == "abandoned":
                ended = queued_at + wait
                disposition = "abandoned"
            else:
                offered_at = queued_at + wait
                answered_at = offered_at + timedelta(seconds=rng.uniform(2, 15))
                ended = answered_at + timedelta(seconds=rng.lognormvariate(math.log(240), 0.7))
                disposition = "complaint" if complaint else rng.choice(_DISPOSITIONS)
                survey = rng.randint(1, 5) if rng.random() < 0.2 else None
        caller = rng.choice(numbers)
        if rng.random() < 0.5 and caller.startswith("+86"):
            caller = caller[3:]  # trunks often deliver national numbers
        return {
            "id": interaction_id,
            "external_key": f"seed:{self.now.timestamp():.0f}.{interaction_id}",
            "customer_id": customer_id,
            "kind": kind,
            "caller_number": caller,
            "dialed": _HOTLINE,
            "arrived_at": arrived,
            "queued_at": queued_at,
            "offered_at": offered_at,
            "answered_at": answered_at,
            "ended_at": ended,
            "queue": queue,
            "agent_id": None,
            "agent_name": None,
            "ended_by": None,
            "ivr_path": path,
            "ivr_inputs": {"menu": str(rng.randint(1, 4))},
            "routing": {"tier": tier, "queue": queue} if queue else {},
            "disposition": disposition,
            "notes": "",
            "recordings": [],
            "survey_score": survey,
            "rates_interaction_id": None,
            "updated_at": ended,
        }

    def _handed_over_call(
        self, batch: _Batch, customer_id: int, numbers: list[str], hand_overs: tuple[str, ...]
    ) -> None:
        """An answered call of the last hour (today) that went from desk to desk: its
        interaction, named by its first answerer, and one party per desk with their own time."""
        rng = self.handover_rng
        midnight = self.now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        earliest = max(midnight, self.now - _HANDED_OVER_WITHIN)
        desks = rng.sample(DEMO_DESKS, len(hand_overs) + 1)
        lengths = [float(rng.randint(30, 240)) for _ in desks]
        waited = timedelta(seconds=rng.uniform(15, 60))
        # over before now; today unless seeded in the first minutes of the day
        latest = self.now - timedelta(seconds=sum(lengths)) - waited
        arrived = latest - max(latest - earliest, timedelta(0)) * rng.random()
        answered = arrived + waited
        interaction_id = self.ids.interaction
        self.ids.interaction += 1
        start, previous = answered, None
        for position, ((extension, member), seconds) in enumerate(zip(desks, lengths, strict=True)):
            end = start + timedelta(seconds=seconds)
            batch.parties.append(
                {
                    "id": self.ids.party,
                    "interaction_id": interaction_id,
                    "position": position,
                    "party": f"PJSIP/{extension}",
                    "extension": extension,
                    "agent_id": self.desk_users.get(extension),
                    "agent_name": member,
                    "how": hand_overs[position - 1] if position else "answer",
                    "by_party": previous,
                    "started_at": start,
                    "ended_at": end,
                    "seconds": seconds,
                }
            )
            self.ids.party += 1
            start, previous = end, f"PJSIP/{extension}"
        queue = rng.choice(("support", "billing", "sales"))
        first_extension, first_member = desks[0]
        batch.interactions.append(
            {
                "id": interaction_id,
                "external_key": f"seed:{self.now.timestamp():.0f}.{interaction_id}",
                "customer_id": customer_id,
                "kind": "inbound_call",
                "caller_number": rng.choice(numbers),
                "dialed": _HOTLINE,
                "arrived_at": arrived,
                "queued_at": arrived + timedelta(seconds=10),
                "offered_at": answered - timedelta(seconds=5),
                "answered_at": answered,
                "ended_at": start,
                "queue": queue,
                "agent_id": self.desk_users.get(first_extension),
                "agent_name": first_member,
                "ended_by": "caller",
                "ivr_path": ["welcome", "main_menu", queue],
                "ivr_inputs": {"menu": "2"},
                "routing": {"queue": queue},
                "disposition": "resolved",
                "notes": "handed over: " + ", then ".join(hand_overs),
                "recordings": [],
                "survey_score": None,
                "rates_interaction_id": None,
                "updated_at": start,
            }
        )

    def _case(self, batch: _Batch, customer_id: int, call: dict[str, Any], status: str) -> None:
        rng = self.rng
        interaction_id = call["id"]
        opened = min(self.now, call["ended_at"] + timedelta(minutes=rng.uniform(1, 30)))
        severity = rng.choice(("low", "medium", "medium", "high", "critical"))
        category = rng.choice(_CASE_CATEGORIES)
        assigned = resolved = None
        if status != "open":
            assigned = min(self.now, opened + timedelta(hours=rng.uniform(0.2, 8)))
        if assigned is not None and status == "resolved":
            resolved = min(self.now, assigned + timedelta(hours=rng.uniform(1, 72)))
        case_id = self.ids.case
        self.ids.case += 1
        batch.cases.append(
            {
                "id": case_id,
                "customer_id": customer_id,
                "category": category,
                "severity": severity,
                "status": status,
                "summary": _CASE_SUMMARIES[category],
                "owner_id": None,
                "opened_at": opened,
                "assigned_at": assigned,
                "resolved_at": resolved,
                "closed_at": None,
                "due_at": self.sla.due(severity, opened),
                "evidence": [{"interaction_id": interaction_id, "source": "seed"}],
                "source_signal_id": None,
            }
        )
        batch.case_links.append({"case_id": case_id, "interaction_id": interaction_id})


# -- writing ----------------------------------------------------------------------------------


async def _next_ids(connection: AsyncConnection) -> _Ids:
    values = []
    for table in _SERIAL_TABLES:
        largest = await connection.scalar(select(func.max(table.c.id)))
        values.append(int(largest or 0) + 1)
    return _Ids(*values)


async def _desk_users(connection: AsyncConnection) -> dict[str, int]:
    """The users who already have the extension of one of :data:`DEMO_DESKS`."""
    rows = await connection.execute(
        select(User.extension, User.id).where(User.extension.in_([e for e, _ in DEMO_DESKS]))
    )
    return {str(extension): int(user_id) for extension, user_id in rows}


async def _sqlite_pragmas(connection: AsyncConnection, values: dict[str, str]) -> dict[str, str]:
    """Set connection pragmas, returning their previous values."""
    previous = {}
    for name, value in values.items():
        previous[name] = str(await connection.scalar(text(f"PRAGMA {name}")))
        await connection.exec_driver_sql(f"PRAGMA {name}={value}")
    return previous


async def seed_crm(
    engine: AsyncEngine,
    customers: int,
    *,
    seed: int = 1,
    region: str = "CN",
    policy: ValuePolicy | None = None,
    progress: Callable[[int], None] | None = None,
    now: datetime | None = None,
) -> SeedReport:
    """Add ``customers`` realistic customers with their history to a migrated CRM database.

    ``region`` is the CRM's default region (how national numbers are read), ``policy`` the
    value policy the tiers are computed with (the default one if None), ``now`` the moment
    the history leads up to (the current time if None). ``progress`` is called with the
    number of customers written so far after every committed batch.

    From :data:`PARALLEL_FROM` customers on, the rows are generated in a child process while
    this one writes the previous batch: the same rows, in about 70 % of the time.
    """
    if customers < 0:
        raise ValueError(f"customers must be at least 0, got {customers}")
    now = now or datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    region = region.upper()
    policy = policy or ValuePolicy()
    began = time.perf_counter()
    totals: Counter[str] = Counter()
    tiers: Counter[str] = Counter()
    sqlite = engine.dialect.name == "sqlite"
    async with engine.connect() as connection:
        restore: dict[str, str] = {}
        if sqlite:
            restore = await _sqlite_pragmas(connection, _SQLITE_SEEDING)
            await connection.commit()
        try:
            ids = await _next_ids(connection)
            desk_users = await _desk_users(connection)
            await connection.commit()
            done = 0
            generator = _Generator(seed, region, policy, now, ids, desk_users=desk_users)
            async with aclosing(_batches(customers, generator)) as batches:
                async for batch in batches:
                    async with connection.begin():
                        for table, rows in batch.rows():
                            if rows:
                                await connection.execute(insert(table), rows)
                    done += len(batch.customers)
                    totals.update(
                        customers=len(batch.customers),
                        organisations=batch.organisations,
                        phones=len(batch.phones),
                        transactions=len(batch.transactions),
                        interactions=len(batch.interactions),
                        cases=len(batch.cases),
                    )
                    tiers.update(batch.tiers)
                    if progress is not None:
                        progress(done)
            await _finish(connection, sqlite)
        finally:
            if sqlite and restore:
                await _sqlite_pragmas(connection, restore)
                await connection.commit()
    return SeedReport(
        customers=totals["customers"],
        organisations=totals["organisations"],
        phones=totals["phones"],
        transactions=totals["transactions"],
        interactions=totals["interactions"],
        cases=totals["cases"],
        seconds=time.perf_counter() - began,
        tiers=dict(tiers),
    )


PARALLEL_FROM = 50_000
"""From this many customers on, a child process generates the rows (it takes ~1 s to start)."""

# SQLite settings of the seeding connection, put back afterwards: no fsync (a crash while
# seeding leaves a database to throw away anyway), a 256 MiB page cache so that the indexes
# being filled stay in memory, and a sampled ANALYZE at the end.
_SQLITE_SEEDING = {"synchronous": "OFF", "cache_size": "-262144", "analysis_limit": "1000"}

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_WORKER = "from crm_core.seed import _worker_main; _worker_main()"
_LENGTH = struct.Struct("<Q")


async def _batches(customers: int, generator: _Generator) -> AsyncGenerator[_Batch, None]:
    """The batches of ``customers``, generated here or, for many, in a child process.

    The child is one Python process running the same generator, so it makes the same rows
    in the same order; it works one batch ahead of the writer (the pipe holds it back).
    It is started with ``python -c`` rather than :mod:`multiprocessing`, which would re-run
    the caller's ``__main__`` module in it.
    """
    sizes = [min(BATCH_SIZE, customers - start) for start in range(0, customers, BATCH_SIZE)]
    if customers < PARALLEL_FROM:
        for size in sizes:
            with _gc_paused():
                batch = generator.batch(size)
            yield batch
        return
    package_root = _PACKAGE_ROOT
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _WORKER,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert worker.stdin is not None
    assert worker.stdout is not None
    try:
        worker.stdin.write(pickle.dumps((generator, sizes), pickle.HIGHEST_PROTOCOL))
        await worker.stdin.drain()
        worker.stdin.close()
        for _ in sizes:
            try:
                (length,) = _LENGTH.unpack(await worker.stdout.readexactly(_LENGTH.size))
                data = await worker.stdout.readexactly(length)
            except asyncio.IncompleteReadError:
                code = await worker.wait()
                raise RuntimeError(f"the seeding worker failed (exit code {code})") from None
            with _gc_paused():
                batch = pickle.loads(data)  # noqa: S301 - our own child process's output
            yield batch
        await worker.wait()
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch is made or unpickled.

    A batch is ~100,000 new dicts, lists and objects without reference cycles: the collector
    would run dozens of times for nothing, slowing generation by 15-30 %. No await happens
    meanwhile, so no other task of the event loop runs without it.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _worker_main() -> None:
    """The child process: read the generator and the batch sizes, write the batches."""
    gc.disable()  # see _gc_paused; this process lives for one seeding
    generator, sizes = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 - from our parent
    out = sys.stdout.buffer
    for size in sizes:
        data = pickle.dumps(generator.batch(size), pickle.HIGHEST_PROTOCOL)
        out.write(_LENGTH.pack(len(data)))
        out.write(data)
        out.flush()


async def _finish(connection: AsyncConnection, sqlite: bool) -> None:
    """Move PostgreSQL's id sequences past the new rows; refresh the planner's statistics."""
    async with connection.begin():
        if sqlite:
            await connection.exec_driver_sql("ANALYZE")  # sampled: analysis_limit is set
            return
        for table in _SERIAL_TABLES:
            await connection.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "  # noqa: S608
                    f"(SELECT coalesce(max(id), 0) + 1 FROM {table.name}), false)"
                )
            )
        for table in (*_TABLES, _NAME_KEYS):
            await connection.exec_driver_sql(f"ANALYZE {table.name}")
