"""DD-Ranking's evaluation configs, written from their facts (`fixtures/ddranking-configs.tsv`).

The TSV has one row per YAML file of DD-Ranking's `eval/` folder (75 files: dataset, IPC as
written, student, teachers, labels, loss, augmentation, ZCA, optimizer, schedule, epochs, batch
sizes, transforms). `write_configs` writes each row back as a YAML file in DD-Ranking's key names
and layout (METHOD/DATASET/IPCk.yaml), with DD-Ranking's runtime keys as its files have them; the
RDED and EDC scripts' settings are written as configs too (`script_configs`). The facts also
drive the conformance test, which compares them with what ddray resolves.
"""

from __future__ import annotations

import ast
import csv
import re
from pathlib import Path
from typing import Any

import yaml

TSV = Path(__file__).parent / "fixtures" / "ddranking-configs.tsv"
SIZES = {"CIFAR10": 32, "CIFAR100": 32, "TinyImageNet": 64, "ImageNet1K": 224}
DSA_STD = {"flip": 0.5, "rotate": 15.0, "saturation": 2.0, "brightness": 1.0, "contrast": 0.5, "scale": 1.2,
           "crop": 0.125, "cutout": 0.5}
IMAGENET_NORM = {"name": "Normalize", "args": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}


def facts() -> list[dict[str, str]]:
    with TSV.open() as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def transforms(text: str) -> list[dict[str, Any]] | None:
    """'RandomResizedCrop(size=32,scale=[0.08, 1.0])|ToTensor|...' as DD-Ranking's [{name, args}] list."""
    if text == "-":
        return None
    out = []
    for item in text.split("|"):
        name, _, rest = item.partition("(")
        args = {k: _value(v) for k, v in re.findall(r"(\w+)=(\[[^\]]*\]|[^,)]+)", rest)}
        out.append({"name": name, "args": args} if args else {"name": name})
    return out


def config(row: dict[str, str]) -> dict[str, Any]:
    """One TSV row as the YAML mapping of DD-Ranking's file."""
    ds = row["dataset"]
    size = SIZES[ds]
    cfg: dict[str, Any] = {"dataset": ds, "real_data_path": "./dataset/", "ipc": int(row["ipc"]), "im_size": [size, size],
                           "model_name": row["model"]}
    stu, tea = row["tv(stu/tea)"].split("/")
    if tea == "None":
        cfg["use_torchvision"] = stu == "True"
    else:
        cfg.update(stu_use_torchvision=stu == "True", tea_use_torchvision=tea == "True", teacher_dir="./teacher_models")
        if row["teachers"] != "None":
            cfg["teacher_model_names"] = _value(row["teachers"])
    aug = None if row["aug"] == "None" else row["aug"]
    params = None if row["aug_params"] == "None" else DSA_STD if row["aug_params"] == "DSA-std" else _value(row["aug_params"])
    cfg.update(data_aug_func=aug, aug_params=params, use_zca=row["zca"] == "True",
               custom_train_trans=transforms(row["train_trans"]), custom_val_trans=transforms(row["val_trans"]))
    if row["aug4hard"] != "-":
        cfg["use_aug_for_hard"] = row["aug4hard"] == "True"
    if row["label_type"] != "-":
        cfg["label_type"] = row["label_type"]
    if row["sl_mode"] != "-":
        cfg.update(soft_label_mode=row["sl_mode"], soft_label_criterion=row["crit"],
                   loss_fn_kwargs={"temperature": float(row["T"]), "scale_loss": False})
    cfg.update(optimizer=row["opt"], lr_scheduler=row["sched"])
    if row["step"] != "-":
        cfg["step_size"] = int(row["step"])
    cfg["weight_decay"] = None if row["wd"] == "None" else float(row["wd"])
    if row["opt"] == "sgd":
        cfg["momentum"] = 0.9
    cfg.update(num_eval=5, num_epochs=int(row["epochs"]), num_workers=4, device="cuda", dist=True)
    syn, real, bs = row["syn_bs/real_bs/bs"].split("/")
    for key, v in (("syn_batch_size", syn), ("real_batch_size", real), ("batch_size", bs)):
        if v != "None":
            cfg[key] = int(v)
    if row["eval_full"] != "None":
        cfg["eval_full_data"] = row["eval_full"] == "True"
    method = row["file"].split("/")[0]
    cfg.update(save_path=f"./results/{ds.lower()}/ipc{row['ipc']}/{method.lower()}.csv",
               random_data_format=row["rdm_fmt"], random_data_path=f"./random_data/{row['file'].rsplit('.', 1)[0]}/")
    return cfg


RDED_MODELS = {"CIFAR10": ("ConvNet-3-BN",) * 3, "CIFAR100": ("ConvNet-3-BN", "ConvNet-3-BN", "ConvNet-4-BN"),
               "TinyImageNet": ("ConvNet-4-BN",) * 3, "ImageNet1K": ("ResNet-18-BN",) * 3}
RDED_SYN_BS = {"CIFAR10": (10, 50, 100), "CIFAR100": (20, 50, 200), "TinyImageNet": (100, 100, 200),
               "ImageNet1K": (20, 100, 200)}
EDC_TEACHERS = ["ResNet-18-BN", "AlexNet", "mobilenet_v2", "shufflenet_v2_x0_5", "efficientnet_b0"]


def _script_train(size: int, factor: int, scale: list[float]) -> list[dict[str, Any]]:
    return [{"name": "ToTensor"}, {"name": "ShufflePatches", "args": {"factor": factor}},
            {"name": "RandomResizedCrop", "args": {"size": size, "scale": scale}},
            {"name": "RandomHorizontalFlip", "args": {"p": 0.5}}, IMAGENET_NORM]


def _script_val(size: int) -> list[dict[str, Any]]:
    return [{"name": "Resize", "args": {"size": size // 7 * 8}}, {"name": "CenterCrop", "args": {"size": size}},
            {"name": "ToTensor"}, IMAGENET_NORM]


def rded_config(ds: str, i: int) -> dict[str, Any]:
    """RDED's script for dataset `ds`, the i-th of IPC 1/10/50, as a config (its keyword arguments)."""
    size, model = SIZES[ds], RDED_MODELS[ds][i]
    return {"dataset": ds, "real_data_path": "./datasets/", "ipc": (1, 10, 50)[i], "im_size": [size, size],
            "model_name": model, "stu_use_torchvision": False, "tea_use_torchvision": False,
            "teacher_dir": "./teacher_models", "teacher_model_names": [model], "data_aug_func": "cutmix",
            "aug_params": {"beta": 1.0}, "use_zca": False, "use_aug_for_hard": False,
            "custom_train_trans": _script_train(size, 1, [1, 1]), "custom_val_trans": _script_val(size),
            "soft_label_mode": "M", "soft_label_criterion": "kl", "loss_fn_kwargs": {"temperature": 20, "scale_loss": False},
            "optimizer": "adamw", "lr_scheduler": "cosine", "weight_decay": 0.01, "num_eval": 5, "num_epochs": 300,
            "real_batch_size": 256, "syn_batch_size": RDED_SYN_BS[ds][i], "num_workers": 4, "device": "cuda",
            "dist": True, "eval_full_data": ds in ("CIFAR10", "CIFAR100"), "random_data_format": "image",
            "random_data_path": f"./random_data/RDED/{ds}/IPC{(1, 10, 50)[i]}/", "default_lr": 0.001}


def edc_config(i: int) -> dict[str, Any]:
    """EDC's ImageNet-1k script (ARS), the i-th of IPC 1/10/50, as a config."""
    return {"dataset": "ImageNet1K", "real_data_path": "/path/to/your/dataset", "ipc": (1, 10, 50)[i],
            "im_size": [224, 224], "label_type": "soft", "soft_label_criterion": "mse_gt", "soft_label_mode": "M",
            "optimizer": "adamw", "lr_scheduler": "cosine", "weight_decay": 0.01,
            "loss_fn_kwargs": {"mse_weight": 1.0, "ce_weight": 0.025}, "num_epochs": 300, "num_eval": 5,
            "model_name": "ResNet-18-BN", "stu_use_torchvision": True, "tea_use_torchvision": True,
            "random_data_format": "image", "random_data_path": "./random_data_aug/EDC/ImageNet1K/",
            "teacher_dir": "./teacher_models", "teacher_model_names": EDC_TEACHERS, "data_aug_func": "cutmix",
            "aug_params": {"beta": 1.0}, "batch_size": 100, "num_workers": 4,
            "custom_train_trans": _script_train(224, 2, [0.5, 1]), "custom_val_trans": _script_val(224),
            "dist": True, "save_path": "./results_aug/edc.csv", "syn_lr": 0.001}


def script_configs() -> dict[str, dict[str, Any]]:
    """RDED (4 datasets × 3 IPCs) and EDC (ImageNet-1k × 3 IPCs) by relative path."""
    out = {f"RDED/{ds}/IPC{ipc}.yaml": rded_config(ds, i) for ds in RDED_MODELS for i, ipc in enumerate((1, 10, 50))}
    out.update({f"EDC/ImageNet1K/IPC{ipc}.yaml": edc_config(i) for i, ipc in enumerate((1, 10, 50))})
    return out


def write_configs(root: Path, scripts: bool = True) -> list[Path]:
    """The 75 files (and the scripts' settings) under `root` in DD-Ranking's layout; their paths."""
    files = {row["file"]: config(row) for row in facts()}
    if scripts:
        files.update(script_configs())
    out = []
    for rel, cfg in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(yaml.safe_dump(cfg, sort_keys=False))
        out.append(p)
    return out
