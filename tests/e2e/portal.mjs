// Drive the research portal (/portal/) in headless Debian Chromium (playwright-core).
//
//   node tests/e2e/portal.mjs PLAN.json
//
// PLAN.json (written by tests/e2e/test_portal.py): base (archive URL), out (artifacts folder),
// nodeModules (holds playwright-core and axe-core), chromium, clicks (facet checkboxes to tick:
// [{facet, value, keyboard}]), cohortName. Records what the page shows at each step (counts,
// URL, table rows, every text and URL on every result page, axe-core violations) and writes
// out/report.json; the pytest side decides pass/fail from it.
import { createRequire } from 'node:module';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import os from 'node:os';

const plan = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const require = createRequire(join(plan.nodeModules, 'package.json'));
const { chromium } = require('playwright-core');
const AXE = require.resolve('axe-core/axe.min.js');
const OUT = plan.out;
mkdirSync(OUT, { recursive: true });
const report = { consoleErrors: [], pageErrors: [], failedRequests: [], nonLoopback: [], axe: {}, steps: {} };
const LOOPBACK = (h) => h === 'localhost' || /^127\./.test(h) || h === '[::1]';

const context = await chromium.launchPersistentContext(mkdtempSync(join(os.tmpdir(), 'portal-e2e-')), {
  executablePath: plan.chromium, headless: true, acceptDownloads: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-dev-shm-usage',
    '--disable-background-networking', '--proxy-server=http://127.0.0.1:9',
    '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1'],
  viewport: { width: 1400, height: 1000 }, timeout: 60000,
});
const page = context.pages()[0] || await context.newPage();
let phase = 'start';
page.on('console', (m) => { if (m.type() === 'error') report.consoleErrors.push({ phase, text: m.text().slice(0, 500) }); });
page.on('pageerror', (e) => report.pageErrors.push({ phase, text: String(e?.stack || e).slice(0, 1000) }));
context.on('request', (req) => {
  const u = req.url();
  if (!u.startsWith('data:') && !u.startsWith('blob:') && !LOOPBACK(new URL(u).hostname)) report.nonLoopback.push(u);
});
context.on('requestfinished', async (req) => {
  const resp = await req.response().catch(() => null);
  if (resp && resp.status() >= 400 && phase !== 'viewer') {
    report.failedRequests.push({ phase, url: req.url(), status: resp.status() });
  }
});

const ready = async (previous) => {
  await page.waitForFunction((p) => document.body.dataset.ready && document.body.dataset.ready !== p,
    previous ?? null, { timeout: 30000 });
  return page.evaluate(() => document.body.dataset.ready);
};
const counts = () => page.evaluate(() => ({
  cases: document.getElementById('count-cases')?.textContent,
  studies: document.getElementById('count-studies')?.textContent,
  status: document.querySelector('[role="status"]')?.textContent,
  statusRole: document.getElementById('status')?.getAttribute('role'),
}));
const tableRows = () => page.evaluate(() => [...document.querySelectorAll('#results-table tbody tr')]
  .map((tr) => [...tr.cells].map((td) => td.textContent.trim())));
const checked = () => page.evaluate(() => [...document.querySelectorAll('input[type=checkbox]:checked')]
  .map((b) => `${b.dataset.facet}=${b.dataset.value}`));
const axe = async (name) => {
  await page.addScriptTag({ path: AXE });
  const res = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length,
      targets: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  report.axe[name] = res;
};
const shot = (name) => page.screenshot({ path: join(OUT, name), fullPage: true });
// every text, link and image URL of every page of a results tab (for the sequestration check)
const harvest = async (tab) => {
  const seen = [];
  await page.goto(`${plan.base}/portal/?tab=${tab}`);
  let r = await ready();
  for (let i = 0; i < 100; i++) {
    seen.push(await page.evaluate(() => document.body.innerText + '\n' + [...document.querySelectorAll('[href],[src]')]
      .map((e) => e.getAttribute('href') || e.getAttribute('src')).join('\n')));
    if (await page.isDisabled('#next')) break;
    await page.click('#next');
    r = await ready(r);
  }
  return seen.join('\n');
};

try {
  phase = 'explore';
  await page.goto(`${plan.base}/portal/`);
  let r = await ready();
  // sign in as a named reader (saving a cohort needs one): paste the API key into the header form
  await page.fill('#api-key', plan.token);
  await page.click('#use-key');
  await page.waitForFunction(() => document.getElementById('key-status').textContent !== '', null, { timeout: 30000 });
  report.steps.initial = await counts();
  await shot('01-explore.png');
  await axe('explore');

  phase = 'filters';
  for (const c of plan.clicks) {
    const box = page.locator(`input[type=checkbox][data-facet="${c.facet}"][data-value="${c.value}"]`);
    if (c.keyboard) { await box.focus(); await page.keyboard.press('Space'); } else await box.click();
    r = await ready(r);
  }
  report.steps.filtered = { ...(await counts()), url: page.url(), checked: await checked(),
    focused: await page.evaluate(() => document.activeElement?.dataset?.value || null) };
  await page.click('th button[data-sort="case_id"]');
  r = await ready(r);
  await page.click('th button[data-sort="case_id"]');
  r = await ready(r);
  report.steps.sorted = { url: page.url(), rows: await tableRows(),
    ariaSort: await page.getAttribute('th:has(button[data-sort="case_id"])', 'aria-sort') };
  await shot('02-filtered.png');
  await axe('filtered');

  phase = 'roundtrip';
  const again = await context.newPage();
  await again.goto(report.steps.sorted.url);
  await again.waitForFunction(() => document.body.dataset.ready, null, { timeout: 30000 });
  report.steps.roundtrip = await again.evaluate(() => ({
    cases: document.getElementById('count-cases')?.textContent,
    studies: document.getElementById('count-studies')?.textContent,
    checked: [...document.querySelectorAll('input[type=checkbox]:checked')].map((b) => `${b.dataset.facet}=${b.dataset.value}`),
    rows: [...document.querySelectorAll('#results-table tbody tr')].map((tr) => [...tr.cells].map((td) => td.textContent.trim())),
  }));
  await again.close();

  phase = 'cohort';
  await page.click('#save-cohort');
  await page.fill('#cohort-name', plan.cohortName);
  await page.fill('#cohort-description', 'made by the browser test');
  await page.click('#save-confirm');
  await page.waitForSelector('#saved-link', { timeout: 30000 });
  report.steps.saved = await page.textContent('#save-result');
  await page.click('#saved-link');
  await page.waitForFunction(() => document.body.dataset.ready === 'cohorts', null, { timeout: 30000 });
  const card = page.locator('article.cohort', { hasText: plan.cohortName }).first();
  report.steps.cohortCard = { text: await card.innerText(),
    root: await card.locator('input[id^="root-"]').inputValue(),
    cli: await card.locator('input[id^="cli-"]').inputValue() };
  const [download] = await Promise.all([page.waitForEvent('download'), card.getByRole('link', { name: 'CSV', exact: true }).click()]);
  const manifest = join(OUT, 'manifest.csv');
  await download.saveAs(manifest);
  report.steps.manifest = manifest;
  await card.getByRole('button', { name: 'Compare with the whole commons' }).click();
  await page.waitForSelector('.cohort .charts[data-ready="true"] canvas', { timeout: 30000 });
  await shot('03-cohorts.png');
  await axe('cohorts');

  phase = 'sequestration';
  report.steps.harvest = { studies: await harvest('studies'), cases: await harvest('cases') };

  phase = 'viewer';
  await page.goto(report.steps.sorted.url);
  await ready();
  const link = page.locator('a[data-study]').first();
  report.steps.viewer = { study: await link.getAttribute('data-study') };
  await link.click();
  await page.waitForURL(/\/viewer\/viewer\?StudyInstanceUIDs=/, { timeout: 30000 });
  const drawn = await page.waitForFunction(() => [...document.querySelectorAll('canvas')]
    .some((c) => c.width > 50 && c.height > 50 && c.offsetParent !== null), null, { timeout: 90000 })
    .then(() => true).catch(() => false);
  await page.waitForTimeout(1500);
  report.steps.viewer.url = page.url();
  report.steps.viewer.canvas = drawn;
  await shot('04-viewer.png');
  report.ok = true;
} catch (err) {
  report.error = `${phase}: ${err?.stack || err}`;
  await shot('error.png').catch(() => {});
} finally {
  writeFileSync(join(OUT, 'report.json'), JSON.stringify(report, null, 1));
  await context.close();
}
