"""The valid values of a strategy's parameters, declared by the strategy next to their defaults.

A number's bound is `annotated-types` metadata (`Gt`, `Ge`, `Lt`, `Le`, `Interval`) on the parameter's
annotation; a text's format is a `TextFormat` there, naming the function the strategy reads the text with;
a rule across parameters is a chain of comparisons between their names in the class attribute
`param_rules`:

    class SmaCross(RiskSizedStrategy):
        n_fast: Annotated[int, Ge(1)] = 12
        n_slow: Annotated[int, Ge(1)] = 50
        sl_atr: Annotated[float, Gt(0)] = 2.0
        param_rules = ("n_fast < n_slow",)

Documentation in the metadata (a str, `annotated_types.doc(...)`) is not a declaration and is skipped. A
parameter without declarations takes any value of its default's type; a strategy declaring nothing runs
as before. The registry reads the declarations once: a bound on a parameter that is not a number, a format
on one that is not a text, any other metadata object (a constraint it cannot check, such as `MultipleOf`,
would otherwise be silently ignored), a rule it cannot read or that names an unknown parameter, or a default
outside its own bounds stops it with the strategy's name, rather than be ignored.
"""

from __future__ import annotations

import inspect
import math
import operator
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar, get_args, get_origin

from annotated_types import DocInfo, Ge, GroupedMetadata, Gt, Le, Lt

from btledger.engine.result import JsonScalar

if TYPE_CHECKING:
    from backtesting import Strategy

#: What a text format's `parse` reads a text as.
T = TypeVar("T")

#: The comparisons a rule may use.
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_RULE_TOKENS = re.compile(r"\s*(<=|>=|<|>|[A-Za-z_]\w*)")


@dataclass(frozen=True)
class Bound:
    """The interval of valid values of one numeric parameter; either end may be open or missing."""

    name: str
    lower: float | None = None
    lower_inclusive: bool = True
    upper: float | None = None
    upper_inclusive: bool = True

    def admits(self, value: JsonScalar) -> bool:
        """Whether `value` is a number within the bound (NaN never is)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        above = self.lower is None or (value >= self.lower if self.lower_inclusive else value > self.lower)
        below = self.upper is None or (value <= self.upper if self.upper_inclusive else value < self.upper)
        return above and below

    @property
    def requirement(self) -> str:
        """What a value must do, after "must": `satisfy n_fast >= 1`."""
        return f"satisfy {self}"

    def __str__(self) -> str:
        """As a person writes it: `n_fast >= 1`, `sl_atr > 0`, `0 <= oversold <= 100`."""
        if self.upper is None:
            return f"{self.name} {'>=' if self.lower_inclusive else '>'} {self.lower}"
        high = "<=" if self.upper_inclusive else "<"
        if self.lower is None:
            return f"{self.name} {high} {self.upper}"
        return f"{self.lower} {'<=' if self.lower_inclusive else '<'} {self.name} {high} {self.upper}"


@dataclass(frozen=True)
class TextFormat(Generic[T]):
    """`Annotated` metadata declaring the format of a text parameter: `parse` is the function the strategy
    reads the text with, raising `ValueError` for a malformed one, so the check before a run and the
    strategy's own reading are one rule; `description` says what it takes, after "must be" ("comma-separated
    whole numbers of bars ≥ 0"). `format`, when given, writes what `parse` read back as text: its output is
    the canonical text of a value, which a result's key holds, so that texts read alike (" 3, 12" and "3,12")
    name one run; without it a text is held as written."""

    description: str
    parse: Callable[[str], T]
    format: Callable[[T], str] | None = None


@dataclass(frozen=True)
class Format:
    """The format of one text parameter, as its `TextFormat` declares it."""

    name: str
    text_format: TextFormat[Any]

    def admits(self, value: JsonScalar) -> bool:
        """Whether `value` is a text the strategy's own parser reads."""
        if not isinstance(value, str):
            return False
        try:
            self.text_format.parse(value)
        except ValueError:
            return False
        return True

    def canonical(self, value: str) -> str:
        """The text a key holds for `value`, an admitted one: its format's writing of what `parse` reads.

        Raises `ValueError` when the format does not read its own text back the same (`parse` refuses it,
        or writing what it reads gives another text): a key written so would change each time it is read.
        """
        text_format = self.text_format
        if text_format.format is None:
            return value
        text = text_format.format(text_format.parse(value))
        try:
            again = text_format.format(text_format.parse(text))
        except ValueError as error:
            raise ValueError(
                f"the format of {self.name} writes {text!r} for {value!r}, which its parse refuses ({error})"
            ) from None
        if again != text:
            raise ValueError(
                f"the format of {self.name} does not read its own text back: {value!r} -> {text!r} -> {again!r}"
            )
        return text

    @property
    def requirement(self) -> str:
        """What a value must do, after "must": `be whole numbers ...`."""
        return f"be {self.text_format.description}"

    def __str__(self) -> str:
        """`hold_bars (whole numbers ...)`: in parentheses, as the description may hold commas."""
        return f"{self.name} ({self.text_format.description})"


#: What a parameter's values are checked against: a number's bound or a text's format.
Constraint = Bound | Format


@dataclass(frozen=True)
class Rule:
    """A chain of comparisons between parameters, e.g. `n_fast < n_slow` or `a <= b < c`."""

    text: str
    names: tuple[str, ...]
    comparisons: tuple[str, ...]

    def admits(self, params: Mapping[str, JsonScalar]) -> bool:
        """Whether every comparison of the chain holds for `params`."""
        chain = zip(self.names[:-1], self.comparisons, self.names[1:], strict=True)
        return all(_COMPARISONS[sign](params[left], params[right]) for left, sign, right in chain)

    def __str__(self) -> str:
        return self.text


def declared_bounds(strategy: str, cls: type[Strategy], params: Mapping[str, JsonScalar]) -> dict[str, Constraint]:
    """The bounds and formats `cls` declares on its parameters, by name; raises `ValueError` naming
    `strategy` for a declaration it cannot apply or a default outside its bound or format."""
    bounds: dict[str, Constraint] = {}
    for name, default in params.items():
        metadata = list(_metadata(strategy, cls, name))
        if not metadata:
            continue
        bound = _constraint(strategy, name, default, metadata)
        if not bound.admits(default):
            raise ValueError(f"strategy {strategy}: the default {name} = {default!r} is outside its bound {bound}")
        if isinstance(bound, Format):
            try:
                bound.canonical(str(default))
            except ValueError as error:
                raise ValueError(f"strategy {strategy}: {error}") from None
        bounds[name] = bound
    return bounds


def declared_rules(strategy: str, cls: type[Strategy], params: Mapping[str, JsonScalar]) -> tuple[Rule, ...]:
    """The rules of `cls.param_rules`; raises `ValueError` naming `strategy` for one it cannot read, one
    naming anything but a numeric parameter, or one the defaults break."""
    declared = getattr(cls, "param_rules", ())
    if isinstance(declared, str) or not all(isinstance(text, str) for text in declared):
        raise ValueError(f"strategy {strategy}: param_rules must be a tuple of texts like 'n_fast < n_slow'")
    rules = tuple(_rule(strategy, text, params) for text in declared)
    for rule in rules:
        if not rule.admits(params):
            raise ValueError(f"strategy {strategy}: the defaults break its rule {rule}")
    return rules


def _metadata(strategy: str, cls: type[Strategy], name: str) -> Iterator[object]:
    """The `Annotated` metadata of the parameter's annotation in the nearest class declaring it, with
    grouped metadata (`Interval`) unpacked and documentation left out."""
    annotation: object  # not Any: typeshed's get_origin would read Any as a ParamSpec's args
    for owner in cls.__mro__:
        annotations = inspect.get_annotations(owner)
        if name in annotations:
            annotation = annotations[name]
            break
    else:
        return
    if isinstance(annotation, str):  # `from __future__ import annotations`: evaluated as typing would
        module = sys.modules.get(owner.__module__)
        try:
            annotation = eval(annotation, vars(module) if module else {}, dict(vars(owner)))
        except Exception as error:
            raise ValueError(
                f"strategy {strategy}: the annotation of {name} cannot be read ({type(error).__name__}: {error})"
            ) from None
    if get_origin(annotation) is not Annotated:
        return
    for item in get_args(annotation)[1:]:
        for each in item if isinstance(item, GroupedMetadata) else (item,):
            if not isinstance(each, str | DocInfo):  # documentation (DocInfo: `doc()` and typing's Doc)
                yield each


def _constraint(strategy: str, name: str, default: JsonScalar, metadata: list[object]) -> Constraint:
    """The bound of a number or the format of a text that `metadata` declares."""
    for item in metadata:
        if not isinstance(item, Gt | Ge | Lt | Le | TextFormat):
            raise ValueError(
                f"strategy {strategy}: {name} is annotated with {item!r}, which cannot be checked; a number's bounds"
                " are Gt, Ge, Lt, Le or Interval, a text's format a TextFormat, and documentation a str or doc()"
            )
    formats = [item for item in metadata if isinstance(item, TextFormat)]
    if not formats:
        if isinstance(default, bool) or not isinstance(default, int | float):
            raise ValueError(f"strategy {strategy}: {name} has bounds but is not a number (default {default!r})")
        return _bound(strategy, name, metadata)
    if not isinstance(default, str):
        raise ValueError(f"strategy {strategy}: {name} has a TextFormat but is not a text (default {default!r})")
    if len(metadata) > 1:
        raise ValueError(f"strategy {strategy}: {name} takes one TextFormat and nothing more, got {metadata!r}")
    return Format(name, formats[0])


def _bound(strategy: str, name: str, metadata: list[object]) -> Bound:
    ends: dict[str, tuple[float, bool]] = {}
    for item in metadata:
        match item:  # `_constraint` has refused any other kind
            case Gt(gt=value) | Ge(ge=value):
                side, inclusive = "lower", isinstance(item, Ge)
            case Lt(lt=value) | Le(le=value):
                side, inclusive = "upper", isinstance(item, Le)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"strategy {strategy}: the bound {item!r} of {name} is not a finite number")
        if side in ends:
            raise ValueError(f"strategy {strategy}: {name} has two {side} bounds")
        ends[side] = (value, inclusive)
    lower, lower_inclusive = ends.get("lower", (None, True))
    upper, upper_inclusive = ends.get("upper", (None, True))
    return Bound(name, lower, lower_inclusive, upper, upper_inclusive)


def _rule(strategy: str, text: str, params: Mapping[str, JsonScalar]) -> Rule:
    tokens = _RULE_TOKENS.findall(text)
    names, comparisons = tokens[::2], tokens[1::2]
    if (
        "".join(tokens) != "".join(text.split())
        or len(names) < 2
        or len(comparisons) != len(names) - 1
        or any(name in _COMPARISONS for name in names)
        or any(sign not in _COMPARISONS for sign in comparisons)
    ):
        raise ValueError(f"strategy {strategy}: cannot read the rule {text!r}; write e.g. 'n_fast < n_slow'")
    for name in names:
        value = params.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"strategy {strategy}: the rule {text!r} names {name}, which is not a numeric parameter")
    written = names[0] + "".join(f" {sign} {name}" for sign, name in zip(comparisons, names[1:], strict=True))
    return Rule(written, tuple(names), tuple(comparisons))
