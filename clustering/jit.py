"""Caching numba's compiled code across processes.

UMAP compiles its numba functions lazily, seconds in every new process
(each App server start, each delegated run), because most are not declared
``cache=True``. Enabling numba's own on-disk cache for them makes that a
one-time cost. (pynndescent's search cannot be cached, being built of
closures: the plugin finds neighbours with faiss instead.)
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
