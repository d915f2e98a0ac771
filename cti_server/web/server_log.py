"""aiohttp's server log, without a traceback for each request a client got wrong.

aiohttp logs every request its HTTP parser refuses (a NUL in a header, a bad request line, a line
too long) with ``logger.exception``: 20-odd lines of traceback at ERROR, for what is the client's
fault and already answered with a 400. Any client could fill the log with them. Through
:class:`ServerLog` they are one line at INFO; an error of the server (a handler's exception
aiohttp catches) keeps its traceback at ERROR.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

SERVER_LOGGER = "aiohttp.server"


class ServerLog(logging.LoggerAdapter[logging.Logger]):
    """Give it to the runner as ``logger=ServerLog()`` (``web.AppRunner`` passes it to each
    connection's request handler)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        super().__init__(logger or logging.getLogger(SERVER_LOGGER))

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        error = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(error, HttpProcessingError) and 400 <= error.code < 500:
            said = " ".join(str(error.message).split())  # aiohttp's may span lines
            self.info("%s: %d %s", str(msg) % args if args else msg, error.code, said)
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)
