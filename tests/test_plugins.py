"""Plugins found through real entry points.

Each test writes a small distribution (a ``.dist-info`` folder with ``entry_points.txt`` and the
plugin module) into a temporary folder on ``sys.path``; importlib.metadata finds it exactly as it
finds an installed one.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import balancers
import naming
from naming import PluginError, UnknownSchemeError, Update
from naming.core import BACKENDS_GROUP, PluginRegistry, set_registry

WriteDist = Callable[..., str]

BACKEND_PLUGIN = """
    import naming
    from naming import Address, Backend, Resolver, SnapshotWatcher

    CALLS = []

    class EchoResolver(Resolver):
        def resolve(self, target):
            target = target if isinstance(target, naming.Target) else naming.parse_target(target)
            return SnapshotWatcher([Address(target.endpoint + ":1")], name="echo")

    class EchoBackend(Backend):
        schemes = ({scheme!r},)

        def build(self, target, **options):
            return EchoResolver()

    @naming.hookimpl
    def naming_register_backends(register):
        CALLS.append(1)
        register(EchoBackend())
"""

BALANCER_PLUGIN = """
    import naming
    from balancers import Picker, PickerBalancer

    class LastPicker(Picker):
        def __init__(self, address):
            self.address = address

        def pick(self):
            return self.address, None

    class LastReady(PickerBalancer):
        name = {name!r}

        def __init__(self, resolver=None, *, flavour="plain"):
            super().__init__(resolver)
            self.flavour = flavour

        def build_picker(self, state, previous):
            return LastPicker(state.ready[-1])

    @naming.hookimpl
    def naming_register_balancers(register):
        register(LastReady)
"""


@pytest.fixture
def write_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WriteDist]:
    """Write a distribution on sys.path: ``write_dist(dist, {group: {name: module}}, {module: code})``."""
    monkeypatch.syspath_prepend(str(tmp_path))
    modules: list[str] = []

    def write(dist: str, entry_points: dict[str, dict[str, str]], sources: dict[str, str]) -> str:
        info = tmp_path / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        lines = []
        for group, names in entry_points.items():
            lines.append(f"[{group}]")
            lines.extend(f"{name} = {module}" for name, module in names.items())
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        for module, code in sources.items():
            (tmp_path / f"{module}.py").write_text(textwrap.dedent(code))
            modules.append(module)
        return dist

    yield write
    for module in modules:
        sys.modules.pop(module, None)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def test_third_party_backend_is_selected_by_scheme(
    fresh_registry: PluginRegistry, write_dist: WriteDist
) -> None:
    module = unique("echo_backend")
    write_dist(
        "naming-echo",
        {"naming.backends": {"echo": module}},
        {module: BACKEND_PLUGIN.format(scheme="echo")},
    )
    assert "echo" in naming.available_backends()
    assert module not in sys.modules, "listing must not load the plugin"
    with naming.resolve("echo:///hello") as watcher:
        assert watcher.next() == [Update.add("hello:1")]


def test_third_party_balancer_is_selected_by_name(
    fresh_registry: PluginRegistry, write_dist: WriteDist
) -> None:
    module = unique("last_balancer")
    write_dist(
        "naming-last",
        {"naming.balancers": {"last_ready": module}},
        {module: BALANCER_PLUGIN.format(name="last_ready")},
    )
    assert "last_ready" in naming.available_balancers()
    balancer = balancers.create("last_ready", flavour="spicy")
    assert type(balancer).__name__ == "LastReady"
    assert balancer.flavour == "spicy"  # type: ignore[attr-defined]
    balancer.start("10.0.0.1:80")
    balancer.up(naming.Address("10.0.0.1:80"))
    assert balancer.get()[0].addr == "10.0.0.1:80"
    balancer.close()


def test_only_the_requested_entry_point_is_loaded_and_only_once(
    fresh_registry: PluginRegistry, write_dist: WriteDist
) -> None:
    first, second = unique("first"), unique("second")
    write_dist(
        "naming-two",
        {"naming.backends": {"first": first, "second": second}},
        {
            first: BACKEND_PLUGIN.format(scheme="first"),
            second: BACKEND_PLUGIN.format(scheme="second"),
        },
    )
    naming.resolve("first:///a").close()
    naming.resolve("first:///b").close()
    assert first in sys.modules
    assert second not in sys.modules
    assert sys.modules[first].CALLS == [1]


def test_an_alias_entry_point_to_an_already_loaded_module_is_not_loaded_twice(
    fresh_registry: PluginRegistry, write_dist: WriteDist
) -> None:
    module = unique("aliased")
    code = BACKEND_PLUGIN.format(scheme="long").replace(
        "schemes = ('long',)", "schemes = ('long', 'short')"
    )
    write_dist(
        "naming-alias", {"naming.backends": {"long": module, "short": module}}, {module: code}
    )
    naming.resolve("long:///a").close()
    naming.resolve("short:///a").close()
    assert sys.modules[module].CALLS == [1]


def test_a_broken_plugin_names_itself_and_its_distribution_and_breaks_nothing_else(
    fresh_registry: PluginRegistry, write_dist: WriteDist
) -> None:
    broken, good = unique("broken"), unique("good")
    write_dist(
        "naming-broken",
        {"naming.backends": {"broken": broken}},
        {broken: "import no_such_module_here\n"},
    )
    write_dist(
        "naming-good",
        {"naming.backends": {"good": good}},
        {good: BACKEND_PLUGIN.format(scheme="good")},
    )
    message = (
        rf"plugin 'broken' \({broken}\) from distribution naming-broken 1.0 failed to import: "
        r"ModuleNotFoundError"
    )
    with pytest.raises(PluginError, match=message):
        naming.resolve("broken:///x")
    with pytest.raises(PluginError, match=message):  # the same clear error again, no retry storm
        naming.resolve("broken:///x")
    with naming.resolve("good:///x") as watcher:
        assert watcher.next() == [Update.add("x:1")]
    with naming.resolve("static:///a:1") as watcher:
        assert watcher.next() == [Update.add("a:1")]


def test_a_scheme_registered_twice_raises_and_keeps_the_first(
    fresh_registry: PluginRegistry, write_dist: WriteDist
) -> None:
    module = unique("thief")
    write_dist(
        "naming-thief",
        {"naming.backends": {"thief": module}},
        {module: BACKEND_PLUGIN.format(scheme="static")},
    )
    naming.resolve("static:///a:1").close()
    with pytest.raises(
        PluginError, match=r"scheme 'static' registered by plugin .*thief.* is already registered"
    ):
        naming.resolve("thief:///x")
    with naming.resolve("static:///a:1") as watcher:
        assert watcher.next() == [Update.add("a:1")]


def test_an_entry_name_declared_by_two_distributions_raises_naming_both(
    fresh_registry: PluginRegistry, write_dist: WriteDist
) -> None:
    one, two = unique("one"), unique("two")
    write_dist(
        "naming-one",
        {"naming.backends": {"twin": one}},
        {one: BACKEND_PLUGIN.format(scheme="twin")},
    )
    write_dist(
        "naming-two",
        {"naming.backends": {"twin": two}},
        {two: BACKEND_PLUGIN.format(scheme="twin")},
    )
    with pytest.raises(
        PluginError, match=r"'twin' is declared more than once: naming-one 1\.0, naming-two 1\.0"
    ):
        naming.resolve("twin:///x")


@pytest.mark.parametrize(
    ("hook_body", "message"),
    [
        ("register(object())", "which is not a naming.Backend"),
        ("raise RuntimeError('boom')", "failed in its hook: RuntimeError: boom"),
    ],
)
def test_a_plugin_that_registers_garbage_is_rejected(
    fresh_registry: PluginRegistry, write_dist: WriteDist, hook_body: str, message: str
) -> None:
    module = unique("garbage")
    code = f"""
        import naming

        @naming.hookimpl
        def naming_register_backends(register):
            {hook_body}
    """
    write_dist("naming-garbage", {"naming.backends": {"garbage": module}}, {module: code})
    with pytest.raises(PluginError, match=message):
        naming.resolve("garbage:///x")
    with pytest.raises(PluginError, match=message):
        naming.resolve("garbage:///x")


def test_a_hookimpl_without_a_spec_is_rejected(
    fresh_registry: PluginRegistry, write_dist: WriteDist
) -> None:
    module = unique("typo")
    code = """
        import naming

        @naming.hookimpl
        def naming_register_backend(register):
            pass
    """
    write_dist("naming-typo", {"naming.backends": {"typo": module}}, {module: code})
    with pytest.raises(PluginError, match="naming_register_backend"):
        naming.resolve("typo:///x")


def test_disable_autoload_keeps_builtins_and_hides_third_party(
    write_dist: WriteDist, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = unique("hidden")
    write_dist(
        "naming-hidden",
        {"naming.backends": {"hidden": module}},
        {module: BACKEND_PLUGIN.format(scheme="hidden")},
    )
    monkeypatch.setenv("NAMING_DISABLE_PLUGIN_AUTOLOAD", "1")
    old = set_registry(None)
    try:
        assert "hidden" not in naming.available_backends()
        assert {"static", "manual"} <= set(naming.available_backends())
        with pytest.raises(UnknownSchemeError):
            naming.resolve("hidden:///x")
        assert module not in sys.modules
        code = BACKEND_PLUGIN.format(scheme="added")
        added = unique("added")
        (Path(sys.path[0]) / f"{added}.py").write_text(textwrap.dedent(code))
        naming.add_plugin(__import__(added))
        with naming.resolve("added:///x") as watcher:
            assert watcher.next() == [Update.add("x:1")]
        sys.modules.pop(added, None)
    finally:
        set_registry(old)


def test_disabled_plugins_are_never_loaded(
    write_dist: WriteDist, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = unique("blocked")
    write_dist(
        "naming-blocked",
        {"naming.backends": {"blocked": module}},
        {module: BACKEND_PLUGIN.format(scheme="blocked")},
    )
    monkeypatch.setenv("NAMING_DISABLED_PLUGINS", "blocked, other")
    old = set_registry(None)
    try:
        assert "blocked" not in naming.available_backends()
        with pytest.raises(UnknownSchemeError):
            naming.resolve("blocked:///x")
    finally:
        set_registry(old)


def test_builtins_are_declared_as_entry_points_of_grpc_naming(
    fresh_registry: PluginRegistry,
) -> None:
    infos = {info.name: info for info in fresh_registry.describe(BACKENDS_GROUP)}
    assert infos["static"].distribution == "grpc-naming"
    assert infos["static"].value == "backends.static"
    assert infos["manual"].value == "backends.manual"
    names = {info.name: info.value for info in fresh_registry.describe("naming.balancers")}
    assert names["round_robin"] == "balancers.roundrobin"
    assert names["pick_first"] == "balancers.pickfirst"


def test_every_hook_is_documented() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "plugins.md").read_text()
    from naming import hookspecs

    hooks = [name for name in dir(hookspecs) if name.startswith("naming_")]
    assert hooks
    for hook in hooks:
        assert f"{hook}(register)" in docs, f"hook {hook} is not documented in docs/plugins.md"


# -- bad plugins, taken names, hidden and shadowed plugins, missing extras -----------------------


class _Unreadable:
    def __getattr__(self, name: str) -> object:
        raise RuntimeError("boom")


class _NoHooks:
    def naming_register_backends(self, register: object) -> None:  # not marked as a hookimpl
        raise AssertionError("never called")


def _module(name: str, code: str) -> types.ModuleType:
    """A module object made from ``code``, as ``add_plugin`` takes one."""
    module = types.ModuleType(name)
    exec(compile(textwrap.dedent(code), name, "exec"), module.__dict__)
    return module


@pytest.mark.parametrize(
    "bad",
    [42, None, "static", object(), _Unreadable(), _NoHooks()],
    ids=["int", "None", "str", "object", "unreadable", "unmarked-hook"],
)
def test_add_plugin_refuses_an_object_that_is_not_a_plugin_and_keeps_working(
    fresh_registry: PluginRegistry, bad: object
) -> None:
    with pytest.raises(TypeError, match="add_plugin"):
        naming.add_plugin(bad)
    assert {"static", "manual"} <= set(naming.available_backends())
    with naming.resolve("static:///a:1") as watcher:
        assert watcher.next() == [Update.add("a:1")]
    scheme = unique("later").replace("_", "-")
    naming.add_plugin(_module("later", BACKEND_PLUGIN.format(scheme=scheme)))
    with naming.resolve(f"{scheme}:///x") as watcher:
        assert watcher.next() == [Update.add("x:1")]


def test_add_plugin_refuses_a_name_that_is_not_a_str(fresh_registry: PluginRegistry) -> None:
    with pytest.raises(TypeError, match="name must be a str"):
        naming.add_plugin(naming, name=7)  # type: ignore[arg-type]


def test_an_added_plugin_cannot_take_a_builtin_scheme_before_it_is_loaded(
    fresh_registry: PluginRegistry,
) -> None:
    impostor = _module("impostor", BACKEND_PLUGIN.format(scheme="static"))
    with pytest.raises(PluginError, match=r"'static' .* entry point 'backends\.static'"):
        naming.add_plugin(impostor)
    with naming.resolve("static:///a:1") as watcher:  # the built-in, not the impostor
        assert watcher.next() == [Update.add("a:1")]


def test_a_third_party_plugin_cannot_take_a_builtin_scheme_whatever_the_load_order(
    fresh_registry: PluginRegistry, write_dist: WriteDist
) -> None:
    module = unique("early_thief")
    write_dist(
        "naming-early-thief",
        {"naming.backends": {"early-thief": module}},
        {module: BACKEND_PLUGIN.format(scheme="static")},
    )
    with pytest.raises(PluginError, match=r"'static' .* entry point 'backends\.static'"):
        naming.resolve("early-thief:///x")  # static was never loaded before this
    with naming.resolve("static:///a:1") as watcher:
        assert watcher.next() == [Update.add("a:1")]


def test_an_unknown_scheme_names_the_variable_that_hid_it(
    write_dist: WriteDist, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = unique("hidden_by_name")
    write_dist(
        "naming-hidden-by-name",
        {"naming.backends": {"hidden-by-name": module}},
        {module: BACKEND_PLUGIN.format(scheme="hidden-by-name")},
    )
    monkeypatch.setenv("NAMING_DISABLED_PLUGINS", "hidden-by-name")
    old = set_registry(None)
    try:
        with pytest.raises(UnknownSchemeError, match="NAMING_DISABLED_PLUGINS hides it"):
            naming.resolve("hidden-by-name:///x")
        with pytest.raises(UnknownSchemeError) as plain:
            naming.resolve("nowhere:///x")
        assert "NAMING_" not in str(plain.value)
    finally:
        set_registry(old)
    monkeypatch.delenv("NAMING_DISABLED_PLUGINS")
    monkeypatch.setenv("NAMING_DISABLE_PLUGIN_AUTOLOAD", "1")
    old = set_registry(None)
    try:
        with pytest.raises(UnknownSchemeError, match="NAMING_DISABLE_PLUGIN_AUTOLOAD=1"):
            naming.resolve("hidden-by-name:///x")
    finally:
        set_registry(old)


def test_a_users_own_backends_package_that_shadows_ours_is_named_with_its_path(
    tmp_path: Path,
) -> None:
    own = tmp_path / "backends"
    own.mkdir()
    (own / "__init__.py").write_text("")
    code = (
        "import naming\n"
        "try:\n"
        "    naming.resolve('static:///a:1')\n"
        "except naming.PluginError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,  # '' (the working folder) is first on sys.path for -c
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "a package 'backends' at" in result.stdout
    assert str(own.resolve()) in result.stdout
    assert "shadows grpc-naming's own 'backends'" in result.stdout


MISSING_EXTRA_PLUGIN = """
    import naming
    from naming import Backend

    class NeedyBackend(Backend):
        schemes = ("needy",)
        requires = (("no_such_module_for_naming_tests", "grpc-naming[needy]"),)

        def build(self, target, **options):
            raise AssertionError("build() must not run without the library")

        def register(self, target, address, *, ttl, **options):
            raise AssertionError("register() must not run without the library")

    @naming.hookimpl
    def naming_register_backends(register):
        register(NeedyBackend())
"""


def test_a_missing_extra_fails_at_resolve_register_and_dial_with_the_install_hint(
    fresh_registry: PluginRegistry, write_dist: WriteDist
) -> None:
    module = unique("needy")
    write_dist(
        "naming-needy", {"naming.backends": {"needy": module}}, {module: MISSING_EXTRA_PLUGIN}
    )
    hint = r"pip install 'grpc-naming\[needy\]'"
    with pytest.raises(naming.MissingDependencyError, match=hint) as raised:
        naming.resolve("needy:///x")
    assert isinstance(raised.value, ImportError)
    assert str(raised.value).startswith("needy: ")
    with pytest.raises(naming.MissingDependencyError, match=hint):
        naming.register("needy:///x", "127.0.0.1:1")
    with pytest.raises(naming.MissingDependencyError, match=hint):
        naming.dial("needy:///x")


def test_the_cli_lists_a_backend_with_a_missing_extra_as_missing(
    fresh_registry: PluginRegistry, write_dist: WriteDist, capsys: pytest.CaptureFixture[str]
) -> None:
    from naming._cli import main

    module = unique("needy_cli")
    write_dist(
        "naming-needy-cli", {"naming.backends": {"needy": module}}, {module: MISSING_EXTRA_PLUGIN}
    )
    assert main(["backends"]) == 0
    line = next(row for row in capsys.readouterr().out.splitlines() if row.startswith("needy "))
    assert "missing: needs the no_such_module_for_naming_tests module" in line
    assert "pip install 'grpc-naming[needy]'" in line
