"""Retention: crypto-shredding at the end of the retention period, legal holds, purges."""
