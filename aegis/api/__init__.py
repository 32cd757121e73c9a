"""The implementation of Aegis's public Python API (import it from ``aegis``).

``aegis/__init__.py`` re-exports ``Policy``, ``Ledger``, ``Sandbox`` and friends
lazily; the modules here are where they live. See docs/api.md.
"""
