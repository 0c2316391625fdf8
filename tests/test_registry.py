"""The generic registry: decorator registration, did-you-mean lookup, listing, import paths, and
plugins from a really installed distribution (a `*.dist-info` on sys.path), broken ones included."""

from __future__ import annotations

import sys

import pytest

from ddray.errors import InputError
from ddray.registry import Registry, describe, import_object

GROUP = "ddray.test-shapes"

SHAPES = '''
    class Square:
        sides = 4

    class Triangle:
        sides = 3

    not_a_shape = 42
'''


def as_shape(name: str, obj: object, origin: str) -> type:
    if not isinstance(obj, type) or not hasattr(obj, "sides"):
        raise InputError(f"{origin}: expected a class with `sides`, got {describe(obj)}")
    return obj


def shapes() -> Registry[type]:
    return Registry("shape", GROUP, as_shape)


class Circle:
    sides = 0


def test_register_by_decorator_or_call_and_refuse_a_second_owner():
    reg = shapes()

    @reg.register("circle")
    class Round:
        sides = 0

    reg.register("disc", Circle)
    assert reg.get("circle") is Round and reg.get("disc") is Circle
    reg.register("disc", Circle)  # the same object again (a module imported twice) is fine
    with pytest.raises(ValueError, match="shape 'disc' is already registered"):
        reg.register("disc", Round)
    assert reg.names() == ["circle", "disc"]
    assert [name for name, _ in reg.items()] == ["circle", "disc"]


def test_unknown_name_suggests_and_lists():
    reg = shapes()
    reg.register("circle", Circle)
    with pytest.raises(InputError) as e:
        reg.get("circel", path="shapes.mine")
    assert str(e.value) == "shapes.mine: unknown shape 'circel' (did you mean 'circle'?); known: circle"
    assert reg.find("square") is None


def test_entry_points_load_lazily_and_a_broken_one_hides_nothing(install_dist):
    reg = shapes()
    reg.register("circle", Circle)
    install_dist("shapes-plugin", {GROUP: {
        "square": "reg_shapes_a:Square",
        "triangle": "reg_shapes_a:Triangle",
        "broken": "reg_shapes_missing_module:Thing",
        "number": "reg_shapes_a:not_a_shape",
        "circle": "reg_shapes_a:Square",  # a plugin cannot replace a built-in
    }}, {"reg_shapes_a": SHAPES})

    assert reg.names() == ["broken", "circle", "number", "square", "triangle"]
    assert "reg_shapes_a" not in sys.modules  # listing names imports nothing
    assert reg.get("square").sides == 4 and "reg_shapes_a" in sys.modules
    assert reg.get("circle") is Circle

    with pytest.raises(InputError) as e:
        reg.get("broken")
    message = str(e.value)
    assert "entry point 'broken' (reg_shapes_missing_module:Thing) in group 'ddray.test-shapes' failed to load" in message
    assert "ModuleNotFoundError" in message
    with pytest.raises(InputError, match=r"entry point 'number' \(reg_shapes_a:not_a_shape\): expected a class "
                                         r"with `sides`, got int 42"):
        reg.get("number")

    assert [name for name, _ in reg.items()] == ["circle", "square", "triangle"]
    problems = reg.problems()
    assert len(problems) == 2 and "'broken'" in problems[0] and "'number'" in problems[1]
    with pytest.raises(InputError, match="did you mean 'triangle'"):
        reg.get("triangel")


def test_entry_points_are_reread_when_sys_path_changes(install_dist):
    reg = shapes()
    assert reg.find("hexagon") is None
    install_dist("hex-plugin", {GROUP: {"hexagon": "reg_shapes_hex:Hexagon"}},
                 {"reg_shapes_hex": "class Hexagon:\n    sides = 6\n"})
    assert reg.get("hexagon").sides == 6


def test_import_paths_when_enabled(install_dist):
    install_dist("paths-plugin", {}, {"reg_shapes_b": SHAPES})
    direct = Registry("shape", GROUP, as_shape, import_paths=True)
    assert direct.get("reg_shapes_b:Triangle").sides == 3
    with pytest.raises(InputError, match="plugin 'reg_shapes_b:Hexagon': module 'reg_shapes_b' has no attribute"):
        direct.get("reg_shapes_b:Hexagon")
    with pytest.raises(InputError, match="plugin reg_shapes_b:not_a_shape: expected a class"):
        direct.get("reg_shapes_b:not_a_shape")
    with pytest.raises(InputError, match="unknown shape 'reg_shapes_b:Triangle'"):
        shapes().get("reg_shapes_b:Triangle")  # without the option a path is just an unknown name


def test_import_object_names_the_broken_part(install_dist):
    install_dist("raising-plugin", {}, {"reg_shapes_raises": "raise RuntimeError('no GPU here')\n"})
    with pytest.raises(InputError, match="expected 'module:function'"):
        import_object("just_a_module")
    with pytest.raises(InputError, match="cannot import module 'reg_no_such_module'"):
        import_object("reg_no_such_module:f")
    with pytest.raises(InputError, match="importing module 'reg_shapes_raises' failed: RuntimeError: no GPU here"):
        import_object("reg_shapes_raises:f")
