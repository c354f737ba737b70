"""Cluster names as shown to people: cleaned, short, and distinct.

Two clusters may come back with the same name (the model sees each cluster
alone). Names are then made distinct by a number, "Kitchens" and
"Kitchens (2)": the name is kept by the cluster that already had it, else
by the lower cluster id, which is the larger cluster. The number says
plainly that the model saw no difference; the descriptions and the images
tell the two apart.
"""

import re

from .prompts import ReplyError

MAX_WORDS = 4
MAX_NAME = 40
MAX_DESCRIPTION = 300
_EDGE = " \t\"'`*_#.:;,!-"


def clean_name(raw):
    """The model's name as one short line, or ReplyError if nothing is left."""
    lines = [line.strip(_EDGE) for line in str(raw).splitlines()]
    words = next((line for line in lines if line), "").split()[:MAX_WORDS]
    name = " ".join(words)
    while len(name) > MAX_NAME and " " in name:
        name = name.rsplit(" ", 1)[0]
    name = name[:MAX_NAME].strip(_EDGE)
    if not name:
        raise ReplyError(f"the name {str(raw)[:60]!r} is empty once cleaned")
    return name[0].upper() + name[1:]


def clean_description(raw):
    """The description as one line of at most MAX_DESCRIPTION characters."""
    text = " ".join(str(raw or "").split())
    if len(text) > MAX_DESCRIPTION:
        text = text[: MAX_DESCRIPTION - 3].rsplit(" ", 1)[0] + "..."
    return text


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
