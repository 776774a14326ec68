"""The operator commands, one module each. They import only ``svcmgr.client`` and the standard library."""
