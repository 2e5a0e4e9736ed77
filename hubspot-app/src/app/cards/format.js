// Display helpers. Amounts arrive as exact decimal strings with their currency (money is never a float
// here either); they are shown as they came, with the currency code.

export function money(amount, currency) {
  if (amount === null || amount === undefined || amount === '') {
    return '—';
  }
  return currency ? `${amount} ${currency}` : String(amount);
}

const STATUS_VARIANTS = {
  Overdue: 'danger',
  'Partially paid': 'warning',
  Open: 'info',
  Pending: 'info',
  Paid: 'success',
  Applied: 'success',
  Accepted: 'success',
  Closed: 'default',
  Voided: 'default',
};

export function statusVariant(status) {
  return STATUS_VARIANTS[status] || 'default';
}

export function statusText(item) {
  if (item.status === 'Overdue' && item.days_overdue) {
    return `Overdue ${item.days_overdue} d`;
  }
  return item.status || '';
}

export function lastPaymentText(payment) {
  if (!payment) {
    return 'None yet';
  }
  return `${money(payment.amount, payment.currency)} on ${payment.date}`;
}
