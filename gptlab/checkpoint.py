"""Checkpoint folders: config.json, model.safetensors, tokenizer.json, metrics.json, README.md.

Loading reads JSON and safetensors only (never a pickle), validates the config before any
tensor is allocated, and checks every tensor's name, shape and dtype against the config.
Saving unwraps torch.compile, DataParallel, DistributedDataParallel and AveragedModel, so the
file always holds the GPT-2 names; loading removes the prefixes those wrappers leave
(``_orig_mod.``, ``module.``) in files written by other tools, and any other prefix every name
carries in front of a gptlab name (Lightning's ``model.``).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn
from torch.optim.swa_utils import AveragedModel

from .card import model_card
from .errors import CheckpointError, ConfigError
from .fileio import write_atomic, write_text_atomic
from .hub import download_checkpoint, looks_like_repo_id
from .models import GPT, BigramLanguageModel, LanguageModel, ModelConfig, build_model, count_parameters
from .settings import from_json
from .tokenizers import BPETokenizer, CharTokenizer, load_tokenizer

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
CARD_FILE = "README.md"
FORMAT_VERSION = 1
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
WEIGHT_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}
MODEL_METADATA = "gptlab_model"  # model.safetensors metadata: the ModelConfig the weights were saved with
# torch.compile keeps the model as ``_orig_mod``; DataParallel, DistributedDataParallel and
# AveragedModel keep it as ``module``: each puts its attribute name in front of every tensor name
COMPILED_PREFIX = "_orig_mod."
# how every gptlab tensor name begins (the GPT-2 names, and the bigram's table); a file whose names all carry
# something more in front (Lightning's ``model.``, a wrapper's attribute) holds them behind a foreign prefix
OWN_NAME = re.compile(r"(transformer\.(wte|wpe|ln_f|h\.\d+)|lm_head|token_embedding_table)\.")
MODULE_WRAPPERS = (nn.DataParallel, nn.parallel.DistributedDataParallel, AveragedModel)
GATHER = ("gather a full state dict (torch.distributed.checkpoint.state_dict.get_model_state_dict with "
          "full_state_dict=True), load it into a plain gptlab model and save that.")
# every ModelConfig field that decides the weights' names, shapes or meaning (dropout does not)
WEIGHT_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name != "dropout")


@dataclass
class Checkpoint:
    """A loaded model with its tokenizer and what its folder says about it."""

    model: LanguageModel
    tokenizer: CharTokenizer | BPETokenizer
    folder: Path
    info: dict[str, Any] = field(default_factory=dict)  # config.json minus the model block
    metrics: dict[str, Any] = field(default_factory=dict)  # metrics.json, if present

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def n_params(self) -> int:
        return count_parameters(self.model)

    @property
    def best_val_loss(self) -> float | None:
        best = self.metrics.get("best") or {}
        return best.get("val_loss")


def save_checkpoint(
    folder: str | Path,
    model: LanguageModel,
    tokenizer: CharTokenizer | BPETokenizer,
    *,
    metrics: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write a complete checkpoint folder, each file atomically (old or new, never half).

    ``model`` may be wrapped (see unwrap_model); the files hold the gptlab model inside it.
    Raises CheckpointError for a model that could not be loaded back (see model_state).
    """
    model = unwrap_model(model)
    model_state(model)  # refuse what could not be loaded again before any file is written
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"format": "gptlab", "format_version": FORMAT_VERSION, "model": model.config.to_dict(),
              "tokenizer": tokenizer.kind, **(info or {})}
    tokenizer.save(folder)
    write_text_atomic(folder / CONFIG_FILE, json.dumps(config, indent=2))
    save_weights(folder / WEIGHTS_FILE, model, dtype)
    if metrics is not None:
        write_text_atomic(folder / METRICS_FILE, json.dumps(metrics, indent=2))
    write_text_atomic(folder / CARD_FILE, model_card(model.config, config, metrics or {}, count_parameters(model)))
    return folder


def save_weights(path: Path, model: nn.Module, dtype: torch.dtype | None = None) -> None:
    """model.safetensors; a tied lm_head is stored once (as transformer.wte) and re-tied on load.

    The metadata records the ModelConfig, so a later edit of config.json that the shapes cannot
    reveal (n_head, mlp, qk_norm) is caught on load.
    """
    model = unwrap_model(model)
    tensors = {
        name: t.detach().to(dtype or t.dtype).contiguous().cpu()
        for name, t in model_state(model).items()
        if name not in tied_names(model)
    }
    metadata = {"format": "pt", MODEL_METADATA: json.dumps(model.config.to_dict())}
    write_atomic(path, lambda p: save_file(tensors, str(p), metadata=metadata))


def tied_names(model: LanguageModel) -> set[str]:
    return {"lm_head.weight"} if model.config.tie_weights else set()


def unwrap_model(model: nn.Module) -> LanguageModel:
    """The gptlab model (GPT or BigramLanguageModel) inside torch.compile, DataParallel,
    DistributedDataParallel or AveragedModel wrappers, nested in any order.

    Raises CheckpointError for any other module (FSDP, a Sequential, a foreign model): its
    weights are not a gptlab model's, or not all in this process.
    """
    inner = model
    while not isinstance(inner, (GPT, BigramLanguageModel)):
        if isinstance(inner, MODULE_WRAPPERS):
            inner = inner.module
        elif isinstance(getattr(inner, "_orig_mod", None), nn.Module):  # torch.compile's OptimizedModule
            inner = inner._orig_mod
        else:
            fsdp = "FullySharded" in type(inner).__name__
            sharded = f" FSDP shards the weights across processes: {GATHER}" if fsdp else ""
            raise CheckpointError(
                f"A {type(inner).__name__} is not a gptlab model: checkpoints and training states hold a GPT or "
                f"BigramLanguageModel, bare or wrapped by torch.compile, DataParallel, DistributedDataParallel or "
                f"AveragedModel.{sharded}"
            )
    return inner


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict of the gptlab model in ``model`` under its GPT-2 names (tied weights twice).

    Unwraps as unwrap_model does, and also blocks compiled in place (``_orig_mod.`` inside a
    name). Raises CheckpointError when a name, shape or tensor type is not what the model's config
    builds (a resized embedding, an added module, FSDP's sharded DTensors): such a file could not
    be loaded again.
    """
    model = unwrap_model(model)
    state = {name.replace(COMPILED_PREFIX, ""): t for name, t in model.state_dict().items()}
    expected = build_model(model.config, "meta").state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"Cannot save this model: its tensors are not those its config builds (missing {missing[:5]}, "
            f"unexpected {extra[:5]}), so the checkpoint could not be loaded. Save the model build_model made."
        )
    for name, t in state.items():
        if type(t) is not torch.Tensor:  # a tensor subclass: DTensor (FSDP, tensor parallel), quantized...
            raise CheckpointError(
                f"Cannot save this model: {name} is a {type(t).__name__}, not a plain tensor. {GATHER}"
            )
        if t.shape != expected[name].shape:
            raise CheckpointError(
                f"Cannot save this model: {name} has shape {tuple(t.shape)} but its config implies "
                f"{tuple(expected[name].shape)}. Build the model from a config that matches its weights."
            )
    return state


def own_names(names: list[str]) -> dict[str, str]:
    """Each stored tensor name mapped to the gptlab name it stands for.

    Removes the prefixes wrappers leave in files written by other tools: ``module.`` when every
    name carries it (DataParallel, DistributedDataParallel, AveragedModel, whose ``n_averaged``
    counter is dropped), ``_orig_mod.`` anywhere (torch.compile, of the model or of a block), then
    any other prefix all names share in front of gptlab names (foreign_prefix: Lightning's ``model.``).
    Names come back unchanged if stripping would make two of them the same.
    """
    mapping = {name: name.replace(COMPILED_PREFIX, "") for name in names}
    module = "module."
    while any(n.startswith(module) for n in mapping.values()) and all(
            n.startswith(module) or n == "n_averaged" for n in mapping.values()):  # wrappers nest
        mapping = {k: v[len(module):] for k, v in mapping.items() if v != "n_averaged"}
    prefix = foreign_prefix(list(mapping.values()))
    mapping = {k: v[len(prefix):] for k, v in mapping.items()}
    if len(set(mapping.values())) != len(mapping):
        return {name: name for name in names}
    return mapping


def foreign_prefix(names: list[str]) -> str:
    """The dotted prefix that every name carries in front of a gptlab name (OWN_NAME), e.g. ``model.``
    from a Lightning module or ``transformer.`` from a wrapper attribute of that name; '' when the names
    are gptlab's already, or when no single prefix (none, or several) makes every one of them gptlab's."""
    if not names or all(OWN_NAME.match(n) for n in names):
        return ""
    parts = names[0].split(".")
    fits = [p for p in (".".join(parts[:i]) + "." for i in range(1, len(parts)))
            if all(n.startswith(p) and OWN_NAME.match(n[len(p):]) for n in names)]
    return fits[0] if len(fits) == 1 else ""


def fields_from_weights(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """The ModelConfig fields that tensor names and shapes (gptlab names) reveal.

    Used where no recorded config exists (files saved before it was recorded). ``kind`` comes
    back as "gpt" for any rung with MLPs ("blocks" has the same weights); n_head, mlp, qk_norm
    and dropout leave no trace in the shapes and are absent.
    """
    if "token_embedding_table.weight" in shapes:
        return {"kind": "bigram", "vocab_size": shapes["token_embedding_table.weight"][0]}
    wte = shapes.get("transformer.wte.weight")
    if wte is None or len(wte) != 2:
        return {}
    fields: dict[str, Any] = {"vocab_size": wte[0], "n_embd": wte[1]}
    wpe = shapes.get("transformer.wpe.weight")
    fields["pos"] = "learned" if wpe else "rope"
    if wpe:
        fields["block_size"] = wpe[0]
    layers = {int(m.group(1)) for name in shapes if (m := re.match(r"transformer\.h\.(\d+)\.", name))}
    if layers:
        fields["n_layer"] = max(layers) + 1
    fields["tie_weights"] = "lm_head.weight" not in shapes
    fields["bias"] = "transformer.h.0.attn.c_attn.bias" in shapes
    fc = shapes.get("transformer.h.0.mlp.c_fc.weight")
    if fc:
        fields["kind"], fields["mlp_ratio"] = "gpt", fc[0] // wte[1]
    elif layers:
        fields["kind"] = "multi_head" if "transformer.h.0.attn.c_proj.weight" in shapes else "single_head"
    return fields


def weight_differences(config: ModelConfig, saved: dict[str, Any], *, inferred: bool = False
                       ) -> list[tuple[str, Any, Any]]:
    """(field, saved value, config's value) for each WEIGHT_FIELDS field where ``saved`` disagrees.

    ``saved`` is a recorded config or, with ``inferred``, what fields_from_weights could see.
    A rotary model's block_size leaves the weights alone, so it may differ.
    """
    out = []
    for name in WEIGHT_FIELDS:
        if name not in saved:
            continue
        asked = getattr(config, name)
        if name == "block_size" and config.pos == "rope" and saved.get("pos") == "rope":
            continue
        if name == "kind" and inferred and {saved[name], asked} <= {"gpt", "blocks"}:
            continue
        if saved[name] != asked:
            out.append((name, saved[name], asked))
    return out


def read_config(folder: Path) -> tuple[ModelConfig, dict[str, Any]]:
    """The validated ModelConfig and the rest of config.json; nothing is allocated yet."""
    path = folder / CONFIG_FILE
    data = _read_json(path)
    if not isinstance(data, dict) or data.get("format") != "gptlab" or "model" not in data:
        raise CheckpointError(f"{path}: not a gptlab config (no \"format\": \"gptlab\" and \"model\" block).")
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {data.get('format_version')!r} is not {FORMAT_VERSION}.")
    try:
        config = from_json(ModelConfig, data["model"], what="model config")
        config.validate()
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return config, {k: v for k, v in data.items() if k != "model"}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing.") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # deep nesting: RecursionError
        raise CheckpointError(f"{path}: not valid JSON ({exc}); the file is corrupt or foreign.") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc}).") from None


def resolve_folder(source: str | Path) -> Path:
    """A local checkpoint folder for a path or a Hub repo id (downloaded or from the cache)."""
    path = Path(source)
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{path} is a file; a checkpoint is a folder holding {CONFIG_FILE} and {WEIGHTS_FILE}.")
    if isinstance(source, str) and looks_like_repo_id(source):
        try:
            return download_checkpoint(source)
        except CheckpointError as exc:
            if path.parent.is_dir():  # 'checkpoints/gpt2' beside a checkpoints folder: most likely a mistyped path
                held = sorted(p.name for p in path.parent.iterdir() if (p / CONFIG_FILE).is_file())
                raise CheckpointError(f"No checkpoint folder at {path} ({path.parent} holds: "
                                      f"{', '.join(held) or 'no checkpoint'}). Read as a Hub id: {exc}") from None
            raise
    raise CheckpointError(f"No checkpoint folder at {path}, and '{source}' is not a Hub repo id (user/name).")


def load_checkpoint(source: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a model, its tokenizer and metrics from a folder or a Hub repo id, in eval mode."""
    folder = resolve_folder(source)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise CheckpointError(
                f"{folder}: holds {pickles} but no {WEIGHTS_FILE}. Pickle files can run code when "
                "loaded, so gptlab refuses them; convert the weights to safetensors."
            )
        raise CheckpointError(f"{weights}: missing.")
    config, info = read_config(folder)
    tokenizer = load_tokenizer(folder)
    if tokenizer.vocab_size != config.vocab_size:
        raise CheckpointError(
            f"{folder}: the tokenizer has {tokenizer.vocab_size} tokens but {CONFIG_FILE} says "
            f"vocab_size={config.vocab_size}."
        )
    if info.get("tokenizer", tokenizer.kind) != tokenizer.kind:
        raise CheckpointError(
            f"{folder}: {CONFIG_FILE} says tokenizer {info['tokenizer']!r} "
            f"but the tokenizer file is {tokenizer.kind!r}."
        )
    metrics_path = folder / METRICS_FILE
    metrics = _read_json(metrics_path) if metrics_path.is_file() else {}
    if not isinstance(metrics, dict):
        raise CheckpointError(f"{metrics_path}: must be a JSON object, got {type(metrics).__name__}.")
    skeleton = build_model(config, "meta")  # shapes only: costs no memory
    # every tensor is checked against the config before the real model is allocated, so a config
    # that promises a huge model next to a small (or foreign) weights file costs nothing
    tensors = _read_weights(weights, config, skeleton.state_dict(), tied_names(skeleton))
    model = build_model(config, device)
    model.load_state_dict(tensors, strict=False)
    model.eval()
    return Checkpoint(model=model, tokenizer=tokenizer, folder=folder, info=info, metrics=metrics)


def _read_weights(path: Path, config: ModelConfig, expected: dict[str, torch.Tensor],
                  tied: set[str]) -> dict[str, torch.Tensor]:
    """Every tensor of the file, checked against the expected names, shapes and dtypes, as float32.

    Wrapper prefixes are removed first (own_names); a disagreement with config.json is reported
    by the fields that differ (the recorded config, else what the shapes reveal).
    """
    wanted = {k: v for k, v in expected.items() if k not in tied}
    try:
        with safe_open(str(path), framework="pt") as f:
            stored = {own: name for name, own in own_names(list(f.keys())).items()}  # gptlab name -> file name
            shapes = {own: tuple(f.get_slice(name).get_shape()) for own, name in stored.items()}
            _check_against_config(path, config, shapes, f.metadata() or {}, wanted)
            tensors = {}
            for name in wanted:
                sl = f.get_slice(stored[name])
                dtype = sl.get_dtype()
                if dtype not in WEIGHT_DTYPES:
                    raise CheckpointError(f"{path}: tensor {name} has dtype {dtype}; expected F32, BF16 or F16.")
                tensor = f.get_tensor(stored[name]).to(wanted[name].dtype)
                if not torch.isfinite(tensor).all():  # NaN weights would only fail later, mid-generation
                    raise CheckpointError(f"{path}: tensor {name} holds NaN or infinite values.")
                tensors[name] = tensor
    except SafetensorError as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc}); it may be truncated.") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc}).") from None
    return tensors


def _check_against_config(path: Path, config: ModelConfig, shapes: dict[str, tuple[int, ...]],
                          metadata: dict[str, str], wanted: dict[str, torch.Tensor]) -> None:
    """CheckpointError naming what differs when the weights are not what config.json builds."""
    missing, extra = sorted(set(wanted) - set(shapes)), sorted(set(shapes) - set(wanted))
    names = f"missing {missing[:5]}, unexpected {extra[:5]}" if missing or extra else ""
    first = {name.split(".", 1)[0] + "." for name in shapes}
    if names and len(first) == 1 and not any(OWN_NAME.match(name) for name in shapes):
        # one foreign prefix in front of every name, and no gptlab name behind it (else own_names strips it)
        names = f"every tensor name starts with {first.pop()!r}, and what follows is not a gptlab name either ({names})"
    shape = next((f"tensor {name} has shape {shapes[name]}, config.json implies {tuple(wanted[name].shape)}"
                  for name in wanted if not names and shapes[name] != tuple(wanted[name].shape)), "")
    recorded = _recorded_config(metadata)
    if recorded is None:  # saved before the config was recorded: only the shapes can speak
        if not (names or shape):
            return
        differences = weight_differences(config, fields_from_weights(shapes), inferred=True)
    else:
        differences = weight_differences(config, recorded)
    if not (differences or names or shape):
        return
    if differences:
        fields = "; ".join(f"{field}: config.json says {asked!r}, the weights hold {saved!r}"
                           for field, saved, asked in differences)
        what = f"{fields} ({shape})" if shape else fields
        fix = "Put the saved values back in config.json."
    else:  # no field explains it: the weights themselves were changed or come from elsewhere
        what = names or shape
        fix = "The weights file belongs to another model or was edited; save the checkpoint again from its model."
    raise CheckpointError(f"{path}: does not match config.json: {what}. {fix}")


def _recorded_config(metadata: dict[str, str]) -> dict[str, Any] | None:
    """The model config save_weights recorded in the file's metadata, if it is there and readable."""
    try:
        recorded = json.loads(metadata[MODEL_METADATA])
    except (KeyError, ValueError, RecursionError):
        return None
    return recorded if isinstance(recorded, dict) else None


def foreign_names(path: Path) -> list[str]:
    """The tensor names in a weights file that load_checkpoint renames or drops (wrapper prefixes).

    Empty for a file save_weights wrote. Raises CheckpointError if the file cannot be read.
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            names = list(f.keys())
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc}).") from None
    own = own_names(names)
    return sorted(name for name in names if own.get(name) != name)
