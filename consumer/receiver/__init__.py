"""The HTTPS receiver (`receive`): Canvas POSTs Live Events, signed or not; each is answered once it is durable."""
