"""How the operators meet the App and Python: shared form pieces, and
Python calls routed through FiftyOne's operator machinery."""

from . import runs
from .params import mark_invalid


def invoke(operator, sample_collection, params, delegate):
    """Runs ``operator`` on a dataset or view as ``foo.execute_operator`` does
    for any caller; returns its result (or the queued operation)."""
    import fiftyone.operators as foo

    result = foo.execute_operator(
        operator.uri, dict(view=sample_collection.view()), params=params,
        request_delegation=delegate,
    )
    return result.result


def worth_counting(ctx):
    """Whether to scan the target for samples with embeddings while resolving
    the form: yes as the user types, and for a run about to be queued (a bad
    one is refused now, not in the launcher); no for a run executing now,
    which checks the same limits once it has read the vectors."""
    if ctx.executor is None:
        return True
    queueing = ctx.params.get("delegate") or ctx.requesting_delegated_execution
    return bool(queueing) and not ctx.delegated


def run_choice(inputs, ctx, name="run_key", label="Clustering run"):
    """A dropdown of this plugin's clustering runs; other keys get a clear error."""
    import fiftyone.operators.types as types

    keys = runs.list_runs(ctx.dataset)
    if not keys:
        inputs.view("no_runs", types.Warning(
            label="No clustering runs", description="Run compute_clusters first."))
    choices = types.Dropdown()
    for key in keys:
        choices.add_choice(key, label=key)
    inputs.str(name, required=True, label=label, view=choices)
    key = ctx.params.get(name)
    if key and key not in keys:
        try:
            runs.get(ctx.dataset, key)
        except ValueError as e:
            mark(inputs, name, str(e).replace("'run_key'", f"'{name}'"))


def typed_errors(errors, params):
    """``errors[key]`` only once the user has typed a value for ``key``: an
    empty new form shows no errors under its fields."""
    return lambda key: errors.get(key) if params.get(key) not in (None, "") else None


def mark(inputs, key, error):
    """Shows ``error`` under the form's property ``key``."""
    mark_invalid(inputs.get_property(key), error)


def truth_fields(collection):
    """Fields that can serve as ground truth: classifications and plain labels."""
    import fiftyone as fo

    names = []
    for name, field in collection.get_field_schema().items():
        if isinstance(field, (fo.StringField, fo.IntField, fo.BooleanField)) or (
            isinstance(field, fo.EmbeddedDocumentField)
            and issubclass(field.document_type, fo.Classification)
        ):
            names.append(name)
    return sorted(n for n in names if n not in ("filepath", "id", "media_type"))
