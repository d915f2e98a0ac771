"""What every HTTP listener of the server shares: hardened responses and connections, and
aiohttp's server log without tracebacks for clients' mistakes.

``hardening`` (hardened answers and connections), ``server_log`` (aiohttp's server log).
"""
