"""Glue between Triton's Python backend and the core package.

Only the ``model.py`` files import this (it needs ``triton_python_backend_utils``, which
exists only inside a Triton stub process). Everything here is shared by several models:
JSON tensors, error responses, advancing BLS response streams without blocking the event
loop, and a background event loop for models that answer through the response sender.
"""
