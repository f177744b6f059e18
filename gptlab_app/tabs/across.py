"""Across training: a slider over the snapshots the default GPT left while it learned; one head's heatmap,
the labelled grid of its layer, a strip of that head from first snapshot to last, and what the model
wrote at that step move together, so a class watches a head become, say, a previous-character head. Below,
the induction score and the loss of any model with snapshots, per snapshot, and the steps where the score jumps."""

from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr

from gptlab.classroom.catalog import Catalog
from gptlab.errors import GptlabError, InputError
from gptlab.figures import attention_heatmap, head_grid, training_strip
from gptlab.figures.formation import induction_across_figure
from gptlab.inside import across_view
from gptlab.inside.formation import induction_across
from gptlab.prompts import LOOK_PROMPT
from gptlab.snapshots import Snapshot, SnapshotCache, find_snapshots

from ..common import MAX_PROMPT_CHARS, TEACH, bind, checked_prompt, library_errors, plot, whole
from ..pickers import Visitor, layer_head_sliders, opening_model, picker_updates


@dataclass(frozen=True)
class Snapshots:
    """Where one model's training snapshots are (looked up at every request: a running training adds more),
    and the loaded ones, kept for the next visitor."""

    folder: str | None
    cache: SnapshotCache = field(default_factory=SnapshotCache)

    @classmethod
    def of_default(cls, catalog: Catalog) -> Snapshots:
        """The snapshots of the GPT the other tabs open with (the most capable model when there is no 'gpt')."""
        default = opening_model(catalog)
        return cls(str(catalog.get(default).folder) if default is not None else None)

    def found(self) -> list[Snapshot]:
        return find_snapshots(self.folder) if self.folder else []


def steps(snapshots: Snapshots) -> dict:
    """The snapshot slider fitted to the snapshots on disk now (a running training adds more)."""
    found = snapshots.found()
    top = max(len(found) - 1, 1)
    return gr.update(maximum=top, value=min(len(found) - 1, top) if found else 0, interactive=len(found) > 1)


def show(snapshots: Snapshots, prompt, layer, head, index, teacher=False) -> tuple:
    """One snapshot: note (step, val loss), head heatmap, labelled grid, its sample, the head sentence."""
    with library_errors():
        prompt = checked_prompt(prompt)
        index = whole(index, "snapshot", 0, 10**6)
        layer, head = whole(layer, "layer", 0, 10**6), whole(head, "head", 0, 10**6)  # across_view checks the model
        look = across_view(snapshots.found(), snapshots.cache, prompt, layer, head, index)
    step, labels = look.snapshot.step, look.view.labels
    return (
        look.note,
        plot(attention_heatmap(look.pattern, labels, f"step {step:,} · layer {layer} · head {head}"), teacher),
        plot(head_grid(look.view.patterns[layer], labels, f"step {step:,} · all heads of layer {layer}",
                       panel_titles=look.panel_titles), teacher),
        look.sample,
        look.sentence,
        plot(training_strip(look.frames, f"Layer {layer}, head {head} as training goes on"), teacher),
    )


def fit_pickers(snapshots: Snapshots, layer, head) -> tuple[dict, dict]:
    """Across training's layer and head sliders fitted to the model the snapshots are of."""
    found = snapshots.found()
    try:
        config = snapshots.cache.get(found[-1]).config if found else None
    except GptlabError:
        config = None  # a snapshot being rewritten: the draw that follows says so
    return picker_updates(config, layer, head)


def with_snapshots(catalog: Catalog) -> list[str]:
    """The attention models that left two or more training snapshots (a rise needs two)."""
    return [name for name in catalog.attention_names if len(find_snapshots(catalog.get(name).folder)) > 1]


def induction(catalog: Catalog, cache: SnapshotCache, scored: dict, model, teacher=False) -> tuple:
    """The induction score and val loss of ``model`` at each of its snapshots: caption, chart."""
    with library_errors():
        offered = with_snapshots(catalog)
        if not isinstance(model, str) or model not in offered:
            raise InputError(f"No model with training snapshots named {str(model)[:60]!r}; choose one of: "
                             f"{', '.join(offered) or 'none'}.")
        snapshots = find_snapshots(catalog.get(model).folder)
        key = tuple((str(s.folder), s.step, s.val_loss) for s in snapshots)  # a new training's snapshots differ
        if key not in scored:  # probing every snapshot of the 6-layer gpt takes seconds: once per set of snapshots
            scored[key] = induction_across(snapshots, cache)
        found = scored[key]
    fig = induction_across_figure(found.steps, found.scores, found.val_loss, found.chance,
                                  (found.rise.start, found.rise.end) if found.rise.formed else None,
                                  found.second_copy_bits, f"{model}: induction score and loss across training",
                                  found.unit)
    return found.caption, plot(fig, teacher)


def build(catalog: Catalog, demo: gr.Blocks) -> Visitor:
    """The Across training tab; it also makes what the teaching tabs share (the first of them: see Visitor)."""
    snapshots = Snapshots.of_default(catalog)
    with gr.Tab("Across training", id="across") as tab:
        visitor = Visitor.create(demo)
        gr.Markdown("Move the slider through the saved training steps: watch the heads go from even "
                    "smears to sharp patterns as the model learns.")
        with gr.Row():
            with gr.Column(scale=1):
                prompt = gr.Textbox(LOOK_PROMPT, lines=3, label="prompt", elem_id="across-prompt",
                                    max_length=MAX_PROMPT_CHARS)
                layer, head = layer_head_sliders(catalog, "across")
                top = max(len(snapshots.found()) - 1, 1)  # a training still running adds more: see steps()
                step = gr.Slider(0, top, value=top, step=1, label="training snapshot (earliest → latest)",
                                 elem_id="across-step")
                button = gr.Button("Show", variant="primary", elem_id="across-btn")
                note = gr.Markdown(elem_id="across-note")
                sentence = gr.Markdown(elem_id="across-sentence")
            with gr.Column(scale=2):
                heatmap = gr.Plot(show_label=False, elem_id="across-heatmap")
        strip = gr.Plot(show_label=False, elem_id="across-strip")
        grid = gr.Plot(show_label=False, elem_id="across-grid")
        sample = gr.Textbox(lines=6, label="what the model wrote at this step", elem_id="across-sample")
        gr.Markdown("### Does an induction head form?\nEach snapshot is probed on random strings repeated once: "
                    "the score is how much its best head attends to the token after the earlier copy.")
        formed = with_snapshots(catalog)
        with gr.Row():
            ind_model = gr.Dropdown(formed, value="induction" if "induction" in formed else (formed or [None])[0],
                                    label="model", elem_id="across-induction-model", scale=2)
            ind_button = gr.Button("Score every snapshot", elem_id="across-induction-btn", scale=1)
        ind_caption = gr.Markdown(elem_id="across-induction-caption")
        ind_plot = gr.Plot(show_label=False, elem_id="across-induction-plot")
    inputs, outputs = [prompt, layer, head, step, visitor.teacher], [note, heatmap, grid, sample, sentence, strip]
    button.click(bind(show, snapshots), inputs, outputs, api_name="across", **TEACH)
    ind_button.click(bind(induction, catalog, SnapshotCache(size=32), {}), [ind_model, visitor.teacher],
                     [ind_caption, ind_plot], api_name="across_induction", **TEACH)
    gr.on([step.release, layer.release, head.release], bind(show, snapshots), inputs, outputs,
          api_visibility="private", **TEACH)
    tab.select(bind(steps, snapshots), None, step, api_name="across_steps").then(
        bind(fit_pickers, snapshots), [layer, head], [layer, head], api_visibility="private").then(
        bind(show, snapshots), inputs, outputs, api_visibility="private", **TEACH)
    return visitor
