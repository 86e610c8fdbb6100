"""Intake: type detection and sanitising of uploads, before they are encrypted.

Accepts PDF, JPEG, PNG and TIFF, detected from content; keeps what a reader needs to see the
document and removes metadata (EXIF, GPS, XMP, IPTC, comments, document info) and active
content (JavaScript, launch and submit actions, embedded files). Refusals raise
InvalidDocument or DocumentTooLarge with a message safe to show the uploader.
"""

from vault.intake.detect import ACCEPTED_TYPES
from vault.intake.document import SanitisedDocument
from vault.intake.limits import IntakeLimits
from vault.intake.service import sanitised

__all__ = ["ACCEPTED_TYPES", "IntakeLimits", "SanitisedDocument", "sanitised"]
