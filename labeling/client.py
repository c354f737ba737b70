"""Calls to an OpenAI-compatible chat endpoint, made reliable.

The official ``openai`` client does the HTTP with its own retries turned off
(``max_retries=0``), so that every retry rule is ours, explicit and tested:

- 429: wait what the server asks (``retry-after-ms``, else ``Retry-After``
  in seconds or as a date), else back off; a wait longer than
  MAX_RETRY_AFTER gives up on that cluster instead;
- 5xx, 408, 409, timeouts, lost connections and an HTTP 200 that is no
  chat completion (a proxy's HTML error page, JSON cut short): exponential
  backoff with jitter (0.5 s doubling per attempt, at most 30 s, times 0.5
  to 1);
- a reply without a usable name: asked again at once;
- a rejected key (401/403), an unknown model (404) or an exhausted quota
  stop the whole run (Fatal): every cluster would fail alike;
- other 4xx: that cluster fails without retry (the request is wrong).

``timeout`` is a deadline for the whole call: connecting, sending, the
headers and the body. httpx only bounds each socket operation, so a server
that drips its reply would outlast any timeout; here every socket wait is
cut to the time left before the calling thread's deadline.

Error messages quote the server as plain text, never the API key.
"""

import contextlib
import email.utils
import importlib
import random
import threading
import time
import urllib.request
import weakref
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from . import names
from .prompts import SCHEMA, ReplyError
from .request import SECRET

OPENAI_URL = "https://api.openai.com/v1"

BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
MAX_RETRY_AFTER = 600.0
MAX_QUOTE = 200
_RETRY_STATUS = (408, 409)
_WRITE_CHUNK = 65536


class CallFailed(Exception):
    """One cluster's call failed for good; ``usage`` counts the tokens spent."""

    def __init__(self, message, usage):
        super().__init__(message)
        self.usage = usage


class Fatal(Exception):
    """No call can succeed (key, model, quota): the run stops."""


@dataclass
class Reply:
    value: object
    usage: dict


def public_url(url):
    """``url`` without credentials or query, fit for run configs and messages."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def backoff(attempt):
    """Seconds to wait before retry ``attempt + 1`` when the server did not say."""
    return min(BACKOFF_CAP, BACKOFF_BASE * 2 ** attempt) * random.uniform(0.5, 1.0)


def retry_after(headers):
    """Seconds the server asked to wait, or None."""
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class ChatClient:
    """Asks one model on one endpoint; safe to share between threads."""

    def __init__(self, api_key, base_url, model, timeout, max_retries):
        import openai

        self._openai = openai
        url = base_url or OPENAI_URL
        self._deadlines, http = _http_client(openai, url)
        weakref.finalize(self, http.close)
        self._client = openai.OpenAI(api_key=api_key, base_url=url, timeout=timeout,
                                     max_retries=0, http_client=http)
        self._secret = api_key
        self.model = model
        self.timeout = timeout
        self.max_retries = max_retries
        self.endpoint = public_url(base_url) or "OpenAI's API"

    def ask(self, messages, parse):
        """``Reply(parse(text), usage)``, else CallFailed or Fatal."""
        openai = self._openai
        usage = dict(prompt_tokens=0, completion_tokens=0, total_tokens=0)
        wait = 0.0
        for attempt in range(self.max_retries + 1):
            time.sleep(wait)
            wait = 0.0
            try:
                with self._deadlines.within(self.timeout):
                    response = self._client.chat.completions.create(
                        model=self.model, messages=messages, response_format=SCHEMA)
            except openai.APIStatusError as e:
                wait, problem = self._status_error(e, attempt, usage)
                continue
            except openai.APITimeoutError:
                wait = backoff(attempt)
                problem = f"no complete reply within {self.timeout:g} s"
                continue
            except openai.APIConnectionError:
                wait, problem = backoff(attempt), f"could not connect to {self.endpoint}"
                continue
            except ValueError as e:  # openai decodes a 200's JSON outside its error handling
                wait = backoff(attempt)
                problem = f"HTTP 200 from {self.endpoint} is not valid JSON: {self._quote(str(e))}"
                continue
            problem = self._not_completion(response)
            if problem:
                wait = backoff(attempt)
                continue
            _add_usage(usage, getattr(response, "usage", None))
            message = response.choices[0].message
            try:
                return Reply(parse(_content(message)), usage)
            except ReplyError as e:
                problem = f"unusable reply: {self._reply_error(e, message)}"
        attempts = self.max_retries + 1
        raise CallFailed(
            f"{problem} (gave up after {attempts} attempt{'s' * (attempts > 1)})", usage)

    def _status_error(self, e, attempt, usage):
        status = e.status_code
        if status in (401, 403):
            raise Fatal(
                f"{self.endpoint} rejected the API key (HTTP {status}); check the "
                f"plugin secret {SECRET}.") from None
        if status == 404:
            raise Fatal(
                f"{self.endpoint} answered HTTP 404 for model {self.model!r}: give a "
                "model that this server serves, and a base_url ending in its API "
                "root (e.g. http://localhost:8000/v1).") from None
        if status == 429 and e.code == "insufficient_quota":
            raise Fatal(
                f"{self.endpoint} says the account has no quota left (HTTP 429 "
                "insufficient_quota); add credit or use another key.") from None
        problem = f"HTTP {status} from {self.endpoint}: {self._server_message(e)}"
        if status == 429 or status >= 500 or status in _RETRY_STATUS:
            asked = retry_after(e.response.headers)
            if asked is not None and asked > MAX_RETRY_AFTER:
                raise CallFailed(
                    f"{problem} (the server asked to wait {asked:.0f} s; try later)",
                    usage) from None
            return (backoff(attempt) if asked is None else asked), problem
        raise CallFailed(problem, usage) from None

    def _not_completion(self, response):
        """Why a 200 response is no chat completion (openai hands over a
        body that is not JSON as text), or None if it is one."""
        if isinstance(response, str):
            return f"HTTP 200 from {self.endpoint} is not JSON: {self._quote(response)}"
        if not getattr(response, "choices", None):
            return f"HTTP 200 from {self.endpoint} is JSON but not a chat completion"
        return None

    def _server_message(self, e):
        body = e.body
        text = body.get("message") if isinstance(body, dict) else body
        return self._quote(str(text or "no message"))

    def _quote(self, text):
        """The server's ``text`` as one line of plain text for a message, the
        key removed before anything is cut, so that no part of it remains."""
        text = names.plain_line(text, self._secret)
        return text if len(text) <= MAX_QUOTE else text[:MAX_QUOTE - 3] + "..."

    def _reply_error(self, e, message):
        """ReplyError ``e`` for a message; its excerpt of a reply that holds
        the key could hold a cut part of it, so that excerpt is left out."""
        if self._secret and self._secret in str(message.content):
            return "the reply contains the API key"
        return names.redact(str(e), self._secret)


def _content(message):
    """The reply's text, or ReplyError when the model refused."""
    if getattr(message, "refusal", None):
        raise ReplyError(f"the model refused: {message.refusal}")
    return message.content


def _add_usage(total, usage):
    for key in total:
        total[key] += int(getattr(usage, key, 0) or 0)


def _http_client(openai, url):
    """``(deadlines, http client)`` for openai to reach ``url`` with: its
    sockets wait no longer than ``deadlines.within(seconds)`` allows."""
    httpx, httpcore = _http_libraries(openai)
    transport = httpx.HTTPTransport(proxy=_proxy_for(url))
    deadlines = _route_sockets(transport, lambda backend: _Deadlines(backend, httpcore))
    return deadlines, openai.DefaultHttpxClient(transport=transport)


def _http_libraries(openai):
    """``(httpx, httpcore)`` modules the installed openai is built on: httpx2
    and httpcore2 (openai 3), else httpx and httpcore (openai 1)."""
    client = next(c for c in openai.DefaultHttpxClient.__mro__ if c.__name__ == "Client")
    httpx = client.__module__.split(".")[0]
    httpcore = {"httpx": "httpcore", "httpx2": "httpcore2"}[httpx]
    return importlib.import_module(httpx), importlib.import_module(httpcore)


def _route_sockets(transport, wrap):
    """Puts ``wrap(backend)`` in place of the network backend of an httpx
    ``HTTPTransport`` and returns it. HTTPTransport accepts no backend, so
    this sets the private ``_pool._network_backend`` (same layout in httpx
    0.28 / httpcore 1.0 and httpx2 / httpcore2 2.16, for a direct pool and
    proxies alike) before any connection is made; it fails loudly if that
    layout changes rather than run calls without a deadline."""
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if not hasattr(backend, "connect_tcp"):
        raise RuntimeError(
            f"{type(transport).__module__} {type(transport).__name__} has no "
            "_pool._network_backend: calls cannot be bounded by a deadline")
    pool._network_backend = wrap(backend)
    return pool._network_backend


def _proxy_for(url):
    """The proxy that the environment (HTTPS_PROXY, ALL_PROXY, NO_PROXY, ...)
    names for ``url``, or None: httpx reads none once given a transport."""
    parts = urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    return proxy if not proxy or "://" in proxy else f"http://{proxy}"


class _Deadlines:
    """An httpcore network backend whose connects, reads and writes end by
    the deadline of the calling thread's call (each call runs in one thread
    of the pool, so the deadline is thread-local)."""

    def __init__(self, backend, httpcore):
        self._backend = backend
        self._httpcore = httpcore
        self._local = threading.local()

    @contextlib.contextmanager
    def within(self, seconds):
        """Network waits of this thread end ``seconds`` from now at the latest."""
        self._local.end = time.monotonic() + seconds
        try:
            yield
        finally:
            self._local.end = None

    def wait(self, timeout, error):
        """``timeout`` cut to the time left before this thread's deadline;
        httpcore's ``error`` (a timeout class name) once it has passed."""
        end = getattr(self._local, "end", None)
        if end is None:
            return timeout
        left = end - time.monotonic()
        if left <= 0:
            raise getattr(self._httpcore, error)("the call's deadline has passed")
        return left if timeout is None else min(timeout, left)

    def connect_tcp(self, host, port, timeout=None, local_address=None,
                    socket_options=None):
        stream = self._backend.connect_tcp(
            host, port, self.wait(timeout, "ConnectTimeout"), local_address, socket_options)
        return _DeadlineStream(stream, self)

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        stream = self._backend.connect_unix_socket(
            path, self.wait(timeout, "ConnectTimeout"), socket_options)
        return _DeadlineStream(stream, self)

    def sleep(self, seconds):
        self._backend.sleep(seconds)


class _DeadlineStream:
    """One connection of _Deadlines: every wait bounded by the deadline."""

    def __init__(self, stream, deadlines):
        self._stream = stream
        self._deadlines = deadlines

    def read(self, max_bytes, timeout=None):
        return self._stream.read(max_bytes, self._deadlines.wait(timeout, "ReadTimeout"))

    def write(self, buffer, timeout=None):
        """Written in chunks, so that a server that reads slowly cannot hold
        one large write (images) long past the deadline."""
        for start in range(0, len(buffer), _WRITE_CHUNK):
            self._stream.write(buffer[start:start + _WRITE_CHUNK],
                               self._deadlines.wait(timeout, "WriteTimeout"))

    def close(self):
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        stream = self._stream.start_tls(
            ssl_context, server_hostname, self._deadlines.wait(timeout, "ConnectTimeout"))
        return _DeadlineStream(stream, self._deadlines)

    def get_extra_info(self, info):
        return self._stream.get_extra_info(info)
