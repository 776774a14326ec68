"""Load balancing over supervised services: HAProxy behind a virtual IP, backends that follow service state."""
