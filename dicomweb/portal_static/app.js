// The research portal: Explore (faceted search, charts, results) and My cohorts.
// Plain ES module, no build step. All state lives in the URL query string: the QIDO-RS filter
// pairs themselves (commons.* and DICOM keys, exactly what a cohort freezes) plus the page's own
// `view`, `tab`, `sort`, `order` and `offset`. Data comes from /commons/explore (all facets at
// once), /commons/explore/{studies,cases} (the table) and the cohort API; sign-in is auth.js,
// the curator views (view=curate, view=audit) curate.js.

import { forget, initAuth, signIn, signInOffered, signOut, signedInWith, token, useKey, withAuth } from './auth.js';
import { showAudit, showCurate } from './curate.js';

const PAGE = 25;
const OWN = new Set(['view', 'tab', 'sort', 'order', 'offset']);
const AGE = 'commons.case.age_at_index';
const DATE = 'StudyDate';
const TEXT = 'commons.study_description';
const RANGES = new Set([AGE, DATE, TEXT]);
const CHARTS = [
  [AGE, 'Age at index (years)', 'bar'], ['commons.case.sex', 'Sex', 'bar'],
  ['commons.case.race', 'Race', 'hbar'], ['commons.case.ethnicity', 'Ethnicity', 'bar'],
  ['commons.case.covid19_positive', 'COVID-19 positive', 'bar'],
  ['ModalitiesInStudy', 'Modality', 'bar'], ['commons.site', 'Site', 'bar'],
];
const OPEN = new Set(['commons.case.sex', 'commons.case.race', 'commons.case.ethnicity',
  'commons.case.covid19_positive', 'commons.site', 'ModalitiesInStudy']);

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
const isDicom = (key) => !key.startsWith('commons.');
const sep = (key) => (isDicom(key) ? '\\' : ',');
const fmt = (n) => (typeof n === 'number' ? n.toLocaleString('en') : String(n));
const num = (n) => (typeof n === 'number' ? n : 0);

let config = null;
let state = null;
let charts = {};
let yearBounds = null;

// ---- state <-> URL ------------------------------------------------------------------------
function readUrl() {
  const q = new URLSearchParams(location.search);
  const s = { view: q.get('view') || 'explore', tab: q.get('tab') || 'studies',
    sort: q.get('sort') || '', order: q.get('order') || 'asc',
    offset: Math.max(0, parseInt(q.get('offset') || '0', 10) || 0), filters: new Map() };
  for (const [k, v] of q) {
    if (OWN.has(k) || v === '') continue;
    if (RANGES.has(k)) s.filters.set(k, [v]);
    else s.filters.set(k, (s.filters.get(k) || []).concat(v.split(sep(k)).filter(Boolean)));
  }
  return s;
}

function pairs(s = state) {
  const out = [];
  for (const [k, values] of s.filters) if (values.length) out.push([k, values.join(sep(k))]);
  return out;
}

function urlFor(s, extra = {}) {
  const q = new URLSearchParams(pairs(s));
  if (s.view !== 'explore') q.set('view', s.view);
  if (s.tab !== 'studies') q.set('tab', s.tab);
  if (s.sort) { q.set('sort', s.sort); q.set('order', s.order); }
  if (s.offset) q.set('offset', String(s.offset));
  for (const [k, v] of Object.entries(extra)) q.set(k, v);
  const text = q.toString();
  return text ? `?${text}` : location.pathname;
}

function commit(resetPage = true) {
  if (resetPage) state.offset = 0;
  history.pushState(null, '', urlFor(state));
  refresh();
}

// ---- data ---------------------------------------------------------------------------------
// Credentials (an OIDC sign-in or a pasted API key) live in auth.js; every call sends them.
function message(text) {
  $('auth-message').hidden = !text;
  $('auth-message').textContent = text || '';
}

/** config.json as the current credentials see it; a refused token is dropped (anonymous). */
async function loadConfig() {
  const r = await fetch('config.json', withAuth());
  if (r.status === 401 && token()) {
    forget();
    message('The server did not accept your sign-in (expired or revoked): you are browsing anonymously.');
    return loadConfig();
  }
  if (!r.ok) throw new Error(`config.json: ${r.status} ${r.statusText}`);
  return r.json();
}

function renderAccount() {
  const you = config.you;
  const where = you.site ? `, site ${you.site}` : '';
  $('whoami').replaceChildren(you.signed_in
    ? el('span', {}, 'Signed in as ', el('strong', { id: 'who-subject', text: you.subject }), ' · role ',
      el('strong', { id: 'who-role', text: you.role || 'none' }), where ? ' · site ' : '',
      where ? el('strong', { id: 'who-site', text: you.site }) : '')
    : el('span', { text: `Not signed in (browsing as ${you.role || 'no role'})` }));
  $('sign-in').hidden = you.signed_in || !signInOffered();
  $('sign-out').hidden = !token();
  $('key-form').hidden = you.signed_in;
  $('key-status').textContent = signedInWith() === 'key' ? 'Signed in with a key' : '';
  $('nav-curate').parentElement.hidden = !you.can.curate;
  $('nav-audit').parentElement.hidden = !you.can.audit;
  document.body.dataset.role = you.role || 'none';
}

function wireAccount() {
  $('key-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const value = $('api-key').value.trim();
    useKey(value || null);
    $('api-key').value = '';
    config = await loadConfig();
    renderAccount();
  });
  $('sign-in').addEventListener('click', () => signIn().catch((err) => message(`Sign-in failed: ${err.message}`)));
  $('sign-out').addEventListener('click', () => signOut().catch((err) => message(`Sign-out failed: ${err.message}`)));
}

// Download links of private resources: fetched with the key, saved from a blob URL.
async function downloadWithAuth(ev) {
  if (!token()) return;  // anonymous: the plain link works for published cohorts
  ev.preventDefault();
  const a = ev.currentTarget;
  const r = await fetch(a.getAttribute('href'), withAuth());
  if (!r.ok) { $('save-result').textContent = `Download failed: ${r.status} ${r.statusText}`; return; }
  const url = URL.createObjectURL(await r.blob());
  const tmp = el('a', { href: url, download: a.getAttribute('download') });
  document.body.append(tmp); tmp.click(); tmp.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function getJson(url, opts) {
  const r = await fetch(url, withAuth(opts));
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || `${r.status} ${r.statusText}`);
  return body;
}

const apiQuery = (s, extra = {}) => new URLSearchParams([...pairs(s), ...Object.entries(extra)]);

// ---- facets -------------------------------------------------------------------------------
const optId = (name, value) => 'f-' + [...`${name}=${value}`].map((c) => c.charCodeAt(0).toString(36)).join('');

function facetBlock(facet) {
  const chosen = state.filters.get(facet.name) || [];
  const counts = new Map(facet.values.map((v) => [v.value, v]));
  for (const v of chosen) if (!counts.has(v)) counts.set(v, { value: v, studies: 0, cases: 0 });
  const unit = facet.group; // a case facet counts cases, a study facet studies
  const list = el('fieldset', {}, el('legend', { text: facet.label }));
  for (const v of counts.values()) {
    if (v.value === null) {
      list.append(el('div', { class: 'opt none' }, el('span', { text: 'not reported' }),
        el('span', { class: 'n', text: fmt(v[unit]) })));
      continue;
    }
    const id = optId(facet.name, v.value);
    const box = el('input', { type: 'checkbox', id, checked: chosen.includes(v.value),
      'data-facet': facet.name, 'data-value': v.value, onchange: onFacet });
    list.append(el('div', { class: 'opt' }, box, el('label', { for: id, text: v.value }),
      el('span', { class: 'n', 'aria-label': `${fmt(v[unit])} ${unit}`, text: fmt(v[unit]) })));
  }
  const open = OPEN.has(facet.name) || chosen.length > 0 || undefined;
  const summary = el('summary', { text: facet.label + (chosen.length ? ` (${chosen.length} selected)` : '') });
  const d = el('details', { class: 'facet', open, 'data-facet': facet.name }, summary, list);
  return d;
}

function onFacet(ev) {
  const { facet, value } = ev.target.dataset;
  const safe = value.replace(isDicom(facet) ? /\\/g : /,/g, '?');
  const now = (state.filters.get(facet) || []).filter((v) => v !== safe);
  if (ev.target.checked) now.push(safe);
  if (now.length) state.filters.set(facet, now); else state.filters.delete(facet);
  commit();
}

function renderFacets(answer) {
  const focused = document.activeElement && document.activeElement.id;
  const openNow = new Set([...document.querySelectorAll('details.facet[open]')].map((d) => d.dataset.facet));
  for (const group of ['cases', 'studies']) {
    const box = $(`facets-${group}`);
    box.replaceChildren(...answer.facets
      .filter((f) => f.group === group && !RANGES.has(f.name) && (f.values.length || state.filters.has(f.name)))
      .map(facetBlock));
  }
  for (const d of document.querySelectorAll('details.facet')) if (openNow.has(d.dataset.facet)) d.open = true;
  if (focused && $(focused)) $(focused).focus();
}

// ---- ranges and free text ------------------------------------------------------------------
function syncRanges(answer) {
  const [alo, ahi] = (state.filters.get(AGE)?.[0] || '..').split('..');
  $('age-lo').value = alo || 0; $('age-hi').value = ahi || 89;
  if (!yearBounds) {
    const years = (answer.facets.find((f) => f.name === DATE)?.values || [])
      .map((v) => parseInt(v.value, 10)).filter((y) => !Number.isNaN(y));
    yearBounds = years.length ? [Math.min(...years), Math.max(...years)] : [2000, new Date().getFullYear()];
    for (const id of ['year-lo', 'year-hi']) { $(id).min = yearBounds[0]; $(id).max = yearBounds[1]; }
  }
  const [dlo, dhi] = (state.filters.get(DATE)?.[0] || '-').split('-');
  $('year-lo').value = dlo ? dlo.slice(0, 4) : yearBounds[0];
  $('year-hi').value = dhi ? dhi.slice(0, 4) : yearBounds[1];
  const text = state.filters.get(TEXT)?.[0] || '';
  if (document.activeElement !== $('q')) $('q').value = text.replace(/^\*|\*$/g, '');
  for (const id of ['age-lo', 'age-hi', 'year-lo', 'year-hi']) $(`${id}-out`).value = $(id).value;
}

function onAge() {
  let lo = +$('age-lo').value; let hi = +$('age-hi').value;
  if (lo > hi) [lo, hi] = [hi, lo];
  if (lo === 0 && hi === 89) state.filters.delete(AGE); else state.filters.set(AGE, [`${lo}..${hi}`]);
  commit();
}

function onYear() {
  let lo = +$('year-lo').value; let hi = +$('year-hi').value;
  if (lo > hi) [lo, hi] = [hi, lo];
  if (lo === yearBounds[0] && hi === yearBounds[1]) state.filters.delete(DATE);
  else state.filters.set(DATE, [`${lo}0101-${hi}1231`]);
  commit();
}

let textTimer = null;
function onText() {
  clearTimeout(textTimer);
  textTimer = setTimeout(() => {
    const v = $('q').value.trim().replace(/[,*?\\]/g, ' ').trim();
    if (v) state.filters.set(TEXT, [`*${v}*`]); else state.filters.delete(TEXT);
    commit();
  }, 400);
}

// ---- charts -------------------------------------------------------------------------------
function chartData(facet, unit) {
  const values = (facet?.values || []);
  return { labels: values.map((v) => (v.value === null ? 'not reported' : v.value)),
    counts: values.map((v) => v[unit]) };
}

function describe(title, data, unit) {
  return `${title}: ` + data.labels.map((l, i) => `${l} ${fmt(data.counts[i])}`).join(', ') + ` ${unit}`;
}

function drawChart(canvas, data, kind, unit, compare = null) {
  const datasets = compare
    ? compare.map((c, i) => ({ label: c.label, data: c.values, backgroundColor: i ? '#c05a00' : '#1f5fa8' }))
    : [{ label: unit, data: data.counts.map(num), backgroundColor: '#1f5fa8' }];
  const cfg = { type: 'bar', data: { labels: data.labels, datasets },
    options: { animation: false, responsive: true, maintainAspectRatio: false,
      indexAxis: kind === 'hbar' ? 'y' : 'x',
      plugins: { legend: { display: !!compare },
        tooltip: { callbacks: { label: (ctx) => (compare ? `${ctx.dataset.label}: ${ctx.raw.toFixed(1)}%`
          : `${fmt(data.counts[ctx.dataIndex])} ${unit}`) } } } } };
  if (!window.Chart) return null;
  return new window.Chart(canvas, cfg);
}

function renderCharts(answer) {
  for (const c of Object.values(charts)) c?.destroy();
  charts = {};
  const boxes = CHARTS.map(([name, title, kind]) => {
    const facet = answer.facets.find((f) => f.name === name);
    const unit = facet?.group || 'studies';
    const data = chartData(facet, unit);
    const canvas = el('canvas', { role: 'img', 'aria-label': describe(title, data, unit) });
    const box = el('figure', { class: 'chart' }, el('h3', { text: `${title} (${unit})` }), canvas);
    return [name, box, canvas, data, kind, unit];
  });
  $('charts').replaceChildren(...boxes.map((b) => b[1]));
  for (const [name, , canvas, data, kind, unit] of boxes) charts[name] = drawChart(canvas, data, kind, unit);
}

// ---- results table --------------------------------------------------------------------------
const COLUMNS = {
  studies: [['thumb', 'Thumbnail', false], ['study_date', 'Study date', true], ['case_id', 'Case', true],
    ['study_description', 'Description', true], ['modalities', 'Modalities', true], ['site', 'Site', true],
    ['sex', 'Sex', true], ['age_at_index', 'Age', true], ['covid19_positive', 'COVID-19', true],
    ['num_instances', 'Images', true], ['open', 'Viewer', false]],
  cases: [['case_id', 'Case', true], ['sex', 'Sex', true], ['age_at_index', 'Age', true],
    ['race', 'Race', true], ['ethnicity', 'Ethnicity', true], ['covid19_positive', 'COVID-19', true],
    ['site', 'Site', true], ['studies', 'Matching studies', true], ['show', 'Studies', false]],
};

function age(r) { return r.age_at_index_gt89 ? '90+' : (r.age_at_index ?? ''); }

function cell(tab, key, r) {
  if (key === 'thumb') {
    const src = `/dicom-web/studies/${encodeURIComponent(r.study_uid)}/thumbnail`;
    const alt = `Thumbnail of study ${r.study_description || r.study_uid}`;
    // an <img> request carries no Authorization header: a signed-in caller (who may see studies
    // anonymous callers may not) fetches the image with the token and shows it from a blob URL
    if (!token()) return el('img', { src, alt, loading: 'lazy', width: 64, height: 64 });
    const img = el('img', { alt, width: 64, height: 64 });
    fetch(src, withAuth()).then((res) => (res.ok ? res.blob() : null)).then((blob) => {
      if (blob) { img.src = URL.createObjectURL(blob); img.addEventListener('load', () => URL.revokeObjectURL(img.src), { once: true }); }
    }).catch(() => {});
    return img;
  }
  if (key === 'open') {
    if (!config.viewer) return el('span', { class: 'muted', text: 'no viewer' });
    return el('a', { href: `/viewer/viewer?StudyInstanceUIDs=${encodeURIComponent(r.study_uid)}`,
      'data-study': r.study_uid, text: 'Open in viewer', 'aria-label': `Open in viewer: study ${r.study_uid}` });
  }
  if (key === 'show') {
    return el('button', { type: 'button', text: 'Show studies', 'aria-label': `Show the studies of case ${r.case_id}`,
      onclick: () => { state.filters.set('commons.case.id', [r.case_id]); state.tab = 'studies'; commit(); } });
  }
  if (key === 'age_at_index') return age(r);
  if (key === 'modalities') return (r.modalities || []).join(', ');
  return r[key] ?? '';
}

function renderTable(answer) {
  const tab = state.tab;
  const head = el('tr', {}, ...COLUMNS[tab].map(([key, label, sortable]) => {
    if (!sortable) return el('th', { scope: 'col', text: label });
    const sorted = state.sort === key;
    const th = el('th', { scope: 'col', 'aria-sort': sorted ? (state.order === 'desc' ? 'descending' : 'ascending') : 'none' });
    th.append(el('button', { type: 'button', text: label, 'data-sort': key, onclick: () => {
      state.order = sorted && state.order === 'asc' ? 'desc' : 'asc'; state.sort = key; commit(); } }));
    return th;
  }));
  const body = answer.rows.map((r) => el('tr', {}, ...COLUMNS[tab].map(([key]) => el('td', {}, cell(tab, key, r)))));
  const caption = el('caption', { class: 'sr-only', text: tab === 'studies' ? 'Matching imaging studies' : 'Matching cases' });
  if (answer.withheld) {
    $('results').replaceChildren(el('p', { text: `Fewer than ${config.min_cell_count} ${tab} match: rows are not shown.` }));
  } else {
    $('results').replaceChildren(el('table', { id: 'results-table' }, caption, el('thead', {}, head), el('tbody', {}, ...body)));
  }
  const total = answer.total;
  const first = answer.rows.length ? state.offset + 1 : 0;
  $('page-info').textContent = typeof total === 'number'
    ? `${tab} ${fmt(first)}–${fmt(state.offset + answer.rows.length)} of ${fmt(total)}` : `${tab}: ${total}`;
  $('prev').disabled = state.offset === 0;
  $('next').disabled = typeof total !== 'number' || state.offset + PAGE >= total;
  for (const b of document.querySelectorAll('[role="tab"]')) {
    const on = b.dataset.tab === tab;
    b.setAttribute('aria-selected', String(on)); b.tabIndex = on ? 0 : -1;
  }
}

// ---- explore --------------------------------------------------------------------------------
let generation = 0;
async function refresh() {
  const mine = ++generation;
  const q = apiQuery(state);
  const rowsQ = apiQuery(state, { offset: state.offset, limit: PAGE, ...(state.sort ? { sort: state.sort, order: state.order } : {}) });
  $('status').setAttribute('aria-busy', 'true');
  try {
    const [answer, rows] = await Promise.all([
      getJson(`/commons/explore?${q}`), getJson(`/commons/explore/${state.tab}?${rowsQ}`)]);
    if (mine !== generation) return;
    const t = answer.totals;
    $('status').replaceChildren(el('strong', { id: 'count-cases', text: fmt(t.cases) }), ' cases and ',
      el('strong', { id: 'count-studies', text: fmt(t.studies) }), ' imaging studies match');
    renderFacets(answer); syncRanges(answer); renderCharts(answer); renderTable(rows);
    document.body.dataset.ready = String(mine);
  } catch (err) {
    if (mine === generation) $('status').textContent = `Error: ${err.message}`;
  } finally {
    $('status').removeAttribute('aria-busy');
  }
}

function wireExplore() {
  $('q').addEventListener('input', onText);
  for (const id of ['age-lo', 'age-hi']) {
    $(id).addEventListener('input', () => { $(`${id}-out`).value = $(id).value; });
    $(id).addEventListener('change', onAge);
  }
  for (const id of ['year-lo', 'year-hi']) {
    $(id).addEventListener('input', () => { $(`${id}-out`).value = $(id).value; });
    $(id).addEventListener('change', onYear);
  }
  $('clear').addEventListener('click', () => { state.filters.clear(); $('q').value = ''; commit(); });
  $('prev').addEventListener('click', () => { state.offset = Math.max(0, state.offset - PAGE); commit(false); });
  $('next').addEventListener('click', () => { state.offset += PAGE; commit(false); });
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  for (const b of tabs) {
    b.addEventListener('click', () => { state.tab = b.dataset.tab; state.sort = ''; commit(); });
    b.addEventListener('keydown', (ev) => {
      if (ev.key !== 'ArrowRight' && ev.key !== 'ArrowLeft') return;
      const next = tabs[(tabs.indexOf(b) + (ev.key === 'ArrowRight' ? 1 : tabs.length - 1)) % tabs.length];
      next.focus(); next.click();
    });
  }
  $('save-cohort').addEventListener('click', openSave);
  $('save-cancel').addEventListener('click', () => $('save-dialog').close());
  $('save-form').addEventListener('submit', saveCohort);
  window.addEventListener('popstate', () => { state = readUrl(); refresh(); });
}

// ---- cohorts ----------------------------------------------------------------------------------
function openSave() {
  const p = pairs();
  $('save-summary').textContent = p.length
    ? `Filters: ${p.map(([k, v]) => `${k}=${v}`).join('; ')}. ${$('status').textContent}.`
    : `No filters: the whole commons (${$('status').textContent}).`;
  $('save-dialog').showModal();
  $('cohort-name').focus();
}

async function saveCohort(ev) {
  ev.preventDefault();
  const body = { name: $('cohort-name').value.trim(), description: $('cohort-description').value.trim() || null,
    filters: Object.fromEntries(pairs()) };
  if (!body.name) { $('cohort-name').focus(); return; }
  try {
    const c = await getJson('/commons/cohorts', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body) });
    $('save-dialog').close();
    $('save-result').replaceChildren(`Saved cohort “${c.name}”: ${fmt(c.counts.cases)} cases, ${fmt(c.counts.studies)} studies. `,
      el('a', { href: `./?view=cohorts#cohort-${c.id}`, id: 'saved-link', text: 'Open in My cohorts' }));
  } catch (err) {
    $('save-result').textContent = `Could not save the cohort: ${err.message}`;
  }
}

function copyRow(label, value, id) {
  const input = el('input', { id, readonly: true, value });
  const button = el('button', { type: 'button', text: 'Copy', 'aria-label': `Copy ${label}`, onclick: async () => {
    input.select();
    try { await navigator.clipboard.writeText(value); } catch { document.execCommand('copy'); }
    button.textContent = 'Copied';
  } });
  return el('div', { class: 'copy' }, el('label', { for: id, text: label }), input, button);
}

function cohortCard(c) {
  const base = config.base_url;
  const cli = `archive cohort download ${c.id} --url ${base} --to ./cohort-${c.id.slice(0, 8)}`;
  const size = (c.counts.size_bytes / 1024 ** 2).toFixed(1);
  const compare = el('div', { class: 'charts', id: `compare-${c.id}` });
  const button = el('button', { type: 'button', text: 'Compare with the whole commons',
    onclick: () => compareCohort(c, compare) });
  return el('article', { class: 'cohort', id: `cohort-${c.id}`, 'aria-labelledby': `cohort-title-${c.id}` },
    el('h3', { id: `cohort-title-${c.id}`, text: c.name || '(unnamed cohort)' }),
    c.description ? el('p', { text: c.description }) : null,
    el('dl', {},
      el('dt', { text: 'Counts' }), el('dd', { class: 'counts', text:
        `${fmt(c.counts.cases)} cases, ${fmt(c.counts.studies)} studies, ${fmt(c.counts.series)} series, ${fmt(c.counts.instances)} instances (${size} MiB)` }),
      el('dt', { text: 'Filters' }), el('dd', { text: c.query.map(([k, v]) => `${k}=${v}`).join('; ') || 'none (whole commons)' }),
      el('dt', { text: 'Built on' }), el('dd', { text: `mapping version ${c.mapping_version}, ${new Date(c.created_at).toLocaleString()}` })),
    el('p', {}, 'Manifest: ',
      el('a', { href: `/commons/cohorts/${c.id}/manifest?format=csv`, download: `cohort-${c.id}-manifest.csv`, text: 'CSV', onclick: downloadWithAuth }), ' · ',
      el('a', { href: `/commons/cohorts/${c.id}/manifest?format=json`, download: `cohort-${c.id}-manifest.json`, text: 'JSON', onclick: downloadWithAuth }), ' · ',
      el('a', { href: `/commons/cohorts/${c.id}/clinical?format=csv`, download: `cohort-${c.id}-clinical.csv`, text: 'clinical data (CSV)', onclick: downloadWithAuth })),
    copyRow('DICOMweb root', `${base}/commons/cohorts/${c.id}/dicom-web`, `root-${c.id}`),
    copyRow('Command line', cli, `cli-${c.id}`),
    button, compare);
}

async function compareCohort(c, box) {
  const [mine, all] = await Promise.all([getJson(`/commons/explore?cohort=${c.id}`), getJson('/commons/explore')]);
  const pct = (facet, labels, unit) => {
    const values = new Map((facet?.values || []).map((v) => [v.value === null ? 'not reported' : v.value, num(v[unit])]));
    const sum = [...values.values()].reduce((a, b) => a + b, 0) || 1;
    return labels.map((l) => (100 * (values.get(l) || 0)) / sum);
  };
  const views = CHARTS.map(([name, title, kind]) => {
    const a = all.facets.find((f) => f.name === name); const m = mine.facets.find((f) => f.name === name);
    const labels = [...new Set([...(a?.values || []), ...(m?.values || [])].map((v) => (v.value === null ? 'not reported' : v.value)))];
    const unit = a?.group || 'studies';
    const compare = [{ label: 'cohort', values: pct(m, labels, unit) }, { label: 'commons', values: pct(a, labels, unit) }];
    const text = `${title}, percent of ${unit}, cohort vs commons: ` + labels.map((l, i) =>
      `${l} ${compare[0].values[i].toFixed(0)}% vs ${compare[1].values[i].toFixed(0)}%`).join(', ');
    const canvas = el('canvas', { role: 'img', 'aria-label': text });
    return [el('figure', { class: 'chart' }, el('h4', { text: `${title} (% of ${unit})` }), canvas), canvas, labels, compare, kind];
  });
  box.replaceChildren(...views.map((v) => v[0]));
  for (const [, canvas, labels, compare, kind] of views) drawChart(canvas, { labels, counts: [] }, kind, '%', compare);
  box.dataset.ready = 'true';
}

async function showCohorts() {
  $('explore-view').hidden = true; $('cohorts-view').hidden = false;
  $('nav-cohorts').setAttribute('aria-current', 'page');
  const list = await getJson('/commons/cohorts');
  $('cohorts-status').textContent = `${list.cohorts.length} cohorts`;
  $('cohort-list').replaceChildren(...list.cohorts.slice().reverse().map(cohortCard));
  document.body.dataset.ready = 'cohorts';
  if (location.hash && $(location.hash.slice(1))) $(location.hash.slice(1)).scrollIntoView();
}

async function main() {
  const plain = await (await fetch('config.json')).json(); // where to sign in (no credentials yet)
  message(await initAuth(plain));
  config = await loadConfig();
  renderAccount();
  wireAccount();
  state = readUrl();
  if (state.view === 'cohorts') { await showCohorts(); return; }
  if (state.view === 'curate' || state.view === 'audit') {
    $('explore-view').hidden = true;
    $(`nav-${state.view}`).setAttribute('aria-current', 'page');
    await (state.view === 'curate' ? showCurate(config.you) : showAudit(config.you));
    return;
  }
  $('nav-explore').setAttribute('aria-current', 'page');
  wireExplore();
  await refresh();
}

main();
