"""Where ereports come from, besides the restarter and manifests' log patterns (already on the bus).

``kmsg``: the kernel log (OOM kills, disk I/O errors); ``alertmanager``: Alertmanager's
webhook; ``inject``: ``fminject``. Each validates what it reads, posts ereports on the
bus, and counts what it refused.
"""
