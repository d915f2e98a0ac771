"""Asterisk as we configure and run it.

- Service: ``render`` (the configuration in ``dialplans/`` rendered from the server's settings),
  ``data`` (where the shipped data folders live, checkout or wheel), ``sip_digests`` (each
  agent's SIP password, kept as its hash only).
- Development bed: ``local`` (a real Asterisk 22 in a Debian sid chroot), ``agi_bridge``
  (classic AGI across the chroot wall), ``certificate`` (its self-signed certificate for the
  browser phones' WSS).
"""
