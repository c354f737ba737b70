"""Where a long run reports progress: the delegated operation's status (shown
in the App's runs list), or a progress bar when called from Python."""


def reporter(ctx):
    """A ``report(fraction, label)`` function for this execution, or None."""
    if ctx.delegated:
        return lambda fraction, label: ctx.set_progress(progress=fraction, label=label)
    if ctx.params.get("progress"):
        return _Bar()
    return None


class _Bar:
    """A FiftyOne progress bar in percent, labelled with the current stage."""

    def __init__(self):
        import fiftyone.core.utils as fou

        self.bar = fou.ProgressBar(total=100, iters_str="%", progress=True)
        self.started = False

    def __call__(self, fraction, label):
        if not self.started:
            self.bar.start()
            self.started = True
        self.bar.set_iteration(int(round(fraction * 100)), suffix=label)
        if fraction >= 1:
            self.bar.close()
