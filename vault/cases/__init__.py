"""Cases (treatment requests): one case key each, the unit of retention and crypto-shredding."""
