"""A run's writes as one transaction, and one writer per run key.

Every per-sample write of a run (cluster ids, distances, names,
assignments) is first *staged*: kept in a collection of the plugin's own
beside the dataset, out of the user's sight. The run then *commits*: one
update marks its transaction committed, with the plan of steps that turn
the staged data into fields and a run record. Only then are the steps
applied, each one idempotent, and the transaction is forgotten.

A process killed before its commit leaves only staged data, which the next
call of any of the plugin's operators on the dataset deletes (rolled back);
killed after it, the next call applies the remaining steps (rolled
forward). Either way the dataset then shows the old run or the new one,
whole. The transaction's document is also a lease on its run keys: a second
writer of a key is refused while the holder lives. A holder is dead when its
process is gone from this host, or when its lease expired (it renews the
lease while it works; another host's crash is noticed at expiry).
"""

import datetime
import io
import json
import os
import socket
import threading
import time
import uuid
import zlib

import numpy as np

from . import internals
from .params import InputError

JOURNAL = "clusterlab_transactions"
STAGED = "clusterlab_staged"
LEASE_SECONDS = 120
RENEW_SECONDS = 20
_CHUNK = 4 << 20
# A committed transaction whose holder is alive is being applied: readers
# wait for it this long, so that they see the old run or the new one.
_WAIT_APPLIED = 600


class RunBusyError(InputError):
    """Another process is writing this run key."""


def failpoint(name):
    """Dies here, as a SIGKILL would, when the environment names this point
    (``CLUSTERLAB_FAILPOINT``): how the kill harness stops a process at an
    exact point of a commit, where timing alone cannot aim."""
    if os.environ.get("CLUSTERLAB_FAILPOINT") == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _me():
    import psutil

    return dict(host=socket.gethostname(), pid=os.getpid(),
                started=psutil.Process().create_time())


def _alive(owner):
    """Whether the process ``owner`` names still runs (only knowable on this
    host; elsewhere the lease's expiry decides)."""
    import psutil

    if owner.get("host") != socket.gethostname():
        return True
    try:
        return abs(psutil.Process(owner["pid"]).create_time() - owner["started"]) < 1
    except (psutil.Error, ValueError, KeyError):
        return False


def _held(doc):
    """Whether ``doc``'s holder still works on it."""
    expiry = doc["lease_until"].replace(tzinfo=datetime.timezone.utc)
    return _alive(doc["owner"]) and expiry > _now()


_indexed = set()


def _collections():
    """The journal and the staged chunks, indexed once per process."""
    db = internals.database()
    journal, staged = db[JOURNAL], db[STAGED]
    if db.name not in _indexed:
        journal.create_index("dataset_id")
        journal.create_index("tx")
        staged.create_index([("tx", 1), ("name", 1), ("seq", 1)])
        _indexed.add(db.name)
    return journal, staged


def _lease_id(dataset_id, key):
    return f"{dataset_id}/{key}"


class Transaction:
    """The staged writes and the plan of one run's change, under a lease on
    its run keys. Use through :func:`transaction`."""

    def __init__(self, dataset, keys, what, operation):
        self.dataset = dataset
        self.dataset_id = internals.dataset_id(dataset)
        self.keys = list(dict.fromkeys(keys))
        self.what = what
        self.id = uuid.uuid4().hex
        self.token = uuid.uuid4().hex
        self.operation = operation
        self.committed = False
        self.applied = False
        self._memory = {}
        self._stop = threading.Event()
        self._renewer = None

    @property
    def _ids(self):
        return [_lease_id(self.dataset_id, k) for k in self.keys]

    def acquire(self):
        """Takes the lease on every key, or raises RunBusyError naming the
        key and who holds it."""
        from pymongo.errors import DuplicateKeyError

        journal, _ = _collections()
        owner = dict(_me(), token=self.token, operation=self.operation, what=self.what)
        taken = []
        try:
            for i, lease_id in enumerate(self._ids):
                doc = dict(_id=lease_id, tx=self.id, dataset_id=self.dataset_id,
                           run_key=self.keys[i], primary=i == 0, state="running",
                           owner=owner, started_at=_now(),
                           lease_until=_now() + datetime.timedelta(seconds=LEASE_SECONDS))
                for attempt in range(2):
                    try:
                        journal.insert_one(doc)
                        break
                    except DuplicateKeyError:
                        holder = journal.find_one({"_id": lease_id})
                        if attempt or (holder is not None and _held(holder)):
                            raise RunBusyError(
                                _busy_message(self.keys[i], holder)) from None
                        recover(self.dataset, wait=False)
                taken.append(lease_id)
        except BaseException:
            journal.delete_many({"_id": {"$in": taken}, "owner.token": self.token})
            raise
        self._renewer = threading.Thread(target=self._renew, daemon=True,
                                         name="clusterlab-lease")
        self._renewer.start()

    def _renew(self):
        journal, _ = _collections()
        while not self._stop.wait(RENEW_SECONDS):
            until = _now() + datetime.timedelta(seconds=LEASE_SECONDS)
            journal.update_many({"_id": {"$in": self._ids}, "owner.token": self.token},
                                {"$set": {"lease_until": until}})

    def stage_array(self, name, array):
        """Stages a numpy array (ids as 12-byte rows, codes, distances)."""
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
        self._put(name, buffer.getvalue())
        self._memory[name] = array

    def stage_ids(self, name, ids):
        """Stages sample ids (ObjectIds) compactly."""
        self.stage_array(name, np.frombuffer(b"".join(i.binary for i in ids),
                                             dtype="V12"))
        self._memory[name] = ids

    def stage_json(self, name, value):
        """Stages a JSON-ready value (run results, which may be large)."""
        self._put(name, json.dumps(value).encode())
        self._memory[name] = value

    def _put(self, name, data):
        from bson import Binary

        _, staged = _collections()
        data = zlib.compress(data, 1)
        staged.insert_many([
            dict(tx=self.id, name=name, seq=i, data=Binary(data[at:at + _CHUNK]))
            for i, at in enumerate(range(0, max(len(data), 1), _CHUNK))
        ])

    def commit(self, steps):
        """Records the plan ``steps`` as committed, then applies it; returns
        what the steps report (e.g. values written per field)."""
        journal, _ = _collections()
        failpoint("staged")
        done = journal.update_one(
            {"_id": self._ids[0], "owner.token": self.token, "state": "running"},
            {"$set": {"state": "committed", "steps": steps, "applied": 0,
                      "committed_at": _now()}})
        if done.modified_count != 1:
            raise RunBusyError(
                f"Run '{self.keys[0]}' was not written: this process lost its "
                "lease on the key (it was stalled longer than "
                f"{LEASE_SECONDS} s and another process recovered the key).")
        self.committed = True
        failpoint("committed")
        report = _apply(self.dataset, self.id, self._ids[0], steps, 0, self._memory)
        failpoint("applied")
        self.applied = True
        return report

    def release(self):
        """Ends the transaction: staged data and leases are deleted. Before
        the commit this is the rollback; after it, the cleanup."""
        self._stop.set()
        journal, staged = _collections()
        staged.delete_many({"tx": self.id})
        journal.delete_many({"_id": {"$in": self._ids}, "owner.token": self.token})

    def hand_over(self):
        """Leaves a committed but unapplied transaction to the next call's
        recovery (the lease is marked expired so it need not wait)."""
        self._stop.set()
        journal, _ = _collections()
        journal.update_many({"_id": {"$in": self._ids}, "owner.token": self.token},
                            {"$set": {"lease_until": _now() - datetime.timedelta(seconds=1),
                                      "owner.pid": -1}})


class transaction:
    """``with transaction(dataset, keys, what) as tx:`` recovers what earlier
    crashes left, takes the lease on ``keys``, and on leaving rolls back
    (uncommitted), cleans up (applied) or hands a failed apply over to the
    next recovery."""

    def __init__(self, dataset, keys, what, operation=None):
        self.tx = Transaction(dataset, keys, what, operation)

    def __enter__(self):
        recover(self.tx.dataset)
        self.tx.acquire()
        return self.tx

    def __exit__(self, kind, error, trace):
        if self.tx.committed and not self.tx.applied:
            self.tx.hand_over()
            if isinstance(error, Exception) and not isinstance(error, InputError):
                raise InputError(
                    f"Run '{self.tx.keys[0]}' was committed but applying it failed "
                    f"({type(error).__name__}: {error}); the next call of any "
                    "Cluster Lab operator on this dataset completes it.") from error
            return False
        self.tx.release()
        return False


def _busy_message(key, holder):
    if holder is None:
        return f"Run key '{key}' is being written by another process; try again."
    owner = holder["owner"]
    since = holder["started_at"].strftime("%Y-%m-%d %H:%M:%S UTC")
    op = f", delegated operation {owner['operation']}" if owner.get("operation") else ""
    return (
        f"Run key '{key}' is being written by another {owner.get('what', 'run')} "
        f"(process {owner['pid']} on host {owner['host']}{op}, since {since}); "
        "try again when it has finished, or use another run key.")


def holders(dataset):
    """The run keys of ``dataset`` being written now: each ``{run_key,
    what, operation, started_at}`` (``what`` writes it: "clustering run",
    "labeling", ...; ``operation`` is the delegated operation, if any)."""
    journal, _ = _collections()
    return [dict(run_key=doc["run_key"], what=doc["owner"].get("what"),
                 operation=doc["owner"].get("operation"), started_at=doc["started_at"])
            for doc in journal.find({"dataset_id": internals.dataset_id(dataset),
                                     "primary": True})
            if _held(doc)]


def recover(dataset, wait=True):
    """Finishes what interrupted transactions left on ``dataset``: commits
    are rolled forward, the rest rolled back, leftovers of older versions
    removed. With ``wait``, a commit another live process is applying is
    waited for, so the caller sees the old run or the new one."""
    journal, staged = _collections()
    dataset_id = internals.dataset_id(dataset)
    changed = False
    deadline = time.monotonic() + _WAIT_APPLIED
    while True:
        pending = False
        for doc in journal.find({"dataset_id": dataset_id}):
            if _held(doc):
                pending = pending or (doc.get("state") == "committed")
                continue
            changed |= _recover_one(dataset, doc, journal, staged)
        if not (wait and pending) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    changed |= _remove_legacy_staging(dataset)
    if changed:
        dataset.reload()
    return changed


def _recover_one(dataset, doc, journal, staged):
    """Rolls one dead holder's transaction forward or back; returns whether
    anything was done (another recoverer may have been faster)."""
    me = dict(_me(), token=uuid.uuid4().hex, operation=None, what="recovery")
    claimed = journal.find_one_and_update(
        {"_id": doc["_id"], "owner.token": doc["owner"]["token"]},
        {"$set": {"owner": me,
                  "lease_until": _now() + datetime.timedelta(seconds=LEASE_SECONDS)}})
    if claimed is None:
        return False
    if claimed.get("primary") and claimed.get("state") == "committed":
        _apply(dataset, claimed["tx"], claimed["_id"], claimed["steps"],
               claimed.get("applied", 0), {})
        outcome = "completed by recovery after its worker stopped"
    else:
        outcome = "rolled back: its worker stopped before the run was committed"
    operation = claimed["owner"].get("operation")
    if operation:
        internals.fail_operation(operation, (
            f"The worker executing this operation stopped (killed or lost) while "
            f"writing run '{claimed['run_key']}'; the run was {outcome}."))
    staged.delete_many({"tx": claimed["tx"]})
    journal.delete_many({"tx": claimed["tx"]})
    return True


def _remove_legacy_staging(dataset):
    """Deletes staging fields that plugin 0.1.0 left after a crash."""
    legacy = [f for f in dataset.get_field_schema() if f.startswith("clusterlab_tmp_")]
    if legacy:
        dataset.delete_sample_fields(legacy)
    return bool(legacy)


def _load(tx_id, name, memory):
    """A staged value, from this process's memory or from the database."""
    if name in memory:
        return memory[name]
    _, staged = _collections()
    chunks = staged.find({"tx": tx_id, "name": name}).sort("seq", 1)
    data = zlib.decompress(b"".join(c["data"] for c in chunks))
    if data[:6] != b"\x93NUMPY":
        return json.loads(data)
    array = np.load(io.BytesIO(data), allow_pickle=False)
    if array.dtype == np.dtype("V12"):
        from bson import ObjectId

        return [ObjectId(bytes(b)) for b in array]
    return array


def _apply(dataset, tx_id, lease_id, steps, start, memory):
    """Applies ``steps[start:]`` in order, recording progress; returns the
    steps' reports keyed by step index."""
    from . import steps as step_functions

    journal, _ = _collections()
    context = dict(clock=time.perf_counter())
    for i in range(start, len(steps)):
        # each step saves the dataset's document: start from what other
        # processes saved, not from this process's copy
        internals.refresh_schema(dataset)
        step = dict(steps[i])
        op = step.pop("op")
        load = lambda name: _load(tx_id, name, memory)  # noqa: E731
        context[i] = step_functions.APPLY[op](dataset, load, context, **step)
        failpoint(f"step{i}")
        journal.update_one({"_id": lease_id}, {"$set": {"applied": i + 1}})
    return context
