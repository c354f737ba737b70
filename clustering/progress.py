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
