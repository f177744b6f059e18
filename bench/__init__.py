"""gptlab's speed benchmark (issue 6): ``python -m bench`` writes bench/RESULTS.md and bench/results.json.

One module per section (matmul, training, quality, generation, capture, app); ``__main__``
runs them in order, ``report`` renders the tables. ``--quick`` is a smoke run of the same code.
"""
