import React, { useCallback, useEffect, useState } from 'react';
import {
  Alert,
  Button,
  DescriptionList,
  DescriptionListItem,
  Divider,
  EmptyState,
  Flex,
  Link,
  LoadingSpinner,
  Statistics,
  StatisticsItem,
  StatusTag,
  Table,
  TableBody,
  TableCell,
  TableHead,
  TableHeader,
  TableRow,
  Text,
  useExtensionActions,
  useExtensionContext,
} from '@hubspot/ui-extensions';

import { loadCard } from './backend.js';
import { PANEL_MODAL, RECENT_TRANSACTIONS } from './config.js';
import { lastPaymentText, money, statusText, statusVariant } from './format.js';

// The QuickBooks card on a contact record: the Payment & Billing summary, the recent transactions, and a
// button that opens the full crm-qb panel in an iframe modal. ``fetcher`` is hubspot.fetch in HubSpot and a
// fake in tests; everything the card shows comes from the crm-qb card endpoint (docs/hubspot/card.md).
export function BillingCard({ fetcher, baseUrl, limit = RECENT_TRANSACTIONS }) {
  const context = useExtensionContext();
  const actions = useExtensionActions();
  const contactId = context.crm.objectId;
  const [state, setState] = useState({ loading: true, data: null, error: null });

  const load = useCallback(() => {
    setState({ loading: true, data: null, error: null });
    loadCard(fetcher, baseUrl, contactId, limit)
      .then((data) => setState({ loading: false, data, error: null }))
      .catch((error) => setState({ loading: false, data: null, error }));
  }, [fetcher, baseUrl, contactId, limit]);

  useEffect(load, [load]);

  if (state.loading) {
    return <LoadingSpinner label="Loading QuickBooks" showLabel={true} layout="centered" />;
  }
  if (state.error) {
    return (
      <Flex direction="column" gap="small">
        <Alert title="QuickBooks is unavailable" variant="error">
          {state.error.message}
        </Alert>
        <Button onClick={load} variant="secondary">Try again</Button>
      </Flex>
    );
  }
  const openPanel = () => actions.openIframeModal({ uri: state.data.panel_url, ...PANEL_MODAL });
  if (!state.data.summary) {
    return <NotLinked link={state.data.link} onOpenPanel={openPanel} />;
  }
  return <Linked data={state.data} onOpenPanel={openPanel} />;
}

function NotLinked({ link, onOpenPanel }) {
  const reason = link && link.reason ? link.reason : 'This contact is not linked to a QuickBooks customer yet.';
  return (
    <EmptyState title="Not linked to QuickBooks" layout="vertical" imageName="integrations">
      <Text>{reason}</Text>
      <Button onClick={onOpenPanel} variant="primary">Open QuickBooks panel</Button>
    </EmptyState>
  );
}

function Linked({ data, onOpenPanel }) {
  const { summary, transactions } = data;
  const home = summary.home_currency;
  return (
    <Flex direction="column" gap="medium">
      <Statistics>
        <StatisticsItem label="Open balance" number={money(summary.open_balance.home, home)} />
        <StatisticsItem label="Overdue" number={money(summary.overdue_balance.home, home)} />
      </Statistics>
      <DescriptionList direction="row">
        <DescriptionListItem label="Terms"><Text>{summary.terms || '—'}</Text></DescriptionListItem>
        <DescriptionListItem label="Payment method">
          <Text>{summary.preferred_payment_method || '—'}</Text>
        </DescriptionListItem>
        <DescriptionListItem label="Delivery"><Text>{summary.delivery_preference || '—'}</Text></DescriptionListItem>
        <DescriptionListItem label="Currency"><Text>{summary.currency || home}</Text></DescriptionListItem>
        <DescriptionListItem label="Last payment">
          <Text>{lastPaymentText(summary.last_payment)}</Text>
        </DescriptionListItem>
      </DescriptionList>
      <Divider />
      <RecentTransactions transactions={transactions} />
      <Flex direction="row" gap="small">
        <Button onClick={onOpenPanel} variant="primary">Open QuickBooks panel</Button>
        {summary.customer_url ? (
          <Link href={{ url: summary.customer_url, external: true }}>Customer in QuickBooks</Link>
        ) : null}
      </Flex>
    </Flex>
  );
}

function RecentTransactions({ transactions }) {
  if (!transactions.length) {
    return <Text>No QuickBooks transactions yet.</Text>;
  }
  return (
    <Table bordered={true}>
      <TableHead>
        <TableRow>
          <TableHeader>Transaction</TableHeader>
          <TableHeader>Date</TableHeader>
          <TableHeader>Status</TableHeader>
          <TableHeader>Total</TableHeader>
          <TableHeader>Balance</TableHeader>
        </TableRow>
      </TableHead>
      <TableBody>
        {transactions.map((item) => (
          <TableRow key={`${item.type}-${item.qbo_id}`}>
            <TableCell>
              <Link href={{ url: item.url, external: true }}>{`${item.type} ${item.number || item.qbo_id}`}</Link>
            </TableCell>
            <TableCell>{item.date || ''}</TableCell>
            <TableCell>
              <StatusTag variant={statusVariant(item.status)}>{statusText(item)}</StatusTag>
            </TableCell>
            <TableCell>{money(item.total, item.currency)}</TableCell>
            <TableCell>{money(item.balance, item.currency)}</TableCell>
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}
