"""The REST gateway (FastAPI under gunicorn) in front of the Triton models."""
