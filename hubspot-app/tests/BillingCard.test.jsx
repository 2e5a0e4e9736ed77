import React from 'react';
import { describe, expect, it } from 'vitest';
import { createRenderer } from '@hubspot/ui-extensions/testing';
import {
  Alert,
  Button,
  EmptyState,
  Link,
  LoadingSpinner,
  StatisticsItem,
  StatusTag,
  TableRow,
  Text,
} from '@hubspot/ui-extensions';

import { BillingCard } from '../src/app/cards/BillingCard.jsx';
import { cardUrl } from '../src/app/cards/backend.js';

const BASE = 'https://crm-qb.example.com';

// The body of GET /hubspot/card/contacts/{id} as docs/hubspot/card.md defines it.
const LINKED = {
  portal_id: 123,
  crm_contact_id: '123',
  connection_id: 7,
  link: { state: 'linked', reason: null, qbo_customer_id: '58', customer_url: 'https://app.qbo.intuit.com/app/customerdetail?nameId=58' },
  summary: {
    terms: 'Net 30',
    preferred_payment_method: 'Check',
    delivery_preference: 'Email',
    currency: 'USD',
    home_currency: 'USD',
    qbo_balance: '350.00',
    open_balance: { by_currency: { USD: '350.00' }, home: '350.00' },
    overdue_balance: { by_currency: { USD: '300.00' }, home: '300.00' },
    last_payment: { qbo_id: '140', date: '2026-11-02', currency: 'USD', amount: '500.00', home_amount: '500.00', url: 'https://app.qbo.intuit.com/app/recvpayment?txnId=140' },
    counts: { Invoice: 2, Payment: 1 },
    totals: {},
    home_totals: {},
    customer_url: 'https://app.qbo.intuit.com/app/customerdetail?nameId=58',
  },
  transactions: [
    { type: 'Invoice', qbo_id: '130', number: '1001', date: '2026-10-01', due_date: '2026-10-31', status: 'Overdue', days_overdue: 31, currency: 'USD', total: '500.00', balance: '300.00', url: 'https://app.qbo.intuit.com/app/invoice?txnId=130' },
    { type: 'Payment', qbo_id: '140', number: null, date: '2026-11-02', status: 'Applied', currency: 'USD', total: '500.00', balance: '0.00', url: 'https://app.qbo.intuit.com/app/recvpayment?txnId=140' },
  ],
  transactions_total: 3,
  panel_url: 'https://crm-qb.example.com/panel/7/contacts/123?token=abc',
};

function fakeFetch(status, body) {
  const calls = [];
  const fetcher = (url, options) => {
    calls.push({ url, options });
    return Promise.resolve({ ok: status >= 200 && status < 300, status, json: () => Promise.resolve(body) });
  };
  return { fetcher, calls };
}

describe('BillingCard', () => {
  it('asks the card endpoint for the record it is shown on', async () => {
    const { render, waitFor, find } = createRenderer('crm.record.tab');
    const { fetcher, calls } = fakeFetch(200, LINKED);
    render(<BillingCard fetcher={fetcher} baseUrl={BASE} />);
    expect(find(LoadingSpinner).props.label).toBe('Loading QuickBooks');
    await waitFor(() => expect(find(StatisticsItem).props.number).toBe('350.00 USD'));
    expect(calls).toEqual([{ url: `${BASE}/hubspot/card/contacts/123?limit=5`, options: { method: 'GET', timeout: 10000 } }]);
  });

  it('shows the summary and the recent transactions with links into QuickBooks', async () => {
    const { render, waitFor, find, findAll } = createRenderer('crm.record.tab');
    render(<BillingCard fetcher={fakeFetch(200, LINKED).fetcher} baseUrl={BASE} />);
    await waitFor(() => expect(findAll(StatisticsItem)).toHaveLength(2));
    const [open, overdue] = findAll(StatisticsItem);
    expect([open.props.label, overdue.props.number]).toEqual(['Open balance', '300.00 USD']);
    expect(findAll(TableRow)).toHaveLength(3);
    const tags = findAll(StatusTag);
    expect(tags.map((t) => [t.text, t.props.variant])).toEqual([['Overdue 31 d', 'danger'], ['Applied', 'success']]);
    const links = findAll(Link).map((l) => l.props.href.url);
    expect(links).toContain('https://app.qbo.intuit.com/app/invoice?txnId=130');
    expect(links).toContain(LINKED.summary.customer_url);
    expect(find(Link, (node) => node.props.href.url === LINKED.transactions[0].url).text).toBe('Invoice 1001');
  });

  it('opens the full panel in an iframe modal', async () => {
    const { render, waitFor, find, mocks } = createRenderer('crm.record.tab');
    render(<BillingCard fetcher={fakeFetch(200, LINKED).fetcher} baseUrl={BASE} />);
    await waitFor(() => expect(find(Button, { variant: 'primary' }).text).toBe('Open QuickBooks panel'));
    find(Button, { variant: 'primary' }).trigger('onClick');
    expect(mocks.actions.openIframeModal.callCount).toBe(1);
    expect(mocks.actions.openIframeModal.calls[0][0]).toEqual({ uri: LINKED.panel_url, width: 1000, height: 800, title: 'QuickBooks' });
  });

  it('says when the contact is not linked yet and still offers the panel', async () => {
    const { render, waitFor, find } = createRenderer('crm.record.tab');
    const body = { ...LINKED, summary: null, transactions: [], link: { state: 'review', reason: 'Two QuickBooks customers match this contact.', qbo_customer_id: null } };
    render(<BillingCard fetcher={fakeFetch(200, body).fetcher} baseUrl={BASE} />);
    await waitFor(() => expect(find(EmptyState).props.title).toBe('Not linked to QuickBooks'));
    expect(find(EmptyState).find(Text).text).toBe('Two QuickBooks customers match this contact.');
    expect(find(Button).text).toBe('Open QuickBooks panel');
  });

  it('shows the server error and retries on request', async () => {
    const { render, waitFor, find } = createRenderer('crm.record.tab');
    let answer = { status: 503, body: { error: { code: 'unavailable', message: 'QuickBooks is being reconnected.' } } };
    const calls = [];
    const fetcher = (url) => {
      calls.push(url);
      const { status, body } = answer;
      return Promise.resolve({ ok: status === 200, status, json: () => Promise.resolve(body) });
    };
    render(<BillingCard fetcher={fetcher} baseUrl={BASE} />);
    await waitFor(() => expect(find(Alert).text).toBe('QuickBooks is being reconnected.'));
    answer = { status: 200, body: LINKED };
    find(Button).trigger('onClick');
    await waitFor(() => expect(find(StatisticsItem).props.label).toBe('Open balance'));
    expect(calls).toHaveLength(2);
  });
});

describe('cardUrl', () => {
  it('encodes the contact id and trims a trailing slash', () => {
    expect(cardUrl('https://x.example/', 'a/b', 3)).toBe('https://x.example/hubspot/card/contacts/a%2Fb?limit=3');
  });
});
