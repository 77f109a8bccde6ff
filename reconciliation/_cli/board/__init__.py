"""The live break board of `reconciliation serve`: state, pages, and the web app that serves them."""

from __future__ import annotations

__all__: list[str] = []
