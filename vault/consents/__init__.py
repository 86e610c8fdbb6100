"""Consents (GDPR Art. 9(2)(a)) to forwarding documents; restrictions of processing (Art. 18)."""
