"""Method registry: lookup with did-you-mean, params models, plugins (module:function and entry
points), and the time-to-synthesize wrapper."""

from __future__ import annotations

import textwrap

import pytest
import torch
from pydantic import ValidationError

from ddray.data import load_dataset
from ddray.errors import InputError
from ddray.methods import (
    DistilledSet,
    MethodEntry,
    SynthContext,
    class_major_labels,
    get_method,
    list_methods,
    registry,
    synthesize,
)

BUILTINS = {"random", "herding", "kcenter", "dm", "sre2l", "rded", "files"}

PLUGIN = textwrap.dedent('''
    import torch
    from ddray.methods import DistilledSet, class_major_labels

    def first_images(ctx):
        """Takes the first ipc training images of each class."""
        y = ctx.data.train.labels
        idx = torch.cat([torch.nonzero(y == c).flatten()[: ctx.ipc] for c in range(ctx.data.num_classes)])
        scale = (ctx.params.model_extra or {}).get("scale", 1.0)
        return ctx.data.train_images(idx) * scale, y[idx]

    def with_lr(ctx):
        images, labels = first_images(ctx)
        return DistilledSet(images, labels, lr=0.02)
    with_lr.needs_teacher = True

    def wrong_shape(ctx):
        return torch.zeros(3, 1, 8, 8), torch.zeros(3, dtype=torch.long)

    not_callable = 42
''')


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    (tmp_path / "my_dd_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_dd_plugin"


def ctx_for(entry: MethodEntry, data, raw: dict | None = None, ipc: int = 2, seed: int = 0) -> SynthContext:
    return SynthContext(data, ipc, seed, entry.params(raw), None, torch.device("cpu"))


def test_builtins_are_listed_with_descriptions():
    entries = {e.name: e for e in list_methods()}
    assert BUILTINS <= set(entries)
    assert all(entries[n].description for n in BUILTINS)
    assert {n for n in BUILTINS if entries[n].needs_teacher} == {"sre2l", "rded"}


def test_unknown_method_suggests_the_close_name():
    with pytest.raises(InputError, match=r"unknown method 'herdin' \(did you mean 'herding'\?\); known: .*kcenter"):
        get_method("herdin")


def test_params_forbid_unknown_keys_and_describe_every_field():
    for name in BUILTINS:
        model = get_method(name).params_model
        assert model.model_config.get("extra") == "forbid", name
        assert all(f.description for f in model.model_fields.values()), name
    with pytest.raises(ValidationError, match="iteration"):
        get_method("dm").params({"iteration": 5})
    with pytest.raises(ValidationError, match="arch"):
        get_method("dm").params({"arch": "convnet-d99"})
    assert get_method("dm").params({}).iterations == 200


def test_teacher_requirement_follows_params():
    herding = get_method("herding")
    assert not herding.requires_teacher(herding.params({}))
    assert herding.requires_teacher(herding.params({"features": "teacher"}))
    assert get_method("sre2l").requires_teacher()


def test_module_function_plugin(plugin_module, digits):
    entry = get_method(f"{plugin_module}:first_images")
    assert entry.description.startswith("Takes the first ipc") and not entry.needs_teacher
    params = entry.params({"scale": 2.0, "anything": [1, 2]})  # plugins take free-form params
    ds = synthesize(entry, SynthContext(digits, 2, 0, params, None, torch.device("cpu")))
    assert ds.images.shape == (20, 1, 8, 8)
    assert torch.equal(ds.labels, class_major_labels(10, 2))
    first = digits.train_images(torch.nonzero(digits.train.labels == 0).flatten()[:1])[0]
    assert torch.equal(ds.images[0], first * 2.0)
    assert ds.synth_seconds is not None and ds.device == "cpu"

    lr_entry = get_method(f"{plugin_module}:with_lr")
    assert lr_entry.needs_teacher
    assert synthesize(lr_entry, ctx_for(lr_entry, digits)).lr == 0.02


def test_plugin_errors_are_input_errors(plugin_module, digits):
    with pytest.raises(InputError, match="cannot import module 'no_such_module_xyz'"):
        get_method("no_such_module_xyz:fn")
    with pytest.raises(InputError, match="has no attribute 'nope'"):
        get_method(f"{plugin_module}:nope")
    with pytest.raises(InputError, match="not callable"):
        get_method(f"{plugin_module}:not_callable")
    entry = get_method(f"{plugin_module}:wrong_shape")
    with pytest.raises(InputError, match=r"plugin my_dd_plugin:wrong_shape: images have shape \(3, 1, 8, 8\); expected \(20, 1, 8, 8\)"):
        synthesize(entry, ctx_for(entry, digits))


def test_entry_point_plugins(install_dist, digits):
    install_dist("my-dd-methods", {registry.ENTRY_POINT_GROUP: {
        "mine": "my_dd_ep_plugin:first_images",
        "broken": "missing_mod_q:fn",
    }}, {"my_dd_ep_plugin": PLUGIN})
    entry = get_method("mine")
    assert entry.name == "mine" and entry.description.startswith("Takes the first ipc")
    assert synthesize(entry, ctx_for(entry, digits)).images.shape == (20, 1, 8, 8)
    with pytest.raises(InputError, match="entry point 'broken'.*failed to load"):
        get_method("broken")
    assert "mine" in {e.name for e in list_methods()}  # a broken plugin does not hide the others
    assert {"mine", "broken"} <= set(registry.methods.names())
    assert any("'broken'" in p for p in registry.methods.problems())
    with pytest.raises(InputError, match=r"did you mean 'mine'"):
        get_method("mien")


def test_register_method_rejects_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        registry.register_method("random", get_method("random").params_model)(lambda ctx: None)


def test_synthesize_stamps_time_and_device(digits):
    calls = []

    def fake(ctx: SynthContext) -> DistilledSet:
        calls.append(ctx.seed)
        return DistilledSet(torch.zeros(10, 1, 8, 8), class_major_labels(10, 1))

    entry = MethodEntry("fake", get_method("random").params_model, False, fake, "")
    ds = synthesize(entry, SynthContext(digits, 1, 3, entry.params(), None, torch.device("cpu")))
    assert calls == [3] and ds.synth_seconds >= 0 and ds.device == "cpu"
