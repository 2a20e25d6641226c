"""``python -m tokenfoundry.flows.cli``: the same entry point as the ``tokenfoundry`` script
(tests and scripts call it with ``sys.executable``, never a ``tokenfoundry`` found on PATH)."""

from tokenfoundry.flows.cli import main

main()
