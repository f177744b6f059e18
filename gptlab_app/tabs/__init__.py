"""One module per tab of the app, in page order: generate, compare, attention, models, across, live, closer,
step, lessons. Each has a docstring saying what the tab shows, its handlers as module-level functions
(the catalog or the tab's own state first) and ``build(...)``: the tab's layout with its wiring under it.
Tabs never import each other; what they share is in gptlab_app.common, .pickers and .streams."""
