"""Privacy: PII detection, redaction and keyed pseudonymisation (Presidio)."""
