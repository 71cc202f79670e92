"""ikepulse: an IPsec VPN daemon whose tunnels do not die silently."""
