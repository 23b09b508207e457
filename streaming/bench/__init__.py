"""``stream-classify bench``: the server measured against the model and transport limits.

Every measurement runs in one command, on one machine, with the server, the echo server and
the load generator in separate processes (the model limit runs in its own process too, so the
orchestrator never holds TensorFlow's threads while other rows run).
"""
