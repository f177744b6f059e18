"""The page scripts of Follow one character: the text view's clicks and arrow keys, and a handler that opens
the view from another tab at a prompt and position."""

from __future__ import annotations

from gptlab.figures.follow import OUTLINE


def on_load_js(prefix: str) -> str:
    """The text view's script: a click or ← / → (the text focused) writes the position into the hidden number
    ``#{prefix}-follow-pos`` and moves the outline at once; the server's answer then redraws the shading."""
    return f"""
element.tabIndex = 0;
element.setAttribute('aria-label', 'Follow one character: click a character, or use the left and right arrows');
const choose = (to) => {{
  const tokens = element.querySelectorAll('.gl-tok');
  const input = document.querySelector('#{prefix}-follow-pos input');
  if (!tokens.length || !input) return;
  to = Math.max(0, Math.min(tokens.length - 1, to));
  tokens.forEach((t) => {{
    const on = Number(t.dataset.pos) === to;
    t.classList.toggle('gl-sel', on);
    t.style.outline = on ? '3px solid {OUTLINE}' : '';
    t.style.outlineOffset = on ? '1px' : '';
  }});
  input.value = String(to);
  input.dispatchEvent(new Event('input', {{bubbles: true}}));
}};
element.addEventListener('click', (e) => {{
  const token = e.target.closest('[data-pos]');
  if (token) {{ element.focus(); choose(Number(token.dataset.pos)); }}
}});
element.addEventListener('keydown', (e) => {{
  if (e.key !== 'ArrowLeft' && e.key !== 'ArrowRight') return;
  e.preventDefault();
  // the hidden number is the source of truth: a server redraw may still show an older outline
  const input = document.querySelector('#{prefix}-follow-pos input');
  const n = element.querySelectorAll('.gl-tok').length;
  if (!input || !n) return;
  let at = Number(input.value);
  if (!Number.isFinite(at) || at < 0 || at > n - 1) at = n - 1;
  choose(at + (e.key === 'ArrowRight' ? 1 : -1));
}});
"""


def open_follow_js(tab: str = "Attention explorer", prefix: str = "att") -> str:
    """A ``js=`` handler for another tab's event, ``(prompt, position, model) => ...``: opens ``tab`` (from the
    bar or Gradio's 'More tabs' menu), waits until its view is drawn, writes the prompt and the position and
    presses the tab's draw button ``#{prefix}-btn``, which redraws the tab and follows that position. With a
    ``model`` (a dropdown value of another tab), it writes JSON ``{model, prompt, position, at}`` into the hidden
    box ``#{prefix}-open`` instead: the server picks the model (``follow_open.open_at``) and redraws."""
    return f"""(prompt, position, model) => {{
  const name = {tab!r};
  const tabs = [...document.querySelectorAll('button[role=tab], .overflow-dropdown button')];
  let button = tabs.find((b) => b.textContent.trim() === name && b.offsetParent !== null);
  if (!button) {{
    const more = document.querySelector("button[aria-label='More tabs']");
    if (more) more.click();
    button = [...document.querySelectorAll('.overflow-dropdown button')].find((b) => b.textContent.trim() === name);
  }}
  if (button) button.click();
  const set = (el, value) => {{ el.value = value; el.dispatchEvent(new Event('input', {{bubbles: true}})); }};
  const start = Date.now();
  const fill = () => {{
    const box = document.querySelector('#{prefix}-prompt textarea');
    const at = document.querySelector('#{prefix}-follow-pos input');
    const draw = document.querySelector('#{prefix}-btn');
    const open = document.querySelector('#{prefix}-open textarea');
    if (!box || !at || !draw || !open) {{ if (Date.now() - start < 10000) setTimeout(fill, 100); return; }}
    if (model !== undefined) {{ set(open, JSON.stringify({{model, prompt, position, at: Date.now()}})); return; }}
    set(box, prompt);
    set(at, String(position));
    draw.click();
  }};
  fill();
  return [prompt, position];
}}"""
