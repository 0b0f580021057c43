"""Test support shared by tests/ and bench/: fakes of the edge's ports, a real-socket server, strict WHOOP
models. May import every product package; no product package imports it.
"""
