"""How the server shows it is alive and well: Prometheus metrics, the event-loop watchdog,
the log it writes and the release it reports, and how it keeps its own pauses short.

``metrics`` (Prometheus), ``login_metrics`` (sign-in figures), ``watchdog`` (the event loop's
lag, and where a stall was stuck), ``heap`` (the start-up heap kept out of full garbage
collections), ``logs`` (the log format), ``version`` (the release).
"""
