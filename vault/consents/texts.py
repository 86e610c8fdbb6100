"""The consent texts a patient can agree to, by version. A text never changes once published:
a new wording is a new version, and each consent stores the SHA-256 of the exact text agreed to."""

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class ConsentText:
    version: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


FORWARDING_2026_11 = ConsentText(
    version="forwarding-2026-11",
    text=(
        "Declaration of consent to the forwarding of health data\n\n"
        "I hereby expressly consent, in accordance with Art. 9(2)(a) and Art. 6(1)(a) of the "
        "General Data Protection Regulation (GDPR), to the operator of this service forwarding "
        "the medical records, findings and invoices I have uploaded for this treatment request, "
        "together with the details required to identify the treatment request, to medical "
        "institutions (hospitals, physicians, rehabilitation and nursing facilities) and, where "
        "I have asked for it, to my health insurer, for the purposes of checking whether a "
        "treatment is possible and of organising that treatment.\n\n"
        "Each forwarding names its recipient, its purpose and the documents sent; I can see "
        "every forwarding and every download by a recipient in my account.\n\n"
        "This consent is voluntary. Refusing it has no disadvantage for me other than that "
        "documents cannot be forwarded on the basis of consent. I may withdraw this consent "
        "at any time with effect for the future (Art. 7(3) GDPR); withdrawal does not affect "
        "the lawfulness of forwarding carried out before it. After withdrawal no further "
        "documents are forwarded on the basis of this consent.\n"
    ),
)

CONSENT_TEXTS: dict[str, ConsentText] = {FORWARDING_2026_11.version: FORWARDING_2026_11}
