"""``python -m tokenfoundry.flows.cli``: the same entry point as the ``tokenfoundry`` script
(tests run it with ``sys.executable``, never a ``tokenfoundry`` found on PATH)."""

from tokenfoundry.flows.cli import main

if __name__ == "__main__":
    main()
