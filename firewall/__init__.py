"""The gateway's software firewall: wraps every listener and outbound connection."""
