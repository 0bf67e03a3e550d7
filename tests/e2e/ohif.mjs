// Drive the real OHIF Viewer 3 in headless Debian Chromium (playwright-core) against the archive.
//
//   node tests/e2e/ohif.mjs PLAN.json
//
// PLAN.json (written by tests/e2e/test_ohif.py):
//   viewerUrl     http://HOST:PORT/viewer (the archive's hosted OHIF)
//   dicomwebRoot  the DICOMweb root the browser will call (to record/classify requests)
//   out           folder for screenshots and report.json
//   configPatch   optional: keys merged into the data source's `configuration` by intercepting
//                 app-config.js (the variants: thumbnailRendering, enableStudyLazyLoad, a
//                 cross-origin qidoRoot/wadoRoot, quoted multipart Accept)
//   studies       [{uid, label, expect: [texts the study list must show]}]
//   search        optional {patientName, expect, absent}: /?patientName=X must show `expect`
//                 and not `absent`
//   nodeModules   folder holding node_modules/playwright-core
//   chromium      browser binary (/usr/bin/chromium)
//
// Per study: the study list shows it, /viewer?StudyInstanceUIDs=... draws a viewport canvas
// with real structure (luminance std, distinct levels, non-black share), screenshots. Records
// console errors, page errors and failed requests (HTTP >= 400 or network failure).
// Writes out/report.json; the pytest side decides pass/fail from it.
import { createRequire } from 'node:module';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import os from 'node:os';

const plan = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const require = createRequire(join(plan.nodeModules, 'package.json'));
const { chromium } = require('playwright-core');

const OUT = plan.out;
mkdirSync(OUT, { recursive: true });
const t0 = Date.now();
const since = () => (Date.now() - t0) / 1000;
const log = (...a) => console.log(`[${since().toFixed(1)}s]`, ...a);
const LOOPBACK = h => h === 'localhost' || /^127\./.test(h) || h === '[::1]';
const report = {
  plan, ok: false, list: {}, search: null, studies: {}, consoleErrors: [], consoleWarnings: [],
  pageErrors: [], failedRequests: [], nonLoopback: [], requests: [], timings: {},
};

const profile = mkdtempSync(join(os.tmpdir(), 'archive-e2e-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: plan.chromium,
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-dev-shm-usage',
    // network guard: anything not on loopback goes to a dead proxy / unresolvable name
    '--proxy-server=http://127.0.0.1:9',
    '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
  ],
  viewport: { width: 1400, height: 900 },
  serviceWorkers: 'block',
  ignoreDefaultArgs: ['--enable-automation'],
  timeout: 60000,
});
report.timings.browserStart = since();
const page = context.pages()[0] || await context.newPage();

let phase = 'start';
const inflight = new Set();
const isDw = url => url.startsWith(plan.dicomwebRoot + '/') || url.startsWith(plan.dicomwebRoot + '?');
page.on('console', m => {
  const e = { phase, text: m.text().slice(0, 1000), url: m.location()?.url };
  if (m.type() === 'error') report.consoleErrors.push(e);
  else if (m.type() === 'warning') report.consoleWarnings.push(e);
});
page.on('pageerror', e => report.pageErrors.push({ phase, text: String(e?.stack || e).slice(0, 1500) }));
context.on('request', req => {
  const url = req.url();
  if (url.startsWith('data:') || url.startsWith('blob:')) return;
  if (!LOOPBACK(new URL(url).hostname)) report.nonLoopback.push({ phase, url: url.slice(0, 300) });
  inflight.add(req);
  if (isDw(url)) {
    req._rec = { phase, method: req.method(), url: url.slice(plan.dicomwebRoot.length),
                 accept: req.headers().accept || null, t: since() };
    report.requests.push(req._rec);
  }
});
context.on('requestfinished', async req => {
  inflight.delete(req);
  const resp = await req.response().catch(() => null);
  if (!resp) return;
  if (req._rec) {
    req._rec.status = resp.status();
    req._rec.contentType = resp.headers()['content-type'] || null;
    req._rec.ms = Math.round((since() - req._rec.t) * 1000);
  }
  if (resp.status() >= 400) {
    report.failedRequests.push({ phase, method: req.method(), url: req.url(), status: resp.status(),
      accept: req.headers().accept || null, body: (await resp.text().catch(() => '')).slice(0, 500) });
  }
});
context.on('requestfailed', req => {
  inflight.delete(req);
  if (req._rec) { req._rec.status = 0; req._rec.error = req.failure()?.errorText; }
  report.failedRequests.push({ phase, method: req.method(), url: req.url(), status: 0,
    accept: req.headers().accept || null, error: req.failure()?.errorText });
});

// the variants: merge configPatch into the generated data source configuration
if (plan.configPatch && Object.keys(plan.configPatch).length) {
  await context.route(`${plan.viewerUrl}/app-config.js`, async route => {
    const resp = await route.fetch();
    const body = await resp.text() + `\n;Object.assign(window.config.dataSources[0].configuration, ${JSON.stringify(plan.configPatch)});\n`;
    await route.fulfill({ response: resp, body });
  });
}

async function waitFor(cond, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond().catch(() => false)) return true;
    await page.waitForTimeout(250);
  }
  return false;
}
async function quiet(ms = 1500, max = 30000) { // nothing in flight for `ms`
  let calm = Date.now();
  const end = Date.now() + max;
  while (Date.now() < end) {
    if (inflight.size) calm = Date.now();
    else if (Date.now() - calm >= ms) return true;
    await page.waitForTimeout(200);
  }
  return false;
}
const text = () => page.evaluate(() => document.body?.innerText || '');
const shows = async expect => { const t = await text(); return expect.every(x => t.includes(x)); };
const shot = async (name, clip) => {
  const p = join(OUT, name);
  await page.screenshot({ path: p, ...(clip ? { clip } : {}) });
  return p;
};

// pixel statistics of each visible cornerstone canvas (WebGL canvases copied into a 2D one)
const canvasStats = () => page.evaluate(() => {
  const out = [];
  for (const c of document.querySelectorAll('canvas.cornerstone-canvas, .viewport-element canvas')) {
    const r = c.getBoundingClientRect();
    if (!c.width || !c.height || r.width < 20 || r.height < 20) continue;
    const ix = Math.max(0, Math.min(r.right, innerWidth) - Math.max(r.left, 0));
    const iy = Math.max(0, Math.min(r.bottom, innerHeight) - Math.max(r.top, 0));
    const visible = ix * iy >= 0.5 * r.width * r.height; // skip cornerstone's off-screen helper
    let ctx = c.getContext('2d', { willReadFrequently: true });
    if (!ctx) {
      const t = document.createElement('canvas'); t.width = c.width; t.height = c.height;
      ctx = t.getContext('2d'); ctx.drawImage(c, 0, 0);
    }
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    const hist = new Uint32Array(256);
    let sum = 0, sum2 = 0, nonBlack = 0, n = 0;
    const step = Math.max(1, Math.floor((c.width * c.height) / 250000));
    for (let i = 0; i < d.length; i += 4 * step) {
      const y = Math.round(0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2]);
      hist[y]++; sum += y; sum2 += y * y; n++; if (y > 8) nonBlack++;
    }
    const mean = sum / n;
    out.push({ w: c.width, h: c.height, cssW: Math.round(r.width), cssH: Math.round(r.height), visible,
      mean: +mean.toFixed(2), std: +Math.sqrt(Math.max(0, sum2 / n - mean * mean)).toFixed(2),
      distinct: hist.filter(v => v > 0).length, nonBlackFrac: +(nonBlack / n).toFixed(4),
      rect: { x: r.x, y: r.y, width: r.width, height: r.height } });
  }
  return out;
});
const rendered = s => s.visible && s.cssW >= 200 && s.cssH >= 200 && s.std >= 2 && s.distinct >= 8 && s.nonBlackFrac >= 0.01;
const DEAD_END = /not available at this time|Something went wrong|Error loading|failed to load/i;

try {
  // ----- 1. the study list shows every study -----
  phase = 'list';
  let ts = Date.now();
  await page.goto(`${plan.viewerUrl}/`, { waitUntil: 'domcontentloaded', timeout: 60000 });
  report.webgl = await page.evaluate(() => {
    const gl = document.createElement('canvas').getContext('webgl2');
    const ext = gl && gl.getExtension('WEBGL_debug_renderer_info');
    return gl ? (ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : 'webgl2') : null;
  });
  const everything = plan.studies.flatMap(s => s.expect);
  report.list.ok = await waitFor(() => shows(everything), (plan.listTimeoutSeconds || 60) * 1000);
  for (const s of plan.studies) report.list[s.label] = await shows(s.expect);
  await quiet(800, 15000);
  report.list.seconds = (Date.now() - ts) / 1000;
  report.list.screenshot = await shot('01-study-list.png');
  report.list.text = (await text()).slice(0, 3000);
  log(`study list ${report.list.ok ? 'shows every study' : 'INCOMPLETE'} in ${report.list.seconds}s`);

  // expand the first study's row: the series QIDO behind the list (and rendered previews)
  if (report.list.ok) {
    await page.getByText(plan.studies[0].expect[0], { exact: true }).first().click({ timeout: 5000 })
      .catch(e => { report.list.expandError = e.message.split('\n')[0]; });
    await page.waitForTimeout(500);
    await quiet(800, 15000);
    report.list.expandedScreenshot = await shot('02-study-expanded.png');
  }

  // ----- 2. patient-name search: QIDO PatientName=*X* -----
  if (plan.search) {
    phase = 'search';
    ts = Date.now();
    await page.goto(`${plan.viewerUrl}/?patientName=${encodeURIComponent(plan.search.patientName)}`,
      { waitUntil: 'domcontentloaded' });
    const found = await waitFor(() => shows(plan.search.expect), 30000);
    await quiet(800, 15000);
    const t = await text();
    report.search = { found, absentHidden: !(plan.search.absent || []).some(x => t.includes(x)),
      seconds: (Date.now() - ts) / 1000, screenshot: await shot('03-search.png') };
    log(`search patientName=${plan.search.patientName}: ${JSON.stringify(report.search)}`);
  }

  // ----- 3. the viewer renders each study -----
  for (const s of plan.studies) {
    phase = `viewer:${s.label}`;
    ts = Date.now();
    const r = { uid: s.uid, ok: false };
    report.studies[s.label] = r;
    await page.goto(`${plan.viewerUrl}/viewer?StudyInstanceUIDs=${encodeURIComponent(s.uid)}`,
      { waitUntil: 'domcontentloaded', timeout: 60000 });
    let stats = [];
    await waitFor(async () => {
      stats = await canvasStats().catch(() => []);
      if (stats.some(rendered)) return true;
      const t = await text();
      if (DEAD_END.test(t)) { r.deadEnd = t.slice(0, 400); return true; }
      return false;
    }, 90000);
    r.firstImageSeconds = (Date.now() - ts) / 1000;
    r.quiet = await quiet(1500, 30000);
    await page.waitForTimeout(300);
    stats = await canvasStats().catch(() => stats);
    r.canvas = stats.map(({ rect, ...rest }) => rest);
    const best = stats.find(rendered);
    r.ok = Boolean(best) && !r.deadEnd;
    r.seconds = (Date.now() - ts) / 1000;
    r.screenshot = await shot(`${s.label}-viewer.png`);
    if (best) r.viewportScreenshot = await shot(`${s.label}-viewport.png`, best.rect);
    r.text = (await text()).slice(0, 1500);
    log(`${s.label}: ${r.ok ? 'rendered' : 'NOT rendered'} (first image ${r.firstImageSeconds}s) ` +
        JSON.stringify(best ? { std: best.std, distinct: best.distinct, nonBlack: best.nonBlackFrac } : stats));
  }
  report.ok = report.list.ok && Object.values(report.studies).every(r => r.ok);
} catch (e) {
  report.error = String(e?.stack || e);
  log(`ERROR ${e.message}`);
  await shot('99-error.png').catch(() => {});
} finally {
  report.seconds = since();
  writeFileSync(join(OUT, 'report.json'), JSON.stringify(report, null, 1));
  log(`done: ${report.ok ? 'OK' : 'FAILED'}; ${report.failedRequests.length} failed requests, ` +
      `${report.consoleErrors.length} console errors, ${report.pageErrors.length} page errors`);
  await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
