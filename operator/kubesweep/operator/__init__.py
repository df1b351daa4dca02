"""The kopf operator: the I/O edge around :mod:`kubesweep.planning`.

Observations come in through the child streams (:mod:`kubesweep.operator.informer`)
and kopf's Experiment events, decisions come from the pure planner, and
:mod:`kubesweep.operator.reconciler` supplies the ports through which the shared
executor (:mod:`kubesweep.planning.executor`) carries them out against the API
server and the suggestion service. Nothing here configures logging at
import; :mod:`kubesweep.operator.main` does, when run as the program.
"""
