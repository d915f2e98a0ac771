"""Asterisk as we configure and run it.

- Service: ``render`` (the configuration in ``dialplans/`` rendered from the server's settings),
  ``data`` (where the shipped data folders live, checkout or wheel).
- Development bed: ``local`` (a real Asterisk 22 in a Debian sid chroot), ``agi_bridge``
  (classic AGI across the chroot wall).
"""
