"""IPVS over generic netlink: attribute tables (``attributes``), model values ⇄ attributes (``codec``),
attributes ⇄ bytes (``wire``), the transports (``transport``: the protocol; ``lean``, the default;
``pyroute2``, the reference) and reading the table again without decoding what did not change (``reread``).
"""
