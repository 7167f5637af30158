"""Every write to a job, one module per stage of its life.

- ``creation``: check a request against the catalog and the limits, write the row(s).
- ``dispatch``: publish a job's message to the broker (after commit).
- ``execution``: what the task base calls in the worker: start, heartbeat, progress, finish.
- ``operations``: what operators do: cancel, retry, delete.
- ``recovery``: the periodic sweep: send unsent jobs, recover jobs whose worker died.
- ``task_service``: the original specification's ``task_service`` facade.
- ``_transitions``: the one conditional UPDATE every state change goes through.

Callers import the function they use from the module that owns it.
"""
