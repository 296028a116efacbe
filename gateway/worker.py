"""The gunicorn worker class: uvicorn on the standard asyncio loop.

grpc.aio (the Triton client) runs on asyncio's own event loop; uvloop is not a loop it
supports, so the worker does not pick it even when it is installed.
"""

from uvicorn_worker import UvicornWorker


class GatewayWorker(UvicornWorker):
    CONFIG_KWARGS = {"loop": "asyncio", "http": "auto"}
