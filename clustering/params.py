"""Declared parameters.

One :class:`Param` per parameter drives everything that touches it: the App
form, validation (scikit-learn style, naming the parameter), the Python call
and the value recorded in the run config.
"""

import math
from dataclasses import dataclass

import numpy as np


class UserError(ValueError):
    """What the user gave cannot be used; the message says which and what to do."""


class ParameterError(UserError):
    """A parameter has a bad value; the message names it as the form shows it
    (its label) and by its key, and says what to do."""

    def __init__(self, key, message, label=None):
        self.key = key
        self.label = label
        named = f"'{label}' ({key})" if label else f"Parameter '{key}'"
        super().__init__(f"{named} {message}")


class InputError(UserError):
    """The data to cluster is unusable; the message names the field and the fix."""


_AUTO_WORDS = ("", "auto", "none")


@dataclass(frozen=True)
class Param:
    """One parameter: name, type, default, bounds or choices, help text.

    ``empty`` documents what leaving the parameter empty (``None``) means; a
    parameter without it is required. ``"auto"`` is accepted as empty.
    ``form=False`` keeps a Python-only parameter (a progress bar) out of the
    App's form. ``kind=list`` is a list of text (e.g. cluster ids), given as
    a list or comma-separated; integers in it are taken as their text.
    """

    name: str
    kind: type
    default: object
    help: str
    low: float = None
    high: float = None
    choices: tuple = ()
    empty: str = None
    label: str = None
    form: bool = True
    choice_labels: tuple = ()

    @property
    def title(self):
        return self.label or self.name.replace("_", " ").capitalize()

    def error(self, message, key=None):
        """A ParameterError about this parameter, named as the form shows it."""
        return ParameterError(key or self.name, message, label=self.title)

    def describe(self):
        """The type and range as one phrase, for messages and help text."""
        if self.kind is list:  # choices of a list are shown in its dropdown
            phrase = "a list of text (or comma-separated text)"
        elif self.choices:
            phrase = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind is bool:
            phrase = "true or false"
        elif self.kind is str:
            phrase = "text"
        else:
            phrase = "an integer" if self.kind is int else "a number"
            if self.low is not None and self.high is not None:
                phrase += f" in [{_fmt(self.low)}, {_fmt(self.high)}]"
            elif self.low is not None:
                phrase += f" >= {_fmt(self.low)}"
            elif self.high is not None:
                phrase += f" <= {_fmt(self.high)}"
        if self.empty:
            phrase += f", or empty for {self.empty}"
        return phrase

    def coerce(self, value, key=None):
        """Returns ``value`` as this parameter's type, or raises ParameterError.

        Booleans accept True/False, 0/1 and the strings "true"/"false" (any
        case), as the App and query strings send them; nothing else.
        """
        if value is None or (
            isinstance(value, str) and value.strip().lower() in _AUTO_WORDS
            and not (self.kind is str and value in self.choices)
        ):
            if self.empty:
                return None
            raise self.error(f"is required: give {self.describe()}.", key)

        bad = self.error(f"must be {self.describe()}; got {value!r}.", key)
        if self.kind is list:
            return self._coerce_list(value, bad, key)
        if self.kind is bool:
            if isinstance(value, str) and value.strip().lower() in ("true", "false"):
                return value.strip().lower() == "true"
            if isinstance(value, str) or not isinstance(value, (bool, int, np.bool_)):
                raise bad
            if value not in (0, 1):
                raise bad
            return bool(value)

        if self.kind is str:
            if not isinstance(value, str) or (
                self.choices and value not in self.choices
            ):
                raise bad
            return value

        if isinstance(value, (bool, np.bool_)) or not isinstance(
                value, (int, float, np.integer, np.floating)):
            raise bad
        if not math.isfinite(value):
            raise bad
        if self.kind is int:
            if float(value) != int(value):
                raise bad
            value = int(value)
        else:
            value = float(value)
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            raise bad
        return value

    def _coerce_list(self, value, bad, key):
        """A list parameter's items as distinct text, in the order given."""
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",")]
        if not isinstance(value, (list, tuple)):
            raise bad
        items = []
        for v in value:
            if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
                v = str(int(v))
            if not isinstance(v, str) or not v or (self.choices and v not in self.choices):
                raise bad
            items.append(v)
        if not items:
            return self.coerce(None, key)
        return list(dict.fromkeys(items))

    def add_to_form(self, inputs, key, error=None):
        """Adds this parameter to an App form under ``key``."""
        import fiftyone.operators.types as types

        description = f"{self.help} ({self.describe()})"
        common = dict(
            label=self.title,
            description=description,
            required=self.empty is None and self.default is None,
            default=self.default,
        )
        if self.kind is list:
            view = self._choices(types.DropdownView(multiple=True)) if self.choices else None
            prop = inputs.list(key, types.String(), view=view, **common)
        elif self.choices:
            prop = inputs.enum(key, list(self.choices), view=self._choices(types.Dropdown()),
                               **common)
        elif self.kind is bool and self.empty:
            choices = types.RadioGroup()
            for choice in ("auto", "true", "false"):
                choices.add_choice(choice, label=choice)
            common["default"] = (
                "auto" if self.default is None else str(self.default).lower()
            )
            prop = inputs.enum(key, ["auto", "true", "false"], view=choices, **common)
        elif self.kind is bool:
            prop = inputs.bool(key, view=types.CheckboxView(), **common)
        elif self.kind is str:
            prop = inputs.str(key, **common)
        else:
            number = inputs.int if self.kind is int else inputs.float
            prop = number(key, min=self.low, max=self.high, **common)
        mark_invalid(prop, error)
        return prop

    def _choices(self, view):
        """``view`` (a dropdown) offering this parameter's choices, labelled."""
        labels = self.choice_labels or [str(c) for c in self.choices]
        for choice, label in zip(self.choices, labels):
            view.add_choice(choice, label=label)
        return view


def mark_invalid(prop, error):
    """Shows ``error`` under a form property; the App then blocks execution."""
    if error:
        prop.invalid = True
        prop.error_message = error


def _fmt(x):
    return str(int(x)) if float(x).is_integer() else str(x)


def coerce_all(params, values, prefix=""):
    """Validates ``values`` (keyed ``prefix + name``) against ``params``.

    Returns ``(effective, errors)``: every parameter's value with defaults
    filled in, keyed by its bare name, and ``{key: ParameterError}`` for bad
    ones.
    """
    effective, errors = {}, {}
    for param in params:
        key = prefix + param.name
        try:
            effective[param.name] = param.coerce(values.get(key, param.default), key)
        except ParameterError as e:
            errors[key] = e
    return effective, errors


def raise_errors(errors):
    """Raises the first of ``errors`` (``{key: ParameterError or
    InputError}``), its message followed by the others' so none is hidden."""
    if not errors:
        return
    first = next(iter(errors.values()))
    if len(errors) > 1:
        first.args = (" ".join(str(e) for e in errors.values()),)
    raise first


def markdown_rows(params, prefix=""):
    """README table rows for ``params``: name, default, accepted values, help."""
    rows = []
    for p in params:
        default = "empty" if p.default is None else f"`{p.default!r}`"
        rows.append(f"| `{prefix}{p.name}` | {default} | {p.describe()} | {p.help} |")
    return rows
