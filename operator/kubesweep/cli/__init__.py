"""The ``kubesweep`` command and the Python client for notebooks."""
