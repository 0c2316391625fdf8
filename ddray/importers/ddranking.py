"""One DD-Ranking evaluation config (its `eval/METHOD/DATASET/IPCk.yaml`) mapped to ddray, field by field.

DD-Ranking defines its leaderboard by 75 YAML files (and the RDED/EDC scripts, whose settings a
user can write as the same keys). `import_config` reads one parsed file and returns what ddray
evaluates for it — student arch, protocol knobs, teachers, full-data arm, seeds, the `files`
method of its released set — with a `Note` for every key: mapped (to which knob), fixed (one of
0.2.0's known bugs, with the value ddray used), differs (ddray does it another way on purpose),
ignored (a runtime key that changes no number) or error (no ddray knob can say it). Nothing is
dropped silently: a key this module does not know is an error naming it.

Facts behind the defaults (ddranking 0.2.0's code): the learning rate is searched over
[0.001, 0.005, 0.01, 0.05, 0.1] unless the set ships one; the test split is evaluated every 20
epochs and the best accuracy kept; the random arm trains with `syn_batch_size` and only the
full-data arm with `real_batch_size`; several teachers' logits are averaged.
"""

from __future__ import annotations

import re
from typing import Any

from ddray.errors import InputError
from ddray.importers.ddranking_transforms import train_transforms, val_transforms
from ddray.importers.ddranking_types import DATASETS, Imported

LR_SEARCH = (0.001, 0.005, 0.01, 0.05, 0.1)   # ddranking 0.2.0's lr_list
TEST_INTERVAL = 20                            # ddranking 0.2.0's test_interval: best of these evaluations
DSA_STD = {"flip": 0.5, "rotate": 15.0, "saturation": 2.0, "brightness": 1.0, "contrast": 0.5, "scale": 1.2,
           "crop": 0.125, "cutout": 0.5}
LEARNED_LR = ("MTT", "DATM")                  # methods whose released sets ship lr.pt
# Keys that change no number: where files are, how many workers, where results go.
RUNTIME = {"real_data_path": "the dataset's root", "device": "ddray places trials",
           "dist": "ddray places trials (one process per trial)", "save_path": "rows go to the spec's store",
           "random_data_path": "ddray draws the random arm from the trial seed", "teacher_dir": "teacher checkpoints' folder",
           "im_size": "the dataset's size", "dataset": "the spec's dataset", "ipc": "the spec's IPC",
           "random_data_format": "ddray draws the random arm itself (stored pixels)"}
_PATH = re.compile(r"(?:^|/)(?P<method>[^/]+)/(?P<dataset>[^/]+)/IPC(?P<ipc>\d+)(?:_[A-Za-z]+)?\.ya?ml$")


def parse_path(path: str) -> tuple[str, str, int]:
    """(method, dataset, IPC) from DD-Ranking's layout `.../METHOD/DATASET/IPCk.yaml` (G-VBSM's `IPCk_Aug.yaml` too)."""
    m = _PATH.search(path.replace("\\", "/"))
    if not m:
        raise InputError("not DD-Ranking's layout METHOD/DATASET/IPC<k>.yaml: the method, dataset and IPC come from the path",
                         path=path)
    if m["dataset"] not in DATASETS:
        raise InputError(f"unknown DD-Ranking dataset '{m['dataset']}'; known: {', '.join(DATASETS)}", path=path)
    return m["method"], m["dataset"], int(m["ipc"])


def import_config(path: str, cfg: dict[str, Any]) -> Imported:
    """Map one parsed config (its `path` gives method, dataset and IPC); problems are `error` notes."""
    method, dataset, ipc = parse_path(path)
    imp = Imported(file=f"{method}/{dataset}/{path.replace(chr(92), '/').rsplit('/', 1)[-1]}", method=method,
                   dataset=dataset, ipc=ipc)
    seen = set(_check_where(imp, cfg))
    for step in (_student, _teachers_and_labels, _optimizer, _schedule, _augment, _transforms, _batches_and_full,
                 _seeds_and_lr):
        seen |= set(step(imp, cfg))
    for key in cfg:
        if key in RUNTIME and key not in seen:
            imp.note(key, "ignored", RUNTIME[key])
        elif key not in RUNTIME and key not in seen:
            imp.note(key, "error", "a key ddray does not know; remove it or map it by hand")
    return imp


def _check_where(imp: Imported, cfg: dict[str, Any]) -> list[str]:
    """dataset, ipc, im_size against the path and the dataset; the path wins, a disagreement is reported."""
    if cfg.get("dataset") not in (None, imp.dataset):
        imp.note("dataset", "error", f"says '{cfg['dataset']}' but the file is under {imp.dataset}/")
    if "ipc" in cfg and cfg["ipc"] != imp.ipc:
        imp.note("ipc", "fixed", f"says {cfg['ipc']} but the file is IPC{imp.ipc}: ddray uses IPC {imp.ipc} (the path)")
    size = DATASETS[imp.dataset][1]
    if "im_size" in cfg and list(cfg["im_size"]) != [size, size]:
        imp.note("im_size", "error", f"{cfg['im_size']}: ddray's {imp.dataset} is {size}×{size}")
    folder = DATASETS[imp.dataset][2]
    base = str(cfg.get("real_data_path") or "./dataset/").rstrip("/")
    imp.root = f"{base}/{folder}" if folder else base
    return ["dataset", "ipc", "im_size"]


def model_arch(name: str, torchvision: bool | None, size: int, where: str) -> str:
    """ddray's model name for a DD-Ranking model name; InputError when none fits.

    ResNet-18-BN with `use_torchvision` is torchvision's ResNet-18, whose stem DD-Ranking swaps
    for a 3×3 stride-1 conv without max-pool at 32 and 64 px: ddray's CIFAR-style `resnet18`
    there, `tv:resnet18` at 224 px. Without torchvision it is DD-Ranking's own ResNet-18-BN.
    """
    convnets = {"ConvNet-3": "convnet-d3", "ConvNet-4": "convnet-d4", "ConvNet-3-BN": "convnet-d3-bn",
                "ConvNet-4-BN": "convnet-d4-bn"}
    if name in convnets:
        return convnets[name]
    if name == "ResNet-18-BN":
        return ("resnet18" if size <= 64 else "tv:resnet18") if torchvision else "resnet18-bn"
    if name == "AlexNet":
        return "tv:alexnet"
    if re.fullmatch(r"[a-z][a-z0-9_]*", name):  # DD-Ranking hands other names to torchvision.models.get_model
        return f"tv:{name}"
    raise InputError(f"'{name}' has no ddray model; known: {', '.join(convnets)}, ResNet-18-BN, AlexNet, "
                     "torchvision names such as mobilenet_v2", path=where)


def _student(imp: Imported, cfg: dict[str, Any]) -> list[str]:
    tv = cfg.get("stu_use_torchvision", cfg.get("use_torchvision"))
    try:
        imp.arch = model_arch(str(cfg.get("model_name")), bool(tv), DATASETS[imp.dataset][1], "model_name")
        imp.note("model_name", "mapped", f"{cfg.get('model_name')} -> arch {imp.arch}")
    except InputError as e:
        imp.note("model_name", "error", e.problems[0].split(": ", 1)[1])
    imp.note("stu_use_torchvision" if "stu_use_torchvision" in cfg else "use_torchvision", "mapped",
             f"{tv} -> arch {imp.arch or '?'}")
    return ["model_name", "stu_use_torchvision", "use_torchvision"]


def _teacher_names(imp: Imported, cfg: dict[str, Any]) -> list[str]:
    names = cfg.get("teacher_model_names")
    if names is None and cfg.get("soft_label_mode"):
        names = [cfg.get("model_name")]
        imp.note("teacher_model_names", "fixed", f"missing (0.2.0 fails on it) while soft_label_mode is "
                 f"{cfg['soft_label_mode']}: ddray uses the student's model, {names}")
    return [str(n) for n in names or []]


def _teachers_and_labels(imp: Imported, cfg: dict[str, Any]) -> list[str]:
    names = _teacher_names(imp, cfg)
    if not names:
        imp.knobs.update(labels="hard", loss="ce")
        return ["teacher_model_names"]
    tv = bool(cfg.get("tea_use_torchvision", cfg.get("use_torchvision")))
    tdir = str(cfg.get("teacher_dir") or "./teacher_models").rstrip("/")
    for name in names:
        try:
            arch = model_arch(name, tv, DATASETS[imp.dataset][1], "teacher_model_names")
        except InputError as e:
            imp.note("teacher_model_names", "error", e.problems[0].split(": ", 1)[1])
            continue
        imp.teachers.append({"arch": arch, "checkpoint": f"{tdir}/{imp.dataset}/{name}/ckpt_best.pt"})
    imp.note("teacher_model_names", "mapped", f"{names} -> teachers {[t['arch'] for t in imp.teachers]} "
             f"(checkpoints {tdir}/{imp.dataset}/<name>/ckpt_best.pt, DD-Ranking's layout)")
    imp.note("tea_use_torchvision", "mapped", f"{tv} -> teacher archs")
    labels = "hybrid" if len(names) > 1 else "soft"
    if labels == "hybrid":
        imp.note("teacher_model_names", "differs", "several teachers: ddray rescales each teacher's logits to the "
                 "batch's mean Frobenius norm before averaging (DESIGN §5); DD-Ranking averages the raw logits")
    if cfg.get("label_type") not in (None, "soft"):
        imp.note("label_type", "error", f"'{cfg['label_type']}' with teachers: only soft is known")
    else:
        imp.note("label_type", "mapped", f"{cfg.get('label_type')} -> labels {labels}")
    mode = cfg.get("soft_label_mode")
    if mode == "M" or mode is None:
        imp.note("soft_label_mode", "mapped", "M -> the teacher(s) label every augmented batch (ddray's soft/hybrid labels)")
    else:
        imp.knobs["soft_labels"] = "set"
        imp.note("soft_label_mode", "mapped", f"{mode} -> soft_labels: set: the set's stored soft labels; "
                 "the random arm labelled once by the teacher")
    imp.knobs["labels"] = labels
    _loss(imp, cfg)
    return ["teacher_model_names", "tea_use_torchvision", "label_type", "soft_label_mode", "soft_label_criterion",
            "loss_fn_kwargs"]


def _loss(imp: Imported, cfg: dict[str, Any]) -> None:
    crit = cfg.get("soft_label_criterion")
    kw = dict(cfg.get("loss_fn_kwargs") or {})
    if crit not in ("kl", "sce", "mse_gt"):
        imp.note("soft_label_criterion", "error", f"'{crit}': ddray's soft losses are kl, sce and mse_gt")
        return
    imp.knobs["loss"] = crit
    if crit == "mse_gt":
        imp.knobs.update(mse_weight=float(kw.pop("mse_weight", 1.0)), mse_gamma=float(kw.pop("ce_weight", 0.1)))
    else:
        imp.knobs["temperature"] = float(kw.pop("temperature", 1.0 if crit == "sce" else 1.2))
    imp.knobs["kl_t2"] = bool(kw.pop("scale_loss", False))
    imp.note("soft_label_criterion", "mapped", f"{crit} -> loss {crit}")
    if kw:
        imp.note("loss_fn_kwargs", "error", f"{sorted(kw)}: no ddray knob")
    else:
        knobs = {k: imp.knobs[k] for k in ("temperature", "kl_t2", "mse_weight", "mse_gamma") if k in imp.knobs}
        imp.note("loss_fn_kwargs", "mapped", f"{cfg.get('loss_fn_kwargs')} -> {knobs}")


def _optimizer(imp: Imported, cfg: dict[str, Any]) -> list[str]:
    opt = cfg.get("optimizer")
    if opt not in ("sgd", "adam", "adamw"):
        imp.note("optimizer", "error", f"'{opt}': ddray's optimizers are sgd, adam and adamw")
        return ["optimizer"]
    imp.knobs["optimizer"] = opt
    imp.note("optimizer", "mapped", f"{opt} -> optimizer {opt}")
    wd = cfg.get("weight_decay")
    if wd is None:
        wd = 0.01 if opt == "adamw" else 5e-4
        imp.note("weight_decay", "fixed", f"null (0.2.0's {opt} fails on None): ddray uses {wd}, its other files' value")
    else:
        imp.note("weight_decay", "mapped", f"{wd} -> weight_decay")
    imp.knobs["weight_decay"] = float(wd)
    if opt == "sgd":
        imp.knobs["momentum"] = float(cfg.get("momentum", 0.9))
        imp.note("momentum", "mapped", f"{imp.knobs['momentum']} -> momentum")
    elif "momentum" in cfg:
        imp.note("momentum", "ignored", f"{opt} does not use it (0.2.0 neither)")
    return ["optimizer", "weight_decay", "momentum"]


def _schedule(imp: Imported, cfg: dict[str, Any]) -> list[str]:
    epochs = int(cfg.get("num_epochs") or 0)
    if epochs <= 0:
        imp.note("num_epochs", "error", f"{cfg.get('num_epochs')}: a positive number of epochs is required")
        return ["num_epochs", "lr_scheduler", "step_size"]
    imp.knobs.update(epochs=epochs, checkpoint="best", eval_every=TEST_INTERVAL)
    imp.note("num_epochs", "mapped", f"{epochs} -> epochs; checkpoint best of a test every {TEST_INTERVAL} epochs "
             "(0.2.0's test_interval)")
    sched = cfg.get("lr_scheduler")
    if sched == "cosine":  # 0.2.0's LambdaLR 0.5·(1 + cos(π·e/E/2)): a half cosine
        imp.knobs.update(schedule="cosine", zeta=2.0)
    elif sched == "cosineannealing":
        imp.knobs.update(schedule="cosine", zeta=1.0)
    elif sched == "step":
        step = cfg.get("step_size")
        if not step:
            step = epochs // 2
            imp.note("step_size", "fixed", f"missing (0.2.0's step scheduler asserts): ddray uses {step}, "
                     "half the epochs as every other step config")
        else:
            imp.note("step_size", "mapped", f"{step} -> step_at")
        imp.knobs.update(schedule="step", step_gamma=0.1, fresh_optimizer_at_step=False,
                         step_at=tuple(k * step / epochs for k in range(1, -(-epochs // step)) if k * step < epochs))
    else:
        imp.note("lr_scheduler", "error", f"'{sched}': ddray maps cosine, cosineannealing and step")
        return ["num_epochs", "lr_scheduler", "step_size"]
    imp.note("lr_scheduler", "mapped", f"{sched} -> schedule {imp.knobs['schedule']}"
             + (f", ζ {imp.knobs['zeta']:g}" if "zeta" in imp.knobs else f", step_at {imp.knobs['step_at']}"))
    return ["num_epochs", "lr_scheduler", "step_size"]


def _augment(imp: Imported, cfg: dict[str, Any]) -> list[str]:
    func, params = cfg.get("data_aug_func"), dict(cfg.get("aug_params") or {})
    aug: dict[str, Any] = imp.knobs.setdefault("augment", {})
    if func is None:
        imp.note("data_aug_func", "mapped", "null -> no batch augmentation")
    elif func == "dsa":
        if params != DSA_STD:
            imp.note("aug_params", "error", f"{params}: ddray's DSA has DD-Ranking's standard parameters {DSA_STD} only")
        aug["dsa"] = True
        imp.note("data_aug_func", "mapped", "dsa (standard parameters) -> augment.dsa")
    elif func == "cutmix" and set(params) <= {"beta"}:
        aug["cutmix"] = float(params.get("beta", 1.0))
        imp.note("data_aug_func", "mapped", f"cutmix β {aug['cutmix']:g} -> augment.cutmix")
    elif func == "mixup" and set(params) <= {"lambda"}:
        aug["mixup"] = float(params.get("lambda", 1.0))  # 0.2.0 draws Beta(λ, λ) weights, as ddray's mixup
        imp.note("data_aug_func", "mapped", f"mixup Beta(λ, λ), λ {aug['mixup']:g} -> augment.mixup")
    else:
        imp.note("data_aug_func", "error", f"'{func}' with {params}: ddray maps dsa, cutmix (beta) and mixup (lambda)")
    if func not in (None, "dsa"):
        imp.note("aug_params", "mapped", f"{params}")
    elif func is None and params:
        imp.note("aug_params", "error", f"{params} without data_aug_func")
    if cfg.get("use_zca"):
        imp.knobs.update(zca=True, zca_eps=0.1)  # kornia's ZCAWhitening(eps=0.1), fit on the train split
    imp.note("use_zca", "mapped", f"{bool(cfg.get('use_zca'))} -> zca" + (", zca_eps 0.1" if cfg.get("use_zca") else ""))
    if "use_aug_for_hard" in cfg:
        imp.knobs["aug_for_hard"] = bool(cfg["use_aug_for_hard"])
        imp.note("use_aug_for_hard", "mapped", f"{cfg['use_aug_for_hard']} -> aug_for_hard")
    return ["data_aug_func", "aug_params", "use_zca", "use_aug_for_hard"]


def _transforms(imp: Imported, cfg: dict[str, Any]) -> list[str]:
    train_transforms(imp, cfg.get("custom_train_trans"))
    val_transforms(imp, cfg.get("custom_val_trans"))
    return ["custom_train_trans", "custom_val_trans"]


def _batches_and_full(imp: Imported, cfg: dict[str, Any]) -> list[str]:
    """Batch sizes: syn_batch_size trains the syn *and* random arms (0.2.0's loaders), real_batch_size
    only the full-data arm; `batch_size` (the ARS evaluator's) all of them."""
    syn, real, both = cfg.get("syn_batch_size"), cfg.get("real_batch_size"), cfg.get("batch_size")
    bs = syn or both
    if not bs:
        imp.note("syn_batch_size", "error", "no syn_batch_size or batch_size")
    else:
        imp.knobs["batch_size"] = int(bs)
        imp.note("syn_batch_size" if syn else "batch_size", "mapped", f"{bs} -> batch_size of the syn and rdm arms")
    full = cfg.get("eval_full_data")
    if full is None and imp.dataset in ("CIFAR10", "CIFAR100"):
        imp.note("eval_full_data", "fixed", f"missing (0.2.0 then looks up a cached {imp.dataset} accuracy it does "
                 "not have, and fails): ddray trains the full-data arm, as the other files of this method")
        full = True
    if full:
        imp.full = {"batch_size": int(real or bs or 256)}
        imp.note("eval_full_data", "mapped", "true -> the full-data arm is trained (ddray's per-dataset full recipe)")
        if real:
            imp.note("real_batch_size", "mapped", f"{real} -> full.batch_size (0.2.0 uses it for the full-data arm only)")
    else:
        imp.full = {"from_teacher": True}
        imp.note("eval_full_data", "differs", f"{full} -> full.from_teacher: Acc(full) of the student arch's teacher "
                 "checkpoint, evaluated on the test split (0.2.0 uses a cached constant)")
        if real:
            imp.note("real_batch_size", "ignored", "no full-data arm is trained (eval_full_data false)")
    return ["syn_batch_size", "real_batch_size", "batch_size", "eval_full_data"]


def _seeds_and_lr(imp: Imported, cfg: dict[str, Any]) -> list[str]:
    imp.seeds = int(cfg.get("num_eval") or 5)
    imp.note("num_eval", "mapped", f"{imp.seeds} -> seeds 0..{imp.seeds - 1}")
    if cfg.get("num_workers"):
        imp.cpu = int(cfg["num_workers"])
        imp.note("num_workers", "mapped", f"{imp.cpu} -> resources.{imp.arch}.cpu (a trial's CPUs, its torch threads); "
                 "the GPU fraction is ddray's per-arch default")
    if "default_lr" in cfg:
        imp.knobs["lr"] = float(cfg["default_lr"])
        imp.note("default_lr", "fixed", f"{cfg['default_lr']}: 0.2.0 does not read it (a config) or rejects it "
                 f"(a script keyword); ddray uses lr {imp.knobs['lr']:g} for every arm")
    elif "syn_lr" in cfg:
        imp.knobs["lr"] = float(cfg["syn_lr"])
        imp.note("syn_lr", "differs", f"{cfg['syn_lr']} (the scripts' compute_metrics argument) -> lr "
                 f"{imp.knobs['lr']:g} for the syn and rdm arms alike (0.2.0 searches the rdm arm's)")
    else:
        imp.knobs["lr"] = LR_SEARCH
        imp.note("lr", "mapped", f"not in the file -> lr searched over {list(LR_SEARCH)} on a validation split, "
                 "the same list for syn and rdm (0.2.0 searches it on the test split)")
    if imp.method in LEARNED_LR:
        searched = isinstance(imp.knobs["lr"], tuple)
        imp.method_params["lr"] = "protocol" if searched else "set"
        imp.note("lr", "differs" if searched else "mapped", f"{imp.method}'s released sets ship lr.pt -> files param "
                 + ("lr: protocol: the syn arm gets the same lr search as the rdm arm (DESIGN §4's fairness rule; "
                    "0.2.0 trains it with lr.pt and searches only the rdm arm's)" if searched else "lr: set"))
    if cfg.get("random_data_format") == "tensor" and cfg.get("soft_label_mode") == "S":
        imp.note("random_data_format", "fixed", "tensor with soft_label_mode S (0.2.0 fails labelling it): "
                 "ddray draws the random arm from the trial seed and labels it with the teacher")
    return ["num_eval", "num_workers", "default_lr", "syn_lr", "random_data_format"]
