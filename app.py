"""gptlab app: generate text, compare a bigram with a GPT, look at attention, browse the models.

Runs as a Hugging Face Space (``python app.py``) and on a laptop; the app itself is gptlab_app/:

    python app.py --checkpoints checkpoints --port 7860
"""

import os

# Before gradio is imported: no usage analytics unless the deployer turns them on.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Before torch starts OpenMP: many requests share 2 vCPUs, and spinning worker threads then
# starve each other (measured 7-10x slower steps than with passive waiting).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import gptlab_app  # noqa: E402

if __name__ == "__main__":
    gptlab_app.main()
