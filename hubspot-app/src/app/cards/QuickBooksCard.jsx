import React from 'react';
import { hubspot } from '@hubspot/ui-extensions';

import { BillingCard } from './BillingCard.jsx';
import { BACKEND_URL } from './config.js';

// The card's entry point (quickbooks-card-hsmeta.json): HubSpot renders it on contact records.
hubspot.extend(() => <BillingCard fetcher={hubspot.fetch} baseUrl={BACKEND_URL} />);
