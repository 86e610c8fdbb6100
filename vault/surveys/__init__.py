"""The patient satisfaction survey, QA consent and objections to QA use (GDPR Art. 21)."""
