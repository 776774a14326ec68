"""The fault manager: ereports in, diagnosed cases out, faulty parts retired (FMA)."""
