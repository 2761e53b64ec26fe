"""Builds the provider ELEVATE_PROVIDER names; the only module that knows every implementation."""

from __future__ import annotations

from elevate.providers.base import Provider
from elevate.settings import Settings


def make_provider(settings: Settings) -> Provider:
    """The provider ELEVATE_PROVIDER names, for the API and the worker alike."""
    if settings.provider == "iam":
        from elevate.providers.iam import IamProvider

        return IamProvider.from_settings(settings)
    from elevate.providers.identity_center import IdentityCenterProvider

    return IdentityCenterProvider(settings)
