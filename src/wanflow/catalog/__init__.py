"""The model catalog: every Wan model's inputs, outputs, parameters, rules and prices (``loader``)."""
