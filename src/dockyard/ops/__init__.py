"""Engine operations too big for the facade: each module is a set of functions of an Engine."""
