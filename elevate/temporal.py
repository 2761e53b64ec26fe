"""Temporal connection and search attributes, the same for the API, the worker and the tests."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import TypeAdapter
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig

from elevate.settings import Settings

REQUESTER = SearchAttributeKey.for_keyword("ElevateRequester")
ACCOUNT = SearchAttributeKey.for_keyword("ElevateAccount")
PERMISSION_SET = SearchAttributeKey.for_keyword("ElevatePermissionSet")
STATUS = SearchAttributeKey.for_keyword("ElevateStatus")
SEARCH_ATTRIBUTES = (REQUESTER, ACCOUNT, PERMISSION_SET, STATUS)


# The SDK makes a payload converter for every workflow it runs, and pydantic's converter keeps its
# type adapters per converter: each cached workflow built and held its own adapter for every type
# it decoded (a schema each, milliseconds and tens of KB). One cache for the process instead.
_ADAPTERS = functools.lru_cache(maxsize=1024)(TypeAdapter)


class _SharedAdaptersJSON(PydanticJSONPlainPayloadConverter):
    """pydantic's JSON payloads (the same bytes as `pydantic_data_converter`), with the process's
    one cache of type adapters."""

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        hint = Any if type_hint is None else type_hint
        try:
            adapter: TypeAdapter[Any] = _ADAPTERS(hint)
        except TypeError:
            adapter = TypeAdapter(hint)  # an unhashable hint: not cached
        return adapter.validate_json(payload.data)


class PayloadConverter(CompositePayloadConverter):
    def __init__(self) -> None:
        super().__init__(
            *(
                _SharedAdaptersJSON() if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


# Every client (API, worker, CLI, tests) uses this one.
data_converter = DataConverter(payload_converter_class=PayloadConverter)


def workflow_id(request_id: str) -> str:
    return f"access-request-{request_id}"


def _tls(settings: Settings) -> TLSConfig | bool:
    """mTLS when a client certificate is configured; plain TLS for an API key or on request."""
    if settings.temporal_tls_cert is None:
        return settings.temporal_tls or bool(settings.temporal_api_key)
    key, ca = settings.temporal_tls_key, settings.temporal_tls_ca
    return TLSConfig(
        client_cert=settings.temporal_tls_cert.read_bytes(),
        client_private_key=key.read_bytes() if key else None,
        server_root_ca_cert=ca.read_bytes() if ca else None,
    )


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter,
        api_key=settings.temporal_api_key,
        tls=_tls(settings),
        runtime=runtime,
    )


def metrics_runtime(port: int) -> Runtime | None:
    """A runtime serving the SDK's metrics, and the meters elevate adds, to Prometheus."""
    if not port:
        return None
    prometheus = PrometheusConfig(bind_address=f"0.0.0.0:{port}", durations_as_seconds=True)
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus))


async def register_search_attributes(client: Client, namespace: str) -> None:
    """Add the keyword attributes elevate sets, where missing (a fresh dev server has none).

    Upserting an unregistered attribute fails the workflow task forever, so the worker does
    this before it polls.
    """
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        for key in SEARCH_ATTRIBUTES
        if key.name not in existing.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
