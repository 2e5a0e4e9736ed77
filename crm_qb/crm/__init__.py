"""The CRM side: connector protocol and the REST connector of DESIGN.md section 6."""
