"""Plugins: installed packages that add functions to the rules language, from the `vigil` entry-point group.

A plugin declares an entry point in the `vigil` group naming a module (or a `module:function`); Vigil
calls the module's `register_functions(functions)` hook, which adds its functions exactly as Vigil's own
built-ins are added (vigil/dsl/builtins.py uses the same hook). docs/language.md, "Plugins", has an
example. Plugins are loaded when a front door builds what it runs (`load_functions`), never on import,
and each front door hands the one registry to the loader; the engine runs a rules set with the functions
it was checked against.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

from vigil.dsl.builtins import BUILTIN_SOURCE, FunctionError, Functions, builtin_functions

ENTRY_POINT_GROUP = "vigil"
FUNCTIONS_HOOK = "register_functions"


class PluginError(Exception):
    """A plugin that cannot be used: it does not import, has no hook, or registers a bad or taken name.
    The message names the plugin (its entry point) and the package that declares it."""


def load_functions(plugins: Iterable[EntryPoint] | None = None) -> Functions:
    """Vigil's built-in functions and those of every installed plugin (`plugins`: the entry points to
    load, by default those of the `vigil` group). Raises PluginError naming the plugin that failed."""
    functions = builtin_functions()
    found = sorted(entry_points(group=ENTRY_POINT_GROUP) if plugins is None else plugins,
                   key=lambda ep: (ep.name, ep.value))
    seen: dict[str, EntryPoint] = {}
    for plugin in found:
        if plugin.name in seen:
            if seen[plugin.name].value == plugin.value:
                continue  # one package seen twice on the path (an editable install beside a copy)
            raise PluginError(f"two plugins are named `{plugin.name}`: {_describe(seen[plugin.name])} and "
                              f"{_describe(plugin)}; uninstall one")
        if plugin.name == BUILTIN_SOURCE:
            raise PluginError(f"a plugin may not be named `{BUILTIN_SOURCE}` ({_describe(plugin)}): the name "
                              "marks Vigil's own functions")
        seen[plugin.name] = plugin
        register_plugin(functions, plugin.name, _hook(plugin), _describe(plugin))
    return functions


def register_plugin(functions: Functions, name: str, hook: Callable[[Functions], Any], where: str = "") -> None:
    """Run one plugin's hook into `functions`; its functions carry `name` as their source."""
    label = f"plugin `{name}`" + (f" ({where})" if where else "")
    try:
        with functions.registering(name):
            hook(functions)
    except FunctionError as error:
        raise PluginError(f"{label}: {error}") from error
    except Exception as error:
        raise PluginError(f"{label} failed to register its functions: {type(error).__name__}: {error}") from error


def _hook(plugin: EntryPoint) -> Callable[[Functions], Any]:
    try:
        target = plugin.load()
    except Exception as error:
        raise PluginError(f"plugin `{plugin.name}` ({_describe(plugin)}) failed to load: "
                          f"{type(error).__name__}: {error}") from error
    hook = getattr(target, FUNCTIONS_HOOK, None) if isinstance(target, ModuleType) else target
    if not callable(hook):
        raise PluginError(f"plugin `{plugin.name}` ({_describe(plugin)}) has no `{FUNCTIONS_HOOK}(functions)` "
                          "hook: name a module that defines it, or the function itself (`module:function`)")
    return hook  # type: ignore[no-any-return]


def _describe(plugin: EntryPoint) -> str:
    dist = plugin.dist
    package = f"package {dist.name} {dist.version}, " if dist is not None else ""
    return f"{package}entry point {plugin.value!r}"
