"""teacher/http_client.py against a scripted server on 127.0.0.1: what is retried, how long it waits, what it raises."""

from __future__ import annotations

import random
import socket

import pytest

from tests.teacher.fake_openai import FakeOpenAI
from zuoxiao.core.errors import ConfigError
from zuoxiao.teacher.http_client import Backoff, EndpointRejected, EndpointUnavailable, JsonClient


def scripted(*statuses, headers=None):
    """Answer the n-th POST with statuses[n] (the last one repeats); 200 carries {"ok": n}."""
    seen = []

    def respond(path, body, hdrs):
        status = statuses[min(len(seen), len(statuses) - 1)]
        seen.append(status)
        return (status, {"ok": len(seen)} if status == 200 else {"error": f"status {status}"}, headers or {})

    return respond


def client(url, sleeps, max_retries=3, **kw):
    return JsonClient(url, kw.pop("api_key_env", None), timeout_s=5, max_retries=max_retries,
                      backoff=Backoff(0.1, 1.0, random.Random(0)), sleep=sleeps.append)


def test_backoff_doubles_is_capped_and_jittered_within_half_to_full():
    b = Backoff(0.5, 4.0, random.Random(0))
    # nominal delays 0.5, 1, 2, 4, 4 (capped); each drawn from [d/2, d]
    for attempt, d in enumerate([0.5, 1, 2, 4, 4]):
        got = [b.delay(attempt) for _ in range(200)]
        assert d / 2 <= min(got) and max(got) <= d and max(got) - min(got) > d / 4
    assert b.delay(0, retry_after=3.0) == 3.0 and b.delay(0, retry_after=60) == 4.0  # Retry-After, capped


def test_429_then_500_then_200_retries_twice_with_backoff():
    sleeps = []
    with FakeOpenAI(scripted(429, 500, 200)) as srv:
        assert client(srv.url, sleeps).call("/completions", {"prompt": "x"}) == {"ok": 3}
    assert len(srv.posts()) == 3
    assert len(sleeps) == 2 and 0.05 <= sleeps[0] <= 0.1 and 0.1 <= sleeps[1] <= 0.2  # 0.1 * 2**n, jittered


def test_retry_after_header_is_honoured():
    sleeps = []
    with FakeOpenAI(scripted(429, 200, headers={"Retry-After": "0.7"})) as srv:
        client(srv.url, sleeps).call("/completions", {})
    assert sleeps == [0.7]


def test_400_is_not_retried_and_keeps_its_status():
    sleeps = []
    with FakeOpenAI(scripted(400)) as srv, pytest.raises(EndpointRejected) as err:
        client(srv.url, sleeps).call("/completions", {})
    assert err.value.status == 400 and "status 400" in err.value.detail
    assert len(srv.posts()) == 1 and sleeps == []


def test_503_forever_is_rejected_after_max_retries():
    sleeps = []
    with FakeOpenAI(scripted(503)) as srv, pytest.raises(EndpointRejected) as err:
        client(srv.url, sleeps, max_retries=2).call("/completions", {})
    assert err.value.status == 503 and "after 3 attempts" in str(err.value)
    assert len(srv.posts()) == 3 and len(sleeps) == 2


def test_refused_connection_is_unavailable_after_retries():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = []
    with pytest.raises(EndpointUnavailable) as err:
        client(f"http://127.0.0.1:{port}/v1", sleeps, max_retries=2).call("/completions", {})
    assert err.value.exit_code == 2 and f"127.0.0.1:{port}" in str(err.value) and "after 3 attempts" in str(err.value)
    assert len(sleeps) == 2


def test_api_key_comes_from_the_named_variable_and_is_masked(monkeypatch):
    key = "sk-test-0123456789secret"
    monkeypatch.setenv("ZX_TEST_KEY", key)

    def echo_auth(path, body, headers):  # a server that echoes the header back in its error
        return 401, {"error": f"bad token {headers.get('Authorization')}"}

    with FakeOpenAI(echo_auth) as srv, pytest.raises(EndpointRejected) as err:
        client(srv.url, [], api_key_env="ZX_TEST_KEY").call("/completions", {})
    assert srv.requests[0][2]["Authorization"] == f"Bearer {key}"
    assert key not in str(err.value) and "***" in str(err.value)
    monkeypatch.delenv("ZX_TEST_KEY")
    with pytest.raises(ConfigError, match="ZX_TEST_KEY"):
        client(srv.url, [], api_key_env="ZX_TEST_KEY")
