"""The lbadm command."""
