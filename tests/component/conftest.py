"""Component fixtures: a private redis-server on a free loopback port, real sockets."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from core.configuration import load_config
from app.redis_server import RedisServer

DEMO = Path(__file__).resolve().parents[2] / "config"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One redis-server for the session: loopback, no persistence (--save '' --appendonly no)."""
    server = RedisServer(port=free_port(), data_dir=tmp_path_factory.mktemp("redis"), persist=False)
    server.start(timeout=10.0)  # returns once the server answers PING
    try:
        yield server
    finally:
        server.stop()
        assert server.proc is None


@pytest.fixture
async def redis_client(redis_server):
    client = aioredis.Redis(host=redis_server.host, port=redis_server.port,
                            socket_timeout=5, socket_connect_timeout=5)
    assert await client.ping()
    await client.flushall()
    try:
        yield client
    finally:
        await client.flushall()
        await client.aclose()


@pytest.fixture(scope="session")
def config():
    return load_config(DEMO)
