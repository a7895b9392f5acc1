"""The netfilter half of the data path (pure): which nftables set elements a desired table needs, and the table."""
