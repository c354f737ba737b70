"""Cluster names as shown to people: cleaned, short, and distinct.

Two clusters may come back with the same name (the model sees each cluster
alone). Names are then made distinct by a number, "Kitchens" and
"Kitchens (2)": the name is kept by the cluster that already had it, else
by the lower cluster id, which is the larger cluster. The number says
plainly that the model saw no difference; the descriptions and the images
tell the two apart.
"""

import re
import unicodedata

from .prompts import ReplyError

MAX_WORDS = 4
MAX_NAME = 40
MAX_DESCRIPTION = 300
REDACTED = "[redacted]"
_EDGE = " \t\"'`*_#.:;,!-"
_MAX_RAW = 4000  # characters of a reply cleaned at most: markup costs a pass per level
_TAGS = r"(?:<!--.*?(?:-->|$)|<[!?/]?[A-Za-z][^<>]*>)+"
_TAGS_BETWEEN_WORDS = re.compile(rf"(?<=[^\W_]){_TAGS}(?=[^\W_])", re.DOTALL)
_TAG = re.compile(_TAGS, re.DOTALL)
_LINK = re.compile(r"!?\[([^\[\]]*)\](?:\([^()]*\)|\[[^\[\]]*\])")
_EMPHASIS = re.compile(r"\*+|`+|~~+|(?<![^\W_])_+|_+(?![^\W_])")


def clean_name(raw, secret):
    """The model's name as one short line of plain text, or ReplyError if
    nothing is left or it contains ``secret`` (the API key)."""
    raw = str(raw)
    text = plain(raw[:_MAX_RAW])
    if secret and (_spread(secret).search(raw) or _spread(secret).search(text)):
        raise ReplyError("the name contains the API key")
    lines = [line.strip(_EDGE) for line in text.splitlines()]
    words = next((line for line in lines if line), "").split()[:MAX_WORDS]
    name = " ".join(words)
    while len(name) > MAX_NAME and " " in name:
        name = name.rsplit(" ", 1)[0]
    name = name[:MAX_NAME].strip(_EDGE)
    if not name:
        raise ReplyError(f"the name {str(raw)[:60]!r} is empty once cleaned")
    return name[0].upper() + name[1:]


def clean_description(raw, secret):
    """The description as one line of plain text of at most MAX_DESCRIPTION
    characters, ``secret`` (the API key) replaced by REDACTED."""
    text = plain_line(str(raw or ""), secret)
    if len(text) > MAX_DESCRIPTION:
        text = text[: MAX_DESCRIPTION - 3].rsplit(" ", 1)[0] + "..."
    return text


def plain_line(text, secret=None):
    """``text`` (at most its first _MAX_RAW characters) as one line of plain
    text, ``secret`` replaced by REDACTED before cleaning (which could cut
    it) and after (which could reveal it)."""
    text = plain(redact(text, secret)[:_MAX_RAW])
    return " ".join(redact(text, secret).split())


def plain(text):
    """``text`` without control, format (bidi, zero-width) or other invisible
    characters, markup tags (a space where they part two words) and markdown
    emphasis or link syntax; repeated until nothing changes, since removing
    one can form another (``<<b>b>``)."""
    previous = None
    while text != previous:
        previous = text
        text = "".join(c for c in text if c.isspace() or unicodedata.category(c)[0] != "C")
        text = _TAG.sub("", _TAGS_BETWEEN_WORDS.sub(" ", text))
        text = _EMPHASIS.sub("", _LINK.sub(r"\1", text))
    return text


def redact(text, secret):
    """``text`` with every occurrence of ``secret`` replaced by REDACTED, also
    where whitespace parts its characters (as cleaning may do)."""
    return _spread(secret).sub(REDACTED, text) if secret else text


def _spread(secret):
    """A pattern for ``secret``, whitespace allowed between its characters."""
    return re.compile(r"\s*".join(map(re.escape, secret)))


def make_distinct(claims):
    """``{cluster id: name}`` with no two names alike, from ``claims``, a
    list of ``(cluster id, name)`` in order of precedence."""
    taken, out = set(), {}
    for cluster_id, name in claims:
        candidate, n = name, 1
        while _key(candidate) in taken:
            n += 1
            candidate = f"{name} ({n})"
        taken.add(_key(candidate))
        out[cluster_id] = candidate
    return out


def _key(name):
    return re.sub(r"[\W_]+", " ", name.casefold()).strip()
