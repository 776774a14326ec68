"""The vrrpadm command."""
