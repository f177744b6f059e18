"""Looking inside a model: one view object per question a teaching tab (or a notebook) asks.

Built on the core only (models, hooks, tokenizers, generate, snapshots), never on figures or the
classroom. Each view is a frozen dataclass whose docstring gives its shapes:

- ``attention_view`` -> ``AttentionView``: every head's pattern on a prompt, next-token guesses (explore.py);
  ``attention_view_ids`` the same on token ids already held, such as generated ones
- ``label_heads``, ``describe``: what each head does, in words (heads.py)
- ``rollout``, ``logit_lens``: reading the model across its layers (lens.py)
- ``step_once`` -> ``Step``: one generated token and why (steps.py)
- ``closer_look`` -> ``CloserLook``: labels, one head, rollout and lens together (closer.py)
- ``across_view`` -> ``AcrossView``: one head on the snapshots of a training (across.py)
- ``induction_probe`` -> ``InductionProbe``: every head's induction score on repeated random strings (induction.py)
- ``ablate``, ``rank_heads``: switch heads off; rank them by how much the loss rises without each (ablation.py);
  ``ablation_view`` -> ``AblationView``: a prompt's next token, bits and val loss with and without some heads
- ``head_math`` -> ``HeadMath``: inside one head at one query, q·k, scale, softmax and values per key (head.py)
- ``surprise`` -> ``Surprise``: bits, rank and top guesses at every token of a text; ``surprise_difference``
  (A minus B) and ``context_pays`` (what context saves inside words and at their start) (surprise.py);
  ``surprise_view`` -> ``SurpriseView``: A (and B) on one text with the sentences that sum it up (context.py)
- ``follow`` -> ``FollowView``: the weight one position gives every earlier token (one head, the layer's
  average or rollout), read from an AttentionView with no new forward pass; ``follow_view`` from a prompt (follow.py)
"""

from .ablation import AblationView, ablate, ablation_view, rank_heads
from .across import AcrossView, across_view, head_across_training
from .closer import CloserLook, closer_look
from .context import SurpriseView, surprise_view
from .explore import (
    AttentionView,
    HeadView,
    attention_view,
    attention_view_ids,
    has_attention,
    token_labels,
    top_predictions,
)
from .follow import FollowView, follow, follow_view, followed_matrix, token_spans
from .head import HeadMath, head_math
from .heads import HeadLabel, describe, label_heads, unit_for
from .induction import InductionProbe, induction_probe
from .lens import LensRow, logit_lens, rollout
from .steps import Step, step_once
from .surprise import (
    ContextPays,
    Surprise,
    SurpriseDifference,
    context_pays,
    context_pays_caption,
    surprise,
    surprise_difference,
)

__all__ = [
    "AcrossView", "AttentionView", "CloserLook", "HeadLabel", "HeadMath", "HeadView", "LensRow", "Step",
    "across_view", "attention_view", "attention_view_ids", "closer_look", "describe", "has_attention",
    "head_across_training", "head_math",
    "label_heads", "logit_lens", "rollout", "step_once", "token_labels", "top_predictions", "unit_for",
    "ContextPays", "Surprise", "SurpriseDifference", "context_pays", "context_pays_caption", "surprise",
    "surprise_difference", "SurpriseView", "surprise_view",
    "InductionProbe", "ablate", "induction_probe", "rank_heads", "AblationView", "ablation_view",
    "FollowView", "follow", "follow_view", "followed_matrix", "token_spans",
]
