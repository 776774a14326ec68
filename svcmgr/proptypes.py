"""SMF's property types: a leaf, so that ``svccfg`` knows them without loading the manifest vocabulary."""

from __future__ import annotations

__all__ = ["PROP_TYPES"]

PROP_TYPES = ("astring", "ustring", "integer", "count", "boolean", "float", "time", "fmri",
              "host", "hostname", "net_address", "net_address_v4", "net_address_v6", "uri", "opaque")
