// The curator views: the unmapped-descriptions queue with suggested LOINC codes (one-click approve
// / reject), datasets with their QC report and a release button, and the audit trail (admins).
// Every button is one call of the public API, exactly what a script would send:
//   GET  /commons/descriptions?status=unmapped   (rows carry the top LOINC suggestions)
//   POST /commons/mappings {modality, description, loinc_code, status}
//   GET  /commons/datasets, GET /commons/datasets/{d}/qc, POST /commons/datasets/{d}/release
//   GET  /commons/audit?actor=&study=&action=&since=&until=&after=&limit=
// The page only offers these to a caller whose `you.can` says so; the API decides regardless.

import { withAuth } from './auth.js';

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'text') e.textContent = v; else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
  return e;
};
const fmt = (n) => (typeof n === 'number' ? n.toLocaleString('en') : String(n ?? ''));

async function call(url, opts = {}, curator = null) {
  const headers = { ...(opts.headers || {}) };
  if (opts.body) headers['Content-Type'] = 'application/json';
  if (curator) headers['X-Archive-Curator'] = curator; // the name the mapping/release records
  const r = await fetch(url, withAuth({ ...opts, headers }));
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || `${r.status} ${r.statusText}`);
  return body;
}

const say = (id, text) => { $(id).textContent = text; };

// ---- the unmapped-descriptions queue ------------------------------------------------------------
async function decide(row, suggestion, status, who) {
  const verb = status === 'approved' ? 'Approved' : 'Rejected';
  try {
    const [done] = (await call('/commons/mappings', { method: 'POST', body: JSON.stringify({
      modality: row.modality, description: row.example, loinc_code: suggestion.loinc_code, status }) }, who)).mappings;
    say('queue-status', `${verb} ${suggestion.loinc_code} for ${row.modality} “${row.example}”`
      + (status === 'approved' ? `: ${fmt(done.studies_updated)} studies now carry it` : '')
      + ` (mapping version ${done.version}).`);
    await loadQueue(who);
  } catch (err) {
    say('queue-status', `Could not record the decision: ${err.message}`);
  }
}

function queueRow(row, who, i) {
  const rejected = row.mapping_status === 'rejected' ? row.proposed_code : null;
  const list = el('ul', { class: 'suggestions' });
  for (const s of row.suggestions || []) {
    if (s.loinc_code === rejected) continue;
    const what = `${s.loinc_code} (${s.long_common_name}) for ${row.modality} “${row.example}”`;
    list.append(el('li', {},
      el('span', { class: 'code', text: s.loinc_code }), ' ', el('span', { text: s.long_common_name }),
      el('span', { class: 'muted', text: ` score ${s.score}` }), ' ',
      el('button', { type: 'button', class: 'approve', 'data-curate': 'approve', 'data-code': s.loinc_code,
        'aria-label': `Approve ${what}`, text: 'Approve', onclick: () => decide(row, s, 'approved', who) }), ' ',
      el('button', { type: 'button', class: 'reject', 'data-curate': 'reject', 'data-code': s.loinc_code,
        'aria-label': `Reject ${what}`, text: 'Reject', onclick: () => decide(row, s, 'rejected', who) })));
  }
  if (!list.children.length) list.append(el('li', { class: 'muted', text: 'no suggestion left' }));
  return el('tr', { id: `queue-${i}`, 'data-modality': row.modality, 'data-description': row.description },
    el('td', { text: row.modality }), el('td', { text: row.example }),
    el('td', { class: 'num', text: fmt(row.studies) }),
    el('td', {}, rejected ? el('p', { class: 'muted', text: `rejected: ${rejected}` }) : null, list));
}

async function loadQueue(who) {
  const { descriptions } = await call('/commons/descriptions?status=unmapped');
  const body = el('tbody', {}, ...descriptions.map((r, i) => queueRow(r, who, i)));
  $('queue').replaceChildren(el('table', { id: 'queue-table' },
    el('caption', { text: `${fmt(descriptions.length)} unmapped study descriptions, most frequent first` }),
    el('thead', {}, el('tr', {}, ...['Modality', 'Description', 'Studies', 'Suggested LOINC codes']
      .map((t) => el('th', { scope: 'col', text: t })))), body));
  document.body.dataset.queue = String(Date.now());
}

// ---- datasets, QC, release --------------------------------------------------------------------
function qcView(qc) {
  const phi = qc.phi || {};
  const items = [
    ['Studies', fmt(qc.studies)],
    ['Cases without clinical data', `${fmt(qc.cases_without_clinical_data.count)}${qc.cases_without_clinical_data.case_ids.length ? `: ${qc.cases_without_clinical_data.case_ids.join(', ')}` : ''}`],
    ['Studies without a case', fmt(qc.studies_without_case.count)],
    ['Unmapped descriptions', (qc.unmapped || []).map((u) => `${u.modality} “${u.example}” (${u.studies})`).join('; ') || 'none'],
    ['Possible PHI in headers', `${fmt(phi.instances_with_findings)} of ${fmt(phi.scanned)} instances scanned`
      + ((phi.findings || []).length ? `: ${phi.findings.map((f) => `${f.keyword} (${f.reason}, ${f.instances})`).join('; ')}` : '')],
    ['Duplicates', qc.duplicates && typeof qc.duplicates.count === 'number'
      ? (qc.duplicates.count ? `${fmt(qc.duplicates.count)}: ${JSON.stringify(qc.duplicates.groups)}` : 'none')
      : JSON.stringify(qc.duplicates)],
  ];
  return el('dl', { class: 'qc' }, ...items.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
}

function datasetCard(d, who, canRelease) {
  const id = `ds-${[...String(d.name)].map((c) => c.charCodeAt(0).toString(36)).join('')}`;
  const qcBox = el('div', { id: `${id}-qc`, class: 'qc-box' });
  const out = el('p', { id: `${id}-out`, role: 'status', 'aria-live': 'polite' });
  const notes = el('input', { id: `${id}-notes`, maxlength: '2000' });
  const showQc = async () => {
    qcBox.replaceChildren(el('p', { text: 'Checking…' }));
    try { qcBox.replaceChildren(qcView(await call(`/commons/datasets/${encodeURIComponent(d.name)}/qc`))); qcBox.dataset.ready = 'true'; } catch (err) { qcBox.replaceChildren(el('p', { text: `QC failed: ${err.message}` })); }
  };
  const release = async () => {
    try {
      const made = await call(`/commons/datasets/${encodeURIComponent(d.name)}/release`, { method: 'POST',
        body: JSON.stringify(notes.value.trim() ? { notes: notes.value.trim() } : {}) }, who);
      out.textContent = `Release ${made.number} made: ${fmt(made.counts?.studies)} studies, `
        + `${fmt(made.counts?.cases_in_release)} cases.`;
      out.dataset.release = String(made.number);
    } catch (err) {
      out.textContent = `Not released: ${err.message}`;
    }
  };
  return el('article', { class: 'cohort dataset', id, 'aria-labelledby': `${id}-title`, 'data-dataset': d.name },
    el('h3', { id: `${id}-title`, text: d.name ?? '(no dataset)' }),
    el('p', { text: `${fmt(d.studies)} studies, ${fmt(d.cases)} cases, ${fmt(d.instances)} instances; `
      + `sites: ${(d.sites || []).join(', ') || 'none'}; last received ${new Date(d.last_received).toLocaleString()}` }),
    el('div', { class: 'buttons' },
      el('button', { type: 'button', 'data-curate': 'qc', text: 'QC report', 'aria-label': `QC report of dataset ${d.name}`, onclick: showQc }),
      canRelease ? el('span', { class: 'field inline' }, el('label', { for: `${id}-notes`, text: 'Release notes' }), notes) : null,
      canRelease ? el('button', { type: 'button', 'data-curate': 'release', text: 'Release',
        'aria-label': `Release dataset ${d.name}`, onclick: release }) : null),
    out, qcBox);
}

async function loadDatasets(who, canRelease) {
  const { datasets } = await call('/commons/datasets');
  $('datasets').replaceChildren(...datasets.filter((d) => d.name !== null).map((d) => datasetCard(d, who, canRelease)));
  if (!datasets.length) $('datasets').append(el('p', { text: 'No dataset yet.' }));
}

/** The curation view; `you` is config.json's caller. */
export async function showCurate(you) {
  $('curate-view').hidden = false;
  if (!you.can.curate) {
    $('curate-body').hidden = true;
    say('curate-denied', you.signed_in
      ? `Curation needs the curator role; you are signed in as ${you.role || 'no role'}.`
      : 'Curation needs the curator role: sign in first.');
    document.body.dataset.ready = 'curate';
    return;
  }
  const who = you.subject;
  await Promise.all([loadQueue(who), loadDatasets(who, you.can.release)]);
  document.body.dataset.ready = 'curate';
}

// ---- the audit trail (admins) -----------------------------------------------------------------
const ACTIONS = ['Application Activity', 'Audit Log Used', 'Begin Transferring DICOM Instances',
  'DICOM Instances Accessed', 'DICOM Instances Transferred', 'DICOM Study Deleted', 'Export', 'Import',
  'Network Entry', 'Query', 'Security Alert', 'User Authentication'];

async function loadAudit(after = null) {
  const q = new URLSearchParams();
  for (const k of ['actor', 'study', 'action', 'since', 'until']) {
    const v = $(`audit-${k}`).value.trim();
    if (v) q.set(k, v);
  }
  q.set('limit', '50');
  if (after !== null) q.set('after', String(after));
  try {
    const { events, next } = await call(`/commons/audit?${q}`);
    const rows = events.map((e) => el('tr', {},
      el('td', { text: new Date(e.time).toLocaleString() }), el('td', { text: e.action }),
      el('td', { text: e.outcome === 0 ? 'success' : `failure (${e.outcome})` }),
      el('td', { text: e.actor || '' }), el('td', { text: [e.role, e.site].filter(Boolean).join(' @ ') }),
      el('td', { text: e.source || '' }), el('td', { text: (e.study_uids || []).join(' ') }),
      el('td', { class: 'detail', text: Object.keys(e.detail || {}).length ? JSON.stringify(e.detail) : '' })));
    $('audit-results').replaceChildren(el('table', { id: 'audit-table' },
      el('caption', { text: `${events.length} audit events${after !== null ? ' (a later page)' : ''}` }),
      el('thead', {}, el('tr', {}, ...['Time', 'Action', 'Outcome', 'Actor', 'Role @ site', 'Source', 'Studies', 'Detail']
        .map((t) => el('th', { scope: 'col', text: t })))), el('tbody', {}, ...rows)));
    $('audit-next').disabled = !events.length || events.length < 50;
    $('audit-next').dataset.after = next ?? '';
    say('audit-status', `${events.length} events shown`);
  } catch (err) {
    say('audit-status', `Could not read the audit trail: ${err.message}`);
  }
  document.body.dataset.ready = `audit-${Date.now()}`;
}

export async function showAudit(you) {
  $('audit-view').hidden = false;
  if (!you.can.audit) {
    $('audit-body').hidden = true;
    say('audit-denied', 'The audit trail (GET /commons/audit) is for administrators: it needs the admin role'
      + (you.signed_in ? `; you are signed in as ${you.role || 'no role'}.` : '; sign in first.'));
    document.body.dataset.ready = 'audit';
    return;
  }
  const select = $('audit-action');
  if (select.options.length <= 1) for (const a of ACTIONS) select.append(el('option', { value: a, text: a }));
  $('audit-form').addEventListener('submit', (ev) => { ev.preventDefault(); loadAudit(); });
  $('audit-next').addEventListener('click', () => loadAudit(+$('audit-next').dataset.after));
  await loadAudit();
}
