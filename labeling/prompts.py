"""What the model is asked and how its reply is read.

The reply is requested as JSON through a strict JSON schema (structured
output), and still read leniently: code fences, text around the object and
alternative key spellings are tolerated, because OpenAI-compatible servers
differ in how well they follow the schema.
"""

import json
import re

SYSTEM = (
    "You name clusters of images so that people can browse a dataset. You "
    "are shown a few images from one cluster, the most typical first. Say "
    "what they have in common. Reply with a JSON object with two keys: "
    "\"name\", 1 to 4 words naming the cluster (for example \"Kitchens\", "
    "\"Tennis players\", \"Night street scenes\"), and \"description\", one "
    "sentence describing the images."
)
USER = "These {num_images} images come from one cluster.{context} Name the cluster."
GROUP_SYSTEM = (
    "You name groups of image clusters so that people can browse a dataset. "
    "You are given the names of the clusters that form one group and a few "
    "images from them. Say what the clusters have in common. Reply with a JSON "
    "object with two keys: \"name\", 1 to 4 words naming the group (for "
    "example \"Animals\", \"Indoor scenes\", \"Sports\"), and "
    "\"description\", one sentence describing the group."
)
GROUP_USER = ("These {num_images} images come from a group of clusters named: "
              "{clusters}.{context} Name the group.")
CONTEXT = " About the dataset: {context}"

SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "cluster_label",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "1 to 4 words"},
                "description": {"type": "string", "description": "one sentence"},
            },
            "required": ["name", "description"],
            "additionalProperties": False,
        },
    },
}


class ReplyError(ValueError):
    """The model's reply holds no usable name."""


def recorded(context):
    """The prompts as the run config records them (``{num_images}`` and
    ``{clusters}`` left open)."""
    return dict(system=SYSTEM, user=USER.replace("{context}", _context(context)),
                group_system=GROUP_SYSTEM,
                group_user=GROUP_USER.replace("{context}", _context(context)))


def messages(images, context, detail, clusters=None):
    """Chat messages showing ``images`` (EncodedImage) with the prompt for
    one cluster or, given ``clusters`` (their names), for a group of them."""
    system, user = (SYSTEM, USER) if clusters is None else (GROUP_SYSTEM, GROUP_USER)
    text = user.format(num_images=len(images), context=_context(context),
                       clusters="; ".join(clusters or ()))
    content = [dict(type="text", text=text)] + [
        dict(type="image_url", image_url=dict(url=image.data_url, detail=detail))
        for image in images
    ]
    return [dict(role="system", content=system), dict(role="user", content=content)]


def _context(context):
    return CONTEXT.format(context=context.rstrip(".") + ".") if context else ""


def parse_reply(text):
    """``(name, description)`` from the model's reply, or ReplyError."""
    if not isinstance(text, str) or not text.strip():
        raise ReplyError("the reply is empty")
    for candidate in _json_objects(text):
        keys = {str(k).strip().lower(): v for k, v in candidate.items()}
        name = keys.get("name", keys.get("label", keys.get("title")))
        if isinstance(name, str) and name.strip():
            description = keys.get("description")
            return name, description if isinstance(description, str) else ""
    raise ReplyError(f"no JSON object with a name in the reply: {_excerpt(text)}")


def _json_objects(text):
    """Every JSON object in ``text``, the whole text first, fences removed."""
    stripped = re.sub(r"```[a-zA-Z]*", "", text).strip()
    try:
        whole = json.loads(stripped)
        if isinstance(whole, dict):
            yield whole
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", stripped):
        try:
            found, _ = decoder.raw_decode(stripped, match.start())
        except ValueError:
            continue
        if isinstance(found, dict):
            yield found


def _excerpt(text, limit=120):
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[:limit] + "...")
