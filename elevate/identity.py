"""Usernames are canonical: one person is one string everywhere (API.md "Identity")."""

from __future__ import annotations

import unicodedata


def canonical(username: str) -> str:
    """NFKC-normalized and casefolded, so `Carol@Example.com` is `carol@example.com`."""
    return unicodedata.normalize("NFKC", username).casefold()
