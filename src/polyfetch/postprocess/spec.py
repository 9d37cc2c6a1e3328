"""Naming a processor so that a worker process can find it.

A function is not sent to a worker: its name is, as ``"module:qualname"``, and
the worker imports it (`polyfetch.postprocess._worker`). That way a worker that
cannot import it reports an ordinary per-item `ProcessorFailed` instead of
dying while unpickling a task, which would break the whole pool.

Everything a worker would trip over is refused here, in the parent, before any
fetching: lambdas, nested functions, callables without a name that leads back
to them, modules that fail to import, and functions of the ``__main__`` script
that are not defined at its top level (workers re-import the script under
another name, so a function defined under ``if __name__ == "__main__":`` does
not exist there). In-process executors ("thread", "inline") take any callable.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from polyfetch.errors import ConfigError

#: Built-in processors by name (see `polyfetch.postprocess.builtins`).
BUILTINS = {
    "html": "polyfetch.postprocess.builtins:html",
    "sha256": "polyfetch.postprocess.builtins:sha256",
    "text": "polyfetch.postprocess.builtins:text",
}
#: The package a built-in needs (imported by the worker that first runs it).
_NEEDS = {"html": "selectolax", "text": "selectolax"}
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_NAME = re.compile(rf"({_DOTTED}):({_DOTTED})")


@dataclass(frozen=True, slots=True)
class Processor:
    """A resolved processor: the function, and the name a worker imports it by."""

    func: Callable[[Any], Any]
    #: ``"module:qualname"``, or None for a callable usable only in this process.
    name: str | None

    def __str__(self) -> str:
        return self.name or repr(self.func)


def load(name: str) -> Any:
    """Import ``"module:qualname"`` and return the object (raises on failure)."""
    module_name, _, qualname = name.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def resolve(process: object, *, in_process: bool) -> Processor:
    """Resolve a processor given as a built-in name, ``"module:function"`` or a callable.

    Args:
        process: what the user passed as ``process=``.
        in_process: True for the "thread" and "inline" executors (and a caller's
            thread pool), where any callable will do.

    Raises:
        ConfigError: with a message saying what is wrong and what to do instead.
    """
    if isinstance(process, str):
        needs = _NEEDS.get(process)
        if needs and importlib.util.find_spec(needs) is None:
            raise ConfigError(f"the {process!r} processor needs {needs}: pip install {needs}")
        return _resolve_name(BUILTINS.get(process, process), in_process=in_process)
    if not callable(process):
        raise ConfigError(
            f"process must be a callable, a 'module:function' string or one of "
            f"{', '.join(BUILTINS)}, got {process!r}"
        )
    try:
        return Processor(process, _name_of(process))
    except ConfigError:
        if in_process:
            return Processor(process, None)
        raise


def _resolve_name(name: str, *, in_process: bool) -> Processor:
    match = _NAME.fullmatch(name.strip())
    if match is None:
        raise ConfigError(
            f"process={name!r} is neither a built-in ({', '.join(BUILTINS)}) "
            "nor a 'package.module:function' name"
        )
    name = match.group(0)
    if match.group(1) == "__main__" and not in_process:
        _check_main(match.group(2))
    try:
        func = load(name)
    except Exception as exc:
        raise ConfigError(
            f"process={name!r} cannot be loaded: {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(func):
        raise ConfigError(f"process={name!r} is not callable (it is {type(func).__name__})")
    return Processor(func, name)


def _name_of(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise ConfigError(
            f"processor {func!r} has no importable name: worker processes find a processor by "
            "'module:function'; wrap it in a module-level function, or use executor='thread'"
        )
    if "<lambda>" in qualname:
        raise ConfigError(
            f"processor {module}:{qualname} is a lambda, which a worker process cannot import; "
            "define it with def at module level, or use executor='thread'"
        )
    if "<locals>" in qualname:
        raise ConfigError(
            f"processor {module}:{qualname} is defined inside a function, where a worker "
            "process cannot import it; move it to module level, or use executor='thread'"
        )
    name = f"{module}:{qualname}"
    if module == "__main__":
        _check_main(qualname)
    try:
        found = load(name)
    except Exception as exc:
        raise ConfigError(f"processor {name} cannot be imported back by name: {exc}") from exc
    if found is not func and found != func:
        raise ConfigError(f"{name} names {found!r}, not the processor {func!r}")
    return name


def _check_main(qualname: str) -> None:
    """Refuse what a worker cannot find in ``__main__``: it re-imports the script by path."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path:
        raise ConfigError(
            f"processor __main__:{qualname} was defined interactively (or with -c), where worker "
            "processes cannot import it; put it in a module, or use executor='thread'"
        )
    try:
        with open(path, "rb") as file:
            tree = ast.parse(file.read(), path)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ConfigError(
            f"cannot read the main script {path} to check the processor: {exc}"
        ) from exc
    top = qualname.split(".", 1)[0]
    if top not in _top_level_names(tree):
        raise ConfigError(
            f"processor {qualname} is not defined at the top level of {path} (under "
            "'if __name__ == \"__main__\":' perhaps): worker processes import that script under "
            "another name and would not find it; move it to the top level or into a module"
        )


def _top_level_names(tree: ast.Module) -> set[str]:
    """Names bound unconditionally by a module's top-level statements."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".", 1)[0] for a in node.names)
    return names
