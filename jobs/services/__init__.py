"""Every write to a job, one module per stage of its life.

- ``creation``: check a request against the catalog and the limits, write the row(s).
- ``dispatch``: publish a job's message to the broker (after commit).
- ``execution``: what the task base calls in the worker: start, heartbeat, progress, finish.
- ``operations``: what operators do: cancel, retry, delete.
- ``recovery``: the periodic sweep: send unsent jobs, recover jobs whose worker died.
- ``task_service``: the original specification's ``task_service`` facade.
- ``labels``: how people read who changed a job and which attempt it was.
- ``_state``: the one door for a change to a job (status, progress, heartbeat): the SQL or the ORM
  path chosen once, the timeline line, the publish and the re-send after commit. Its statements
  are a private SQL module beside it, which only the door imports (as it alone imports
  ``jobs.live``).

Callers import the function they use from the module that owns it.
"""
