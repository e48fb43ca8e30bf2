"""The HTTP API: a Litestar app over the ledger, the read model and the worker pool."""

from btledger.api.http.app import create_app, serve

__all__ = ["create_app", "serve"]
