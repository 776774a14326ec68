"""Side-by-side benchmarks of svcmgr against supervisord, circus, runit, s6 and a bare asyncio floor.

``python -m bench`` (or ``make bench``) runs them and rewrites its section of BENCHMARKS.md.
"""
