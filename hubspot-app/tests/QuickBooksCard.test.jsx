import { describe, expect, it, vi } from 'vitest';

vi.mock('@hubspot/ui-extensions', async (importOriginal) => {
  const actual = await importOriginal();
  return { ...actual, hubspot: { ...actual.hubspot, extend: vi.fn() } };
});

describe('the card entry point', () => {
  it('registers the billing card with hubspot.fetch and the configured backend', async () => {
    await import('../src/app/cards/QuickBooksCard.jsx');
    const { hubspot } = await import('@hubspot/ui-extensions');
    const { BillingCard } = await import('../src/app/cards/BillingCard.jsx');
    const { BACKEND_URL } = await import('../src/app/cards/config.js');
    expect(hubspot.extend).toHaveBeenCalledTimes(1);
    const element = hubspot.extend.mock.calls[0][0]({ context: {}, actions: {} });
    expect(element.type).toBe(BillingCard);
    expect(element.props).toEqual({ fetcher: hubspot.fetch, baseUrl: BACKEND_URL });
  });
});
