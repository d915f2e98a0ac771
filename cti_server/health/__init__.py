"""How the server shows it is alive and well: Prometheus metrics, the event-loop watchdog,
the log it writes and the release it reports.

``metrics`` (Prometheus), ``login_metrics`` (sign-in figures), ``watchdog`` (the event loop's
lag), ``logs`` (the log format), ``version`` (the release).
"""
