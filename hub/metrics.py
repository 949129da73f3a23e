"""Prometheus metrics of one API process: requests, latency, webhook outcomes by source."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Metrics:
    """The process's collectors, in their own registry (no import-time globals)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "hub_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "hub_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            ["route"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.webhook_events = Counter(
            "hub_webhook_events",
            "Inbound webhook events by source and outcome (accepted, duplicate, spam, rejected)",
            ["source", "outcome"],
            registry=self.registry,
        )

        self.accept_commits = Counter(
            "hub_accept_commits", "Deferred mode: group commits of accepted events", registry=self.registry
        )
        self.accept_requests = Counter(
            "hub_accept_requests", "Deferred mode: requests whose events a group commit stored", registry=self.registry
        )
        self.accept_events = Counter(
            "hub_accept_events", "Deferred mode: events stored by group commits", registry=self.registry
        )

    def count_accept_commit(self, requests: int, events: int) -> None:
        """One group commit of deferred mode (requests / commits is the sharing achieved)."""
        self.accept_commits.inc()
        self.accept_requests.inc(requests)
        self.accept_events.inc(events)

    def count_webhook(self, source: str, outcome: str) -> None:
        """One inbound event and what became of it."""
        self.webhook_events.labels(source=source, outcome=outcome).inc()

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every request by its route template (not the raw path, to keep labels bounded)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.http_requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.http_latency.labels(template).observe(time.perf_counter() - started)
