"""kubesweep's examples: Experiment manifests (``*.yaml``) and the trial programs they run.

A package so that trial programs run as ``python -m examples.trainers.<name>``
from the repository root (the local process node's working directory) and from
``/app`` in the example images, with no path that depends on where the
repository lives.
"""
