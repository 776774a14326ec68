"""SMF XML manifests (``service_bundle``), imported unchanged and exported back.

Parsing is hardened (``safe``): no DTD or entity is ever fetched or expanded.
Translation (``translate``) turns each ``<service>`` into svcmgr's TOML vocabulary,
which ``svcmgr.manifest.parse_service`` (the one validator) then checks; the file
formats meet in ``svcmgr.loader``. ``export`` writes a manifest back as a
``service_bundle``; ``section`` validates the ``[smf]`` manifest section. Nothing
here imports ``svcmgr.manifest``: the vocabulary is ``svcmgr.spec``.
"""
