"""How the operators meet the App and Python: the shells around the plain
functions of ``api``, and shared form pieces.

``execute`` answers three callers: a delegated run (progress to the
operation's status, errors fail the operation), the App executing now
(a generator: live progress in the prompt, then the output, errors as a
message without a traceback), and ``foo.execute_operator`` from Python
(the plain result, errors raised). ``call`` is every operator's
``__call__``: it runs the work in the caller's thread, so a script, a
notebook and a test get the finished result and the plugin's own typed
errors, or queues it through FiftyOne's operator machinery.
"""

import logging

from . import internals, runs
from .params import ParameterError, UserError, mark_invalid
from .progress import Bar, Live, to_operation

logger = logging.getLogger(__name__)


def execute(ctx, work, output=None, reload=True):
    """Runs ``work(report)`` for ``ctx``'s caller. ``output(result)`` builds
    the outputs Property the App shows; ``reload`` reloads the App's
    dataset after a run that changed it."""
    if ctx.delegated:
        return work(to_operation(ctx))
    if not internals.from_app(ctx):
        return work(None)
    return _live(ctx, work, output, reload)


def _live(ctx, work, output, reload):
    for kind, value in Live(work):
        if kind == "progress":
            fraction, label = value
            yield ctx.ops.set_progress(label=label, progress=fraction)
        elif kind == "error":
            message = _message(value)
            yield ctx.ops.notify(message, variant="error")
            yield ctx.ops.show_output(error_output(message).to_json(), {"error": message})
        else:
            if reload:
                yield ctx.ops.reload_dataset()
            if output is not None:
                yield ctx.ops.show_output(output(value).to_json(), runs.plain(value))


def answer(ctx, work, reload=False):
    """A quick operator's execute: ``work()``'s result; for the App, a
    failure is a message (shown by ``output``), not a traceback, and
    ``reload`` reloads the App's dataset after a change."""
    try:
        result = work()
    except UserError as e:
        if ctx.delegated or not internals.from_app(ctx):
            raise
        ctx.ops.notify(str(e), variant="error")
        return {"error": str(e)}
    if reload and internals.from_app(ctx):
        ctx.ops.reload_dataset()
    return result


def output(ctx, build):
    """An operator's resolve_output: ``build(results)``, or the message of
    a failure that ``answer`` caught."""
    results = ctx.results or {}
    if isinstance(results, dict) and results.get("error"):
        return error_output(results["error"])
    return build(results) if build else None


def _message(error):
    """What the App shows for a failed run: the plugin's own message, or
    the exception's type and text for anything unexpected (logged whole)."""
    if isinstance(error, UserError):
        return str(error)
    logger.error("Cluster Lab operation failed", exc_info=error)
    return f"{type(error).__name__}: {error}"


def error_output(message):
    """The App's output for a run that failed: the message, no traceback."""
    import fiftyone.operators.types as types

    outputs = types.Object()
    outputs.view("error", types.Error(label="The operation did not run", description=message))
    return types.Property(outputs, view=types.View(label="Not done"))


def call(operator, collection, values, declared, work, check):
    """An operator's ``__call__``: coerces ``delegate`` and ``progress``
    through their declarations (``declared``), then runs ``work(report)``
    now or, delegated, ``check(collection, values)`` and queues the run."""
    execution = {p.name: p for p in declared}
    delegate = execution["delegate"]
    delegate = delegate.coerce(values.get("delegate", delegate.default))
    progress = execution["progress"].coerce(values.pop("progress", None))
    if progress is None:
        import fiftyone as fo

        progress = fo.config.show_progress_bars
    if delegate:
        check(collection, values)
        return internals.queue_operation(operator.uri, collection, values)
    return work(Bar() if progress else None)


def check_unknown(name, values, known, hint=""):
    """Raises TypeError, as Python does, for keyword arguments the operator
    does not declare."""
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise TypeError(f"{name}() got unknown parameter(s) {', '.join(unknown)}{hint}; "
                        f"known: {', '.join(sorted(known))}.")


def resolve_delegation(ctx, declared):
    """The operator's forced delegation: the form's or the call's
    ``delegate`` when given (coerced: "false" is False), else None, which
    defers to FiftyOne (``request_delegation``, the App's choice)."""
    if "delegate" not in ctx.params:
        return None
    try:
        return declared.coerce(ctx.params.get("delegate"))
    except UserError:
        return None


def add_execution(inputs, ctx, delegate):
    """The form's Delegate checkbox where scheduling works; else a note on
    how to enable it, and the run executes now."""
    import fiftyone.operators.types as types

    if internals.scheduling_enabled():
        delegate.add_to_form(inputs, delegate.name)
        return
    inputs.view("scheduling", types.Notice(
        label="Runs execute now, with progress shown here. To schedule them for "
              "`fiftyone delegated launch` instead, start the App with "
              "FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true (see the plugin's README)."))


def worth_counting(ctx):
    """Whether to scan the target for samples with embeddings while resolving
    the form: yes as the user types, and for a run about to be queued (a bad
    one is refused now, not in the launcher); no for a run executing now,
    which checks the same limits once it has read the vectors."""
    if ctx.executor is None:
        return True
    queueing = ctx.params.get("delegate") or ctx.requesting_delegated_execution
    return bool(queueing) and not ctx.delegated


def run_choice(inputs, ctx, param=runs.RUN_CHOICE, include_leftovers=False):
    """A dropdown of this plugin's clustering runs; other keys get a clear
    error. ``include_leftovers`` also offers the keys of runs deleted
    outside the plugin whose fields remain."""
    import fiftyone.operators.types as types

    keys = runs.list_runs(ctx.dataset)
    leftover = sorted(set(runs.leftovers(ctx.dataset).values()) - set(keys)) if (
        include_leftovers) else []
    if not keys and not leftover:
        inputs.view("no_runs", types.Warning(
            label="No clustering runs", description="Run compute_clusters first."))
    choices = types.Dropdown()
    for key in keys:
        choices.add_choice(key, label=key)
    for key in leftover:
        choices.add_choice(key, label=f"{key} (deleted run: its fields remain)")
    inputs.str(param.name, required=True, label=param.title, view=choices,
               description=param.help)
    key = ctx.params.get(param.name)
    if key and key not in keys and key not in leftover:
        try:
            runs.get(ctx.dataset, key, param)
        except UserError as e:
            mark(inputs, param.name, str(e))


def cluster_choice(inputs, ctx, with_groups=False):
    """A dropdown of the chosen run's clusters (and its noise), each shown
    with its name and size, and ``with_groups`` its groups after them;
    returns ``{cluster id: entry}`` of the run's stored clusters, empty
    until a clustering run is chosen."""
    import fiftyone.operators.types as types

    from .groups import PREFIX
    from .typical import CLUSTER, OPENED

    key = ctx.params.get("run_key")
    entries = cluster_entries(ctx.dataset, key)
    if not entries:
        return {}
    choices = types.Dropdown()
    for cid, entry in entries.items():
        choices.add_choice(cid, label=cluster_label(cid, entry))
    param = OPENED if with_groups else CLUSTER
    for group in runs.group_tree(runs.load_results(ctx.dataset, key)) if with_groups else []:
        clusters = ", ".join(c["id"] for c in group["clusters"])
        choices.add_choice(PREFIX + group["id"], label=cluster_label(
            PREFIX + group["id"], dict(group, name=f"{group['name'] or 'group'}: "
                                                   f"clusters {clusters}")))
    inputs.enum(param.name, choices.values(), required=True, label=param.title,
                view=choices, description=param.help)
    return entries


def cluster_entries(dataset, key):
    """``{cluster id: its stored entry}`` of run ``key``, noise last (named
    "noise" unless it has a name); empty unless ``key`` is a clustering run."""
    results = runs.load_results(dataset, key) if (
        key in runs.list_runs(dataset)) else None
    if results is None:
        return {}
    entries = {c["id"]: c for c in results.clusters}
    if results.noise:
        entries["-1"] = dict(results.noise, name=results.noise.get("name") or "noise")
    return entries


def cluster_label(cid, entry):
    """How a dropdown shows a cluster: its id, name and size."""
    name = f" {entry['name']}" if entry.get("name") else ""
    return f"{cid}{name} ({entry['size']:,})"


def action_form(inputs, ctx, params, check, changes=None):
    """The form of an action on a run's clusters: the run, then ``params``
    (``changes`` per name: choices, labels or a default known only now).
    What ``check(dataset, params)`` refuses is shown under the parameter it
    names once the user has given that one, or above the form."""
    import fiftyone.operators.types as types

    run_choice(inputs, ctx)
    error = None
    if ctx.params.get("run_key"):
        try:
            check(ctx.dataset, ctx.params)
        except ParameterError as e:
            error = e
        except UserError as e:
            inputs.view("problem", types.Warning(label="Cannot run", description=str(e)))
    if error is not None and error.key == "run_key":
        mark(inputs, "run_key", str(error))
    shown = typed_errors({error.key: error} if error is not None else {}, ctx.params)
    for param in params:
        if param.form:
            add_param(inputs, param, shown(param.name), **(changes or {}).get(param.name, {}))


def typed_errors(errors, params):
    """The message of ``errors[key]`` only once the user has typed a value
    for ``key``: an empty new form shows no errors under its fields."""
    def shown(key):
        if params.get(key) in (None, "") or key not in errors:
            return None
        return str(errors[key])
    return shown


def mark(inputs, key, error):
    """Shows ``error`` under the form's property ``key``."""
    mark_invalid(inputs.get_property(key), error)


def add_param(inputs, param, error=None, choices=None, key=None, default=None, labels=None):
    """Adds a declared parameter to the form, with choices known only now
    (fields of this dataset, a run's clusters: ``labels`` label them) or a
    default that depends on other inputs."""
    from dataclasses import replace

    changes = {}
    if choices is not None:
        changes["choices"] = tuple(choices)
        changes["choice_labels"] = tuple(labels or ())
    if default is not None:
        changes["default"] = default
    return (replace(param, **changes) if changes else param).add_to_form(
        inputs, key or param.name, error=error)

