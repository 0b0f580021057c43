"""The contracts: every topic declared once (``topics``), the events and canonical records, record keys
and the one serde. Imports only the standard library, msgspec and orjson: no I/O library, no other package
of ours (``docs/architecture.md``, "Dependency rules").
"""
