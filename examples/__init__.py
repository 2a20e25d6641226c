"""The shipped pipeline specs (``*.yaml``), package data read with importlib.resources
(see ``tokenfoundry.flows.quickstart``)."""
