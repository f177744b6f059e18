"""gptlab: a GPT from scratch, the model ladder that leads to it, and tools to look inside.

This package exports the core (models, hooks, tokenizers, data, sampling, generation, checkpoints).
The layers above it export their own names: ``gptlab.inside`` (views of what a model does),
``gptlab.figures`` (Plotly figures of them) and ``gptlab.classroom`` (catalog, lessons, live training).
"""

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .data import TokenSplits, get_batch, load_text
from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    GptlabError,
    InputError,
    SettingsError,
    UnknownCharactersError,
)
from .generate import generate, generate_ids
from .hooks import hook_points, hooks, run_with_cache
from .models import GPT, BigramLanguageModel, ModelConfig, build_model, count_parameters
from .sampling import GenerationSettings, next_token_probs
from .tokenizers import BPETokenizer, CharTokenizer, load_tokenizer, train_tokenizer, visible_token

__all__ = [
    "BPETokenizer", "BigramLanguageModel", "CharTokenizer", "Checkpoint", "CheckpointError",
    "ConfigError", "DataError", "GPT", "GenerationSettings", "GptlabError", "InputError", "ModelConfig",
    "SettingsError", "TokenSplits", "UnknownCharactersError", "build_model", "count_parameters",
    "generate", "generate_ids", "get_batch", "hook_points", "hooks", "load_checkpoint",
    "load_text", "load_tokenizer", "next_token_probs", "run_with_cache", "save_checkpoint",
    "train_tokenizer", "visible_token",
]
