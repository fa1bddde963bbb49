"""The service on a real socket (cloud/serving.py, the runner `python -m cloud serve` uses):
errors aiohttp answers before any handler are JSON with the security headers and no version
banner; connections that send their headers too slowly are closed (issue #14 part 7)."""

import asyncio
import json

import pytest

from cloud.app import create_app
from cloud.serving import start
from tests.cloud.cloud_harness import SECRET, make_config

HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options",
           "Referrer-Policy", "Strict-Transport-Security")


@pytest.fixture
async def served(tmp_path):
    config = make_config(tmp_path, header_timeout_s=0.5)
    runner = await start(create_app(config, settle=False), config, "127.0.0.1", 0)
    yield runner.addresses[0][1]
    await runner.cleanup()


async def _exchange(port, raw):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("raw", [
    # the path carries the callback secret, which the parser's error message would quote
    b"POST /daraja/callback/" + SECRET.encode() + b"a" * 10_000 + b" HTTP/1.1\r\n\r\n",
    b"NOT A REQUEST LINE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"b" * 10_000 + b"\r\n\r\n",
], ids=["10 KB path", "bad request line", "10 KB header"])
async def test_errors_before_any_handler_answer_json_with_the_security_headers(served, raw,
                                                                              caplog):
    status, headers, body = await _exchange(served, raw)
    assert 400 <= status < 500
    assert headers["Content-Type"].startswith("application/json")
    assert set(json.loads(body)) == {"error", "message"}
    assert headers["Server"] == "mita" and b"aiohttp" not in body
    assert all(name in headers for name in HEADERS)
    assert "unreadable request" in caplog.text and SECRET not in caplog.text


async def test_every_app_response_carries_the_security_headers(served):
    for raw in (b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                b"DELETE /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):
        status, headers, _ = await _exchange(served, raw)
        assert headers["Server"] == "mita", raw
        assert headers["Content-Security-Policy"].startswith("default-src 'none'"), raw
        assert all(name in headers for name in HEADERS), raw


async def _dribble(port):
    """Send a request head one byte a tick (well inside every size limit), never finishing;
    True once the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    try:
        for _ in range(200):  # 20 s of dribble: the generous bound, 40x the setting
            writer.write(b"y")
            await writer.drain()
            if await _closed(reader):
                return True
        return False
    except ConnectionError:
        return True
    finally:
        writer.close()


async def _closed(reader):
    try:
        return await asyncio.wait_for(reader.read(1), 0.1) == b""
    except asyncio.TimeoutError:
        return False


async def test_slow_header_connections_are_closed(served):
    closed = await asyncio.gather(*(_dribble(served) for _ in range(30)))
    assert all(closed)
