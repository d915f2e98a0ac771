"""Agents' SIP phones for real-Asterisk tests: a second Asterisk that plays every phone.

The CTI's Asterisk sees real PJSIP phones: each agent extension REGISTERs to it with the agent's
SIP credentials, rings with a real INVITE, answers with 200 OK, keys feature codes as RFC 4733
DTMF, dials out with an INVITE from that extension, and can forward a call with a 302. The phones
instance runs beside it in the same chroot, with a small configuration of its own (written here,
not rendered from the product's templates beyond the boilerplate) and its own AMI, through which
a test drives the phones:

- a call to phone ``<ext>`` arrives at the phones instance as extension ``<ext>`` of
  ``phone-ringing`` (the INVITE's user part), which rings until the test answers (a Redirect into
  ``phone-answer``), hangs up, or the caller gives up; with a forward set, ``phone-ringing``
  answers the INVITE with a 302 to another extension instead (``Transfer()`` on a channel not yet
  answered is a redirect in chan_pjsip);
- a call from phone ``<ext>`` is an Originate of ``PJSIP/<number>@phone-<ext>``, an endpoint that
  authenticates as ``<ext>``: the CTI's Asterisk sees an INVITE from endpoint ``<ext>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from panoramisk.message import Message

from cti_server.asterisk.local import STOCK_CONFIG, AsteriskChroot, AsteriskInstance
from cti_server.asterisk.render import InstanceDirs, RtpRange, render_config, write_config
from cti_server.config import Settings, load_settings
from cti_server.telephony.ami_client import AmiClient
from tests.support.ports import free_port
from tests.support.waiting import EventLog, event_is, poll_until

WAIT = 10.0  # seconds any one phone event may take
PHONES_RTP = RtpRange(30000, 31999)  # apart from the CTI's Asterisk (10000-20000)
# what the phones instance needs of the files render_config writes; the rest is ours
RENDERED = ("asterisk.conf", "modules.conf", "logger.conf", "rtp.conf", "musiconhold.conf")


class PhoneError(AssertionError):
    """A phone could not do what the test asked (no call ringing, action refused)."""


def _pjsip_conf(settings: Settings, cti: Settings, extensions: Iterable[str]) -> str:
    cti_at = f"127.0.0.1:{cti.dialplan.sip_port}"
    secret = cti.dialplan.sip_secret
    password = secret.get_secret_value() if secret else ""
    lines = [
        "[transport-udp]",
        "type = transport",
        "protocol = udp",
        f"bind = 127.0.0.1:{settings.dialplan.sip_port}",
        "",
        "; the CTI's Asterisk: every call to a phone comes from it (matched by address)",
        "[cti]",
        "type = endpoint",
        "context = phone-ringing",
        "disallow = all",
        "allow = ulaw,alaw",
        "direct_media = no",
        "dtmf_mode = rfc4733",
        "aors = cti",
        "[cti]",
        "type = aor",
        f"contact = sip:{cti_at}",
        "[cti]",
        "type = identify",
        "endpoint = cti",
        "match = 127.0.0.1",
    ]
    for ext in extensions:
        lines += [
            "",
            f"; phone {ext}: calls out as {ext}, registers as {ext}",
            f"[phone-{ext}]",
            "type = endpoint",
            "context = phone-talk",
            "disallow = all",
            "allow = ulaw,alaw",
            "direct_media = no",
            "dtmf_mode = rfc4733",
            "aors = cti",
            f"from_user = {ext}",
            f'callerid = "Phone {ext}" <{ext}>',
        ]
        if password:
            lines += [
                f"outbound_auth = phone-{ext}",
                f"[phone-{ext}]",
                "type = auth",
                "auth_type = userpass",
                f"username = {ext}",
                f"password = {password}",
            ]
        lines += [
            f"[reg-{ext}]",
            "type = registration",
            f"server_uri = sip:{cti_at}",
            f"client_uri = sip:{ext}@{cti_at}",
            f"contact_user = {ext}",
            "retry_interval = 1",
            "forbidden_retry_interval = 1",
            "expiration = 3600",
        ]
        if password:
            lines.append(f"outbound_auth = phone-{ext}")
    return "\n".join(lines) + "\n"


EXTENSIONS_CONF = """\
[general]
static = yes
writeprotect = yes

; A call to phone ${EXTEN}: it rings (180) until the test answers it (Redirect to phone-answer)
; or hangs it up. A forwarding phone (global PHONE_FORWARD_<ext>) answers the INVITE with a 302.
[phone-ringing]
exten => _[0-9].,1,GotoIf($["${GLOBAL(PHONE_FORWARD_${EXTEN})}" != ""]?forward)
 same => n,Ringing()
 same => n,Wait(600)
 same => n,Hangup()
 same => n(forward),Transfer(PJSIP/sip:${GLOBAL(PHONE_FORWARD_${EXTEN})}@${CTI_SIP})
 same => n,Hangup()

; The phone answered: it stays in the call until the test or the far end hangs up.
[phone-answer]
exten => s,1,Answer()
 same => n,Wait(600)
 same => n,Hangup()

; The phone's own leg of a call it dialled (an Originate): on the line once the far end answers.
[phone-talk]
exten => s,1,Wait(600)
 same => n,Hangup()
"""


def _manager_conf(settings: Settings) -> str:
    """The phones' AMI: the test may do anything with its own phones."""
    return (
        "[general]\nenabled = yes\nwebenabled = no\n"
        f"port = {settings.ami.port}\nbindaddr = 127.0.0.1\ndisplayconnects = no\n"
        "timestampevents = yes\n\n"
        f"[{settings.ami.username}]\nsecret = {settings.ami.secret.get_secret_value()}\n"
        "deny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\n"
        "read = all\nwrite = all\n"
    )


class PhonesInstance(AsteriskInstance):
    """The second Asterisk, configured as the agents' phones instead of a contact center."""

    def __init__(
        self,
        chroot: AsteriskChroot,
        name: str,
        settings: Settings,
        cti: Settings,
        extensions: Iterable[str],
    ) -> None:
        super().__init__(chroot, name, settings, rtp=PHONES_RTP)
        self.cti = cti
        self.extensions = tuple(extensions)

    def unregistered(self, cti: AsteriskInstance) -> list[str]:
        """Phones the CTI's Asterisk has no contact of (one from an earlier run does not count:
        it names another port)."""
        shown = cti.cli("pjsip show contacts").stdout
        port = self.settings.dialplan.sip_port
        return [e for e in self.extensions if f"{e}/sip:{e}@127.0.0.1:{port} " not in shown]

    def install_config(self) -> None:
        dirs = InstanceDirs(**{**self.dirs.__dict__, "modules": self.chroot.modules_dir()})
        for path in (dirs.etc, dirs.db, dirs.spool, dirs.run, dirs.log, dirs.cache):
            self.chroot.host_path(path).mkdir(parents=True, exist_ok=True)
        etc = self.chroot.host_path(dirs.etc)
        for name in STOCK_CONFIG:
            stock = self.chroot.root / "etc/asterisk" / name
            if stock.is_file():
                (etc / name).write_bytes(stock.read_bytes())
        rendered = render_config(self.settings, dirs, self.rtp)
        files = {name: rendered[name] for name in RENDERED}
        files["manager.conf"] = _manager_conf(self.settings)
        files["pjsip.conf"] = _pjsip_conf(self.settings, self.cti, self.extensions)
        files["extensions.conf"] = EXTENSIONS_CONF.replace(
            "${CTI_SIP}", f"127.0.0.1:{self.cti.dialplan.sip_port}"
        )
        write_config(files, etc)


def phones_settings(name: str, workdir: Path) -> Settings:
    return load_settings(
        None,
        ami={"secret": secrets.token_urlsafe(16), "port": free_port(), "node": name},
        dialplan={"sip_port": free_port(socket.SOCK_DGRAM), "simulation": False},
        asterisk={"instance": name},
        database={"url": f"sqlite+aiosqlite:///{workdir / 'phones.db'}"},
    )


@dataclass
class Phone:
    """One agent's phone. Its calls are channels of the phones instance, newest last."""

    extension: str
    phones: Phones
    channels: list[str] = field(default_factory=list)
    answered: set[str] = field(default_factory=set)  # of ``channels``: off the hook

    @property
    def device(self) -> str:
        """How the CTI's Asterisk names this phone (a queue member's interface, a Dial target)."""
        return f"PJSIP/{self.extension}"

    async def wait_ringing(self, timeout: float = WAIT) -> str:
        """The phone-side channel of the newest call ringing on this phone."""
        known = set(self.channels)
        ringing = await self.phones.log.wait_for(
            lambda m: (
                m.get("Event") == "Newexten"
                and m.get("Context") == "phone-ringing"
                and m.get("Exten") == self.extension
                and m.get("Application") == "Ringing"
                and m.get("Channel") not in known
                and m.get("Channel") not in self.phones.gone
            ),
            timeout,
            f"a call ringing on phone {self.extension}",
        )
        channel = str(ringing["Channel"])
        self.channels.append(channel)
        return channel

    async def answer(self, timeout: float = WAIT) -> str:
        """Answer the call ringing (waiting for one if none rings yet); its phone-side channel."""
        gone = self.phones.gone
        ringing = [c for c in self.channels if c not in gone and c not in self.answered]
        channel = ringing[-1] if ringing else await self.wait_ringing(timeout)
        self.answered.add(channel)
        await self.phones.action(
            "Redirect",
            {"Channel": channel, "Context": "phone-answer", "Exten": "s", "Priority": "1"},
        )
        await self.phones.log.wait_for(
            event_is("Newstate", Channel=channel, ChannelStateDesc="Up"),
            timeout,
            f"phone {self.extension} answered",
        )
        return channel

    def current(self) -> str:
        live = [c for c in self.channels if c not in self.phones.gone]
        if not live:
            raise PhoneError(f"phone {self.extension} has no call")
        return live[-1]

    async def hangup(self) -> None:
        """Hang up the phone's newest call (a BYE, or a CANCEL / 486 while it rings)."""
        channel = self.current()
        await self.phones.action("Hangup", {"Channel": channel})
        await self.phones.log.wait_for(
            event_is("Hangup", Channel=channel), WAIT, f"phone {self.extension} hung up"
        )

    async def key(self, digits: str) -> None:
        """Key ``digits`` on the phone's newest call (RFC 4733), one after the other: each
        once the CTI's Asterisk has received the one before (keyed faster, the digits overlap
        and Asterisk loses some)."""
        channel = self.current()
        cti = self.phones.cti_log
        prefix = f"{self.device}-"
        for digit in digits:
            known = len(cti.events)

            def _received(m: Message, known: int = known, digit: str = digit) -> bool:
                return (
                    m.get("Event") == "DTMFEnd"
                    and str(m.get("Channel", "")).startswith(prefix)
                    and m.get("Digit") == digit
                    and m.get("Direction") == "Received"
                    and cti.events.index(m) >= known
                )

            await self.phones.action(
                "PlayDTMF", {"Channel": channel, "Digit": digit, "Duration": "120"}
            )
            await cti.wait_for(
                _received, WAIT, f"the CTI's Asterisk receiving {digit} from {self.extension}"
            )

    async def dial(self, number: str) -> str:
        """Dial ``number`` from this phone (an INVITE from endpoint ``extension``); returns the
        phone-side channel, on the line once the CTI's Asterisk answers."""
        uniqueid = f"phone-{self.extension}-{uuid.uuid4().hex[:12]}"
        await self.phones.action(
            "Originate",
            {
                "Channel": f"PJSIP/{number}@phone-{self.extension}",
                "Context": "phone-talk",
                "Exten": "s",
                "Priority": "1",
                "CallerID": f'"Phone {self.extension}" <{self.extension}>',
                "Async": "true",
                "ChannelId": uniqueid,
            },
        )
        created = await self.phones.log.wait_for(
            event_is("Newchannel", Uniqueid=uniqueid), WAIT, f"phone {self.extension} dials"
        )
        channel = str(created["Channel"])
        self.channels.append(channel)
        self.answered.add(channel)
        return channel

    async def forward_to(self, extension: str | None) -> None:
        """From now on, answer every call with a 302 to ``extension`` (None: ring again)."""
        await self.phones.action(
            "Setvar", {"Variable": f"PHONE_FORWARD_{self.extension}", "Value": extension or ""}
        )


class Phones:
    """The phones instance, its AMI, and one :class:`Phone` per agent extension."""

    def __init__(
        self, instance: PhonesInstance, client: AmiClient, log: EventLog, cti_log: EventLog
    ) -> None:
        """``log``: the phones' AMI events; ``cti_log``: the CTI Asterisk's, to see what it
        received from the phones."""
        self.instance = instance
        self.client = client
        self.log = log
        self.cti_log = cti_log
        self._phones = {ext: Phone(ext, self) for ext in instance.extensions}

    @property
    def gone(self) -> set[str]:
        """Phone-side channels hung up."""
        return {str(m.get("Channel")) for m in self.log.events if m.get("Event") == "Hangup"}

    def __getitem__(self, extension: str) -> Phone:
        return self._phones[extension]

    async def action(self, name: str, fields: dict[str, str]) -> list[Message]:
        reply = await self.client.send_action(name, fields, timeout=WAIT)
        messages = reply if isinstance(reply, list) else [reply]
        if not messages[0].success:
            raise PhoneError(f"phones: {name} {fields}: {messages[0].get('Message')}")
        return messages

    async def wait_registered(self, cti: AsteriskInstance, timeout: float = 20.0) -> None:
        """Until the CTI's Asterisk has a contact for every phone (what it dials)."""

        async def _all_there() -> bool:
            return not await asyncio.to_thread(self.instance.unregistered, cti)

        await poll_until(_all_there, timeout, interval=0.2, what="every phone registered")

    async def hang_up_all(self) -> None:
        """End every call the phones still have (a test's clean-up)."""
        reply = await self.client.send_action("CoreShowChannels", {}, timeout=WAIT)
        messages = reply if isinstance(reply, list) else [reply]
        for message in messages:
            if message.get("Event") == "CoreShowChannel":
                with contextlib.suppress(PhoneError):
                    await self.action("Hangup", {"Channel": str(message["Channel"])})


def start_phones(
    chroot: AsteriskChroot,
    cti: AsteriskInstance,
    extensions: Iterable[str],
    workdir: Path,
    name: str,
) -> PhonesInstance:
    """Start the phones instance for the agents ``extensions`` of the CTI's Asterisk ``cti``."""
    settings = phones_settings(name, workdir)
    instance = PhonesInstance(chroot, name, settings, cti.settings, extensions)
    instance.up()
    # at start Asterisk spreads registrations over 10 s: all now, before any test watches AMI
    instance.cli("pjsip send register *all")
    deadline = time.monotonic() + 20.0
    while missing := instance.unregistered(cti):
        if time.monotonic() > deadline:
            instance.stop()
            raise PhoneError(f"phones not registered within 20 s: {', '.join(missing)}")
        time.sleep(0.2)  # Asterisk's CLI has no wait for a contact
    return instance


@asynccontextmanager
async def connected_phones(
    instance: PhonesInstance, cti: AsteriskInstance, cti_log: EventLog
) -> AsyncIterator[Phones]:
    """The phones' AMI for one test, once every phone is registered; their calls ended after."""
    log = EventLog()
    client = AmiClient(instance.settings.ami, on_event=log)
    task = asyncio.create_task(client.run())
    try:
        await client.wait_connected(10.0)
        phones = Phones(instance, client, log, cti_log)
        await phones.wait_registered(cti)
        try:
            yield phones
        finally:
            await phones.hang_up_all()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
