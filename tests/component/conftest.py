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


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL for the session (Debian's, `initdb` in a temporary
    folder, loopback only); the tests' databases are created in it."""
    import shutil
    import tempfile

    from app.postgres_server import PostgresServer

    server = PostgresServer(port=free_port(), data_dir=Path(tempfile.mkdtemp(prefix="ivr-pg-")))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def case_engine(request, tmp_path):
    """A migrated, empty case database on each backend."""
    from cases.database import make_engine, migrate

    if request.param == "sqlite":
        engine = make_engine(f"sqlite+pysqlite:///{tmp_path / 'cases.sqlite3'}")
    else:
        import sqlalchemy as sa

        server = request.getfixturevalue("postgres_server")
        name = f"cases_test_{free_port()}"
        admin = make_engine(server.url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine = make_engine(server.url.rsplit("/", 1)[0] + "/" + name)
    migrate(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        if request.param == "postgresql":
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
