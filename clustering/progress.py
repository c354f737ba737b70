"""Where a long run reports progress: the delegated operation's status (shown
in the App's runs list), the App's prompt while a run executes now, or a
progress bar when called from Python."""

import queue
import threading
import time

from .params import Param

PROGRESS = Param("progress", bool, None, "Show a progress bar (Python calls)",
                 empty="fo.config.show_progress_bars", form=False)


class Bar:
    """A one-line text progress bar on stderr, labelled with the stage."""

    WIDTH = 30

    def __call__(self, fraction, label):
        import sys

        filled = int(round(fraction * self.WIDTH))
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                         f"{fraction:4.0%} {label:<30}")
        if fraction >= 1:
            sys.stderr.write("\n")
        sys.stderr.flush()


def to_operation(ctx):
    """A report function that sets the delegated operation's progress."""
    return lambda fraction, label: ctx.set_progress(progress=fraction, label=label)


class Live:
    """Runs ``work(report)`` in a thread and yields its progress as it
    comes (each new stage, else at most every ``interval`` seconds), then
    ``("done", result)`` or ``("error", exception)``: how an operator
    executing now in the App shows progress while it works."""

    def __init__(self, work, interval=0.25):
        self.work = work
        self.interval = interval

    def __iter__(self):
        events = queue.Queue()

        def run():
            try:
                events.put(("done", self.work(lambda f, label: events.put(
                    ("progress", (f, label))))))
            except BaseException as e:  # handed to the App as a message
                events.put(("error", e))

        threading.Thread(target=run, name="clusterlab-live", daemon=True).start()
        last, stage = 0.0, None
        while True:
            kind, value = events.get()
            if kind != "progress":
                yield kind, value
                return
            now = time.monotonic()
            new_stage = value[1].split(" ")[0]
            if now - last >= self.interval or new_stage != stage or value[0] >= 1:
                last, stage = now, new_stage
                yield kind, value
