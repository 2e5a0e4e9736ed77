"""Everything crm-qb needs to talk to QuickBooks Online."""
