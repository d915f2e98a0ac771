"""How the server shows it is alive and well: Prometheus metrics, the event-loop watchdog,
the log it writes and the release it reports."""
