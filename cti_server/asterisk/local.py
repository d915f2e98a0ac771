"""A real Asterisk 22 for development and tests: Debian sid in a debootstrap chroot.

Debian bookworm has no Asterisk package, sid has; a chroot keeps sid's packages off the machine.
The chroot is cached outside the checkout and shared; each *instance* (demo, a test run, a second
node) has its own configuration, run, spool, database and log directories inside it, so several
can run side by side on their own ports.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from cti_server.asterisk.agi_bridge import SHIM, SOCKET_NAME
from cti_server.asterisk.certificate import CertificateError, ensure_self_signed
from cti_server.asterisk.data import data_dir
from cti_server.asterisk.render import (
    InstanceDirs,
    RenderError,
    RtpRange,
    render_config,
    write_config,
)
from cti_server.asterisk.sip_digests import SipDigestError, read_digests
from cti_server.config import Settings
from cti_server.sim.personas import persona_sounds

log = logging.getLogger(__name__)

# socat: the classic-AGI shim links Asterisk's AGI pipes to cti-agi outside (see agi_bridge.py)
PACKAGES = ("asterisk", "asterisk-core-sounds-en-wav", "asterisk-moh-opsound-wav", "socat")
# written last by provision(), naming the packages: a chroot of another package list is not ours
COMPLETE_MARKER = ".cti-chroot-complete"
AGI_BIN = "usr/share/asterisk/agi-bin"
STATE_DIRS = (
    "var/lib/asterisk",
    "run/asterisk",
    "var/log/asterisk",
    "var/spool/asterisk",
    "var/cache/asterisk",
)
SOUNDS_DIR = "usr/local/share/asterisk/sounds/cti"
# IVR prompts: Asterisk finds cti/<prompt> for a channel speaking <language> as
# sounds/<language>/cti/<prompt> (its language-prefix layout; the custom directory is not
# searched per language)
PROMPTS_DIR = "usr/share/asterisk/sounds/{language}/cti"
DIGITS_DIR = "usr/share/asterisk/sounds/{language}/digits"
# Debian's stock files that we keep as they are (tones, CDR); the rest we render.
STOCK_CONFIG = (
    "cdr.conf",
    "indications.conf",
    "ccss.conf",
    "acl.conf",
    "udptl.conf",
    "codecs.conf",
    "pjproject.conf",
    "cel.conf",
)


class AsteriskError(RuntimeError):
    """The local Asterisk could not be provisioned, started or stopped."""


def _marker_text() -> str:
    return "packages: " + ",".join(sorted(PACKAGES)) + "\n"


def default_chroot_path() -> Path:
    """One cached chroot per package list: a new list builds a new chroot beside the old one,
    so Asterisk instances still running in the old one (another checkout, a test run) keep it."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    digest = hashlib.sha256(_marker_text().encode()).hexdigest()[:8]
    return Path(cache) / "cti-server" / f"asterisk-chroot-{digest}"


class AsteriskChroot:
    """The cached Debian sid root with Asterisk installed."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or default_chroot_path()).resolve()

    @property
    def complete(self) -> bool:
        """Built to the end, with today's package list (an older marker holds a timestamp)."""
        try:
            return (self.root / COMPLETE_MARKER).read_text(encoding="utf-8") == _marker_text()
        except OSError:
            return False

    def provision(self) -> None:
        """Build the chroot unless a complete one is cached; an interrupted build is redone.

        One build at a time (a lock beside the root): a second process waits for the first and
        then reuses its chroot. A stale chroot (another package list) at a configured path is
        rebuilt only while no instance runs in it.
        """
        self.root.parent.mkdir(parents=True, exist_ok=True)
        with self.root.with_name(self.root.name + ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._provision()

    def _provision(self) -> None:
        if self.complete:
            log.info("reusing the cached Asterisk chroot at %s", self.root)
            return
        if self.root.exists() and (
            any_instance_running(self) or os.path.ismount(self.root / "proc")
        ):
            raise AsteriskError(
                f"the Asterisk chroot at {self.root} lacks packages ({', '.join(PACKAGES)}) "
                "and Asterisk runs in it: stop its instances, then run `cti asterisk provision`"
            )
        if os.geteuid() != 0:
            raise AsteriskError("building the Asterisk chroot needs root (debootstrap, chroot)")
        if shutil.which("debootstrap") is None:
            raise AsteriskError("debootstrap is not installed (apt-get install debootstrap)")
        staging = self.root.with_name(self.root.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        log.info("building the Asterisk chroot (Debian sid) at %s", self.root)
        result = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                "sid",
                str(staging),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise AsteriskError(
                f"debootstrap failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        for rel in STATE_DIRS:
            (staging / rel).mkdir(parents=True, exist_ok=True)
        (staging / COMPLETE_MARKER).write_text(_marker_text(), encoding="utf-8")
        shutil.rmtree(self.root, ignore_errors=True)
        staging.rename(self.root)
        log.info("Asterisk chroot ready in %.0f s", time.monotonic() - started)

    def require(self) -> None:
        if not self.complete:
            raise AsteriskError(
                f"no complete Asterisk chroot at {self.root}: run `cti asterisk up`"
            )

    def modules_dir(self) -> str:
        found = sorted(self.root.glob("usr/lib/*/asterisk/modules")) or sorted(
            self.root.glob("usr/lib/asterisk/modules")
        )
        if not found:
            raise AsteriskError(f"no Asterisk modules directory in {self.root}")
        return "/" + str(found[0].relative_to(self.root))

    def inside(self, path: str) -> Path:
        """The host path of ``path`` as the chroot sees it, following its symlinks in there.

        Debian links sounds/en to /etc/alternatives/...: resolved on the host it would leave
        the chroot.
        """
        current = self.root
        parts = list(Path(path.lstrip("/")).parts)
        for _ in range(100):
            if not parts:
                return current
            candidate = current / parts.pop(0)
            if candidate.is_symlink():
                target = Path(os.readlink(candidate))
                parts = list(target.parts[1:] if target.is_absolute() else target.parts) + parts
                if target.is_absolute():
                    current = self.root
                continue
            current = candidate
        raise AsteriskError(f"too many symbolic links under {path}")

    def host_path(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")

    def mount_proc(self) -> None:
        proc = self.root / "proc"
        if not os.path.ismount(proc):
            subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)

    def unmount_proc(self) -> None:
        proc = self.root / "proc"
        if os.path.ismount(proc):
            subprocess.run(["umount", "-l", str(proc)], check=False)

    def install_prompts(self, prompt_dir: Path) -> None:
        """IVR prompts ``<prompt_dir>/<language>/<name>.txt``, spoken per language; a
        ``digits/`` folder beside them gives Asterisk's number words where it has none."""
        for language_dir in sorted(p for p in prompt_dir.iterdir() if p.is_dir()):
            voice = VOICES.get(language_dir.name, language_dir.name)
            for source, where in (
                (language_dir, PROMPTS_DIR),
                (language_dir / "digits", DIGITS_DIR),
            ):
                texts = {
                    path.stem: path.read_text(encoding="utf-8").strip()
                    for path in sorted(source.glob("*.txt"))
                }
                if texts:
                    self.install_sounds(
                        texts, voice=voice, where=where.format(language=language_dir.name)
                    )

    def install_agi_shim(self) -> None:
        """``cti-agi`` in Asterisk's agi-bin: the shim that reaches the real one outside."""
        shim = self.inside(f"/{AGI_BIN}") / "cti-agi"
        shim.parent.mkdir(parents=True, exist_ok=True)
        if not shim.is_file() or shim.read_text(encoding="utf-8") != SHIM:
            partial = shim.with_suffix(".partial")
            partial.write_text(SHIM, encoding="utf-8")
            partial.chmod(0o755)
            partial.replace(shim)  # never half a script for a call starting now

    def install_sounds(
        self, prompts: dict[str, str], voice: str = "en", where: str = SOUNDS_DIR
    ) -> None:
        """Speak each prompt with espeak-ng and store it as 8 kHz mono WAV for Playback(cti/x)."""
        target = self.inside(where)
        target.mkdir(parents=True, exist_ok=True)
        for name, text in prompts.items():
            out = target / f"{name}.wav"
            out.parent.mkdir(parents=True, exist_ok=True)
            stamp = target / f"{name}.txt"
            if out.is_file() and stamp.is_file() and stamp.read_text(encoding="utf-8") == text:
                continue
            raw = target / f"{name}.raw.wav"
            subprocess.run(
                ["espeak-ng", "-v", voice, "-w", str(raw), text], check=True, capture_output=True
            )
            subprocess.run(
                ["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out)],
                check=True,
                capture_output=True,
            )
            raw.unlink()
            stamp.write_text(text, encoding="utf-8")


# espeak-ng voices for the prompt languages
VOICES = {"en": "en", "zh": "cmn"}

# What simulated customers and agents say; rendered once per chroot.
PROMPTS = {
    "sim-hello": "Hello, I am calling about my account.",
    "sim-agent": "Thank you for calling, how can I help you today?",
}


class AsteriskInstance:
    """One running Asterisk inside the chroot, with its own directories and ports."""

    def __init__(
        self,
        chroot: AsteriskChroot,
        name: str,
        settings: Settings,
        rtp: RtpRange | None = None,
        agi_env: Mapping[str, str] | None = None,
    ) -> None:
        """``agi_env``: the environment of cti-agi behind the AGI bridge, when the dialplan
        uses classic AGI (default: this process's: ``CTI_CONFIG_FILE``, ``CTI_*``)."""
        self.chroot = chroot
        self.name = name
        self.settings = settings
        self.rtp = rtp or RtpRange()
        self.agi_env = agi_env
        base = f"cti/{name}"
        self.dirs = InstanceDirs(
            etc=f"/etc/asterisk/{base}",
            db=f"/var/lib/asterisk/{base}",
            spool=f"/var/spool/asterisk/{base}",
            run=f"/run/asterisk/{base}",
            log=f"/var/log/asterisk/{base}",
            cache=f"/var/cache/asterisk/{base}",
        )
        self._process: subprocess.Popen[bytes] | None = None
        self._bridge: subprocess.Popen[bytes] | None = None

    @property
    def config_file(self) -> str:
        return f"{self.dirs.etc}/asterisk.conf"

    @property
    def console_log(self) -> Path:
        return self.chroot.host_path(self.dirs.log) / "console.log"

    @property
    def log_dir(self) -> Path:
        return self.chroot.host_path(self.dirs.log)

    @property
    def agi_socket(self) -> Path:
        """Where the shim finds the AGI bridge (``$AST_RUN_DIR/cti-agi.sock``), on the host."""
        return self.chroot.host_path(self.dirs.run) / SOCKET_NAME

    @property
    def _bridge_pidfile(self) -> Path:
        return self.chroot.host_path(self.dirs.run) / "agi-bridge.pid"

    def install_config(self) -> None:
        dirs = InstanceDirs(**{**self.dirs.__dict__, "modules": self.chroot.modules_dir()})
        for path in (dirs.etc, dirs.db, dirs.spool, dirs.run, dirs.log, dirs.cache):
            self.chroot.host_path(path).mkdir(parents=True, exist_ok=True)
        for made in ("monitor", "recordings/ivr"):  # call recordings; IVR messages and comments
            self.chroot.host_path(f"{dirs.spool}/{made}").mkdir(parents=True, exist_ok=True)
        # Asterisk keeps no capability but CAP_NET_ADMIN once it sets its user, root included:
        # Debian's 0750 spool (the chroot's asterisk user) would stop it reaching its own.
        self.chroot.host_path("/var/spool/asterisk").chmod(0o755)
        etc = self.chroot.host_path(dirs.etc)
        for name in STOCK_CONFIG:
            stock = self.chroot.root / "etc/asterisk" / name
            if stock.is_file():
                shutil.copyfile(stock, etc / name)
        try:
            files = render_config(
                self._with_certificate(), dirs, self.rtp, read_digests(self.digests_file)
            )
        except (SipDigestError, RenderError) as exc:
            raise AsteriskError(str(exc)) from exc
        write_config(files, etc)
        self.chroot.install_agi_shim()
        self.chroot.install_sounds(PROMPTS)
        for voice, lines in persona_sounds().items():  # what simulated customers say
            self.chroot.install_sounds(lines, voice=voice)
        self.chroot.install_prompts(data_dir("ivr_flows") / "prompts")

    @property
    def digests_file(self) -> Path:
        """The agents' SIP password hashes (``cti agent secret rotate``), on the host."""
        configured = self.settings.dialplan.sip_digests
        return configured or self.chroot.host_path(self.dirs.etc) / "sip-digests.json"

    def ensure_certificate(self) -> tuple[str, str] | None:
        """When some agent has a browser phone and the settings name no certificate, make this
        instance's self-signed one for the WSS listener (once); its certificate and key as
        Asterisk sees them, or None (no browser phones, or the configured ones are used)."""
        dialplan = self.settings.dialplan
        if dialplan.tls_cert is not None or not any(map(dialplan.browser_phone, dialplan.agents)):
            return None
        cert, key = f"{self.dirs.etc}/keys/asterisk.crt", f"{self.dirs.etc}/keys/asterisk.key"
        try:
            made = ensure_self_signed(self.chroot.host_path(cert), self.chroot.host_path(key))
        except CertificateError as exc:
            raise AsteriskError(str(exc)) from exc
        if made:
            log.info("made a self-signed certificate for Asterisk's WSS listener: %s", cert)
        return cert, key

    def _with_certificate(self) -> Settings:
        """The settings, with this instance's own certificate when none is configured."""
        made = self.ensure_certificate()
        if made is None:
            return self.settings
        update = {"tls_cert": Path(made[0]), "tls_key": Path(made[1])}
        dialplan = self.settings.dialplan.model_copy(update=update)
        return self.settings.model_copy(update={"dialplan": dialplan})

    def reload_sip(self) -> None:
        """Re-render the configuration and reload PJSIP: calls in progress go on."""
        self.install_config()
        result = self.cli("module reload res_pjsip.so")
        if result.returncode != 0 or "reloaded" not in result.stdout.lower():
            raise AsteriskError(f"PJSIP reload failed: {result.stdout}{result.stderr}")

    def pid(self) -> int | None:
        pidfile = self.chroot.host_path(self.dirs.run) / "asterisk.pid"
        try:
            pid = int(pidfile.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def running(self) -> bool:
        return self.pid() is not None

    def start(self) -> None:
        """Install the configuration and start Asterisk in the foreground of a child process."""
        self.chroot.require()
        if self.running():
            raise AsteriskError(f"Asterisk instance {self.name!r} is already running")
        self.install_config()
        self.chroot.mount_proc()
        self.console_log.parent.mkdir(parents=True, exist_ok=True)
        with self.console_log.open("ab") as out:
            self._process = subprocess.Popen(
                [
                    "chroot",
                    str(self.chroot.root),
                    "/usr/sbin/asterisk",
                    "-f",
                    "-n",
                    "-U",
                    "root",
                    "-G",
                    "root",
                    "-C",
                    self.config_file,
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # what it writes (recordings, voicemail, its logs) hold callers' voices and
                # numbers: readable by its user and group only
                umask=0o027,
            )
        if self.settings.ivr.transport == "agi":
            self._start_bridge()

    def reload(self, settings: Settings) -> None:
        """Render the configuration from ``settings`` and reload the dialplan while Asterisk
        runs on (tests switch one instance between the FastAGI and classic AGI dialplans)."""
        self.settings = settings
        self.install_config()
        result = self.cli("dialplan reload")
        if result.returncode != 0:
            raise AsteriskError(f"dialplan reload failed: {result.stdout}{result.stderr}")
        # the reload is applied by Asterisk in its own time: wait until the globals say so,
        # or the next call may still walk the previous dialplan
        ivr = settings.ivr
        route = (
            ivr.agi_program
            if ivr.transport == "agi"
            else (f"agi://{settings.agi.host}:{settings.agi.port}")
        )
        deadline = time.monotonic() + 10
        while f"CTI_AGI={route}" not in self.cli("dialplan show globals").stdout:
            if time.monotonic() > deadline:
                raise AsteriskError(f"the reloaded dialplan never showed CTI_AGI={route}")
            time.sleep(0.1)  # Asterisk offers no event for a finished reload

    def _start_bridge(self, timeout: float = 15.0) -> None:
        """The AGI bridge for a classic-AGI dialplan, detached like Asterisk itself."""
        self._stop_bridge()
        with (self.log_dir / "agi-bridge.log").open("ab") as out:
            self._bridge = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cti_server.asterisk.agi_bridge",
                    "--socket",
                    str(self.agi_socket),
                    "--log",
                    str(self.log_dir / "cti-agi.log"),
                ],
                env=dict(os.environ if self.agi_env is None else self.agi_env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._bridge_pidfile.write_text(f"{self._bridge.pid}\n", encoding="ascii")
        deadline = time.monotonic() + timeout
        while not self.agi_socket.exists():
            if self._bridge.poll() is not None or time.monotonic() > deadline:
                raise AsteriskError(f"the AGI bridge did not start: see {out.name}")
            time.sleep(0.05)  # a socket file appearing: nothing to wait on

    def _stop_bridge(self) -> None:
        try:
            pid = int(self._bridge_pidfile.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if self._bridge is not None and self._bridge.pid == pid:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._bridge.wait(timeout=10.0)
            self._bridge = None
        self._bridge_pidfile.unlink(missing_ok=True)

    def up(self) -> None:
        """Provision the chroot if needed and (re)start with the current configuration."""
        self.chroot.provision()
        if self.running():
            self.stop()
        self.start()
        self.wait_ready()

    def cli(self, command: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        """Run an Asterisk CLI command through the instance's control socket."""
        return subprocess.run(
            [
                "chroot",
                str(self.chroot.root),
                "/usr/sbin/asterisk",
                "-C",
                self.config_file,
                "-rx",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until Asterisk is fully booted (every module loaded), or raise with its log."""
        deadline = time.monotonic() + (timeout or self.settings.asterisk.ready_timeout)
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise AsteriskError(f"Asterisk exited during start:\n{self._log_tail()}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                result = self.cli(
                    "core waitfullybooted", timeout=max(1.0, deadline - time.monotonic())
                )
                if result.returncode == 0 and "fully booted" in result.stdout.lower():
                    return
            time.sleep(0.1)  # the control socket does not exist yet: nothing to wait on
        raise AsteriskError(f"Asterisk not ready within the deadline:\n{self._log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop Asterisk gracefully, then by signal; unmount /proc if no instance needs it."""
        pid = self.pid()
        if pid is not None:
            self.cli("core stop now", timeout=timeout)
            if not self._wait_gone(pid, timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self._wait_gone(pid, 5.0)
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5.0)
            self._process = None
        self._stop_bridge()
        if not any_instance_running(self.chroot):
            self.chroot.unmount_proc()

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.pid == pid:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(timeout=0.1)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.05)
        return False

    def _log_tail(self, lines: int = 40) -> str:
        try:
            text = self.console_log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no console log)"
        return "\n".join(text.splitlines()[-lines:])


def any_instance_running(chroot: AsteriskChroot) -> bool:
    """True while some instance's pidfile names a live process."""
    for pidfile in chroot.root.glob("run/asterisk/cti/*/asterisk.pid"):
        try:
            os.kill(int(pidfile.read_text(encoding="ascii").strip()), 0)
        except (OSError, ValueError):
            continue
        return True
    return False
