"""Documentation run as a notebook: the ```python blocks under a README
heading become cells, each followed by a check cell, executed by nbclient in
a real IPython kernel of a given Python, the way a Jupyter user runs them.

One rule keeps a block from running: a block that passes ``delegate=True``
only queues work for ``fiftyone delegated launch``, which a notebook does not
run, so it is shown in the notebook as markdown and has no check.
"""

import json
import os
import re
from dataclasses import dataclass

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

HEADING = re.compile(r"^(#{1,6})\s+\S")
NEEDS_LAUNCHER = re.compile(r"\bdelegate\s*=\s*True\b")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class Block:
    """A ```python block of a markdown file: where it is, and its code."""

    heading: str
    line: int
    source: str

    @property
    def runnable(self):
        return not NEEDS_LAUNCHER.search(self.source)


@dataclass
class Step:
    """What the test expects of the next runnable README block: a string the
    block contains, an optional cell run before it (state the example takes
    for granted) and the check cell run after it."""

    marker: str
    check: str
    before: str = ""


def python_blocks(markdown, heading):
    """The ```python blocks of the section that starts at the line
    ``heading`` (e.g. ``"## Operators"``) and ends at the next heading of
    the same or a higher level, in order; subsections included."""
    blocks, level, current, fence = [], None, None, None
    for number, line in enumerate(markdown.splitlines(), 1):
        if fence is not None:
            if line.strip() == "```":
                if level is not None and fence[0] == "python":
                    blocks.append(Block(current, fence[1], "\n".join(fence[2])))
                fence = None
            else:
                fence[2].append(line)
            continue
        if line.startswith("```"):
            fence = (line[3:].strip(), number, [])
            continue
        match = HEADING.match(line)
        if not match:
            continue
        depth = len(match.group(1))
        if level is not None and depth <= level:
            break
        if line.strip() == heading:
            level = depth
        current = line.strip()
    if level is None:
        raise ValueError(f"no heading {heading!r}")
    if fence is not None:
        raise ValueError(f"the ``` fence opened at line {fence[1]} is not closed")
    return blocks


def build(setup, blocks, steps, source_name):
    """A notebook: ``setup``, then each block (with its step's ``before``
    cell and check cell) in order. Raises ``ValueError`` when the runnable
    blocks and the steps do not pair up, so a README change shows up here."""
    runnable = [b for b in blocks if b.runnable]
    if len(runnable) != len(steps):
        raise ValueError(
            f"{len(runnable)} runnable blocks in {source_name} but {len(steps)} steps; "
            "blocks: " + "; ".join(f"line {b.line}" for b in runnable))
    cells = [_code(setup, "setup")]
    pending = iter(steps)
    for block in blocks:
        where = f"{source_name}:{block.line}, under {block.heading!r}"
        if not block.runnable:
            cells.append(nbformat.v4.new_markdown_cell(
                f"Not run ({where}): it queues work for `fiftyone delegated launch`.\n\n"
                f"```python\n{block.source}\n```"))
            continue
        step = next(pending)
        if step.marker not in block.source:
            raise ValueError(f"the block at {where} does not contain {step.marker!r}, "
                             f"which the next step expects:\n{block.source}")
        cells.append(nbformat.v4.new_markdown_cell(f"From {where}"))
        if step.before:
            cells.append(_code(step.before, f"before the block at {where}"))
        cells.append(_code(block.source, f"the block at {where}"))
        cells.append(_code(step.check, f"check of the block at {where}"))
    return nbformat.v4.new_notebook(cells=cells)


def _code(source, role):
    cell = nbformat.v4.new_code_cell(source.strip())
    cell.metadata["role"] = role
    return cell


def write_kernelspec(directory, name, python):
    """Writes kernelspec ``name`` starting ipykernel with ``python`` under
    ``directory``/kernels; put ``directory`` on ``JUPYTER_PATH`` to use it."""
    path = os.path.join(directory, "kernels", name)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "kernel.json"), "w") as f:
        json.dump({"argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                   "display_name": name, "language": "python"}, f)


class NotebookFailed(AssertionError):
    """A cell failed; the message has its source and the kernel's output."""


def execute(notebook, kernel_name, env, cwd, timeout):
    """Runs every cell in a new kernel ``kernel_name`` started with ``env``
    in ``cwd``, filling in the outputs; raises ``NotebookFailed`` at the
    first cell that raises, times out or kills the kernel."""
    started = []
    client = NotebookClient(
        notebook, kernel_name=kernel_name, timeout=timeout, startup_timeout=120,
        on_cell_start=lambda cell, cell_index: started.append(cell_index))
    notebook.metadata["kernelspec"] = {"name": kernel_name, "display_name": kernel_name,
                                       "language": "python"}
    try:
        client.execute(env=env, cwd=cwd)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
        if not started:
            raise
        index = started[-1]
        raise NotebookFailed(failure_report(notebook.cells[index], index, e)) from None


def failure_report(cell, index, error):
    """The failed cell: its role, source, and what the kernel printed."""
    lines = [f"notebook cell {index} ({cell.metadata.get('role')}) failed",
             "--- source ---", cell.source, "--- kernel output ---"]
    errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            lines.append(f"[{output.name}] " + _tail(output.text))
    for output in errors:
        lines.append(ANSI.sub("", "\n".join(output.traceback))
                     or f"{output.ename}: {output.evalue}")
    if not errors:
        lines.append(f"{type(error).__name__}: {ANSI.sub('', str(error))}")
    return "\n".join(lines)


def _tail(text, limit=3000):
    text = text.replace("\r", "\n")
    return text if len(text) <= limit else "..." + text[-limit:]


def save(notebook, path):
    """Writes the (executed) notebook to ``path``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    nbformat.write(notebook, path)
