"""``kubesweep report``: a self-contained HTML report of an experiment."""
