"""A small JSON-over-HTTP client for a served teacher: timeouts, capped retries with exponential backoff and
jitter on 429 / 5xx / connection errors, and two named outcomes when retrying does not help.

- `EndpointRejected` (status kept): the server answered, but not with a result: a 4xx other than 429, or a
  429 / 5xx that outlasted every retry. One row's failure: teacher/endpoint.py turns it into a dead letter
  (reason endpoint_error), the stage goes on.
- `EndpointUnavailable`: no answer at all (refused, reset, timed out) after every retry: the server is gone,
  every further row would fail the same way, so the stage stops (exit 2) and its rerun starts from the rows
  already cached (teacher/endpoint.py writes them as they arrive).

The API key is read from the environment variable NAMED in the config, in the process that sends the
requests (a Beam worker), and is masked out of every message this module produces.

Stdlib only (urllib): one connection per request keeps it thread-safe without a pool to manage.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.client import HTTPException

from zuoxiao.core.errors import ConfigError, InputError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class EndpointRejected(Exception):
    """The server answered with an error status (after retries where retrying made sense)."""

    def __init__(self, status: int, detail: str):
        self.status, self.detail = status, detail
        super().__init__(f"HTTP {status}: {detail}")


class EndpointUnavailable(InputError):
    """The server did not answer (refused / reset / timed out) after every retry: exit 2."""


@dataclass
class Backoff:
    """Delay before retry n (0-based): base * 2**n capped at `cap`, then 'equal jitter' - a uniform draw
    from [d/2, d] - so workers that failed together do not retry together."""

    base: float = 0.5
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        d = min(self.cap, self.base * 2 ** attempt)
        if retry_after is not None:  # the server said when: wait that long (still capped)
            return min(self.cap, max(retry_after, 0.0))
        return d / 2 + self.rng.uniform(0, d / 2)


class JsonClient:
    """POST/GET JSON to `base_url`; see the module doc for what is retried and what is raised."""

    def __init__(self, base_url: str, api_key_env: str | None, timeout_s: float, max_retries: int,
                 backoff: Backoff, sleep=time.sleep):
        self.base_url, self.timeout_s, self.max_retries = base_url.rstrip("/"), timeout_s, max_retries
        self.backoff, self.sleep = backoff, sleep
        self._key = None
        if api_key_env:
            self._key = os.environ.get(api_key_env)
            if not self._key:
                raise ConfigError(f"label.teacher.endpoint.api_key_env={api_key_env!r} but that environment variable "
                                  "is not set (or empty) in this process; export it where the label stage runs")
        self.retries = 0  # retries made by this client (a Beam metric counts them per worker too)

    def _mask(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _open(self, path: str, payload: dict | None) -> dict:
        data = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        req = urllib.request.Request(f"{self.base_url}{path}", data=data, headers=headers,
                                     method="GET" if payload is None else "POST")
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            return json.loads(resp.read())

    def call(self, path: str, payload: dict | None = None) -> dict:
        """One request, retried; the parsed JSON answer, or EndpointRejected / EndpointUnavailable."""
        url = f"{self.base_url}{path}"
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                return self._open(path, payload)
            except urllib.error.HTTPError as err:
                body = self._mask(err.read().decode("utf-8", "replace")[:300])
                if err.code not in RETRY_STATUSES or last:
                    tries = f" after {attempt + 1} attempts" if err.code in RETRY_STATUSES else ""
                    raise EndpointRejected(err.code, f"{url}{tries}: {body}") from None
                wait = self.backoff.delay(attempt, _retry_after(err))
                why = f"HTTP {err.code}"
            except (urllib.error.URLError, HTTPException, ConnectionError, TimeoutError) as err:
                reason = getattr(err, "reason", err)
                if last:
                    raise EndpointUnavailable(
                        f"the teacher endpoint {url} did not answer after {attempt + 1} attempts ({reason}); start "
                        "the server (or fix label.teacher.endpoint.base_url) and rerun: rows already labelled come "
                        "from the teacher cache") from None
                wait = self.backoff.delay(attempt)
                why = str(reason)
            except ValueError as err:  # an answer that is not JSON: a proxy's error page, a wrong URL
                raise EndpointRejected(200, f"{url}: the answer is not JSON ({err})") from None
            self.retries += 1
            log.info("endpoint %s: %s, retry %d/%d in %.2f s", url, self._mask(why), attempt + 1, self.max_retries, wait)
            self.sleep(wait)
        raise AssertionError("unreachable")


def _retry_after(err: urllib.error.HTTPError) -> float | None:
    try:
        return float(err.headers.get("Retry-After")) if err.headers.get("Retry-After") else None
    except ValueError:  # an HTTP date: use our own backoff
        return None
