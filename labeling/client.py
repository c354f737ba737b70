"""Calls to an OpenAI-compatible chat endpoint, made reliable.

The official ``openai`` client does the HTTP with its own retries turned off
(``max_retries=0``), so that every retry rule is ours, explicit and tested:

- 429: wait what the server asks (``retry-after-ms``, else ``Retry-After``
  in seconds or as a date), else back off; a wait longer than
  MAX_RETRY_AFTER gives up on that cluster instead;
- 5xx, 408, 409, timeouts and lost connections: exponential backoff with
  jitter (0.5 s doubling per attempt, at most 30 s, times 0.5 to 1);
- a reply without a usable name: asked again at once;
- a rejected key (401/403), an unknown model (404) or an exhausted quota
  stop the whole run (Fatal): every cluster would fail alike;
- other 4xx: that cluster fails without retry (the request is wrong).

Error messages quote the server but never the API key.
"""

import email.utils
import random
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from .prompts import SCHEMA, ReplyError
from .request import SECRET

BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
MAX_RETRY_AFTER = 600.0
_RETRY_STATUS = (408, 409)


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
        self._client = openai.OpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)
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
                response = self._client.chat.completions.create(
                    model=self.model, messages=messages, response_format=SCHEMA)
            except openai.APIStatusError as e:
                wait, problem = self._status_error(e, attempt, usage)
                continue
            except openai.APITimeoutError:
                wait, problem = backoff(attempt), f"no reply within {self.timeout:g} s"
                continue
            except openai.APIConnectionError:
                wait, problem = backoff(attempt), f"could not connect to {self.endpoint}"
                continue
            _add_usage(usage, getattr(response, "usage", None))
            try:
                return Reply(parse(_content(response)), usage)
            except ReplyError as e:
                problem = f"unusable reply: {self._redact(str(e))}"
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

    def _server_message(self, e):
        body = e.body
        text = body.get("message") if isinstance(body, dict) else body
        text = " ".join(str(text or "no message").split())
        return self._redact(text if len(text) <= 200 else text[:197] + "...")

    def _redact(self, text):
        return text.replace(self._secret, "[redacted]") if self._secret else text


def _content(response):
    """The reply's text, or ReplyError when the response is no chat completion."""
    choices = getattr(response, "choices", None)
    if not choices:
        raise ReplyError("the server's response is not a chat completion")
    message = choices[0].message
    if getattr(message, "refusal", None):
        raise ReplyError(f"the model refused: {message.refusal}")
    return message.content


def _add_usage(total, usage):
    for key in total:
        total[key] += int(getattr(usage, key, 0) or 0)
