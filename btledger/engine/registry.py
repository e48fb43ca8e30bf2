"""The strategy registry: strategies by name, never imported from a path a request supplies.

Two origins, read once per process:

- every module of the `btledger.strategies` package: each public `backtesting.Strategy` subclass
  defined there (not merely imported) is registered under its class name;
- installed packages declaring the entry-point group `btledger.strategies`
  (`MyStrategy = "my_package.module:MyStrategy"`), registered under the entry point's name.

A strategy's parameters are its public class attributes holding a bool, int, float or str (besides
those of `RiskSizedStrategy`, which the engine sets); a run's `params` override them by name, within
the bounds and rules the strategy declares (`btledger.engine.param_bounds`). Its fingerprint is the
SHA-256 of the source of the module defining it.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from types import MappingProxyType, ModuleType
from typing import TYPE_CHECKING, Any

from btledger.engine.errors import SpecError
from btledger.engine.param_bounds import Constraint, Format, Rule, declared_bounds, declared_rules
from btledger.engine.result import JsonScalar

if TYPE_CHECKING:
    from backtesting import Strategy

ENTRY_POINT_GROUP = "btledger.strategies"
_PARAM_TYPES = (bool, int, float, str)


@dataclass(frozen=True)
class StrategyEntry:
    """One registered strategy: its class, default parameters, their declared bounds (a text's format
    among them) and rules, source fingerprint and origin."""

    name: str
    cls: type[Strategy]
    params: MappingProxyType[str, JsonScalar]
    bounds: MappingProxyType[str, Constraint]
    rules: tuple[Rule, ...]
    fingerprint: str
    origin: str

    def resolve_params(self, overrides: dict[str, JsonScalar]) -> dict[str, JsonScalar]:
        """Default parameters updated by `overrides`, each checked against its default's type and its
        bound or format, then all of them against the strategy's rules.

        Raises `SpecError` (field `params`) naming an unknown parameter, a value of the wrong type, or
        the strategy, parameter, bound and value that breaks it. An int is accepted for a float
        parameter, and an integral float for an int one.
        """
        resolved = dict(self.params)
        for key, value in overrides.items():
            if key not in self.params:
                known = self.describe_params()
                raise SpecError("params", f"unknown parameter {key!r} for {self.name} (known: {known})")
            resolved[key] = _coerce(self.name, key, value, self.params[key])
            bound = self.bounds.get(key)
            if bound is not None and not bound.admits(resolved[key]):
                raise SpecError("params", f"{self.name}.{key} must {bound.requirement}, got {value!r}")
        for rule in self.rules:
            if not rule.admits(resolved):
                given = ", ".join(f"{name}={resolved[name]!r}" for name in dict.fromkeys(rule.names))
                raise SpecError("params", f"{self.name} must satisfy {rule}, got {given}")
        return resolved

    def param_from_text(self, key: str, text: str) -> JsonScalar:
        """`text` (a command line's `--param key=text`) read as parameter `key`'s type, its default's: a
        number or true/false (in any case) when the default is one, else the text itself. A text that
        spells no such value is returned as it is, for `resolve_params` to refuse naming the parameter."""
        default = self.params[key]
        if isinstance(default, bool):
            return {"true": True, "false": False}.get(text.lower(), text)
        if isinstance(default, int | float):
            # int first, so that "5" stays whole; `_coerce` then makes it 5.0 for a float, and "5.0" 5 for an int
            for convert in (int, float):
                try:
                    return convert(text)
                except ValueError:
                    pass
        return text

    def describe_params(self) -> str:
        """The parameters for a person: each name, or its bound when it has one, then the rules
        (`atr_period >= 1, n_fast >= 1, ...; n_fast < n_slow`)."""
        names = ", ".join(str(self.bounds.get(name, name)) for name in sorted(self.params)) or "none"
        return "; ".join([names, *map(str, self.rules)])

    def listing(self) -> dict[str, Any]:
        """What a user is shown of the strategy (`btledger strategies`, `GET /strategies`): plain values."""
        return {
            "name": self.name,
            "params": dict(self.params),
            "bounds": {name: str(bound) for name, bound in self.bounds.items()},
            "rules": [str(rule) for rule in self.rules],
            "origin": self.origin,
            "fingerprint": self.fingerprint,
        }

    def key_params(self, overrides: dict[str, JsonScalar]) -> dict[str, JsonScalar]:
        """The overrides that change a run, as a result's key holds them: each coerced to its default's
        type, a text in the canonical form its format declares, those equal to their default left out. So
        `{}`, `{"n_fast": 12}` (the default) and `{"sl_atr": 2}` for `2.0` name one run, and one id, as
        RandomTrader's `{"hold_bars": " 3, 12"}` and `{"hold_bars": "3,12"}` do. Raises as `resolve_params`."""
        resolved = self.resolve_params(overrides)
        key: dict[str, JsonScalar] = {}
        for name in overrides:
            value, default = resolved[name], self.params[name]
            if isinstance(bound := self.bounds.get(name), Format):
                try:
                    value, default = bound.canonical(str(value)), bound.canonical(str(default))
                except ValueError as error:  # the strategy's format, not the value, is at fault: said as such
                    raise SpecError("params", f"strategy {self.name}: {error}") from None
            if value != default:
                key[name] = value
        return key


def _coerce(strategy: str, key: str, value: Any, default: JsonScalar) -> JsonScalar:
    kind = type(default)
    if isinstance(value, bool) or kind is bool:
        ok = type(value) is kind
    elif kind is float:
        ok = isinstance(value, int | float)
        value = float(value) if ok else value
    elif kind is int:
        ok = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        value = int(value) if ok else value
    else:
        ok = isinstance(value, kind)
    if not ok:
        # Only a typed input gets here with a non-text for a text: YAML and JSON read an unquoted 5 as a number.
        hint = " (a plan or a JSON body gives a text in quotes)" if kind is str else ""
        raise SpecError("params", f"{strategy}.{key} must be {kind.__name__}, got {value!r}{hint}")
    return value


def _params_of(cls: type[Strategy]) -> MappingProxyType[str, JsonScalar]:
    from btledger.engine.sizing import RiskSizedStrategy

    engine_owned = set(dir(RiskSizedStrategy))
    params = {
        name: getattr(cls, name)
        for name in dir(cls)
        if not name.startswith("_") and name not in engine_owned and isinstance(getattr(cls, name), _PARAM_TYPES)
    }
    return MappingProxyType(params)


def _code_modules(cls: type[Strategy]) -> list[ModuleType]:
    """The modules whose code decides the strategy's trades: its own, its base classes' (the sizing
    base class included) and those it takes indicators or helpers from, within its own package or btledger.
    backtesting.py itself is covered by the recorded library versions."""
    home = cls.__module__.split(".")[0]
    candidates = [inspect.getmodule(base) for base in cls.__mro__]
    module = inspect.getmodule(cls)
    if module is not None:
        candidates += [
            value if inspect.ismodule(value) else inspect.getmodule(value) for value in vars(module).values()
        ]
    return [
        m
        for m in {c.__name__: c for c in candidates if c is not None}.values()
        if m.__name__.split(".")[0] in (home, "btledger") and getattr(m, "__file__", None)
    ]


def source_fingerprint(cls: type[Strategy]) -> str:
    """SHA-256 of the source of every module in `_code_modules(cls)`, in name order."""
    digest = hashlib.sha256()
    for module in sorted(_code_modules(cls), key=lambda m: m.__name__):
        digest.update(module.__name__.encode("utf-8") + b"\0" + inspect.getsource(module).encode("utf-8") + b"\0")
    return digest.hexdigest()


def _entry(name: str, cls: type[Strategy], origin: str) -> StrategyEntry:
    params = _params_of(cls)
    return StrategyEntry(
        name=name,
        cls=cls,
        params=params,
        bounds=MappingProxyType(declared_bounds(name, cls, params)),
        rules=declared_rules(name, cls, params),
        fingerprint=source_fingerprint(cls),
        origin=origin,
    )


@cache
def registry() -> MappingProxyType[str, StrategyEntry]:
    """Every registered strategy by name (built once per process).

    Raises `ValueError` when two strategies claim one name, an entry point is not a Strategy class, or
    a strategy declares bounds or rules that cannot apply (see `param_bounds`).
    """
    # Imported here, not with the module: backtesting.py brings bokeh (≈ 1 s), which the commands that
    # only read or mark results (history, favorite, delete...) never need.
    from backtesting import Strategy

    import btledger.strategies

    found: dict[str, StrategyEntry] = {}

    def add(entry: StrategyEntry) -> None:
        if entry.name in found:
            raise ValueError(f"strategy {entry.name!r} is defined twice: {found[entry.name].origin} and {entry.origin}")
        found[entry.name] = entry

    package = btledger.strategies
    for module_info in pkgutil.iter_modules(package.__path__, prefix=f"{package.__name__}."):
        module = importlib.import_module(module_info.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Strategy) and cls.__module__ == module.__name__ and not name.startswith("_"):
                add(_entry(name, cls, module.__name__))
    for point in entry_points(group=ENTRY_POINT_GROUP):
        cls = point.load()
        if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
            raise ValueError(f"entry point {point.name} = {point.value} is not a backtesting.Strategy subclass")
        add(_entry(point.name, cls, f"entry point {point.value}"))
    return MappingProxyType(found)


def strategy_names() -> list[str]:
    """Registered strategy names, sorted."""
    return sorted(registry())


def strategy_listings() -> list[dict[str, Any]]:
    """Every registered strategy as a user is shown it (`StrategyEntry.listing`), by name."""
    return [entry.listing() for entry in sorted(registry().values(), key=lambda entry: entry.name)]


def get_strategy(name: str) -> StrategyEntry:
    """The strategy registered as `name`; `SpecError` (field `strategy`) listing known names if none."""
    try:
        return registry()[name]
    except KeyError:
        raise SpecError("strategy", f"unknown strategy {name!r} (known: {', '.join(strategy_names())})") from None
