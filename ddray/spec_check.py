"""A spec made ready for use: resolved against the registries and checked against the world
(data roots, class counts, method parameters, protocol knobs per arch, resources, tuning).

Shape and types are `ddray.spec`'s job; this module collects every remaining problem so one
`ddray validate` lists them all as `path.to.field: message`, and answers once what the planner
must know from the registries (which methods need a teacher), so planning stays pure.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ddray.errors import InputError, did_you_mean
from ddray.keys import canonical_numbers
from ddray.protocols import PRESETS, Protocol
from ddray.spec import Spec, load_spec_text, parse_spec, validation_problems

if TYPE_CHECKING:
    from ddray.data import DatasetMeta


def _check_protocols(spec: Spec, problems: list[str]) -> None:
    for arch in spec.archs:
        try:
            spec.student_protocol(arch)
        except ValidationError as e:
            where = f"arch_overrides.{arch}" if arch in spec.arch_overrides else "overrides"
            problems += validation_problems(e, Protocol, prefix=where)
        except ValueError as e:
            problems.append(f"protocol: {e}")
    for arch in spec.arch_overrides:
        if arch not in spec.archs:
            problems.append(f"arch_overrides.{arch}: not one of archs{did_you_mean(arch, spec.archs)}")
    for ds in spec.datasets:
        try:
            spec.full_protocol(ds)
        except ValidationError as e:
            problems += validation_problems(e, Protocol, prefix="full")
            break
        except ValueError as e:
            problems.append(f"full: {e}")
            break


def method_problems(spec: Spec) -> list[str]:
    """Resolve what each method needs from the registry (its teacher), collecting what fails.

    Sets `MethodSpec.needs_teacher` on every method that resolves; the rest are problems
    (unknown kind, a plugin that fails to import, bad params), each naming its field.
    """
    from ddray.methods import get_method

    problems: list[str] = []
    for name, m in spec.methods.items():
        kind = m.resolved_kind(name)
        if kind == "files":
            m._needs_teacher = False
            continue
        try:
            entry = get_method(kind)
        except (InputError, ValueError, KeyError, ImportError) as e:
            problems.append(f"methods.{name}.kind: {e}" if m.kind else f"methods.{name}: {e}")
            continue
        try:
            params = entry.params_model.model_validate(m.params)
        except ValidationError as e:
            problems += validation_problems(e, entry.params_model, prefix=f"methods.{name}")
            continue
        m._needs_teacher = entry.requires_teacher(params)
        m._trained_arch = entry.requires_trained(params)
        m._defaults = param_defaults(entry.params_model)
    return problems


def param_defaults(model: type) -> dict[str, Any]:
    """A params model's plain defaults (what a param written out at its default equals)."""
    fields = getattr(model, "model_fields", {})
    return {n: canonical_numbers(f.default) for n, f in fields.items()
            if not f.is_required() and f.default_factory is None}


def resolve_methods(spec: Spec) -> Spec:
    """`spec` with every method's needs resolved (in place, and returned); InputError if one fails."""
    problems = method_problems(spec)
    if problems:
        raise InputError(problems)
    return spec


def load_spec(path: str | Path, check: bool = True, data: bool = True) -> Spec:
    """A spec file, parsed and resolved; with `check`, also checked against the registries and,
    with `data`, against the files on this machine (data roots, checkpoints, distilled sets).

    `data=False` is for planning: a plan needs no pixels, so `ddray plan` works where the data is not.
    """
    _, raw = load_spec_text(path)
    spec = parse_spec(raw)
    if check:
        check_spec(spec, data=data)
    else:
        resolve_methods(spec)
    return spec


def _check_params(spec: Spec, name: str, m, metas: dict[str, DatasetMeta], problems: list[str]) -> None:
    """A resolved method's params against each dataset's shape and the teacher (`MethodParams.check`)."""
    from ddray.methods import get_method
    from ddray.methods.contract import CheckContext, MethodParams

    entry = get_method(m.resolved_kind(name))
    params = entry.params(m.params)
    if not isinstance(params, MethodParams):  # plugins' free-form params: nothing to check here
        return
    teacher = spec.teacher_list[0].arch if m.needs_teacher else None
    for ds, meta in metas.items():
        for field, msg in params.check(CheckContext(meta, tuple(spec.ipc), teacher)):
            problems.append(f"methods.{name}{'.' + field if field else ''}: {msg} (dataset '{ds}')")


def _lr_search_conflicts(spec: Spec, name: str, lr: str | None) -> list[str]:
    """`lr: set` fixes the syn arm's lr, so it cannot sit beside a search over lr (it would be dropped)."""
    if lr != "set":
        return []
    searched = spec.tuning is not None and "lr" in spec.tuning.space
    try:
        searched = searched or any(isinstance(spec.student_protocol(a).lr, tuple) for a in spec.archs)
    except (ValidationError, ValueError):
        pass  # a bad protocol is reported by _check_protocols
    if not searched:
        return []
    return [f"methods.{name}.lr: 'set' trains the syn arm with the set's own lr, but this spec searches lr "
            "(protocol lr list or tuning.space.lr); drop one of them"]




def _files_problems(spec: Spec, name: str, template: str, lr: str | None, normalized: bool,
                    metas: dict[str, DatasetMeta]) -> list[str]:
    """Each local set exists, reads and checks against its dataset's meta (a NaN must not wait for the
    teacher), and ships an lr exactly when `lr` says how to use one (where cheap to tell)."""
    from ddray.methods.files import lr_choice_message, read_files, ships_lr

    problems = []
    for ds in spec.datasets:
        for ipc in spec.ipc:
            path = Path(template.format(dataset=ds, ipc=ipc))
            if not path.exists():
                problems.append(f"methods.{name}.files: {path} does not exist (dataset {ds}, ipc {ipc})")
                continue
            try:
                shipped = ships_lr(str(path))
            except InputError as e:
                problems += [f"methods.{name}.files: {p}" for p in e.problems]
                continue
            if ds in metas:  # the whole set, once, now
                try:
                    read_files(str(path), metas[ds], ipc, normalized)
                except InputError as e:
                    problems += [f"methods.{name}.files: {p}" for p in e.problems]
                    continue
            if shipped and lr is None:
                problems.append(f"methods.{name}.files: {path}: {lr_choice_message(None)}")
            elif shipped is False and lr == "set":
                problems.append(f"methods.{name}.lr: 'set', but {path} ships no learning rate (no lr.pt / lr entry)")
    return problems




def _check_methods(spec: Spec, metas: dict[str, DatasetMeta], problems: list[str], data: bool = True) -> None:
    problems += method_problems(spec)
    for name, m in spec.methods.items():
        kind = m.resolved_kind(name)
        if kind == "files":
            from ddray.methods.files import FilesParams

            try:
                params = FilesParams.model_validate({"files": m.files, **m.params})
            except ValidationError as e:
                problems += validation_problems(e, FilesParams, prefix=f"methods.{name}")
                continue
            problems += _lr_search_conflicts(spec, name, params.lr)
            if data and "://" not in params.files:  # object stores are checked when read
                problems += _files_problems(spec, name, params.files, params.lr, params.normalized, metas)
            continue
        if m._needs_teacher is not None:  # resolved: check its params against each dataset and the teacher
            _check_params(spec, name, m, metas, problems)
        if spec.method_labels(name) == "hybrid" and len(spec.teacher_list) < 2:
            problems.append(f"methods.{name}.labels: hybrid labels need at least two teachers")


def _check_full(spec: Spec, problems: list[str]) -> None:
    """`full.from_teacher` needs a pretrained checkpoint for every student arch."""
    if not spec.full.from_teacher:
        return
    lacking = [a for a in spec.archs if spec.pretrained_checkpoint(a) is None]
    if lacking:
        problems.append(f"full.from_teacher: no teacher checkpoint for student arch(s) {', '.join(lacking)}; "
                        "list a teacher {arch: ARCH, checkpoint: PATH} for each, or train the full-data arm "
                        "(from_teacher: false)")


def _check_resources(spec: Spec, problems: list[str]) -> None:
    allowed = set(spec.archs) | {t.arch for t in spec.teacher_list} | {"synth", "default", "full"}
    for key in spec.resources:
        if key not in allowed:
            problems.append(f"resources.{key}: not a student or teacher arch of this spec, 'synth', 'full' or 'default'{did_you_mean(key, allowed)}")


def _check_tuning(spec: Spec, problems: list[str]) -> None:
    """Every searched config must make a valid protocol for every student arch, before any trial runs."""
    if spec.tuning is None:
        return
    from ddray.tuning.space import apply_knobs

    configs = spec.tuning.configs()
    for arch in spec.archs:
        try:
            base = spec.student_protocol(arch)
        except (ValidationError, ValueError):
            continue  # reported by _check_protocols
        if isinstance(base.lr, tuple):
            problems.append("tuning: the protocol's lr is a list (its own lr search); with tuning, search lr in tuning.space.lr")
            return
        for knobs in configs:
            try:
                apply_knobs(base.model_dump(mode="json"), knobs, aug=True)
            except ValidationError as e:
                first = e.errors()[0]
                where = ".".join(str(x) for x in first["loc"])
                problems.append(f"tuning.space: {knobs} gives a bad protocol for {arch}: {where}: {first['msg']}")
                return


def _check_datasets(spec: Spec, bad_archs: set[str], problems: list[str]) -> dict[str, DatasetMeta]:
    """Each dataset's loader, root and class counts; each arch against its image size; IPC against its
    classes. Returns the meta of each dataset that loads (what method params and sets are checked with)."""
    from ddray.data import dataset_meta
    from ddray.models import validate_arch

    metas: dict[str, DatasetMeta] = {}
    for name, ds in spec.datasets.items():
        try:
            meta = dataset_meta(ds.loader or name, ds.root, field=f"datasets.{name}.root", **ds.options)
        except InputError as e:
            problems += [p if ":" in p.split(" ")[0] else f"datasets.{name}: {p}" for p in e.problems]
            continue
        except (ValueError, KeyError) as e:
            problems.append(f"datasets.{name}: {e}")
            continue
        metas[name] = meta
        smallest = min(meta.class_counts)
        for i, arch in enumerate(spec.archs):
            try:  # a ConvNet too deep for this image size fails here, not mid-benchmark
                if arch not in bad_archs:
                    validate_arch(arch, image_size=meta.image_shape[1])
            except (InputError, ValueError) as e:
                problems.append(f"archs.{i}: {e} (dataset '{name}')")
        for j, ipc in enumerate(spec.ipc):
            if ipc > smallest:
                problems.append(f"ipc.{j}: {ipc} images per class, but the smallest class of '{name}' has {smallest}")
    return metas


def _check_teacher_files(spec: Spec, metas: dict[str, DatasetMeta], bad_archs: set[str], problems: list[str]) -> None:
    """Each teacher checkpoint is loaded into its arch for every dataset, as a trial would: it must
    read (weights only), hold finite numbers and fit the arch and the class count."""
    from ddray.engine.teacher import load_teacher

    for i, t in enumerate(spec.teacher_list):
        if not t.checkpoint or t.arch in bad_archs or not Path(t.checkpoint).is_file():
            continue
        where = f"teachers.{i}" if isinstance(spec.teachers, list) else "teachers"
        for meta in metas.values():
            try:
                load_teacher(t.checkpoint, t.arch, meta)  # type: ignore[arg-type]  (shape and classes suffice)
            except InputError as e:
                problems += [f"{where}.checkpoint: {m}" for m in e.problems]
                break


def check_spec(spec: Spec, data: bool = True) -> None:
    """Check a parsed spec against the registries and, with `data`, against data roots, class counts
    and the files it names (checkpoints, distilled sets); raise every problem at once."""
    from ddray.models import validate_arch

    problems: list[str] = []
    metas: dict[str, DatasetMeta] = {}
    bad_archs: set[str] = set()  # each reported once, where the user wrote it
    for i, arch in enumerate(spec.archs):
        try:
            validate_arch(arch)
        except (InputError, ValueError) as e:
            problems.append(f"archs.{i}: {e}")
            bad_archs.add(arch)
    for i, t in enumerate(spec.teacher_list):
        where = f"teachers.{i}" if isinstance(spec.teachers, list) else "teachers"
        try:
            if spec.teachers is not None or t.arch not in bad_archs:  # the default teacher is archs[0]
                validate_arch(t.arch)
        except (InputError, ValueError) as e:
            problems.append(f"{where}.arch: {e}")
            bad_archs.add(t.arch)
        if data and t.checkpoint and not Path(t.checkpoint).is_file():
            problems.append(f"{where}.checkpoint: {t.checkpoint} is not a file")
    if data:
        metas = _check_datasets(spec, bad_archs, problems)
        _check_teacher_files(spec, metas, bad_archs, problems)
    if spec.protocol not in PRESETS:
        problems.append(f"protocol: unknown preset '{spec.protocol}'{did_you_mean(spec.protocol, PRESETS)}; known: {', '.join(PRESETS)}")
    else:
        _check_protocols(spec, problems)
    _check_methods(spec, metas, problems, data)
    if not bad_archs:  # a misspelled arch would also make its resources entry look unknown
        _check_resources(spec, problems)
    _check_full(spec, problems)
    _check_tuning(spec, problems)
    if problems:
        raise InputError(problems)
