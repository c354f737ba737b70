"""What the user asked for when naming clusters, validated before anything
is touched. The same checks serve the App form, the Python call and
execution; every message names the parameter and says what to do."""

import os
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from ..clustering import runs, units
from ..clustering.params import InputError, Param, ParameterError, coerce_all
from ..clustering.progress import PROGRESS
from .record import group_label_field_of

SECRET = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"
DEFAULT_MODEL = "gpt-4.1-mini"
MAX_CONTEXT = 500

MODEL_PARAMS = (
    Param("model", str, DEFAULT_MODEL,
          "Vision model to ask; any model name the server knows"),
    Param("num_images", int, 5, "Images shown to the model per cluster", low=1, high=20),
    Param("max_image_size", int, 512,
          "Long side of each image sent, in pixels; larger images are downscaled",
          low=32, high=4096),
    Param("context", str, None,
          "A few words about the dataset added to the prompt, e.g. 'photos "
          "from real-estate listings'", empty="no context"),
)
OUTPUT_PARAMS = (
    Param("label_field", str, None, "Sample field that receives each cluster's name",
          empty="<cluster_field>_label"),
    Param("relabel", bool, False,
          "Name every cluster again, also those that already have a name"),
    Param("include_noise", bool, False,
          "Also name HDBSCAN's noise samples (cluster -1) as if they were a cluster"),
)
CONNECTION_PARAMS = (
    Param("concurrency", int, 8, "Calls to the model in flight at once", low=1, high=64),
    Param("timeout", float, 60.0,
          "Deadline in seconds for one whole call (connect, send, full reply); "
          "a call not done by then is abandoned and retried",
          low=0.1, high=600),
    Param("max_retries", int, 4,
          "Retries per cluster after a 429, 5xx, timeout or unreadable reply",
          low=0, high=10),
    Param("base_url", str, None,
          "An OpenAI-compatible server (vLLM, Ollama, LM Studio), e.g. "
          "http://localhost:8000/v1", empty=f"{BASE_URL_ENV}, else OpenAI's API"),
)
EXECUTION_PARAMS = (
    Param("delegate", bool, True,
          "Queue the run for `fiftyone delegated launch`: naming takes a while"),
    PROGRESS,
)
PARAMS = MODEL_PARAMS + OUTPUT_PARAMS + CONNECTION_PARAMS + EXECUTION_PARAMS


@dataclass
class LabelRequest:
    run_key: str
    config: object
    results: object
    model: str
    num_images: int
    max_image_size: int
    context: str
    label_field: str
    relabel: bool
    include_noise: bool
    concurrency: int
    timeout: float
    max_retries: int
    base_url: str


def form_groups(dataset, run_key):
    """``(header, params)`` for the form, label_field's default filled in
    from the chosen run."""
    output = OUTPUT_PARAMS
    if runs.is_clustering_run(dataset, run_key):
        default = default_label_field(dataset.get_run_info(run_key).config)
        output = tuple(replace(p, default=default) if p.name == "label_field" else p
                       for p in OUTPUT_PARAMS)
    return (("Model", MODEL_PARAMS), ("Output", output), ("Connection", CONNECTION_PARAMS),
            ("Execution", EXECUTION_PARAMS))


def declared(name):
    """The declared parameter ``name``."""
    return next(p for p in PARAMS if p.name == name)


def queueing(ctx):
    """Whether the form is for a run about to be queued (the API key is then
    needed where it will execute, not here)."""
    try:
        delegate = declared("delegate").coerce(ctx.params.get("delegate", False))
    except ParameterError:
        delegate = False
    return bool(delegate or ctx.requesting_delegated_execution) and not ctx.delegated


def known_keys():
    """Every parameter name label_clusters_with_llm accepts."""
    return {runs.RUN_CHOICE.name} | {p.name for p in PARAMS}


def missing_key_message():
    """What to do when the API key is missing, for the form and errors."""
    return (
        f"The plugin secret {SECRET} is not set, so no model can be asked. "
        f"Set {SECRET} in the environment of the process that runs this "
        "operator (the App server, and `fiftyone delegated launch` for "
        "delegated runs), then try again."
    )


def validate(dataset, values, api_key):
    """Returns ``(request or None, errors)``, ``errors`` keyed by parameter."""
    errors = {}
    if not api_key:
        errors["api_key"] = InputError(missing_key_message())

    run_key = values.get("run_key")
    config = results = None
    try:
        info, results = runs.get(dataset, run_key)
        config = info.config
    except ParameterError as e:
        errors["run_key"] = e

    params, bad = coerce_all(PARAMS, values)
    errors.update(bad)

    model = (params.get("model") or "").strip()
    if "model" not in errors and (not model or "\n" in model or len(model) > 200):
        errors["model"] = declared("model").error(
            f"must be a model name such as {DEFAULT_MODEL!r}; got {values.get('model')!r}.")

    context = (params.get("context") or "").strip() or None
    if context and len(context) > MAX_CONTEXT:
        errors["context"] = declared("context").error(
            f"must be at most {MAX_CONTEXT} characters; got {len(context)}. "
            "A few words about the dataset are enough.")

    label_field = None
    if config is not None and "label_field" not in errors:
        label_field = params["label_field"] or default_label_field(config)
        try:
            check_label_field(dataset, run_key, config, label_field)
        except ParameterError as e:
            errors["label_field"] = e
        label_field = units.beside(config, label_field)

    base_url = None
    if "base_url" not in errors:
        try:
            base_url = _base_url(params["base_url"])
        except ParameterError as e:
            errors["base_url"] = e

    if errors:
        return None, errors
    return LabelRequest(
        run_key=run_key, config=config, results=results, model=model,
        num_images=params["num_images"], max_image_size=params["max_image_size"],
        context=context, label_field=label_field, relabel=params["relabel"],
        include_noise=params["include_noise"], concurrency=params["concurrency"],
        timeout=params["timeout"], max_retries=params["max_retries"],
        base_url=base_url,
    ), {}


def default_label_field(config):
    """The field of the names when none is given: the cluster field's, ``_label`` added."""
    return config.cluster_field.rpartition(".")[2] + "_label"


def check_label_field(dataset, run_key, config, name):
    """Raises ParameterError unless run ``run_key`` may write its names to
    field ``name`` (beside its cluster field): never over its cluster ids,
    distances, groups or user data. The field of its groups' names must be
    free too."""
    owned = {config.cluster_field: "cluster field", config.distance_field: "distance field"}
    if getattr(config, "group_field", None):
        owned[config.group_field] = "group field"
        owned[group_label_field_of(config)] = "field of group names"
        runs.check_output_path(dataset, declared("label_field"), group_label_field_of(config),
                               run_key, overwrite=True)
    if units.beside(config, name) in owned:
        raise declared("label_field").error(
            f"must differ from the run's {owned[units.beside(config, name)]} '{name}': "
            f"cluster ids are never overwritten. Leave it empty for "
            f"'{default_label_field(config)}' or choose another new field name.")
    runs.check_output_field(dataset, declared("label_field"), name, run_key, overwrite=True,
                            within=config.cluster_field.rpartition(".")[0] or None)


def _base_url(given):
    """The server to talk to: the parameter, else the environment, else OpenAI."""
    url = (given or "").strip() or os.environ.get(BASE_URL_ENV, "").strip() or None
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        source = "" if given else f" (taken from {BASE_URL_ENV} because it is empty)"
        raise declared("base_url").error(
            f"must be an http(s) URL such as http://localhost:8000/v1{source}; "
            f"got {url!r}.")
    return url
