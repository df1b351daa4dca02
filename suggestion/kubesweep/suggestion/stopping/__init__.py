"""Early-stopping rules: decide from the history which running trials to stop."""
