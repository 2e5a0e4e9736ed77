"""A reference CRM that speaks the REST connector contract (DESIGN.md section 6)."""
