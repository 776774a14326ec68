"""The fault manager's commands: fmadm, fmdump, fmstat, fminject (standard library and the client only)."""
