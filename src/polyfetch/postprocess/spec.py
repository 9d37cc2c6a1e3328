"""Naming a processor so that a worker process can find it.

A function is not sent to a worker: its name is, as ``"module:qualname"``, and
the worker imports it (`polyfetch.postprocess._worker`). That way a worker that
cannot import it reports an ordinary per-item `ProcessorFailed` instead of
dying while unpickling a task, which would break the whole pool.

Everything a worker would trip over is refused here, in the parent, before any
fetching: lambdas, nested functions, callables without a name that leads back
to them, modules that fail to import, and functions of ``__main__`` that a
worker cannot get at. Workers do not run the parent's main module at start
(`_spawn`); only for a processor defined in it does a worker run the script
(or ``-m`` module) under another name, when it first needs the processor. So
the processor must be at the script's top level (one defined under
``if __name__ == "__main__":`` does not exist there), and a main module read
from stdin, given with ``-c`` or typed interactively cannot serve at all.
In-process executors ("thread", "inline") take any callable.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
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
    #: For a processor of ``__main__``: ``("path", script)`` or ``("name", module)``, what a
    #: worker runs as ``__mp_main__`` to find it (see `_worker.run`).
    main: tuple[str, str] | None = None

    def __str__(self) -> str:
        return self.name or repr(self.func)


def load(name: str) -> Any:
    """Import ``"module:qualname"`` and return the object (raises on failure); a name of
    `compose`'s, ``"a:f+b:g"`` (or ``"a:f+"`` for one), gives their composition."""
    if "+" in name:
        return partial(together, tuple(load(part) for part in name.split("+") if part))
    module_name, _, qualname = name.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def compose(*processors: Processor) -> Processor:
    """One processor that runs each of ``processors`` on a page, in one hand-off to a worker.

    Its value is the tuple of their replies, ``("value", v)`` or ``("error", message)``
    each: one failing costs the others nothing. Workers find it by the names joined with
    ``+`` (`load`); at most one of them may come from a main script.
    """
    mains = {p.main for p in processors if p.main is not None}
    if len(mains) > 1:
        raise ConfigError("processors from two main scripts cannot run in one worker")
    names = [p.name for p in processors]
    # "+" even after a single name: the worker must run `together`, not the function alone
    name = "+".join(names) + ("+" if len(names) == 1 else "") if all(names) else None  # type: ignore[arg-type]
    func = partial(together, tuple(p.func for p in processors))
    return Processor(func, name, mains.pop() if mains else None)


def together(funcs: tuple[Callable[[Any], Any], ...], result: Any) -> tuple[Any, ...]:
    """Every function's reply for ``result`` (see `compose`)."""
    replies = []
    for func in funcs:
        try:
            replies.append(("value", func(result)))
        except Exception as exc:
            from polyfetch.postprocess._worker import describe

            replies.append(("error", describe(exc)))
    return tuple(replies)


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
            raise ConfigError(
                f"the {process!r} processor needs {needs}: pip install 'polyfetch[html]'"
            )
        return _resolve_name(BUILTINS.get(process, process), in_process=in_process)
    if not callable(process):
        raise ConfigError(
            f"process must be a callable, a 'module:function' string or one of "
            f"{', '.join(BUILTINS)}, got {process!r}"
        )
    try:
        name = _name_of(process)
        main = _check_main(name.partition(":")[2]) if name.startswith("__main__:") else None
        return Processor(process, name, main)
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
    main = None
    if match.group(1) == "__main__" and not in_process:
        main = _check_main(match.group(2))
    try:
        func = load(name)
    except Exception as exc:
        raise ConfigError(
            f"process={name!r} cannot be loaded: {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(func):
        raise ConfigError(f"process={name!r} is not callable (it is {type(func).__name__})")
    return Processor(func, name, main)


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
    try:
        found = load(name)
    except Exception as exc:
        raise ConfigError(f"processor {name} cannot be imported back by name: {exc}") from exc
    if found is not func and found != func:
        raise ConfigError(f"{name} names {found!r}, not the processor {func!r}")
    return name


#: The main module of the interactive prompt since Python 3.13 (PYTHON_BASIC_REPL unset).
_REPL_MAIN = "_pyrepl.__main__"


def _check_main(qualname: str) -> tuple[str, str]:
    """Refuse what a worker cannot find in ``__main__``; else what the worker runs to find it."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    module = getattr(getattr(main, "__spec__", None), "name", None)
    # "<stdin>" is no file either; the REPL of 3.13+ runs as `python -m _pyrepl`, so its
    # __main__ is _pyrepl/__main__.py, a file, but what is typed there is in no file
    if module == _REPL_MAIN or not isinstance(path, str) or not os.path.isfile(path):
        raise ConfigError(
            f"processor __main__:{qualname} was defined interactively, with -c or in a script "
            "read from stdin, where worker processes cannot import it; put it in a module, "
            "or use executor='thread'"
        )
    if isinstance(module, str) and (module == "__main__" or module.endswith(".__main__")):
        raise ConfigError(
            f"processor __main__:{qualname} is defined in {module}, which worker processes "
            "cannot run (it is the whole program); put it in another module, or use "
            "executor='thread'"
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
    if isinstance(module, str):
        return ("name", module)  # python -m package.module
    return ("path", os.path.abspath(path))


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
