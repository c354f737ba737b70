"""UMAP in a process of its own, made ready while the run reads and fits.

A process's first UMAP pays for importing umap and loading numba's
compiled code: 1.2-1.6 s of a 9 s k-means run of 100k samples. That work
holds the interpreter, so threads cannot overlap it with the run's own. A
helper process does it meanwhile, started with the process's first run
that needs it, or earlier when the App's form for one opens (loading
beside the run, it takes one of its cores: a first 100k run took
5.2-5.7 s, and 4.6-5.0 s after the form had started the helper). It
stays for the next runs (about 300 MB, idle on its input); the map's
UMAP of its subsample runs there while this process searches the
neighbours that place the other samples. The helper runs the
same function with the same seed, so the map is the same; if it fails,
is late or is gone, the work is done here instead. When this process dies
the helper reads the end of its input and exits.
"""

import os
import pickle
import subprocess
import sys
import threading
from contextlib import contextmanager

# How long a result may take in the helper before it is computed here.
TIMEOUT = 120
# The helper kept for this process's runs, and the lock of the run using it.
_kept = None
_lock = threading.Lock()


class Helper:
    """A started helper process; ``embed`` sends it work."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True)
        self.waiting = False  # work sent whose answer has not been read
        self.warm = False  # it said it has loaded UMAP

    def is_ready(self):
        """Whether the helper has loaded UMAP (without waiting): one that has
        not would keep the run waiting longer than loading it here."""
        if not self.warm and self.proc.poll() is None:
            self.warm = self.answer(0)[0] == "ready"
        return self.warm

    def answer(self, timeout):
        """The helper's next message, ``(status, value)``, read once it
        arrives within ``timeout`` seconds; ``(None, None)`` if none does or
        it cannot be read."""
        import select

        try:
            if select.select([self.proc.stdout], [], [], timeout)[0]:
                return pickle.load(self.proc.stdout)
        except (EOFError, OSError, ValueError, pickle.UnpicklingError):
            pass
        return None, None

    def embed(self, X, n_components, settings, random_state):
        """``_Pending`` UMAP of ``X``, as ``features._embed_umap`` computes it.
        The rows are sent from a thread: the helper may still be importing."""
        args = (X, n_components, settings, random_state)
        self.waiting = True
        sending = threading.Thread(target=self._send, args=(args,), daemon=True)
        sending.start()
        return _Pending(self, args, sending)

    def _send(self, args):
        try:
            pickle.dump(args, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
        except (OSError, ValueError):  # the helper is gone: result() computes here
            pass

    def close(self):
        """Ends the helper at once: it holds nothing to keep, and its
        interpreter's shutdown would take half a second of the run."""
        self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


class _Pending:
    """A UMAP sent to the helper; ``result()`` waits for it. ``where``
    tells where it was computed: "helper" or "here"."""

    def __init__(self, helper, args, sending):
        self.helper, self.args, self.sending = helper, args, sending
        self.where = None

    def result(self):
        import time

        deadline = time.monotonic() + TIMEOUT
        self.sending.join(TIMEOUT)  # a helper stuck before reading blocks the sending
        if not self.sending.is_alive():
            status, value = self.helper.answer(max(0.0, deadline - time.monotonic()))
            if status == "ok":
                self.helper.waiting = False
                self.where = "helper"
                return value
        self.helper.close()  # late, failed or gone: its answer can no longer be told apart
        from .features import _embed_umap

        self.where = "here"
        return _embed_umap(*self.args)


@contextmanager
def ready(needed):
    """This process's helper for the duration of the block, if ``needed``;
    None where it cannot help (umap already loaded here, no POSIX pipes to
    wait on) or is busy with another run of this process. The helper is
    kept between runs, idle on its input, so only a process's first run
    pays for starting it; one left with work unanswered is replaced."""
    if "umap" in sys.modules:  # loaded here since: not needed again
        end_kept()
    if not needed or not _can_help() or not _lock.acquire(blocking=False):
        yield None
        return
    try:
        yield _keep()
    finally:
        if _kept is not None and _kept.waiting:
            _kept.close()
        _lock.release()


def start():
    """Starts this process's helper ahead of a run (the form it will come
    from is open), so the run finds UMAP loaded instead of sharing its
    cores with the loading; nothing where ``ready`` would not use one or a
    run holds it."""
    if not _can_help() or not _lock.acquire(blocking=False):
        return
    try:
        _keep()
    finally:
        _lock.release()


def _can_help():
    """Whether a helper can help this process: UMAP is not loaded here, and
    the system has POSIX pipes to wait on."""
    return "umap" not in sys.modules and os.name == "posix"


def _keep():
    """The kept helper, started anew unless one is running (under the lock)."""
    global _kept
    if _kept is None or _kept.proc.poll() is not None:
        try:
            _kept = Helper()
        except OSError:  # it could not start: runs work without one
            _kept = None
    return _kept


def end_kept():
    """Ends the kept helper, unless a run of this process is using it (a
    later call ends it then): waiting for that run would stall this one."""
    global _kept
    if _kept is None or not _lock.acquire(blocking=False):
        return
    try:
        if _kept is not None:
            _kept.close()
            _kept = None
    finally:
        _lock.release()


def _serve():
    """The helper's side: loads the plugin's features module by path (not
    the whole plugin), warms UMAP up on a few random rows, then answers
    each request read from stdin until it ends."""
    import importlib
    import importlib.util

    import numpy as np

    package = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(
        "_clusterlab_helper", os.path.join(package, "__init__.py"),
        submodule_search_locations=[package])
    sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules[spec.name])
    features = importlib.import_module("_clusterlab_helper.features")
    warm = np.random.default_rng(0).random((200, 16), dtype=np.float32)
    features._embed_umap(warm, 2, dict(n_neighbors=5, min_dist=0.1, metric="euclidean",
                                        set_op_mix_ratio=1.0, n_epochs=2), 0)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    pickle.dump(("ready", None), stdout, protocol=pickle.HIGHEST_PROTOCOL)
    stdout.flush()
    while True:
        try:
            args = pickle.load(stdin)
        except EOFError:
            return
        try:
            reply = ("ok", features._embed_umap(*args))
        except Exception as e:  # the caller computes it itself
            reply = ("error", repr(e))
        pickle.dump(reply, stdout, protocol=pickle.HIGHEST_PROTOCOL)
        stdout.flush()


if __name__ == "__main__":
    # run as a script: this package's directory must not shadow other modules
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(
        os.path.abspath(__file__))]
    _serve()
