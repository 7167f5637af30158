"""A peer's enqueuer, run in the peer's own virtualenv: ``python -m bench.peers._enqueuer MODULE``.

It imports ``MODULE`` (one of ``bench.peers.apps``), calls its ``prepare()`` (Django set-up, pool,
connection), prints ``ready``, then for every line on stdin, a number, calls ``enqueue(number)``
and prints ``done``; at the end of stdin, ``close()`` if the module has one. The bench process
sends the line when its clock starts: the import and connection set-up are not timed, the
enqueueing is (and its CPU counts as the peer's).
"""

import importlib
import sys


def main() -> int:
    module = importlib.import_module(sys.argv[1])
    module.prepare()
    print("ready", flush=True)
    for line in sys.stdin:
        module.enqueue(int(line))
        print("done", flush=True)
    if hasattr(module, "close"):
        module.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
