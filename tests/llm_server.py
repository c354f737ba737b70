"""A small OpenAI-compatible chat-completions server on 127.0.0.1 for the
tests and the benchmark: only the remote model is simulated.

It checks each request as a strict API would: the key, the model, the JSON
schema asked for, and every image (a data URL whose MIME type matches the
encoded bytes, long side at most ``max_side``). Anything wrong is recorded
in ``problems`` and answered with HTTP 400. It then answers like a vision
model that names what it sees: the test images are flat colours, and the
name is the colour most of them show ("Red things"). It can be told to
answer slowly, with 429 + Retry-After, 500, malformed replies, or the same
name for every cluster, and to behave like a hostile or broken server: drip
its reply, answer 200 with HTML or cut JSON, echo the API key, or name the
cluster with invisible characters and markup.
"""

import base64
import io
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (230, 200, 30),
    "purple": (140, 50, 170),
    "orange": (240, 130, 20),
    "grey": (128, 128, 128),
    "black": (10, 10, 10),
}
_DATA_URL = re.compile(r"^data:(image/[a-z]+);base64,([A-Za-z0-9+/=]+)$")
_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG"}


@dataclass
class Received:
    """One request as the server saw it."""

    at: float
    colour: str
    images: list
    text: str
    status: int = None
    fault: tuple = None

    @property
    def names(self):
        """What the request asks to name ("cluster" or "group"), read from its prompt."""
        return "group" if self.text.rstrip().endswith("Name the group.") else "cluster"


def asked(requests):
    """``(clusters, groups)``: how many of ``requests`` name a cluster, how many a group."""
    kinds = [r.names for r in requests]
    return kinds.count("cluster"), kinds.count("group")


class LLMServer:
    """Start with ``with LLMServer(key, model) as server:``; ``server.url`` is
    the base URL. Faults in ``faults`` are used up one per valid request, in
    arrival order: ("429", seconds), ("quota",), ("500",), ("malformed",),
    ("fenced",), ("slow", seconds), and hostile ones:

    - ("drip", seconds_per_byte): a good reply, status line and headers
      included, sent one byte at a time;
    - ("html_200",) (alias "not_json"): HTTP 200 with a text/html error page;
    - ("truncated_json",): HTTP 200, application/json, the body cut in half;
    - ("echo_key",): the API key the client sent, inside the name and the
      description; ("echo_key", "description"): inside the description only;
      ("echo_key", "error"): HTTP 500 whose message ends with it, from
      character 181 on (across a cut at 200 characters);
    - ("hostile_name",): name and description wrapped in a NUL, bidi
      overrides, zero-width characters, <b>markup</b> and **markdown**,
      which clean to the usual "Red things" and "Images that are mostly red.".
    """

    def __init__(self, api_key, model, max_side=None, max_images=20, delay=0.0):
        self.api_key = api_key
        self.model = model
        self.max_side = max_side
        self.max_images = max_images
        self.delay = delay
        self.faults = []
        self.failing = set()
        self.fixed_name = None
        self.fixed_description = None
        self.requests = []
        self.problems = []
        self.lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._http.daemon_threads = True
        self._http.llm = self
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._http.shutdown()
        self._http.server_close()

    def colours_asked(self):
        """Colours of the valid requests, in arrival order."""
        return [r.colour for r in self.requests if r.colour]

    def inspect(self, body):
        """``(colour, images, text, problems)`` of a chat request body."""
        problems, images, colours, text = [], [], [], ""
        schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema", {})
        if set(schema.get("required", [])) != {"name", "description"}:
            problems.append(f"response_format asks no name/description schema: "
                            f"{body.get('response_format')!r}")
        users = [m for m in body.get("messages", []) if m.get("role") == "user"]
        parts = users[0].get("content") if users else None
        if not isinstance(parts, list):
            return None, [], "", problems + ["no user message with content parts"]
        for part in parts:
            if part.get("type") == "text":
                text += part["text"]
            elif part.get("type") == "image_url":
                problem = self._inspect_image(part["image_url"]["url"], images, colours)
                if problem:
                    problems.append(problem)
        if not 1 <= len(images) <= self.max_images:
            problems.append(f"{len(images)} images; expected 1 to {self.max_images}")
        colour = Counter(colours).most_common(1)[0][0] if colours else None
        return colour, images, text, problems

    def _inspect_image(self, url, images, colours):
        from PIL import Image

        match = _DATA_URL.match(url)
        if not match:
            return f"not a base64 data URL of an image: {url[:40]!r}"
        mime = match.group(1)
        try:
            with Image.open(io.BytesIO(base64.b64decode(match.group(2)))) as image:
                found = image.format
                image = image.convert("RGB")
        except Exception as e:
            return f"{mime} data URL does not decode: {e}"
        if _FORMATS.get(mime) != found:
            return f"declared {mime} but the bytes are {found}"
        if self.max_side and max(image.size) > self.max_side:
            return f"image of {image.size} exceeds {self.max_side} pixels"
        images.append((mime, *image.size))
        mean = image.resize((1, 1), Image.BOX).getpixel((0, 0))
        colours.append(min(COLOURS, key=lambda c: sum(
            (a - b) ** 2 for a, b in zip(COLOURS[c], mean))))
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes

    def log_message(self, *args):
        pass

    def do_POST(self):
        server = self.server.llm
        arrived = time.monotonic()
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path != "/v1/chat/completions":
            return self._error(404, f"Unknown path {self.path}")
        given = self.headers.get("authorization", "").removeprefix("Bearer ")
        if given != server.api_key:
            # like OpenAI, quote the key given (OpenAI masks part of it)
            return self._error(401, f"Incorrect API key provided: {given}.")
        try:
            body = json.loads(raw)
        except ValueError:
            with server.lock:
                server.problems.append("body is not JSON")
            return self._error(400, "We could not parse the JSON body")
        if body.get("model") != server.model:
            return self._error(404, f"The model `{body.get('model')}` does not exist")

        colour, images, text, problems = server.inspect(body)
        received = Received(arrived, colour if not problems else None, images, text)
        with server.lock:
            server.requests.append(received)
            server.problems.extend(problems)
            fault = server.faults.pop(0) if server.faults and not problems else None
        received.fault = fault
        if problems:
            received.status = 400
            return self._error(400, "; ".join(problems))
        kind = fault[0] if fault else None
        if kind == "slow":
            time.sleep(fault[1])
        elif server.delay:
            time.sleep(server.delay)

        if kind == "echo_key" and fault[1:] == ("error",):
            received.status = 500
            return self._error(500, f"{'Upstream error. ' * 11}Key: {given}")
        if colour in server.failing or kind == "500":
            received.status = 500
            return self._error(500, "The server had an error while processing your request")
        if kind == "429":
            received.status = 429
            return self._error(429, "Rate limit reached for requests",
                               code="rate_limit_exceeded",
                               headers={"Retry-After": str(fault[1])})
        if kind == "quota":
            received.status = 429
            return self._error(429, "You exceeded your current quota",
                               code="insufficient_quota")
        received.status = 200
        if kind in ("html_200", "not_json"):
            return self._send(200, b"<html>502 Bad Gateway</html>", "text/html")

        name = server.fixed_name or f"{colour.capitalize()} things"
        description = server.fixed_description or f"Images that are mostly {colour}."
        if kind == "echo_key":
            if fault[1:] != ("description",):
                name = f"{colour.capitalize()} {given}"
            description = f"Images sent with the key {given}."
        elif kind == "hostile_name":
            name = (f"\u202e<b>**{colour.capitalize()}**</b>\x00\u200b "
                    f"_things_\u2066\u200f")
            description = (f"<i>Images</i> that\u200d are \u2067mostly\u2069 "
                           f"[**{colour}**](http://example.com)\x1b.\u202c")
        reply = json.dumps({"name": name, "description": description})
        if kind == "malformed":
            reply = f"These look like {colour} things to me"
        elif kind == "fenced":
            reply = f"Here is the label:\n```json\n{reply}\n```\nHope this helps."
        data = json.dumps({
            "id": f"chatcmpl-{len(server.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": server.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": reply, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }],
            "usage": {"prompt_tokens": 100 + 85 * len(images), "completion_tokens": 20,
                      "total_tokens": 120 + 85 * len(images)},
        }).encode()
        if kind == "truncated_json":
            data = data[: len(data) // 2]
        elif kind == "drip":
            return self._drip(data, fault[1])
        self._send(200, data, "application/json")

    def _error(self, status, message, code=None, headers=None):
        self._json(status, {"error": {"message": message, "type": "test", "code": code}},
                   headers)

    def _json(self, status, payload, headers=None):
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _drip(self, data, seconds_per_byte):
        """A 200 JSON response written one byte at a time, headers included,
        until the client hangs up."""
        response = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n").encode() + data
        try:
            for i in range(len(response)):
                self.wfile.write(response[i:i + 1])
                time.sleep(seconds_per_byte)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send(self, status, data, content_type, headers=None):
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): nothing to answer


def main(argv=None):
    """Serves until interrupted and prints the base URL first, so that a
    benchmark can run the simulated model in a process of its own."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__.split(",")[0])
    parser.add_argument("--key", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds per call")
    args = parser.parse_args(argv)
    with LLMServer(args.key, args.model, delay=args.delay) as server:
        print(server.url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
