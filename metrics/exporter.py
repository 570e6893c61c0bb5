"""Serve /metrics with prometheus_client's own HTTP server (a daemon thread).

The library's server is used rather than a hand-written one: it handles
content negotiation (OpenMetrics vs. text) and gzip, and is maintained with
the client. It binds to the configured host, loopback by default.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, start_http_server


class MetricsExporter:
    def __init__(self, *, registry: CollectorRegistry, host: str, port: int):
        self._registry = registry
        self._host = host
        self._port = port
        self._server = None
        self._thread = None

    def start(self) -> None:
        self._server, self._thread = start_http_server(self._port, addr=self._host, registry=self._registry)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
