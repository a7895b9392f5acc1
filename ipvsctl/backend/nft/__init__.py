"""The netfilter half in the kernel: ipvsctl's nftables table (``nft -f``) and its set elements (netlink)."""
