"""ChatClient against hostile OpenAI-compatible servers: the simulated server
(tests/llm_server.py) speaks real HTTP on 127.0.0.1 to the official openai
client; only the remote model is simulated."""

import logging
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from conftest import plugin_module
from llm_server import COLOURS, LLMServer

KEY = "sk-test-" + uuid.uuid4().hex
MODEL = "vision-test-1"
GOOD = ("Red things", "Images that are mostly red.")

client_module = plugin_module("labeling.client")
names = plugin_module("labeling.names")
prompts = plugin_module("labeling.prompts")
images = plugin_module("labeling.images")


@pytest.fixture
def server():
    with LLMServer(KEY, MODEL) as server:
        yield server


@pytest.fixture
def messages(tmp_path):
    """A prompt showing one red image."""
    path = str(tmp_path / "red.png")
    Image.new("RGB", (40, 30), COLOURS["red"]).save(path)
    return prompts.messages([images.encode("s1", path, 32)], None, "low")


def parse(text):
    """The reply read and cleaned as the pipeline does it."""
    name, description = prompts.parse_reply(text)
    return names.clean_name(name, KEY), names.clean_description(description, KEY)


def client(server, timeout=5.0, max_retries=2):
    return client_module.ChatClient(KEY, server.url, MODEL, timeout, max_retries)


def gaps(server):
    """Seconds between the arrivals of successive requests."""
    return [b.at - a.at for a, b in zip(server.requests, server.requests[1:])]


@pytest.mark.parametrize("seconds_per_byte,timeout", [
    (0.3, 1.0),   # cut while the status line and headers drip in
    (0.02, 2.0),  # headers in after ~1.5 s, cut while the body drips in
])
def test_a_dripping_reply_is_cut_at_the_deadline(server, messages, seconds_per_byte,
                                                 timeout):
    server.faults = [("drip", seconds_per_byte)]
    start = time.monotonic()
    reply = client(server, timeout=timeout, max_retries=1).ask(messages, parse)
    elapsed = time.monotonic() - start

    assert reply.value == GOOD  # the retry after the timeout got a normal reply
    [cut] = gaps(server)
    drip_seconds = 450 * seconds_per_byte  # the reply is some 460 bytes long
    assert timeout <= cut < timeout + 1.0  # deadline, then at most 0.5 s of backoff
    assert elapsed < min(3 * timeout, drip_seconds / 2), elapsed


def test_a_dripping_reply_fails_as_a_timeout(server, messages):
    server.faults = [("drip", 0.3)]
    start = time.monotonic()
    with pytest.raises(client_module.CallFailed) as failed:
        client(server, timeout=1.0, max_retries=0).ask(messages, parse)
    assert time.monotonic() - start < 3.0
    assert str(failed.value) == "no complete reply within 1 s (gave up after 1 attempt)"


def test_each_call_has_its_own_deadline(server, messages):
    """Calls share one client and its connections from several threads, as
    the pipeline's pool does; only the dripping one is cut, at its deadline."""
    server.faults = [("drip", 0.3)]
    chat = client(server, timeout=1.5, max_retries=0)

    def ask(_):
        start = time.monotonic()
        try:
            value = chat.ask(messages, parse).value
        except client_module.CallFailed as e:
            value = str(e)
        return value, time.monotonic() - start

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(ask, range(8)))
    values = [value for value, _ in outcomes]
    assert values.count(GOOD) == 7
    assert "no complete reply within 1.5 s (gave up after 1 attempt)" in values
    assert max(seconds for _, seconds in outcomes) < 3 * 1.5


@pytest.mark.parametrize("fault,problem", [
    (("html_200",), "is not JSON: 502 Bad Gateway"),
    (("truncated_json",), "is not valid JSON: Unterminated string"),
])
def test_a_200_that_is_not_json_is_retried_with_backoff(server, messages, fault, problem):
    server.faults = [fault]
    reply = client(server).ask(messages, parse)
    assert reply.value == GOOD
    assert [r.fault for r in server.requests] == [fault, None]
    assert gaps(server)[0] >= client_module.BACKOFF_BASE / 2  # backoff, not at once
    assert reply.usage["total_tokens"] == 120 + 85  # only the good reply counts

    server.requests.clear()
    server.faults = [fault] * 3
    with pytest.raises(client_module.CallFailed) as failed:
        client(server, max_retries=2).ask(messages, parse)
    assert len(server.requests) == 3
    assert str(failed.value).startswith(f"HTTP 200 from {server.url} {problem}")
    assert str(failed.value).endswith("(gave up after 3 attempts)")
    assert failed.value.usage["total_tokens"] == 0


def _shown(value):
    """Everything an outcome could show: the value, or the exception with
    its message, its repr and its traceback."""
    if isinstance(value, BaseException):
        return str(value) + repr(value) + "".join(traceback.format_exception(value))
    return repr(value)


def test_a_name_with_the_key_is_retried_and_never_shown(server, messages, caplog):
    caplog.set_level(logging.DEBUG)
    server.faults = [("echo_key",)]
    reply = client(server).ask(messages, parse)
    assert reply.value == GOOD
    assert len(server.requests) == 2  # the name with the key was not used

    server.faults = [("echo_key",)] * 2
    with pytest.raises(client_module.CallFailed) as failed:
        client(server, max_retries=1).ask(messages, parse)
    assert str(failed.value) == ("unusable reply: the reply contains the API key "
                                 "(gave up after 2 attempts)")
    for shown in (_shown(reply.value), _shown(failed.value), caplog.text):
        assert KEY not in shown


def test_a_description_with_the_key_is_redacted(server, messages):
    server.faults = [("echo_key", "description")]
    reply = client(server).ask(messages, parse)
    assert reply.value == ("Red things", "Images sent with the key [redacted].")
    assert len(server.requests) == 1


def test_an_error_message_with_the_key_is_redacted_before_it_is_cut(server, messages):
    server.faults = [("echo_key", "error")]
    with pytest.raises(client_module.CallFailed) as failed:
        client(server, max_retries=0).ask(messages, parse)
    assert str(failed.value).startswith(f"HTTP 500 from {server.url}: Upstream error.")
    assert KEY[:12] not in _shown(failed.value)


def test_a_hostile_name_is_cleaned(server, messages):
    server.faults = [("hostile_name",)]
    reply = client(server).ask(messages, parse)
    assert reply.value == GOOD
    assert len(server.requests) == 1


INVISIBLE = (
    [chr(c) for c in range(0x20)] + ["\x7f", "\x85"]              # control, NUL included
    + [chr(c) for c in range(0x202A, 0x202F)]                     # bidi embeddings, overrides
    + [chr(c) for c in range(0x2066, 0x206A)]                     # bidi isolates
    + ["\u200e", "\u200f", "\u061c"]                              # bidi marks
    + ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u180e"]  # zero-width
)


@pytest.mark.parametrize("char", INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
def test_no_invisible_character_survives_cleaning(char):
    name = names.clean_name(f"{char}Red{char} things{char}", KEY)
    description = names.clean_description(f"{char}Mostly{char} red{char}.", KEY)
    assert char not in name + description
    if not char.isspace():  # whitespace controls part words or lines instead
        assert (name, description) == ("Red things", "Mostly red.")


@pytest.mark.parametrize("raw", [
    "<b>Red</b> <i>things</i>",
    "<span style='color:red'>Red things</span><br/>",
    "<<b>b>Red things<</b>/b>",
    "**Red** _things_",
    "__Red__ ~~things~~",
    "`Red things`",
    "[Red things](http://example.com)",
    "![Red things](http://example.com/x.png)",
    "<!-- a comment -->Red things",
])
def test_markup_and_markdown_are_removed(raw):
    assert names.clean_name(raw, KEY) == "Red things"
    assert names.clean_description(raw + ".", KEY) == "Red things."


def test_cleaned_names_stay_short_and_empty_ones_are_refused():
    name = names.clean_name("\u202e**" + "Verylongword" * 3 + " b c d e f**", KEY)
    assert len(name) <= names.MAX_NAME and len(name.split()) <= names.MAX_WORDS
    for raw in ("\x00\u200b\u202e", "<b></b>", "**__**"):
        with pytest.raises(prompts.ReplyError, match="empty once cleaned"):
            names.clean_name(raw, KEY)


@pytest.mark.parametrize("raw", [
    f"Red {KEY}", f"{'Red ' * 30}{KEY}", f"<b>{KEY[:6]}</b>{KEY[6:]}",
    f"{KEY[:6]}\u200b{KEY[6:]}",
])
def test_a_name_holding_the_key_is_refused_without_quoting_it(raw):
    with pytest.raises(prompts.ReplyError) as refused:
        names.clean_name(raw, KEY)
    assert str(refused.value) == "the name contains the API key"


def test_the_key_is_redacted_from_descriptions_before_they_are_cut():
    description = names.clean_description(
        "x" * 290 + f" {KEY} and {KEY[:6]}\u200b{KEY[6:]}", KEY)
    assert KEY[:12] not in description and len(description) <= names.MAX_DESCRIPTION
    for hidden in (f"{KEY[:6]}\u200b{KEY[6:]}", f"<b>{KEY[:6]}</b>{KEY[6:]}"):
        assert names.clean_description(f"{hidden}.", KEY) == "[redacted]."
