"""What runs inside a peer's own virtualenv (var/bench-venvs/<peer>): its app, tasks and enqueuer.

Nothing here is imported by taskhub's virtualenv: each module imports its peer's package, which
only that peer's virtualenv has. ``bench.peers._enqueuer`` loads one of them by name.
"""
