"""HTTP ingress: QBO webhooks and CRM change hooks. Verify, store durably, enqueue after commit, answer."""
