"""Processes killed with SIGKILL in the middle of their work.

A child process runs an operator on a dataset big enough that each stage
takes a second or more, and is killed: while a stage runs (timed by the
progress bar it prints), or at an exact point of the commit, where it kills
itself (``CLUSTERLAB_FAILPOINT``). After each kill, the next call of the
plugin must leave the dataset consistent: the old run or the new one,
whole; every target sample with a value; nothing staged left; the key
usable again.
"""

import atexit
import json
import signal
import subprocess
import sys
import threading
import time

import pytest
from bson import ObjectId

from conftest import REPO, operator, plugin_module
from llm_server import LLMServer

from .conftest import child_env, cli_path

pytestmark = pytest.mark.e2e

UserError = plugin_module("clustering.params").UserError
N, D, K = 50_000, 256, 12
# A child imports FiftyOne and loads the plugin, then waits for its call
# (a JSON line on stdin: the operator, its dataset, its parameters, the
# environment it adds) and prints FINISHED when the call returns.
CHILD = """
import json, os, sys
import fiftyone as fo
import fiftyone.operators as foo

foo.get_operator("@clusterlab/clustering/compute_clusters")
line = sys.stdin.readline()
if not line:
    sys.exit(0)
args = json.loads(line)
os.environ.update(args.pop("env"))
dataset = fo.load_dataset(args.pop("dataset"))
name = args.pop("operator")
foo.get_operator("@clusterlab/clustering/" + name)(dataset, **args)
print("FINISHED", flush=True)
"""
# Children started ahead, importing while earlier tests run: two, so that
# the two racing children of a test start together.
SPARES = 2
_spares = []


@pytest.fixture(scope="module")
def big():
    sys.path.insert(0, REPO)
    from bench import data

    dataset = data.dataset(N, D, K, seed=3, persistent=False)
    yield dataset
    dataset.delete()


def _spare():
    """A child ready for its call; another starts in its place."""
    while len(_spares) <= SPARES:
        _spares.append(subprocess.Popen(
            [sys.executable, "-c", CHILD], env=child_env(), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return _spares.pop(0)


@atexit.register
def _stop_spares():
    for process in _spares:
        process.stdin.close()  # end of input: it exits without a call
        process.wait(timeout=60)


class Child:
    """A process running one operator call, its stderr (the progress bar)
    collected as it comes."""

    def __init__(self, dataset, operator_name, failpoint=None, env=None, **params):
        extra = dict(env or {})
        if failpoint:
            extra["CLUSTERLAB_FAILPOINT"] = failpoint
        self.process = _spare()
        self.process.stdin.write(json.dumps(dict(params, dataset=dataset.name,
                                                 operator=operator_name, env=extra)) + "\n")
        self.process.stdin.close()
        self.err = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for chunk in iter(lambda: self.process.stderr.read(1), ""):
            self.err += chunk

    def kill_when(self, stage, after=0.0, timeout=120):
        """SIGKILLs the process ``after`` seconds into ``stage``."""
        deadline = time.monotonic() + timeout
        while f"% {stage}" not in self.err:
            assert self.process.poll() is None, f"ended before {stage}: {self.err[-2000:]}"
            assert time.monotonic() < deadline, f"never reached {stage}"
            time.sleep(0.01)
        time.sleep(after)
        assert self.process.poll() is None, f"ended during {stage}: {self.err[-2000:]}"
        self.process.send_signal(signal.SIGKILL)
        return self.wait()

    def kill_on(self, condition, timeout=120):
        """SIGKILLs the process as soon as ``condition()`` holds."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None, f"ended first: {self.err[-2000:]}"
            assert time.monotonic() < deadline, "the condition never held"
            time.sleep(0.005)
        self.process.send_signal(signal.SIGKILL)
        return self.wait()

    def wait(self):
        code = self.process.wait(timeout=300)
        self._reader.join(timeout=10)
        return code


# Runs here have no map: a map killed with its run is test_kills_map's.
def compute(dataset, key, k, **params):
    """Runs compute_clusters in this process (the harness's "next call")."""
    return operator("compute_clusters")(
        dataset, run_key=key, embeddings="embedding", method="kmeans",
        kmeans__n_clusters=k, kmeans__n_init=1, reduce="none", map="none", random_state=0,
        progress=False, **params)


def child_compute(dataset, key, k, failpoint=None, map="none", **params):
    """A child run whose fit lasts a second or more (six k-means++ starts),
    so a kill can land inside it."""
    return Child(dataset, "compute_clusters", failpoint=failpoint, run_key=key,
                 embeddings="embedding", method="kmeans", kmeans__n_clusters=k,
                 kmeans__n_init=6, reduce="none", map=map, random_state=0, progress=True,
                 **params)


def staged_left():
    from fiftyone.core.odm import get_db_conn

    db = get_db_conn()
    return db.clusterlab_staged.count_documents({}), db.clusterlab_transactions.count_documents({})


def state(dataset, key):
    """What the next call of the plugin shows: ``None`` when the key has no
    run, else ``(n_clusters, distance_field)``, after checking that the run
    and its fields agree and that nothing staged is left."""
    try:
        info = operator("get_clustering_run_info")(dataset, key)
    except UserError as e:
        assert "has no run" in str(e)
        info = None
    dataset.reload()
    if info is None:
        assert key not in dataset.list_runs()
        assert not dataset.has_field(f"{key}_cluster"), "a field without its run"
        assert not dataset.has_field(f"{key}_dist"), "a field without its run"
        result = None
    else:
        config = info["config"]
        counts = dataset.count_values(config["cluster_field"])
        counts.pop(None, None)
        assert {c["id"]: c["size"] for c in info["clusters"]} == counts
        assert sum(counts.values()) == config["num_samples"] == N  # every sample
        if config["distance_field"]:
            assert dataset.exists(config["distance_field"]).count() == N
        result = (config["params"]["n_clusters"], config["distance_field"])
    assert not [f for f in dataset.get_field_schema() if f.startswith("clusterlab_")]
    assert staged_left() == (0, 0)
    return result


@pytest.mark.parametrize("stage,after", [("read", 0.3), ("fit", 0.5), ("write", 0.0)])
def test_new_run_killed_during_a_stage_leaves_no_trace(big, stage, after):
    # with a map, the write stage stages it before the commit: the kill lands first
    child = child_compute(big, "fresh", 5, map="umap")
    assert child.kill_when(stage, after) == -signal.SIGKILL
    assert state(big, "fresh") is None
    compute(big, "fresh", 4)  # the key is usable again
    assert state(big, "fresh") == (4, None)
    operator("delete_clustering_run")(big, "fresh")


@pytest.mark.parametrize("failpoint,whole", [
    ("staged", None),         # staged, not committed: rolled back
    ("step1", (5, "new_dist")),       # committed, fields written: rolled forward
    ("applied", (5, "new_dist")),     # run registered, journal not yet cleared
])
def test_new_run_killed_inside_the_commit(big, failpoint, whole):
    child = child_compute(big, "new", 5, failpoint=failpoint, distance_field="new_dist")
    assert child.wait() == -signal.SIGKILL, child.err[-2000:]
    assert state(big, "new") == whole
    if whole:
        operator("delete_clustering_run")(big, "new")


def test_new_run_killed_while_its_field_is_half_written(big):
    def half_written():
        count = big._sample_collection.count_documents({"half_cluster": {"$exists": True}})
        return 0 < count < N

    child = child_compute(big, "half", 6)
    assert child.kill_on(half_written) == -signal.SIGKILL
    assert state(big, "half") == (6, None)  # the commit was recorded: completed
    operator("delete_clustering_run")(big, "half")


@pytest.mark.parametrize("failpoint,whole", [
    ("staged", (4, "old_dist")),      # the old run, untouched
    ("committed", (7, None)),         # the new run, whole
    ("step1", (7, None)),             # the old run's extra field deleted
])
def test_overwrite_killed_inside_the_commit(big, failpoint, whole):
    compute(big, "old", 4, distance_field="old_dist")
    child = child_compute(big, "old", 7, failpoint=failpoint, overwrite=True)
    assert child.wait() == -signal.SIGKILL, child.err[-2000:]
    assert state(big, "old") == whole
    operator("delete_clustering_run")(big, "old")


def test_overwrite_killed_while_the_field_is_rewritten(big):
    compute(big, "over", 4)
    before = big.values("over_cluster")

    def rewriting():
        # the new values are being written: clusters 4-7 exist only in the new run
        return big._sample_collection.count_documents(
            {"over_cluster": {"$in": ["4", "5", "6", "7"]}}) > 0

    child = child_compute(big, "over", 8, overwrite=True)
    assert child.kill_on(rewriting) == -signal.SIGKILL
    assert state(big, "over") == (8, None)
    assert big.values("over_cluster") != before
    operator("delete_clustering_run")(big, "over")


def test_a_killed_writer_does_not_hold_the_key(big):
    """Killed holding the lease: the next writer recovers it at once (the
    dead process is gone from this host), without waiting for expiry."""
    child = child_compute(big, "lease", 5)
    child.kill_when("fit", 0.2)
    started = time.monotonic()
    compute(big, "lease", 3)
    assert time.monotonic() - started < 60
    assert state(big, "lease") == (3, None)
    operator("delete_clustering_run")(big, "lease")


def test_two_processes_race_for_one_key(big):
    first, second = child_compute(big, "race", 5), child_compute(big, "race", 6)
    codes = [first.wait(), second.wait()]
    assert sorted(codes) == [0, 1], (codes, first.err[-1500:], second.err[-1500:])
    loser = (first, second)[codes.index(1)]
    assert ("Run key 'race' is being written by another clustering run (process" in loser.err
            or "'race' already exists" in loser.err), loser.err[-1500:]
    winner_k = 5 if codes[0] == 0 else 6
    assert state(big, "race") == (winner_k, None)
    operator("delete_clustering_run")(big, "race")


def test_assignment_killed_inside_its_commit(big):
    view = big.limit(N - 5000)
    operator("compute_clusters")(view, run_key="asg", embeddings="embedding", method="kmeans",
                                 kmeans__n_clusters=4, reduce="none", map="none",
                                 progress=False)
    for failpoint in ("staged", "committed", "step0"):
        child = Child(big, "assign_to_clusters", failpoint=failpoint, run_key="asg")
        assert child.wait() == -signal.SIGKILL, child.err[-1500:]
        info = operator("get_clustering_run_info")(big, "asg")  # the next call
        assigned = big.exists("asg_cluster").count()
        log = getattr(big.load_run_results("asg", cache=False), "assignments", None) or []
        if failpoint == "staged":
            assert assigned == N - 5000 and log == []
        else:
            assert assigned == N and [e["num_assigned"] for e in log] == [5000]
            break
    assert staged_left() == (0, 0) and info["run_key"] == "asg"
    operator("delete_clustering_run")(big, "asg")


KEY = "sk-kills-" + ObjectId().binary.hex()
MODEL = "vision-kills"


@pytest.mark.parametrize("failpoint", [None, "committed"])
def test_labeling_killed_mid_naming_or_inside_its_commit(digits, failpoint):
    operator("compute_clusters")(digits, run_key="named_k", embeddings="pixels",
                                 method="kmeans", kmeans__n_clusters=8, reduce="none",
                                 random_state=0, progress=False)
    with LLMServer(KEY, MODEL, delay=0.4) as server:
        env = dict(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=server.url)
        child = Child(digits, "label_clusters_with_llm", failpoint=failpoint, env=env,
                      run_key="named_k", model=MODEL, concurrency=1, delegate=False,
                      max_image_size=64)
        if failpoint:
            assert child.wait() == -signal.SIGKILL, child.err[-1500:]
        else:
            assert child.kill_on(lambda: len(server.requests) >= 3) == -signal.SIGKILL
    info = operator("get_clustering_run_info")(digits, "named_k")  # the next call
    names = [c["name"] for c in info["clusters"]]
    digits.reload()
    if failpoint:  # committed: every name, on the run and on the samples
        assert all(names) and digits.has_field("named_k_cluster_label")
        for c in info["clusters"]:
            view = digits.match({"named_k_cluster": c["id"]})
            assert set(view.values("named_k_cluster_label")) == {c["name"]}
    else:  # killed before its commit: the run as it was, no label field
        assert not any(names) and not digits.has_field("named_k_cluster_label")
    assert staged_left() == (0, 0)
    operator("delete_clustering_run")(digits, "named_k")


def launch(env=None):
    """``fiftyone delegated launch`` as its own process."""
    return subprocess.Popen([cli_path(), "delegated", "launch"], env=child_env(**(env or {})),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(service, op_id, states, timeout=240):
    deadline = time.monotonic() + timeout
    while service.get(op_id).run_state not in states:
        assert time.monotonic() < deadline, service.get(op_id).run_state
        time.sleep(0.1)
    return service.get(op_id)


def test_a_killed_launcher_then_a_new_one(big):
    from fiftyone.operators.delegated import DelegatedOperationService

    service = DelegatedOperationService()
    compute_op = operator("compute_clusters")
    first = compute_op(big, run_key="deleg", embeddings="embedding", method="kmeans",
                       kmeans__n_clusters=5, reduce="none", map="none", delegate=True)
    launcher = launch(dict(CLUSTERLAB_FAILPOINT="step0"))  # dies inside the write
    try:
        assert launcher.wait(timeout=240) == -signal.SIGKILL
    finally:
        launcher.kill()
    assert service.get(first.id).run_state == "running"  # FiftyOne cannot know

    second = compute_op(big, run_key="deleg", embeddings="embedding", method="kmeans",
                        kmeans__n_clusters=3, reduce="none", map="none", overwrite=True,
                        delegate=True)
    launcher = launch()
    try:
        done = wait_for(service, second.id, ("completed", "failed"))
    finally:
        launcher.terminate()
        output, _ = launcher.communicate(timeout=60)
    assert done.run_state == "completed", (done.result, output[-2000:])
    killed = service.get(first.id)
    assert killed.run_state == "failed"
    assert "stopped (killed or lost) while writing run 'deleg'" in str(killed.result.error)
    assert state(big, "deleg") == (3, None)
    operator("delete_clustering_run")(big, "deleg")
