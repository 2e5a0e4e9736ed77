"""A faithful local QuickBooks Online (DESIGN.md section 7)."""
