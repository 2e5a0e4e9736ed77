// Calls the crm-qb card endpoint (docs/hubspot/card.md) through hubspot.fetch. HubSpot's proxy adds
// portalId, userId, userEmail and appId to the query string and signs the request with the app's client
// secret, so the card sends no credentials of its own.

export class CardError extends Error {
  constructor(status, message) {
    super(message || `The crm-qb server answered ${status}.`);
    this.name = 'CardError';
    this.status = status;
  }
}

export function cardUrl(baseUrl, contactId, limit) {
  const base = baseUrl.replace(/\/+$/, '');
  return `${base}/hubspot/card/contacts/${encodeURIComponent(String(contactId))}?limit=${limit}`;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return body && body.error && body.error.message;
  } catch {
    return undefined;
  }
}

export async function loadCard(fetcher, baseUrl, contactId, limit) {
  const response = await fetcher(cardUrl(baseUrl, contactId, limit), { method: 'GET', timeout: 10000 });
  if (!response.ok) {
    throw new CardError(response.status, await errorMessage(response));
  }
  return response.json();
}
