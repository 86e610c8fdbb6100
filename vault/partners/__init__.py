"""Partners: the clinics, physicians, insurers and facilities documents are forwarded to."""
