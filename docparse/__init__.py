"""DocParse HPS core: plain Python, no Triton or FastAPI imports.

The Triton models in ``model_repository/`` and the gateway in ``gateway/`` are thin
adapters over this package.
"""

__version__ = "0.1.0"
