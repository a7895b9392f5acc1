"""ipvsctl: an IPVS node agent for Kubernetes (pure core + thin I/O shells)."""

__version__ = "0.1.0"
