"""Virtual IPs that follow service health, through keepalived (VRRP)."""
