// Sign in to the research portal through the real OpenID provider and use the curator views, in
// headless Debian Chromium (playwright-core).
//
//   node tests/e2e/portal_curator.mjs PLAN.json
//
// PLAN.json (written by tests/e2e/test_portal_curator.py): base (archive URL), out (artifacts),
// nodeModules (playwright-core, axe-core), chromium, reader / curator / admin (account ids the
// provider's login form accepts). Records what the page shows at each step in out/report.json;
// the pytest side decides pass/fail. Requests, console errors and HTTP errors count only while
// the tab shows the archive: the provider's own login pages (oidc-provider's development forms)
// link a web font, which the sandboxed browser may not fetch and which is not the portal's.
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

const context = await chromium.launchPersistentContext(mkdtempSync(join(os.tmpdir(), 'portal-cur-')), {
  executablePath: plan.chromium, headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-dev-shm-usage',
    '--disable-background-networking', '--proxy-server=http://127.0.0.1:9',
    '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1'],
  viewport: { width: 1400, height: 1000 }, timeout: 60000,
});
const page = context.pages()[0] || await context.newPage();
let phase = 'start';
const onArchive = () => page.url().startsWith(plan.base);
page.on('console', (m) => {
  if (m.type() === 'error' && onArchive()) report.consoleErrors.push({ phase, url: page.url(), text: m.text().slice(0, 500) });
});
page.on('pageerror', (e) => report.pageErrors.push({ phase, text: String(e?.stack || e).slice(0, 1000) }));
context.on('request', (req) => {
  const u = req.url();
  if (u.startsWith('data:') || u.startsWith('blob:') || LOOPBACK(new URL(u).hostname)) return;
  if (onArchive()) report.nonLoopback.push({ phase, url: u });
});
context.on('requestfinished', async (req) => {
  const resp = await req.response().catch(() => null);
  if (resp && resp.status() >= 400 && req.url().startsWith(plan.base)) {
    report.failedRequests.push({ phase, url: req.url(), status: resp.status() });
  }
});

const ready = async (previous) => {
  await page.waitForFunction((p) => document.body.dataset.ready && document.body.dataset.ready !== p,
    previous ?? null, { timeout: 60000 });
  return page.evaluate(() => document.body.dataset.ready);
};
const shot = (name) => page.screenshot({ path: join(OUT, name), fullPage: true });
const axe = async (name) => {
  await page.addScriptTag({ path: AXE });
  report.axe[name] = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length,
      targets: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
};
const account = () => page.evaluate(() => ({
  whoami: document.getElementById('whoami').textContent,
  subject: document.getElementById('who-subject')?.textContent ?? null,
  role: document.getElementById('who-role')?.textContent ?? null,
  site: document.getElementById('who-site')?.textContent ?? null,
  navCurate: !document.getElementById('nav-curate').parentElement.hidden,
  navAudit: !document.getElementById('nav-audit').parentElement.hidden,
  token: sessionStorage.getItem('archive.token'),
}));
const claimsOf = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
const onPortal = (href) => href.startsWith(`${plan.base}/portal/`) && !href.includes('view=signin');

// The code flow as a person does it: "Sign in", the provider's login form, its consent page,
// back on the portal with a token.
async function signIn(login, shotName = null) {
  await page.goto(`${plan.base}/portal/`);
  await ready();
  await page.click('#sign-in');
  await page.waitForURL((u) => !u.href.startsWith(plan.base), { timeout: 30000 });
  for (let i = 0; i < 6; i++) {
    await page.waitForURL((u) => onPortal(u.href) || u.pathname.startsWith('/interaction/'), { timeout: 30000 });
    if (onPortal(page.url())) break;
    const before = page.url();
    const field = page.locator('input[name=login]');
    if (await field.count()) {
      await field.fill(login);
      await page.fill('input[name=password]', 'any password');
      if (shotName) await page.screenshot({ path: join(OUT, shotName) });
    }
    await page.click('button[type=submit]');
    await page.waitForURL((u) => u.href !== before, { timeout: 30000 });
  }
  await page.waitForFunction(() => document.body.dataset.ready && document.getElementById('who-role'), null, { timeout: 60000 });
  return account();
}

// "Sign out": the token is dropped and the provider's session ended (its confirmation page).
async function signOut() {
  await page.click('#sign-out');
  await page.waitForURL((u) => !u.href.startsWith(plan.base), { timeout: 30000 });
  await page.click('button[name=logout]');
  await page.waitForURL((u) => onPortal(u.href), { timeout: 30000 });
  await page.waitForFunction(() => document.body.dataset.ready && !document.getElementById('who-role'), null, { timeout: 60000 });
  return account();
}

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

// The LOINC facet as the Explore page lists it: value -> studies.
const loincFacet = async () => {
  await page.goto(`${plan.base}/portal/`);
  await ready();
  return page.evaluate(() => {
    const box = document.querySelector('details.facet[data-facet="commons.loinc_code"]');
    const out = {};
    for (const row of box.querySelectorAll('.opt')) {
      const label = row.querySelector('label')?.textContent ?? row.querySelector('span').textContent;
      out[label] = parseInt(row.querySelector('.n').textContent.replace(/,/g, ''), 10);
    }
    return out;
  });
};

try {
  // ---- a reader -------------------------------------------------------------------------------
  phase = 'reader';
  const reader = await signIn(plan.reader, '05-signin.png');
  reader.curateControls = await page.locator('[data-curate]').count();
  await shot('06-reader.png');
  await axe('reader');
  await page.goto(`${plan.base}/portal/?view=curate`);
  await ready();
  reader.curateDenied = await page.textContent('#curate-denied');
  reader.curateDeniedControls = await page.locator('[data-curate]').count();
  await axe('reader-curate');
  reader.harvest = (await harvest('studies')) + '\n' + (await harvest('cases'));
  report.steps.reader = reader;
  report.steps.readerSignedOut = await signOut();

  // ---- a curator ------------------------------------------------------------------------------
  phase = 'curator';
  const curator = await signIn(plan.curator);
  curator.tokenClaims = claimsOf(curator.token);
  curator.facetBefore = await loincFacet();
  await page.click('#nav-curate');
  await page.waitForFunction(() => document.body.dataset.ready === 'curate', null, { timeout: 120000 });
  await shot('07-curate.png');
  await axe('curate');
  // approve the first suggestion of the most frequent unmapped description, by keyboard
  const row = page.locator('#queue-table tbody tr').first();
  const approve = row.locator('button.approve').first();
  const picked = { modality: await row.getAttribute('data-modality'), description: await row.getAttribute('data-description'),
    code: await approve.getAttribute('data-code'),
    studies: parseInt((await row.locator('td.num').textContent()).replace(/,/g, ''), 10) };
  let q = await page.evaluate(() => document.body.dataset.queue);
  await approve.focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction((p) => document.body.dataset.queue !== p, q, { timeout: 60000 });
  picked.status = await page.textContent('#queue-status');
  curator.approved = picked;
  // reject the first suggestion of the next row, by mouse
  const next = page.locator('#queue-table tbody tr').first();
  const reject = next.locator('button.reject').first();
  curator.rejected = { description: await next.getAttribute('data-description'), code: await reject.getAttribute('data-code') };
  q = await page.evaluate(() => document.body.dataset.queue);
  await reject.click();
  await page.waitForFunction((p) => document.body.dataset.queue !== p, q, { timeout: 60000 });
  curator.rejected.status = await page.textContent('#queue-status');
  // a dataset: its QC report, then its release
  const card = page.locator('article.dataset').first();
  const dataset = await card.getAttribute('data-dataset');
  await card.locator('button[data-curate="qc"]').click();
  await card.locator('.qc-box[data-ready="true"]').waitFor({ timeout: 120000 });
  curator.qc = await card.locator('.qc-box').innerText();
  await shot('08-qc.png');
  await axe('qc');
  await card.locator('input[id$="-notes"]').fill('released from the portal test');
  await card.locator('button[data-curate="release"]').click();
  await card.locator('p[data-release]').waitFor({ timeout: 120000 });
  curator.release = { dataset, number: parseInt(await card.locator('p[data-release]').getAttribute('data-release'), 10),
    text: await card.locator('p[data-release]').textContent() };
  curator.facetAfter = await loincFacet();
  await shot('09-explore-after.png');
  await page.goto(`${plan.base}/portal/?view=audit`);
  await ready();
  curator.auditDenied = await page.textContent('#audit-denied');
  report.steps.curator = curator;
  report.steps.curatorSignedOut = await signOut();

  // ---- an admin: the audit trail ----------------------------------------------------------------
  phase = 'admin';
  const admin = await signIn(plan.admin);
  await page.click('#nav-audit');
  let r = await ready();
  admin.rows = await page.locator('#audit-table tbody tr').count();
  admin.actor = (await page.locator('#audit-table tbody tr td:nth-child(4)').first().textContent()).trim();
  await page.fill('#audit-actor', admin.actor);
  await page.click('#audit-apply');
  r = await ready(r);
  admin.filteredRows = await page.locator('#audit-table tbody tr').count();
  admin.filteredActors = [...new Set(await page.locator('#audit-table tbody tr td:nth-child(4)').allTextContents())].map((s) => s.trim());
  await shot('10-audit.png');
  await axe('audit');
  report.steps.admin = admin;
  report.ok = true;
} catch (err) {
  report.error = `${phase}: ${err?.stack || err}`;
  await shot('error.png').catch(() => {});
} finally {
  writeFileSync(join(OUT, 'report.json'), JSON.stringify(report, null, 1));
  await context.close();
}
