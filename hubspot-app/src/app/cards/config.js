// Where the crm-qb server is reached by HubSpot's proxy. It must be listed in app-hsmeta.json under
// permittedUrls.fetch (and iframe, for the panel); HubSpot allows HTTPS URLs only, never localhost.
export const BACKEND_URL = 'https://crm-qb.example.com';

// How many recent transactions the card shows (the endpoint caps it at 20).
export const RECENT_TRANSACTIONS = 5;

// Size of the modal that opens the full crm-qb panel.
export const PANEL_MODAL = { width: 1000, height: 800, title: 'QuickBooks' };
