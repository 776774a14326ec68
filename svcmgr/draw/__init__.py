"""Drawing what the daemon knows, with no daemon and no third-party package: the dependency graph as
Graphviz DOT (``dot``) or as SVG (``layout``: graphviz when installed, else a built-in layered
layout), and a boot chart of start timings as SVG (``bootchart``). Inputs are the JSON replies of
the ``graph`` and ``timings`` operations (``svcmgr.observe``), so ``svcs`` and the web dashboard
draw the same pictures. Standard library only; nothing here imports asyncio, sqlite3 or networkx.
"""
