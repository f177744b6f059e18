"""Head labels: score each attention head against reference patterns that matter for characters.

Each label is a mask over (query, key) cells: "the keys this kind of head would look at". A head's
score for a mask is the share of its attention weight that lands on those keys, averaged over the
query rows where the mask has at least one key. The broad label instead compares each row with
even attention over every visible key (1 - total variation distance). The best label is picked by
lift over chance, so a mask that covers half the keys does not win for a head that looks everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

# label -> what the sentence says the head looks at ("puts 71% of its weight on ...")
LABELS: dict[str, str] = {
    "previous": "the previous {unit}",
    "self": "the current {unit} itself",
    "same_earlier": "earlier copies of the current {unit}",
    "induction": "the {unit} after each earlier copy of the current one (induction)",
    "line_start": "line starts (newlines and the {unit} after them)",
    "first": "the first position",
    "speaker": "the speaker's name before the colon",
    "broad": "",  # phrased differently: see describe()
}
SHORT = {
    "previous": "prev", "self": "self", "same_earlier": "same↑", "induction": "induct", "line_start": "line",
    "first": "first", "speaker": "name:", "broad": "broad", "mixed": "mixed",
}
MIN_ROWS = 2  # a label needs at least this many query rows to be scored (else its score is NaN)
MIN_LIFT = 0.4  # a pattern label needs this much lift over chance to name a head
BROAD_MIN = 0.6  # rows at least this close to even attention (1 - total variation) make a broad head
MAX_OFFSET = 8  # a mixed head is also checked for a stripe this many positions back at most (2..MAX_OFFSET)
STRIPE_MIN = 0.5  # a mixed head with at least this share of weight on one fixed offset is described by it


@dataclass(frozen=True)
class HeadLabel:
    """One head's best label, its score (share of weight, 0..1) and every label's score."""

    layer: int
    head: int
    label: str
    score: float
    scores: dict[str, float]
    closest: str = ""  # for a mixed head: the pattern label that fits best (but not well)
    stripe: tuple[int, float] = (0, 0.0)  # for a mixed head: (offset d >= 2, mean weight on the key d back)

    @property
    def offset(self) -> int:
        """For a mixed head whose weight sits on one fixed offset (>= STRIPE_MIN): that offset, else 0."""
        return self.stripe[0] if self.label == "mixed" and self.stripe[1] >= STRIPE_MIN else 0

    @property
    def short(self) -> str:
        """Grid title text: 'prev 71%', '2 back 91%' for an offset stripe ('mixed' alone: no pattern fits)."""
        if self.offset:
            return f"{self.offset} back {self.stripe[1]:.0%}"
        return "mixed" if self.label == "mixed" else f"{SHORT[self.label]} {self.score:.0%}"

    @property
    def panel_title(self) -> str:
        """A head grid panel's title: 'head 2 · prev 71%' (give a layer's titles to figures.head_grid)."""
        return f"head {self.head} · {self.short}"


def reference_masks(tokens: Sequence[str], ids: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
    """Boolean [q, k] masks (causal: k <= q) of the keys each labelled kind of head attends to.

    ``tokens`` give each position's text (newlines, speaker names); ``ids`` its identity: "same
    token" compares ids, since different byte tokens of a BPE all decode to U+FFFD. Without ids the
    texts stand in for them, which is exact only for a char tokenizer. ValueError if lengths differ.
    "induction" marks key k when the token at k - 1 is the query's token (k - 1 < q): the key that
    followed an earlier copy, which an induction head attends to so the model can copy it.
    """
    n = len(tokens)
    identity = list(tokens) if ids is None else [int(i) for i in ids]
    if len(identity) != n:
        raise ValueError(f"{len(identity)} ids for {n} tokens: give one id per token")
    q = torch.arange(n)[:, None]
    k = torch.arange(n)[None, :]
    causal = k <= q
    same = torch.tensor([[a == b for b in identity] for a in identity], dtype=torch.bool) if n else causal
    newline = torch.tensor([t.endswith("\n") for t in tokens], dtype=torch.bool)
    after_newline = torch.cat([torch.zeros(1, dtype=torch.bool), newline[:-1]]) if n else newline
    return {
        "previous": k == q - 1,
        "self": k == q,
        "same_earlier": same & (k < q),
        "induction": _after_earlier_copy(same),
        "line_start": causal & (newline | after_newline)[None, :],
        "first": (k == 0) & (q > 0),
        "speaker": causal & _speaker_keys(tokens)[None, :],
    }


def _after_earlier_copy(same: torch.Tensor) -> torch.Tensor:
    """[q, k] True where the token at k - 1 equals the query's and k - 1 < q (so k <= q: causal)."""
    n = same.size(0)
    mask = torch.zeros(n, n, dtype=torch.bool)
    if n > 1:
        earlier = same & (torch.arange(n)[None, :] < torch.arange(n)[:, None])  # [q, k - 1]
        mask[:, 1:] = earlier[:, :-1]
    return mask


def _speaker_keys(tokens: Sequence[str]) -> torch.Tensor:
    """Positions inside a line that ends with a colon (``ROMEO:``), the colon included."""
    keys = torch.zeros(len(tokens), dtype=torch.bool)
    line: list[int] = []
    for i, tok in enumerate(tokens):
        if tok.endswith("\n"):
            text = "".join(tokens[j] for j in line).strip()
            if text.endswith(":") and len(text) > 1:
                keys[line] = True
            line = []
        else:
            line.append(i)
    return keys


def score_head(pattern: torch.Tensor, masks: dict[str, torch.Tensor]) -> dict[str, tuple[float, float]]:
    """{label: (score, chance)} for one [q, k] pattern. NaN when too few rows have the label's keys."""
    pattern = pattern.float()
    n = pattern.size(0)
    visible = torch.arange(n)[:, None] >= torch.arange(n)[None, :]
    counts = visible.sum(dim=1).float()  # keys each query may see
    out: dict[str, tuple[float, float]] = {}
    for name, mask in masks.items():
        rows = mask.any(dim=1) & (torch.arange(n) >= 1)  # query 0 sees one key: every head looks the same
        if name in ("first", "previous"):
            rows &= torch.arange(n) >= 2  # at query 1 "previous" and "first" are the same key
        if int(rows.sum()) < MIN_ROWS:
            out[name] = (float("nan"), float("nan"))
            continue
        weight = (pattern * mask).sum(dim=1)[rows]
        chance = (mask.sum(dim=1).float() / counts)[rows]
        out[name] = (float(weight.mean()), float(chance.mean()))
    rows = torch.arange(n) >= 2  # with one or two keys everything looks even
    if int(rows.sum()) >= MIN_ROWS:
        uniform = visible.float() / counts[:, None]
        tv = 0.5 * (pattern - uniform).abs().sum(dim=1)[rows]
        out["broad"] = (float(1.0 - tv.mean()), 0.0)
    else:
        out["broad"] = (float("nan"), float("nan"))
    return out


def offset_stripe(pattern: torch.Tensor) -> tuple[int, float]:
    """(d, weight): of the keys 2..MAX_OFFSET positions back, the one a [q, k] pattern weights most, with its
    mean weight over the query rows that have such a key ((0, 0.0) when no offset has MIN_ROWS rows)."""
    best = (0, 0.0)
    for d in range(2, MAX_OFFSET + 1):
        stripe = torch.diagonal(pattern.float(), -d)  # weight of query q on key q - d, for q = d..n-1
        if stripe.numel() >= MIN_ROWS and float(stripe.mean()) > best[1]:
            best = (d, float(stripe.mean()))
    return best


def best_label(scored: dict[str, tuple[float, float]], margin: float = 0.1) -> tuple[str, float, str]:
    """(label, its raw score, the closest pattern label) for one head's scores.

    Pattern labels compete by lift over chance, (score - chance) / (1 - chance); labels within
    ``margin`` of the best lift count as a tie, won by the most specific one (lowest chance): a head
    fixed on position 0 of "ROMEO:" is a first-position head, not a speaker head. Below MIN_LIFT the
    head is broad if its rows are close to even (BROAD_MIN), else mixed: no reference fits it.
    """
    lifts = {name: (score - chance) / max(1.0 - chance, 1e-6)
             for name, (score, chance) in scored.items() if name != "broad" and score == score}  # NaN: unscorable
    broad = scored.get("broad", (float("nan"), 0.0))[0]
    if not lifts:
        return "broad", broad, "broad"
    top = max(lifts.values())
    close = [name for name, lift in lifts.items() if lift >= top - margin]
    best = min(close, key=lambda name: (scored[name][1], -lifts[name]))
    if top >= MIN_LIFT:
        return best, scored[best][0], best
    if broad == broad and broad >= BROAD_MIN:
        return "broad", broad, best
    return "mixed", scored[best][0], best


def label_heads(patterns: Sequence[torch.Tensor], tokens: Sequence[str],
                ids: Sequence[int] | None = None) -> list[list[HeadLabel]]:
    """Labels for every head: ``patterns`` holds one [head, q, k] tensor per layer.

    Pass the token ``ids`` too (``view.ids``): "same token earlier" compares them, not the text.
    """
    masks = reference_masks(tokens, ids)
    result = []
    for layer, heads in enumerate(patterns):
        row = []
        for head in range(heads.size(0)):
            scored = score_head(heads[head], masks)
            name, score, closest = best_label(scored)
            stripe = offset_stripe(heads[head]) if name == "mixed" else (0, 0.0)
            row.append(HeadLabel(layer, head, name, score, {k: v[0] for k, v in scored.items()}, closest, stripe))
        result.append(row)
    return result


def describe(label: HeadLabel, unit: str = "character") -> str:
    """One sentence for a class: 'Layer 2, head 3 puts 71% of its weight on the previous character.'"""
    who = f"Layer {label.layer}, head {label.head}"
    if label.score != label.score:
        return f"{who}: the prompt is too short to tell what this head does; use a longer one."
    if label.label == "broad":
        return (f"{who} spreads its weight broadly: it is {label.score:.0%} like even attention over every "
                f"earlier {unit} (an averaging head).")
    if label.offset:
        return (f"{who} puts {label.stripe[1]:.0%} of its weight on the {unit} {label.offset} back: a fixed offset, "
                f"which none of the named patterns describes.")
    if label.label == "mixed":
        return (f"{who} follows none of the reference patterns on this prompt; the closest is "
                f"{LABELS[label.closest].format(unit=unit)} ({label.score:.0%} of its weight).")
    return f"{who} puts {label.score:.0%} of its weight on {LABELS[label.label].format(unit=unit)}."


def unit_for(tokenizer_kind: str) -> str:
    """'character' for a char model, 'token' for BPE."""
    return "character" if tokenizer_kind == "char" else "token"


def synthetic_pattern(tokens: Sequence[str], label: str, strength: float = 0.9,
                      ids: Sequence[int] | None = None) -> torch.Tensor:
    """A [q, k] pattern that behaves like ``label``: ``strength`` of each row on the label's keys,
    the rest spread evenly (rows without such keys are even). Used by tests and for teaching."""
    n = len(tokens)
    visible = (torch.arange(n)[:, None] >= torch.arange(n)[None, :]).float()
    even = visible / visible.sum(dim=1, keepdim=True)
    if label == "broad":
        return even
    mask = reference_masks(tokens, ids)[label].float()
    has = mask.sum(dim=1, keepdim=True)
    focused = mask / has.clamp(min=1)
    pattern = torch.where(has > 0, strength * focused + (1 - strength) * even, even)
    return pattern
