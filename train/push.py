"""Push a checkpoint folder (safe files and its model card) to a Hugging Face Hub model repo.

    python -m train.push <checkpoint-dir> <user/repo> [--private]

The token comes from $HF_TOKEN or the saved `hf auth login`. Without a token or a network the
push stops within seconds with a one-line message, instead of hanging in the client's retries.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gptlab.checkpoint import CONFIG_FILE, WEIGHTS_FILE, foreign_names, load_checkpoint, read_config
from gptlab.cli import run_cli
from gptlab.errors import CheckpointError, GptlabError
from gptlab.hub import looks_like_repo_id, push_checkpoint

PREFLIGHT_TIMEOUT_S = 10.0  # the client itself has no timeout: a black-holed network would hang forever


def push(folder: str | Path, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Upload ``folder`` to ``repo_id`` after cheap local checks and one quick Hub probe; returns the commit URL."""
    folder = Path(folder)
    _check_local(folder, repo_id)
    token = _resolve_token(token)
    _preflight(repo_id, token)
    return push_checkpoint(folder, repo_id, token=token, private=private)


def _check_local(folder: Path, repo_id: str) -> None:
    """Refuse what no network call can fix: a bad repo id or a folder that is not a gptlab checkpoint."""
    if not looks_like_repo_id(repo_id):
        raise CheckpointError(f"'{repo_id}' is not a Hub repo id; use the form user/name (letters, digits, - _ .).")
    if not folder.is_dir():
        raise CheckpointError(f"No checkpoint folder at {folder}.")
    if not (folder / WEIGHTS_FILE).is_file() or not (folder / CONFIG_FILE).is_file():
        raise CheckpointError(f"{folder} is not a checkpoint folder: it needs {CONFIG_FILE} and {WEIGHTS_FILE}.")
    read_config(folder)  # raises if config.json is foreign or corrupt
    load_checkpoint(folder)  # config, tokenizer and every tensor must agree, or no one could load the upload
    renamed = foreign_names(folder / WEIGHTS_FILE)
    if renamed:  # gptlab loads these, but other tools expect the GPT-2 names
        raise CheckpointError(
            f"{folder / WEIGHTS_FILE}: {len(renamed)} tensor names carry a wrapper's prefix (e.g. {renamed[0]!r}). "
            f"Rewrite them first: python -c \"from gptlab import load_checkpoint, save_checkpoint; "
            f"c = load_checkpoint('{folder}'); save_checkpoint(c.folder, c.model, c.tokenizer, metrics=c.metrics, "
            f"info=c.info)\""
        )


def _resolve_token(token: str | None) -> str:
    from huggingface_hub import constants, get_token

    if constants.HF_HUB_OFFLINE:
        raise CheckpointError("Cannot push: HF_HUB_OFFLINE=1 is set. Unset it (or set it to 0) to reach the Hub.")
    token = token or get_token()
    if not token:
        raise CheckpointError("Cannot push: no Hub token. Set HF_TOKEN or run `hf auth login` (write access).")
    return token


def _preflight(repo_id: str, token: str) -> None:
    """Ask the Hub who we are, with a timeout: proves the network and the token before any upload."""
    from huggingface_hub import constants
    from huggingface_hub.utils import build_hf_headers, get_session

    url = f"{constants.ENDPOINT}/api/whoami-v2"
    try:
        response = get_session().get(url, headers=build_hf_headers(token=token), timeout=PREFLIGHT_TIMEOUT_S)
    except Exception as exc:  # httpx2 connect/timeout errors, DNS failures: all mean "unreachable"
        reason = str(exc) or type(exc).__name__
        raise CheckpointError(f"Cannot push to '{repo_id}': {constants.ENDPOINT} is unreachable ({reason}).") from None
    if response.status_code == 401:
        raise CheckpointError("Cannot push: the Hub rejected the token. Check HF_TOKEN or run `hf auth login` again.")
    if response.status_code >= 400:
        raise CheckpointError(f"Cannot push to '{repo_id}': the Hub answered HTTP {response.status_code} at {url}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.push", description="Push a gptlab checkpoint to the Hub.")
    parser.add_argument("folder", type=Path, help="checkpoint folder (config.json, model.safetensors, ...)")
    parser.add_argument("repo_id", help="Hub model repo, user/name (created if missing)")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    args = parser.parse_args(argv)
    try:
        url = push(args.folder, args.repo_id, private=args.private)
    except GptlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Pushed {args.folder} to {args.repo_id}: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
