"""Local stand-ins for QuickBooks Online and a CRM, for the demo, end-to-end tests and benchmarks."""
