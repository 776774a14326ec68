"""svcmgr: a service supervisor and fault manager for Linux, after illumos' SMF, FMA and VRRP.

The package is the service core: manifests, repository, dependency graph,
restarter, daemon and the svc* commands. Importing it costs nothing: the
commands import only the client and their own module.
"""

__version__ = "0.1.0"
