"""A self-signed certificate for the local Asterisk's WSS listener (browser phones).

Browsers reach a WebRTC phone's SIP server over TLS only; on a development machine nobody has a
certificate for 127.0.0.1, so the local instance makes its own (the chroot has no openssl: the
host's makes it, written where Asterisk reads it).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


class CertificateError(RuntimeError):
    """The certificate could not be made."""


def ensure_self_signed(cert: Path, key: Path, days: int = 3650) -> bool:
    """Make an EC P-256 certificate for 127.0.0.1 and localhost unless both files exist;
    return whether one was made. The key is readable by its owner only."""
    if cert.is_file() and key.is_file():
        return False
    openssl = shutil.which("openssl")
    if openssl is None:
        raise CertificateError("openssl is not installed (apt-get install openssl)")
    cert.parent.mkdir(parents=True, exist_ok=True)
    key.parent.mkdir(parents=True, exist_ok=True)
    partial_key = key.with_name(key.name + ".partial")
    partial_cert = cert.with_name(cert.name + ".partial")
    partial_key.unlink(missing_ok=True)
    partial_key.touch(mode=0o600)  # openssl writes into it: never readable by others
    partial_key.chmod(0o600)
    result = subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            str(days),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(partial_key),
            "-out",
            str(partial_cert),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        partial_key.unlink(missing_ok=True)
        raise CertificateError(f"openssl could not make a certificate: {result.stderr.strip()}")
    partial_key.chmod(0o600)
    partial_key.replace(key)
    partial_cert.replace(cert)
    return True
