"""The agent's interface over rtnetlink: link messages (``links``), address messages (``addresses``), and
both over one batching socket (``interface``). No pyroute2.
"""
