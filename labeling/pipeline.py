"""Naming a clustering run's clusters, end to end.

Clusters are named in a pool of ``concurrency`` threads (the work is file
reads and HTTP). The calling thread gathers the outcomes as they come and
reports progress per cluster. The naming holds the run key's lease, and its
writes (names per cluster in the run results, and in ``label_field`` for
each cluster's samples) are one transaction, committed when naming ends or
fails: the names obtained so far are saved, unless the process is killed,
which leaves the run as it was. The cluster-id field is only read; when no
cluster could be named, no label field is written.

A cluster keeps its name until ``relabel``; a failed relabel keeps the old
name and records the error next to it.
"""

import datetime
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace

from ..clustering import runs, transactions
from ..clustering.params import InputError
from . import images, names, prompts, record, selection
from .client import CallFailed, ChatClient, Fatal, public_url
from .record import NOISE_ID

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What one cluster's naming gave: a name, or an error."""

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

    outcomes, fatal = {}, None
    try:
        if targets:
            fatal = _name_all(dataset, request, api_key, dict(entries), targets,
                              outcomes, report)
    except BaseException:
        if outcomes:
            _merge(request, entries, targets, outcomes, None)
            _save(tx, request, stored)
        raise
    new = _merge(request, entries, targets, outcomes, fatal)
    _save(tx, request, stored)

    failed = [dict(id=cid, error=entry["error"]) for cid, entry in entries
              if cid in targets and entry.get("error")]
    summary = _summary(request, entries, targets, new, failed, outcomes, start)
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


def _name_all(dataset, request, api_key, entries, targets, outcomes, report):
    """Fills ``outcomes`` concurrently; returns the Fatal message, if any."""
    pools = selection.pools(
        dataset, request.config, [dict(entries[cid], id=cid) for cid in targets])
    client = ChatClient(api_key, request.base_url, request.model, request.timeout,
                        request.max_retries)
    detail = "low" if request.max_image_size <= 512 else "high"
    stop = threading.Event()
    fatal = None
    if report:
        report(0.0, f"0/{len(targets)} clusters named")
    with ThreadPoolExecutor(request.concurrency, "clusterlab-label") as pool:
        futures = {
            pool.submit(_name_one, dataset, request, client, cid, pools[cid],
                        detail, stop, api_key): cid
            for cid in targets
        }
        try:
            for done, future in enumerate(as_completed(futures), 1):
                cid = futures[future]
                try:
                    outcome = future.result()
                except Fatal as e:
                    fatal = fatal or str(e)
                    stop.set()
                    outcome = None
                except Exception as e:  # a bug must not lose the other clusters
                    error = names.redact(f"{type(e).__name__}: {e}", api_key)
                    logger.error("Naming cluster %s failed: %s", cid, error)
                    outcome = Outcome(cid, error=error)
                if outcome is not None:
                    outcomes[cid] = outcome
                if report:
                    report(done / len(targets), f"{done}/{len(targets)} clusters named")
        finally:
            stop.set()
    return fatal


def _name_one(dataset, request, client, cluster_id, candidates, detail, stop, api_key):
    """One cluster: its images, then the model's name; None once stopped.
    The key never becomes part of a name or description."""
    if stop.is_set():
        return None
    shown, unreadable = _load_images(dataset, request, cluster_id, candidates)
    skipped = [sample_id for sample_id, _ in unreadable]
    if not shown:
        reason = unreadable[0][1] if unreadable else "the cluster has no samples"
        error = f"no readable image among the {len(unreadable)} files tried (e.g. {reason})"
        logger.warning("Cluster %s not named: %s", cluster_id, error)
        return Outcome(cluster_id, unreadable=skipped, error=error)
    shown_ids = [image.sample_id for image in shown]
    try:
        reply = client.ask(prompts.messages(shown, request.context, detail),
                           lambda text: _parse(text, api_key))
    except CallFailed as e:
        logger.warning("Cluster %s not named: %s", cluster_id, e)
        return Outcome(cluster_id, shown=shown_ids, unreadable=skipped,
                       usage=e.usage, error=str(e))
    name, description = reply.value
    return Outcome(cluster_id, name=name, description=description, shown=shown_ids,
                   unreadable=skipped, usage=reply.usage)


def _load_images(dataset, request, cluster_id, candidates):
    """Up to ``num_images`` encoded images in candidate order, unreadable files
    skipped and replaced by further members; ``(images, [(id, reason)])``."""
    shown, unreadable, tried = [], [], set()
    for batch in (candidates, None):
        if batch is None:
            batch = selection.more_candidates(dataset, request.config, cluster_id, tried)
        for candidate in batch:
            if len(shown) == request.num_images:
                return shown, unreadable
            tried.add(candidate.sample_id)
            try:
                shown.append(images.encode(
                    candidate.sample_id, candidate.filepath, request.max_image_size))
            except images.UnreadableImage as e:
                logger.warning("Cluster %s: skipping unreadable image %s", cluster_id, e)
                unreadable.append((candidate.sample_id, str(e)))
        if len(shown) == request.num_images or not unreadable:
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


def _summary(request, entries, targets, new, failed, outcomes, start):
    from .display import summary_markdown

    usage = dict(prompt_tokens=0, completion_tokens=0, total_tokens=0)
    for outcome in outcomes.values():
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
        usage=usage,
        seconds=round(time.perf_counter() - start, 3),
    )
    summary["summary"] = summary_markdown(summary)
    return summary

