"""Model strings: ``"provider:model"`` -> a Model (placeholder until the HTTP providers land)."""
from __future__ import annotations

from ..exceptions import UserError
from ._base import Model

KNOWN_PREFIXES = {"test": "offline TestModel (no network)"}


def model_from_string(spec: str) -> Model:
    prefix, sep, name = spec.partition(":")
    if not sep or not name:
        raise UserError(f"model string {spec!r} must look like 'provider:model'; known providers: "
                        f"{', '.join(sorted(KNOWN_PREFIXES))}")
    if prefix == "test":
        from .test import TestModel

        return TestModel()
    raise UserError(f"unknown model provider {prefix!r} in {spec!r}; known providers: "
                    f"{', '.join(sorted(KNOWN_PREFIXES))}")
