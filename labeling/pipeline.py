"""Naming a clustering run's clusters, then its groups of clusters, end to end.

Clusters are named in a pool of ``concurrency`` threads (the work is file
reads and HTTP). The calling thread gathers the outcomes as they come and
reports progress per cluster. The naming holds the run key's lease, and its
writes (names per cluster in the run results, and in ``label_field`` for
each cluster's samples) are one transaction, committed when naming ends or
fails: the names obtained so far are saved, unless the process is killed,
which leaves the run as it was. The cluster-id field is only read; when no
cluster could be named, no label field is written.

A cluster keeps its name until ``relabel``; a failed relabel keeps the old
name and records the error next to it. Each group of two or more clusters is
then named from its clusters' names and a few of their images (one request
per group), when it has no name, on ``relabel``, or when one of its clusters
was up for naming; a group of one cluster bears that cluster's name.
"""

import datetime
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace

from ..clustering import runs, transactions
from ..clustering.params import InputError
from ..clustering.groups import interleave
from . import images, names, prompts, record, selection
from .client import CallFailed, ChatClient, Fatal, public_url
from .record import NOISE_ID

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What one cluster's (or group's) naming gave: a name, or an error."""

    cluster_id: str
    name: str = None
    description: str = None
    shown: list = field(default_factory=list)
    unreadable: list = field(default_factory=list)
    usage: dict = None
    error: str = None


def run(dataset, request, api_key, report=None, operation=None):
    """Names the clusters of ``request.run_key``; returns a summary.
    ``operation`` is the delegated operation executing it, if any."""
    with transactions.transaction(dataset, [request.run_key], "labeling",
                                  operation) as tx:
        dataset.reload()
        info, results = runs.get(dataset, request.run_key)
        request = replace(request, config=info.config, results=results)
        return _run(dataset, request, api_key, report, tx)


def _run(dataset, request, api_key, report, tx):
    start = time.perf_counter()
    stored = runs.results_dict(request.results)
    entries = record.entries(stored)
    targets = [
        cid for cid, entry in entries
        if (cid != NOISE_ID or request.include_noise)
        and (request.relabel or not entry.get("name"))
    ]
    groups = [(g["id"], g) for g in stored.get("groups") or []]
    group_targets = [gid for gid, g in groups if len(g["clusters"]) > 1 and (
        request.relabel or not g.get("name") or set(g["clusters"]) & set(targets))]
    total = len(targets) + len(group_targets)
    client = ChatClient(api_key, request.base_url, request.model, request.timeout,
                        request.max_retries) if total else None

    outcomes, group_outcomes, fatal, new = {}, {}, None, None
    try:
        if targets:
            fatal = _name_all(dataset, request, client, api_key, dict(entries), targets,
                              outcomes, (report, 0, total))
        new = _merge(request, entries, targets, outcomes, fatal)
        if group_targets and not fatal:
            fatal = _name_groups(dataset, request, client, api_key, stored, group_targets,
                                 group_outcomes, (report, len(targets), total))
    except BaseException:
        if outcomes or group_outcomes:
            if new is None:
                _merge(request, entries, targets, outcomes, None)
            _merge(request, groups, group_targets, group_outcomes, None)
            _save(tx, request, stored)
        raise
    _merge(request, groups, group_targets, group_outcomes, fatal)
    _save(tx, request, stored)

    failed = [dict(id=cid, error=entry["error"]) for cid, entry in entries
              if cid in targets and entry.get("error")]
    summary = _summary(request, entries, targets, new, failed,
                       list(outcomes.values()) + list(group_outcomes.values()), start, groups)
    if fatal:
        raise InputError(
            f"Naming stopped: {fatal} {len(new)} cluster(s) named before it "
            f"stopped are saved in run '{request.run_key}'.")
    if targets and not new:
        raise InputError(
            f"No cluster could be named; cluster {failed[0]['id']}: "
            f"{failed[0]['error']}. Every error is recorded in run "
            f"'{request.run_key}'.")
    return summary


def _name_all(dataset, request, client, api_key, entries, targets, outcomes, progress):
    """Names the clusters ``targets``, filling ``outcomes``; returns the
    Fatal message, if any."""
    pools = selection.pools(
        dataset, request.config, [dict(entries[cid], id=cid) for cid in targets])

    def job(cid):
        def more(tried):
            return selection.more_candidates(dataset, request.config, cid, tried)
        return lambda stop: _name_one(request, client, ("Cluster", cid), pools[cid], more,
                                      stop, api_key)
    return _ask_all(request, {cid: job(cid) for cid in targets}, outcomes, progress,
                    "clusters", api_key)


def _name_groups(dataset, request, client, api_key, stored, targets, outcomes, progress):
    """Names the groups ``targets`` from their clusters' names and their
    most typical images (each cluster's in turn), filling ``outcomes``;
    returns the Fatal message, if any."""
    clusters = {c["id"]: c for c in stored["clusters"]}
    found = {g["id"]: g for g in stored["groups"]}
    members = [c for gid in targets for c in found[gid]["clusters"]]
    pools = selection.pools(dataset, request.config, [clusters[c] for c in members])

    def job(gid):
        ids = found[gid]["clusters"]
        named = [clusters[c]["name"] for c in ids if clusters[c].get("name")]
        candidates = interleave([pools[c] for c in ids])
        return lambda stop: _name_one(request, client, ("Group", gid), candidates, None,
                                      stop, api_key, named)
    return _ask_all(request, {gid: job(gid) for gid in targets}, outcomes, progress,
                    "groups", api_key)


def _ask_all(request, jobs, outcomes, progress, what, api_key):
    """Runs ``jobs`` (``{id: job(stop)}``, each giving an Outcome or None
    once stopped) ``concurrency`` at a time, filling ``outcomes`` as they
    come; ``progress`` is ``(report, names before these, names in all)``.
    Returns the Fatal message, if any."""
    report, before, total = progress
    stop = threading.Event()
    fatal = None
    if report:
        report(before / total, f"0/{len(jobs)} {what} named")
    with ThreadPoolExecutor(request.concurrency, "clusterlab-label") as pool:
        futures = {pool.submit(job, stop): key for key, job in jobs.items()}
        try:
            for done, future in enumerate(as_completed(futures), 1):
                key = futures[future]
                try:
                    outcome = future.result()
                except Fatal as e:
                    fatal = fatal or str(e)
                    stop.set()
                    outcome = None
                except Exception as e:  # a bug must not lose the others
                    error = names.redact(f"{type(e).__name__}: {e}", api_key)
                    logger.error("Naming %s %s failed: %s", what, key, error)
                    outcome = Outcome(key, error=error)
                if outcome is not None:
                    outcomes[key] = outcome
                if report:
                    report((before + done) / total, f"{done}/{len(jobs)} {what} named")
        finally:
            stop.set()
    return fatal


def _name_one(request, client, target, candidates, more, stop, api_key, clusters=None):
    """One cluster (``target`` is ``("Cluster", id)``) or group (given its
    ``clusters``' names): its images, then the model's name; None once
    stopped. The key never becomes part of a name or description."""
    if stop.is_set():
        return None
    what, key = target
    shown, unreadable = _load_images(request, target, candidates, more)
    skipped = [sample_id for sample_id, _ in unreadable]
    if not shown:
        reason = unreadable[0][1] if unreadable else f"the {what.lower()} has no samples"
        error = f"no readable image among the {len(unreadable)} files tried (e.g. {reason})"
        logger.warning("%s %s not named: %s", what, key, error)
        return Outcome(key, unreadable=skipped, error=error)
    shown_ids = [image.sample_id for image in shown]
    detail = "low" if request.max_image_size <= 512 else "high"
    try:
        reply = client.ask(prompts.messages(shown, request.context, detail, clusters),
                           lambda text: _parse(text, api_key))
    except CallFailed as e:
        logger.warning("%s %s not named: %s", what, key, e)
        return Outcome(key, shown=shown_ids, unreadable=skipped, usage=e.usage,
                       error=str(e))
    name, description = reply.value
    return Outcome(key, name=name, description=description, shown=shown_ids,
                   unreadable=skipped, usage=reply.usage)


def _load_images(request, target, candidates, more=None):
    """Up to ``num_images`` encoded images in candidate order, unreadable files
    skipped and replaced by ``more(tried)`` candidates when given;
    ``(images, [(id, reason)])``."""
    shown, unreadable, tried = [], [], set()
    for batch in (candidates, None):
        if batch is None:
            batch = more(tried)
        for candidate in batch:
            if len(shown) == request.num_images:
                return shown, unreadable
            tried.add(candidate.sample_id)
            try:
                shown.append(images.encode(candidate.sample_id, candidate.filepath,
                                           request.max_image_size, candidate.box))
            except images.UnreadableImage as e:
                logger.warning("%s %s: skipping unreadable image %s", *target, e)
                unreadable.append((candidate.sample_id, str(e)))
        if len(shown) == request.num_images or not unreadable or more is None:
            break
    return shown, unreadable


def _parse(text, secret):
    name, description = prompts.parse_reply(text)
    return names.clean_name(name, secret), names.clean_description(description, secret)


def _merge(request, entries, targets, outcomes, fatal):
    """Writes the outcomes into the cluster entries, names made distinct;
    returns the ids named by this run."""
    by_id = dict(entries)
    new = []
    for cid in targets:
        entry, outcome = by_id[cid], outcomes.get(cid)
        if outcome is None and fatal is None:
            continue
        if outcome is None:
            outcome = Outcome(cid, error=f"not attempted: naming stopped ({fatal})")
        if outcome.error is None:
            entry.update(name=outcome.name, description=outcome.description,
                         naming="llm", model=request.model, shown=outcome.shown,
                         unreadable=outcome.unreadable, usage=outcome.usage)
            entry.pop("error", None)
            new.append(cid)
            continue
        if entry.get("name"):
            outcome.error = f"relabel failed, previous name kept: {outcome.error}"
        else:
            entry.update(model=request.model, shown=outcome.shown,
                         unreadable=outcome.unreadable, usage=outcome.usage)
        entry["error"] = outcome.error
    kept = [(cid, e["name"]) for cid, e in entries if e.get("name") and cid not in new]
    fresh = [(cid, by_id[cid]["name"]) for cid, _ in entries if cid in new]
    for cid, name in names.make_distinct(kept + fresh).items():
        by_id[cid]["name"] = name
    return new


def _save(tx, request, stored):
    """Commits the names in ``stored``, the label field and the naming's
    settings in the run config as one transaction."""
    record.commit(tx, request.run_key, request.config, stored, request.label_field, dict(
        model=request.model,
        prompt=prompts.recorded(request.context),
        base_url=public_url(request.base_url),
        num_images=request.num_images,
        max_image_size=request.max_image_size,
        include_noise=request.include_noise,
        labeled_at=datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S UTC"),
    ))


def _summary(request, entries, targets, new, failed, outcomes, start, groups):
    from .display import summary_markdown

    usage = dict(prompt_tokens=0, completion_tokens=0, total_tokens=0)
    for outcome in outcomes:
        for key in usage:
            usage[key] += (outcome.usage or {}).get(key, 0)
    summary = dict(
        run_key=request.run_key,
        label_field=request.label_field,
        model=request.model,
        num_clusters=sum(cid != NOISE_ID for cid, _ in entries),
        num_requested=len(targets),
        num_named=len(new),
        num_already_named=sum(bool(e.get("name")) for cid, e in entries
                              if cid not in targets),
        failed=failed,
        clusters=[dict(id=cid, size=e["size"], name=e.get("name"),
                       description=e.get("description"), error=e.get("error"))
                  for cid, e in entries],
        groups=[dict(id=gid, size=g["size"], clusters=g["clusters"], name=g.get("name"),
                     description=g.get("description"), error=g.get("error"))
                for gid, g in groups],
        usage=usage,
        seconds=round(time.perf_counter() - start, 3),
    )
    summary["summary"] = summary_markdown(summary)
    return summary

