"""``python -m tokenfoundry.flows.cli ...``: the same CLI as the ``tokenfoundry`` script."""

if __name__ == "__main__":
    from tokenfoundry.flows.cli import main

    main()
