// Tables of `make bench` results, as aligned text for the terminal and as Markdown for
// bench/last-run.md.

export const RESULT_COLUMNS = [
  { title: 'variant', value: (row) => row.label, align: 'left' },
  { title: 'logins/s', value: (row) => formatNumber(row.loginsPerSecond, 0) },
  { title: 'p50 ms', value: (row) => formatNumber(row.p50, 2) },
  { title: 'p95 ms', value: (row) => formatNumber(row.p95, 2) },
  { title: 'p99 ms', value: (row) => formatNumber(row.p99, 2) },
  { title: '× native', value: (row) => formatRatio(row.ratioToNative) },
  { title: '× ceiling', value: (row) => formatRatio(row.ratioToCeiling) },
  { title: 'IdP requests', value: (row) => formatCount(row.idpRequests) },
  { title: 'IdP new conns', value: (row) => formatCount(row.idpConnections) },
  { title: 'IdP open conns', value: (row) => formatCount(row.idpOpenConnections) },
  { title: 'Dovecot CPU ms/login', value: (row) => formatNumber(row.cpuMsPerLogin, 3) },
  { title: 'logins', value: (row) => formatCount(row.okCount) },
  { title: 'failed', value: (row) => formatCount(row.failCount) },
  { title: 'workers', value: (row) => formatCount(row.workers) },
];

export const RSS_COLUMNS = [
  { title: 'instance', value: (row) => row.label, align: 'left' },
  { title: 'when', value: (row) => row.when, align: 'left' },
  { title: 'auth RSS MiB', value: (row) => formatMiB(row.authRssKb) },
  { title: 'workers', value: (row) => formatCount(row.workerCount) },
  { title: 'worker RSS total MiB', value: (row) => formatMiB(row.workerRssTotalKb) },
  { title: 'worker RSS min MiB', value: (row) => formatMiB(row.workerRssMinKb) },
  { title: 'worker RSS max MiB', value: (row) => formatMiB(row.workerRssMaxKb) },
];

/** Renders `rows` as a text table with a header and aligned columns. */
export function textTable(columns, rows) {
  const cells = rows.map((row) => columns.map((column) => column.value(row)));
  const widths = columns.map((column, index) => Math.max(column.title.length, ...cells.map((line) => line[index].length)));
  const pad = (text, index) => (columns[index].align === 'left' ? text.padEnd(widths[index]) : text.padStart(widths[index]));
  const lines = [columns.map((column, index) => pad(column.title, index)).join('  ')];
  lines.push(widths.map((width) => '-'.repeat(width)).join('  '));
  for (const line of cells) lines.push(line.map(pad).join('  '));
  return lines.join('\n');
}

/** Renders `rows` as a Markdown table. */
export function markdownTable(columns, rows) {
  const escape = (text) => text.replaceAll('|', '\\|');
  const lines = [`| ${columns.map((column) => escape(column.title)).join(' | ')} |`];
  lines.push(`|${columns.map((column) => (column.align === 'left' ? ':---' : '---:')).join('|')}|`);
  for (const row of rows) lines.push(`| ${columns.map((column) => escape(column.value(row))).join(' | ')} |`);
  return lines.join('\n');
}

function formatNumber(value, digits) {
  return Number.isFinite(value) ? value.toFixed(digits) : '-';
}

function formatRatio(value) {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : '-';
}

function formatCount(value) {
  return value === undefined ? '-' : String(value);
}

function formatMiB(kb) {
  return kb === undefined ? '-' : (kb / 1024).toFixed(1);
}
