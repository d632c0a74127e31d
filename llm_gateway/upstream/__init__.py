"""The engines behind the gateway, framework-free: one client per replica, the one mapping of
their failures to gateway errors, their health, and the pool the core picks from."""
