"""crm-qb: keeps a CRM and QuickBooks Online in step."""
