"""Hugging Face Hub: resolve a repo id to a local folder (cached, offline-aware) and push one."""

from __future__ import annotations

import re
from pathlib import Path

from .errors import CheckpointError

# Only these files are ever fetched or pushed: no pickles, no code.
CHECKPOINT_PATTERNS = ["*.json", "*.safetensors", "README.md", "*.png"]
# The optimizer state a training run keeps for resuming: 2-3x the model's size, no use to a reader.
EXCLUDE_PATTERNS = ["training_state.safetensors"]
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def looks_like_repo_id(source: str) -> bool:
    return bool(REPO_ID.match(source)) and ".." not in source


def download_checkpoint(repo_id: str, revision: str | None = None) -> Path:
    """Local folder of a Hub model repo (from the cache when offline), safe files only."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(snapshot_download(
            repo_id, revision=revision, allow_patterns=CHECKPOINT_PATTERNS, ignore_patterns=EXCLUDE_PATTERNS
        ))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as exc:
        # snapshot_download also falls back to the cache when the Hub answers an HTTP error (5xx,
        # an unexpected 404): that is not "offline", so say what the Hub said.
        if isinstance(exc.__cause__, HfHubHTTPError):
            raise CheckpointError(
                f"Could not download the Hub model '{repo_id}' and there is no cached copy: {exc.__cause__}"
            ) from None
        raise CheckpointError(
            f"The Hub model '{repo_id}' is not available offline: there is no network (or HF_HUB_OFFLINE=1) "
            "and no cached copy. Connect once to download it, or pass the path of a local checkpoint folder."
        ) from None
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise CheckpointError(f"No Hub model '{repo_id}' (or it is private: log in with `hf auth login`).") from None
    except (HfHubHTTPError, OSError) as exc:
        raise CheckpointError(f"Could not download the Hub model '{repo_id}': {exc}") from None


def push_checkpoint(folder: str | Path, repo_id: str, token: str | None = None, private: bool = False) -> str:
    """Upload a checkpoint folder (safe files only) to a Hub model repo; returns the commit URL.

    The token comes from ``token``, else $HF_TOKEN or the saved `hf auth login` token.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    folder = Path(folder)
    if not (folder / "model.safetensors").is_file():
        raise CheckpointError(f"{folder} is not a checkpoint folder (no model.safetensors).")
    if not looks_like_repo_id(repo_id):
        raise CheckpointError(f"'{repo_id}' is not a Hub repo id; use the form user/name.")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            allow_patterns=CHECKPOINT_PATTERNS,
            ignore_patterns=EXCLUDE_PATTERNS,
            commit_message=f"Upload gptlab checkpoint {folder.name}",
        )
    except HfHubHTTPError as exc:
        raise CheckpointError(f"Push to '{repo_id}' failed: {exc}. Check HF_TOKEN or `hf auth login`.") from None
    except OSError as exc:  # no network: connection refused, DNS failure, offline mode
        raise CheckpointError(f"Push to '{repo_id}' failed, the Hub could not be reached: {exc}") from None
    return str(getattr(commit, "commit_url", commit))
