"""GET /metrics: Prometheus text format, no token (scrapers reach it on the internal network)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
