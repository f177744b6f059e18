"""gptlab's speed benchmark (issue 6): ``python -m bench`` writes bench/RESULTS.md and bench/results.json.

One module per section: matmul (the machine's limit), training (gptlab vs the tutorial-style
reference, MFU, profile, torch.compile), quality (time to val loss), generation (KV cache),
capture (run_with_cache overhead), app_bench (the Gradio app on loopback); ``__main__`` runs
them in order and ``report`` renders the tables.

    python -m bench                     # everything, about 50 minutes on 2 cores (40 of them training runs)
    python -m bench --only generation   # one section; the others keep their numbers in results.json
    python -m bench --quick             # smoke run at tiny sizes in under a minute (CI), into bench/quick/
"""
