"""Re-export of ``okr_core.redaction``, the one redactor, for connector code.

Connectors written outside this repository import ``Redactor`` and ``truncate`` from here;
the implementation lives in ``okr_core.redaction`` so that the store, the alert senders and
the ``okr`` command mask exactly the same things.
"""

from __future__ import annotations

from okr_pipeline.okr_core.redaction import (
    MASK,
    SENSITIVE_HEADERS,
    SENSITIVE_QUERY_KEYS,
    Redactor,
    is_sensitive_header,
    is_sensitive_key,
    mask_url,
    redact_text,
    redact_value,
    truncate,
)

__all__ = [
    "MASK",
    "SENSITIVE_HEADERS",
    "SENSITIVE_QUERY_KEYS",
    "Redactor",
    "is_sensitive_header",
    "is_sensitive_key",
    "mask_url",
    "redact_text",
    "redact_value",
    "truncate",
]
