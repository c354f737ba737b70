"""Caching numba's compiled code across processes.

UMAP and pynndescent compile ~250 numba functions lazily, about 11 s in
every new process (each App server start, each delegated run), because
most are not declared ``cache=True``. Enabling numba's own on-disk cache for
them makes that a one-time cost. Functions numba cannot cache (closures)
are compiled as before, with a warning numba emits and we silence.
"""

import sys

_done = set()


def cache_compiled(*packages):
    """Turns on numba's on-disk cache for the jitted functions of ``packages``
    (already imported)."""
    from numba.core.dispatcher import Dispatcher

    for name, module in list(sys.modules.items()):
        if name.split(".")[0] not in packages or name in _done or module is None:
            continue
        _done.add(name)
        for obj in list(vars(module).values()):
            if isinstance(obj, Dispatcher) and type(obj._cache).__name__ == "NullCache":
                obj.enable_caching()
