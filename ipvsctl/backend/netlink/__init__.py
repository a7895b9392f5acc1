"""Netlink itself, for every kind of kernel state: messages (``message``), a batching socket (``channel``),
sockets in another network namespace (``netns``) and generic-netlink families (``genl``).

Knows nothing of IPVS or interfaces: ``backend.ipvs`` and ``backend.rtnl`` build on it.
"""
