"""Partner links: an unguessable token plus a separate access code, bound to one transfer."""
