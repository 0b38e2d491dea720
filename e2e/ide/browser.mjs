// The IDE's browser walk-through, driven by the Go test in ide_test.go:
// playwright-core (from web/node_modules) drives Debian's chromium against
// the control plane the test started. Each step writes a screenshot to
// ARTIFACTS and fails with a message naming what it waited for.
import { createRequire } from 'node:module';
import path from 'node:path';
import fs from 'node:fs';
import os from 'node:os';

const { BASE_URL, EMAIL, PASSWORD, ARTIFACTS, WEB_DIR, BROKERS, CHROMIUM = '/usr/bin/chromium' } = process.env;
const require = createRequire(path.join(WEB_DIR, 'package.json'));
const { chromium } = require('playwright-core');

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-ide-chromium-'));
// A fresh profile each run (playwright passes it as --user-data-dir).
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: { width: 1400, height: 860 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const page = browser.pages()[0] ?? (await browser.newPage());
const consoleErrors = [];
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
page.on('pageerror', (e) => consoleErrors.push(String(e)));
page.setDefaultTimeout(20000);

const shot = async (name) => {
  await page.screenshot({ path: path.join(ARTIFACTS, name + '.png') });
  console.log('screenshot', name);
};
const step = (s) => console.log('step:', s);
const timings = [];
// feedback times act: from just before it until cond holds in the page,
// checked on every animation frame (a locator's waitFor polls up to
// 500 ms apart, which would be measured as the IDE's time).
const feedback = async (name, act, cond, arg) => {
  const t0 = Date.now();
  await act();
  await page.waitForFunction(cond, arg, { polling: 'raf' });
  timings.push({ step: name, ms: Date.now() - t0 });
};
// Checks the editor sent: one edit must cost one compile on the server.
let checks = 0;
page.on('request', (r) => { if (r.method() === 'POST' && r.url().endsWith('/ide/check')) checks++; });

// fleetRun waits until run n of the e2e-local fleet is in state want and
// returns its panel; a run that ends otherwise (a failed apply, say) fails
// the step with what the page shows of it. The card is redrawn when a run
// ends, so the run is looked up afresh each time.
const fleetRun = async (n, want, timeout = 180000) => {
  const sel = `section.fleet[data-fleet="e2e-local"] article.run[data-run="${n}"]`;
  // A run waits in planned for review: after an approval it is no end.
  const ended = ['failed', 'unchanged', 'applied', 'cancelled', 'discarded', ...(want === 'planned' ? ['planned'] : [])];
  await page.waitForFunction(([sel, want, ended]) => {
    const state = document.querySelector(sel)?.getAttribute('data-state') ?? '';
    return state === want || ended.includes(state);
  }, [sel, want, ended], { timeout });
  const run = page.locator(sel);
  const state = await run.getAttribute('data-state');
  if (state !== want) {
    throw new Error(`the local fleet's run ${n} is ${state}, not ${want}: ` + (await run.innerText()).replace(/\s+/g, ' ').slice(0, 400));
  }
  return run;
};
// planText is the run's plan summary, which must be want.
const planText = async (run, want) => {
  const plan = (await run.locator('.plan-text').innerText()).trim();
  if (plan !== want) throw new Error(`the plan says "${plan}", not "${want}"`);
  return plan;
};
// fleetShot takes a screenshot with the e2e-local fleet's card at the top
// of the page (which scrolls under the header).
const fleetShot = async (name) => {
  await page.locator('section.fleet[data-fleet="e2e-local"]').evaluate((e) => e.scrollIntoView({ block: 'start' }));
  await shot(name);
};
// redrawn waits until the fleet's card, redrawn when a run ends, says
// what it wants and has status (a card drawn before the run does not).
const redrawn = async (wants, status) => {
  await page.locator('section.fleet[data-fleet="e2e-local"] h2', { hasText: wants }).locator('.badge.' + status).waitFor({ timeout: 30000 });
};
// liveRunners waits until the e2e-local fleet's runners table shows n
// runners, every one Live: registered and reporting.
const liveRunners = async (n) => {
  try {
    await page.waitForFunction((n) => {
      const rows = [...document.querySelectorAll('section.fleet[data-fleet="e2e-local"] table.runners tbody tr')];
      return rows.length === n && rows.every((r) => r.getAttribute('data-health') === 'Live');
    }, n, { timeout: 60000 });
  } catch (e) {
    const rows = await page.locator('section.fleet[data-fleet="e2e-local"] table.runners tbody tr').allInnerTexts();
    throw new Error(`the fleet's page does not show ${n} live runners: ${JSON.stringify(rows)} (${e.message.split('\n')[0]})`);
  }
  const names = await page.locator('section.fleet[data-fleet="e2e-local"] table.runners tbody tr th').allInnerTexts();
  console.log(`fleet runners live: ${names.sort().join(', ')}`);
};

try {
  step('log in');
  await page.goto(BASE_URL + '/');
  await page.getByLabel('Email').fill(EMAIL);
  await page.getByLabel('Password').fill(PASSWORD);
  await shot('login');
  await page.getByRole('button', { name: 'Sign in' }).click();

  step('open pipelines/clicks.yaml');
  await page.locator('.tree button[data-path="pipelines/clicks.yaml"]').click();
  await page.locator('.monaco .view-lines').getByText('clicks.clean').waitFor();
  await page.locator('#current-file', { hasText: 'pipelines/clicks.yaml' }).waitFor();
  // A valid pipeline has no squiggle from the schema or the compiler (the
  // YAML worker answers within a second or two).
  await page.waitForTimeout(2000);
  const noise = page.locator('.monaco .squiggly-warning, .monaco .squiggly-error, .monaco .squiggly-info');
  if (await noise.count()) {
    await noise.first().hover({ force: true });
    await page.waitForTimeout(1500);
    const text = await page.locator('.monaco-hover-content').allInnerTexts();
    throw new Error(`clicks.yaml compiles but shows ${await noise.count()} squiggles: ${text.join(' | ')}`);
  }
  // The pipeline schema drives hover docs: spec.source is described.
  step('hover docs from the schema');
  await page.locator('.monaco .view-line').nth(9).getByText('source', { exact: true }).hover();
  const doc = page.locator('.monaco-hover-content').filter({ hasText: 'input topic' });
  await doc.first().waitFor({ timeout: 10000 });
  console.log('hover:', (await doc.first().innerText()).split('\n')[0].slice(0, 100));
  await shot('editor');
  await page.mouse.move(5, 5);

  // Line 15 is "        page: lower(page)": drop its closing parenthesis.
  step('introduce an error on line 15');
  const lineText = await page.locator('.monaco .view-line').nth(14).innerText();
  if (!lineText.includes('lower(page)')) throw new Error(`line 15 is ${JSON.stringify(lineText)}, not the map's page: lower(page)`);
  await page.locator('.monaco .view-lines').click();
  await page.keyboard.press('Control+Home');
  for (let i = 0; i < 14; i++) await page.keyboard.press('ArrowDown');
  await page.keyboard.press('End');
  checks = 0;
  await feedback('edit -> compile error shown', () => page.keyboard.press('Backspace'),
    () => !!document.querySelector('.monaco .squiggly-error') &&
      [...document.querySelectorAll('#problems .loc')].some((e) => /^pipelines\/clicks\.yaml:15:\d+$/.test(e.textContent ?? '')));
  const problem = page.locator('#problems .loc').filter({ hasText: /^pipelines\/clicks\.yaml:15:\d+$/ });
  const squiggle = page.locator('.monaco .squiggly-error').first();
  await page.waitForTimeout(400); // past the debounce: a second check would have gone out
  if (checks !== 1) throw new Error(`one edit sent ${checks} checks to the server, want 1`);
  const message = await page.locator('#problems button.problem').first().innerText();
  // The squiggle must sit on line 15: its box overlaps line number 15's.
  const sq = await squiggle.boundingBox();
  const ln = await page.locator('.monaco .line-numbers').filter({ hasText: /^15$/ }).boundingBox();
  if (!sq || !ln || Math.abs(sq.y + sq.height / 2 - (ln.y + ln.height / 2)) > ln.height / 2) {
    throw new Error(`the squiggle is not on line 15: squiggle ${JSON.stringify(sq)}, line 15 ${JSON.stringify(ln)}`);
  }
  await squiggle.hover({ force: true });
  const hover = page.locator('.monaco-hover-content').filter({ hasText: message.split('\n')[0].replace(/^\S+ /, '').slice(0, 30) });
  await hover.first().waitFor({ timeout: 10000 });
  console.log('problem:', message.split('\n')[0]);
  await shot('editor-error');

  step('fix it');
  await page.keyboard.press('Escape');
  await page.locator('.monaco .view-lines').click();
  await page.keyboard.press('Control+Home');
  for (let i = 0; i < 14; i++) await page.keyboard.press('ArrowDown');
  await page.keyboard.press('End');
  // One edit (a paste), so that the clock measures the feedback to it,
  // not the typing of 35 keys.
  await feedback('edit -> error cleared', () => page.keyboard.insertText(')  # lower-cased for the dashboards'),
    () => [...document.querySelectorAll('#problems li')].some((e) => e.textContent?.includes('No problems.')));
  if (await page.locator('.monaco .squiggly-error').count() > 0) {
    await page.waitForFunction(() => document.querySelectorAll('.monaco .squiggly-error').length === 0);
  }

  step('try it on sample records');
  await page.locator('#try-section > summary').click();
  await page.getByLabel('Sample records, one JSON value per line').fill('{"user": "ada", "page": "/Pricing", "ms": 5}\n{"user": "crawler", "page": "/", "agent": "Googlebot"}\n{"user": "eve", "page": 5}');
  await feedback('try it -> outputs shown', () => page.getByRole('button', { name: 'Try it' }).click(),
    () => [...document.querySelectorAll('#try-outputs li')].some((e) => e.textContent?.includes('/pricing')) &&
      !!document.querySelector('#try-dlq li'));
  console.log('try:', (await page.locator('#try-summary').innerText()), '|', (await page.locator('#try-dlq li').first().innerText()).split('\n')[0]);
  await page.locator('#try-section').scrollIntoViewIfNeeded();
  await shot('try');
  await page.locator('#try-section > summary').click();

  step('operator catalog');
  await page.locator('#ops-section > summary').click();
  await page.getByLabel('Search the catalog').fill('filter');
  await page.locator('#ops-list button[data-op="filter"]').click();
  await page.locator('#op-name', { hasText: 'filter' }).waitFor();
  const examples = await page.locator('#op-doc button.insert').count();
  if (examples === 0) throw new Error('the filter operator shows no insertable example');
  await shot('operators');

  step('create, rename and edit a side file');
  await page.getByRole('button', { name: 'New', exact: true }).click();
  await page.getByLabel('New file path').fill('pipelines/lookup/zone.csv');
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  await page.locator('#current-file', { hasText: 'pipelines/lookup/zone.csv' }).waitFor();
  await page.locator('.monaco .view-lines').click();
  await page.keyboard.type('zone,name\n1,north\n');
  // An operator example goes in at the cursor, and out again with undo.
  await page.locator('#op-doc button.insert').first().click();
  await page.locator('#op-status', { hasText: 'Inserted into pipelines/lookup/zone.csv' }).waitFor();
  await page.locator('.monaco .view-lines').getByText('filter:').first().waitFor();
  await page.keyboard.press('Control+z');
  await page.waitForFunction(() => !document.querySelector('.monaco .view-lines')?.textContent?.includes('filter:'));
  await page.locator('#ops-section > summary').click();
  await page.getByRole('button', { name: 'Rename pipelines/lookup/zone.csv' }).click();
  await page.getByLabel('Rename pipelines/lookup/zone.csv to').fill('pipelines/lookup/zones.csv');
  await page.getByRole('button', { name: 'Rename', exact: true }).click();
  await page.locator('.tree button[data-path="pipelines/lookup/zones.csv"]').waitFor();
  if (await page.locator('.tree button[data-path="pipelines/lookup/zone.csv"]').count()) throw new Error('the renamed file is still in the tree');
  await page.locator('#staged li[data-path="pipelines/lookup/zones.csv"]').waitFor();
  await page.locator('#upload-input').setInputFiles({ name: 'zones.geojson', mimeType: 'application/geo+json',
    buffer: Buffer.from('{"type": "FeatureCollection", "features": []}\n') });
  await page.locator('.tree button[data-path="pipelines/lookup/zones.geojson"]').waitFor();
  // A file of the branch deleted is listed for restoring until the commit.
  await page.locator('.tree button[data-path="README.md"]').click();
  await page.locator('#current-file', { hasText: 'README.md' }).waitFor();
  await page.getByRole('button', { name: 'Delete README.md' }).click();
  await page.locator('#staged li[data-path="README.md"]', { hasText: 'D' }).waitFor();
  await page.getByRole('button', { name: 'Restore README.md' }).click();
  await page.locator('.tree button[data-path="README.md"]').waitFor();
  if (await page.locator('#staged li[data-path="README.md"]').count()) throw new Error('README.md is still staged after restoring it');
  await shot('files');
  await page.locator('.tree button[data-path="pipelines/clicks.yaml"]').click();
  await page.locator('#current-file', { hasText: 'pipelines/clicks.yaml' }).waitFor();

  step('run the tests');
  await feedback('run tests -> result shown', () => page.getByRole('button', { name: 'Run tests' }).click(),
    () => /\d+ passed, 0 failed/.test(document.querySelector('#test-output')?.textContent ?? ''));
  const tests = await page.locator('#test-output').innerText();
  if (!/^PASS /m.test(tests)) throw new Error('no PASS line in the test output:\n' + tests);
  console.log('tests:', tests.split('\n').pop());
  await shot('tests');

  step('review the staged diff');
  const staged = await page.locator('#staged li').allInnerTexts();
  if (staged.length !== 3) throw new Error('staged changes are not clicks.yaml, zones.csv and zones.geojson: ' + JSON.stringify(staged));
  await page.getByRole('button', { name: 'Review diff' }).click();
  await page.locator('#diff-dialog[open] .diff-pane .monaco-diff-editor').waitFor();
  await page.locator('#diff-dialog button[data-path="pipelines/clicks.yaml"]').click();
  await page.locator('#diff-dialog .diff-pane').getByText('lower-cased for the dashboards').first().waitFor();
  await page.waitForTimeout(500);
  await shot('diff');
  await page.keyboard.press('Escape');
  await page.locator('#diff-dialog[open]').waitFor({ state: 'detached' });

  step('commit & deploy');
  await page.getByLabel('Commit message').fill('clicks: say why page is lower-cased (from the IDE test)');
  await page.getByRole('button', { name: 'Commit & deploy' }).click();
  await page.locator('#commit-status').filter({ hasText: /^Committed [0-9a-f]{7}/ }).waitFor({ timeout: 90000 });
  await page.locator('#rollout-events[data-final]').waitFor({ timeout: 120000 });
  const final = await page.locator('#rollout-events li.final').innerText();
  console.log('rollout:', final);
  await shot('deploy');

  const committed = await page.locator('#commit-status').getAttribute('data-commit');

  step('pipelines list');
  await page.getByRole('link', { name: 'Pipelines' }).click();
  await page.locator('table.pipelines tbody tr').filter({ hasText: 'clicks' }).waitFor();
  await shot('pipelines');

  step('pipeline page');
  await page.getByRole('link', { name: 'clicks', exact: true }).click();
  await page.locator('h1', { hasText: 'Pipeline clicks' }).waitFor();
  await page.locator('#health-status').waitFor();
  console.log('pipeline:', (await page.locator('#health-status').innerText()).replace(/\s+/g, ' '), '|',
    (await page.locator('#lag-empty, .chart-box').first().innerText()).split('\n')[0]);
  await shot('pipeline');

  // A real runner (ide_test.go starts `runner agent` on kfake) reports
  // the pipeline's lag: the history gains a point per 10 s, so the page is
  // reloaded until the chart has at least three.
  step('pipeline page draws the lag a real runner reports');
  for (let i = 0; ; i++) {
    const pts = await page.locator('.chart-box').first().getAttribute('data-points').catch(() => null);
    if (pts && Number(pts) >= 3) break;
    if (i >= 24) throw new Error('no lag history from the runner after two minutes: ' + (await page.locator('#pipeline-body').innerText()));
    await page.waitForTimeout(5000);
    await page.reload();
    await page.locator('#health-status').waitFor();
  }
  const realPath = await page.locator('svg.chart path').first().getAttribute('d');
  if (!realPath || (realPath.match(/L/g) ?? []).length < 2) throw new Error('the real lag chart drew no line: ' + realPath);
  await page.locator('#live-runners', { hasText: '1' }).waitFor();
  console.log('real lag chart:', (await page.locator('.chart-box').first().getAttribute('data-points')), 'points |',
    (await page.locator('.chart-box .legend').first().innerText()).replace(/\s+/g, ' '), '|',
    (await page.locator('#health-status').innerText()).replace(/\s+/g, ' '));
  await shot('pipeline-lag');

  // The three clicks the filter failed on are in the DLQ section, with
  // their reason and source offsets and no payload (previews are off).
  step('pipeline page shows real dead letters and replays one');
  for (let i = 0; ; i++) {
    if (await page.locator('#dlq-letters tbody tr').count() >= 3) break;
    if (i >= 24) throw new Error('no dead letters shown: ' + (await page.locator('#dlq').innerText()));
    await page.waitForTimeout(5000);
    await page.reload();
    await page.locator('#dlq').waitFor();
  }
  const heads = await page.locator('#dlq-letters thead').innerText();
  if (/Value/.test(heads)) throw new Error('payload columns shown with previews off: ' + heads);
  const reasons = (await page.locator('.dlq-reasons').innerText()).replace(/\s+/g, ' ');
  console.log('dlq:', reasons, '|', (await page.locator('#dlq-letters tbody tr').first().innerText()).replace(/\s+/g, ' ').slice(0, 160));
  // Keyboard only: focus the first row's checkbox, tick it with Space,
  // tab to nothing else, and press Enter on the Replay button.
  await page.locator('#dlq-letters tbody tr').first().locator('input[type=checkbox]').focus();
  await page.keyboard.press('Space');
  await page.locator('#dlq-replay', { hasText: 'Replay selected (1)' }).waitFor();
  await page.locator('#dlq-replay').focus();
  await page.keyboard.press('Enter');
  await page.locator('#replay-status', { hasText: /Replay done|Replay failed/ }).waitFor({ timeout: 90000 });
  console.log('replay:', await page.locator('#replay-status').innerText());
  await shot('pipeline-dlq');

  // Restore progress needs a stateful pipeline restoring its changelog,
  // which the playground's clicks is not; a skewed partition heat map needs
  // lag on one partition only, and a hot key needs more traffic than the
  // test sends before it gets here: the drawing of those is checked on
  // answers from a fixture shaped like the API's (lagFixture below),
  // served in place of the control plane's for this one page load.
  step('pipeline page draws restores, skew and hot keys (fixture answers)');
  const fixture = lagFixture();
  const observability = /\/api\/v1\/projects\/[^/]+\/pipelines\/[^/]+\/(lag|skew|health)(\?.*)?$/;
  await page.route(observability, (route) => {
    const kind = observability.exec(route.request().url())[1];
    return route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(fixture[kind]) });
  });
  await page.reload();
  await page.locator('.chart-box[data-points="30"]').first().waitFor();
  const drawn = await page.locator('svg.chart path').first().getAttribute('d');
  if ((drawn.match(/L/g) ?? []).length < 29) throw new Error('the lag chart did not draw 30 points: ' + drawn);
  if (await page.locator('table.heat td').count() !== 2) throw new Error('the heat map does not show the 2 partitions');
  await page.locator('#hot-keys tbody tr').filter({ hasText: '90.0 %' }).waitFor();
  await page.locator('#slowest', { hasText: 'stage 0 (clicks)' }).waitFor();
  await page.locator('.restores progress').first().waitFor();
  console.log('fixture lag chart:', (await page.locator('.chart-box .legend').first().innerText()).replace(/\s+/g, ' '));
  await shot('pipeline-fixture');
  await page.unroute(observability);

  step('history and roll back');
  await page.getByRole('link', { name: 'History' }).click();
  const entry = page.locator(`li.card[data-commit="${committed}"]`);
  await entry.waitFor();
  await entry.filter({ hasText: 'clicks #' }).waitFor();
  await shot('history');
  // Only the newest rollout of a fleet can be rolled back.
  if (await page.getByRole('button', { name: /^Roll back / }).count() !== 1) throw new Error('more than the newest rollout offers a rollback');
  await entry.getByRole('button', { name: /^Roll back / }).first().click();
  await entry.getByLabel('Reason').fill('from the IDE test');
  await entry.getByRole('button', { name: 'Roll back now' }).click();
  await page.locator('#rollback-done').waitFor({ timeout: 60000 });
  console.log('rollback:', await page.locator('#rollback-done').innerText());

  step('tokens: create one, see its secret once, revoke it');
  await page.getByRole('link', { name: 'Tokens' }).click();
  await page.getByLabel('Name').fill('e2e-ci');
  await page.getByLabel('Role').selectOption('developer');
  await page.getByRole('button', { name: 'Create token' }).click();
  const secret = await page.locator('#token-secret').inputValue();
  if (!/^slc_/.test(secret)) throw new Error('the new token\'s secret is not shown: ' + JSON.stringify(secret));
  await page.locator('#tokens tr[data-token="e2e-ci"]').waitFor();
  await shot('tokens');
  await page.getByRole('button', { name: 'Done, hide it' }).click();
  if (await page.locator('#token-secret').count()) throw new Error('the secret is still on the page');
  if ((await page.content()).includes(secret)) throw new Error('the secret is still in the page after hiding it');
  await page.getByRole('button', { name: 'Revoke e2e-ci' }).click();
  await page.getByRole('button', { name: 'Confirm revoking e2e-ci' }).click();
  await page.locator('#tokens tr[data-token="e2e-ci"] .badge', { hasText: 'Revoked' }).waitFor();
  console.log('token: created and revoked e2e-ci');

  // A local fleet through its whole life, each change planned, reviewed
  // and approved in the page: create 2 runners, scale to 3, destroy. The
  // runners are real `runner agent` processes on kfake (BROKERS); the Go
  // test checks that none is left.
  step('fleets: create a local fleet of 2, review its plan, approve it');
  await page.getByRole('link', { name: 'Fleets' }).click();
  await page.locator('#fleet-create > summary').click();
  await page.locator('#fleet-name').fill('e2e-local');
  await page.getByLabel('Terraform module').selectOption('local');
  await page.locator('#fleet-runners').fill('2');
  await page.getByLabel('Settings (JSON)').fill(JSON.stringify({ kafka_brokers: BROKERS.split(',') }));
  await page.getByRole('button', { name: 'Create and plan' }).click();
  const fleet = page.locator('section.fleet[data-fleet="e2e-local"]');
  await fleet.waitFor();
  {
    const run = await fleetRun(1, 'planned');
    const plan = await planText(run, '2 to add, 0 to change, 0 to destroy');
    console.log('fleet plan:', plan);
    await run.locator('.plan .changes li').first().waitFor();
    const log = await run.locator('pre.log').textContent();
    if (!log.trim()) throw new Error('the run\'s log is empty');
    console.log('fleet log:', log.trim().split('\n').length, 'lines, last:', log.trim().split('\n').pop().slice(0, 100));
    await shot('fleets');
    await page.getByRole('button', { name: 'Approve run 1 of e2e-local' }).click();
    await fleetRun(1, 'applied');
    await redrawn('2 runners wanted', 'ready');
    await liveRunners(2);
    await fleetShot('fleets-applied');
  }

  step('fleets: scale to 3, review the plan (1 to add), approve it');
  await fleet.getByLabel('Runners', { exact: true }).fill('3');
  await page.getByRole('button', { name: 'Plan scaling fleet e2e-local' }).click();
  {
    const run = await fleetRun(2, 'planned');
    console.log('fleet scale plan:', await planText(run, '1 to add, 0 to change, 0 to destroy'));
    await fleetShot('fleets-scale');
    await page.getByRole('button', { name: 'Approve run 2 of e2e-local' }).click();
    await fleetRun(2, 'applied');
    await redrawn('3 runners wanted', 'ready');
    await liveRunners(3);
  }

  step('fleets: destroy, review the plan (3 to destroy), approve it');
  await page.getByRole('button', { name: 'Plan destroying fleet e2e-local' }).click();
  await fleet.getByRole('button', { name: 'Plan destroy', exact: true }).click();
  {
    const run = await fleetRun(3, 'planned');
    console.log('fleet destroy plan:', await planText(run, '0 to add, 0 to change, 3 to destroy'));
    await page.getByRole('button', { name: 'Approve run 3 of e2e-local' }).click();
    await fleetRun(3, 'applied');
    await redrawn('no runners; a plan creates 3 runners again', 'destroyed');
    await fleetShot('fleets-destroyed');
    console.log('fleet: e2e-local created with 2 runners, scaled to 3 and destroyed');
  }

  // Edit -> inline error or test result: issue 14 asks < 1 s at p95;
  // logged (and read by ide_test.go), not asserted: targets are measured,
  // timed tests flake.
  timings.sort((a, b) => a.ms - b.ms);
  const p95 = timings[Math.ceil(0.95 * timings.length) - 1].ms;
  console.log('edit-to-feedback ms:', JSON.stringify(timings), 'p95', p95);
  const csp = consoleErrors.filter((e) => /Content Security Policy|Refused to/.test(e));
  if (csp.length) throw new Error('the page broke its Content-Security-Policy:\n' + csp.join('\n'));
  console.log('ok');
} catch (e) {
  await shot('failure').catch(() => {});
  console.error('FAILED:', e?.message ?? e);
  if (consoleErrors.length) console.error('browser console errors:\n' + consoleErrors.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
  fs.rmSync(profile, { recursive: true, force: true });
}

// lagFixture is what GET .../lag, .../skew and .../health answer for a
// pipeline with one runner, two partitions (one far behind), a hot key and
// a state store restoring: 30 samples 10 s apart.
function lagFixture() {
  const now = Date.now();
  const at = (i) => new Date(now - (29 - i) * 10000).toISOString();
  const history = Array.from({ length: 30 }, (_, i) => ({
    at: at(i), status: i > 20 ? 'WARN' : 'OK', lag: 100 + i * 40, event_age_ms: 200 + i * 60,
    stages: [{ stage: 0, topic: 'clicks', status: 'OK', lag: 100 + i * 40, max_time_lag_ms: 200 + i * 60 }],
  }));
  const partitions = [
    { partition: 0, state: 'running', status: 'OK', end: 5000, committed: 4900, lag: 100, time_lag_ms: 150, consume_rate: 30, produce_rate: 30 },
    { partition: 1, state: 'running', status: 'WARN', end: 9000, committed: 7900, lag: 1100, time_lag_ms: 1900, consume_rate: 20, produce_rate: 35 },
  ];
  const stage = { stage: 0, topic: 'clicks', status: 'WARN', lag: 1200, max_time_lag_ms: 1900, consume_rate: 50, produce_rate: 65, partitions };
  const slowest = { stage: 0, topic: 'clicks', status: 'WARN', reason: 'partition 1 fell behind over the last 10 samples' };
  const runner = { id: '00000000-0000-0000-0000-000000000001', name: 'dev-runner-1', live: true, state: 'running', partitions: [0, 1], sampled_at: at(29) };
  return {
    lag: { pipeline: 'clicks', current: { sampled_at: at(29), status: 'WARN', event_age_ms: 1900, slowest, stages: [stage] }, stale: false, runners: [runner],
      since: at(0), until: at(29), history },
    skew: { pipeline: 'clicks', sampled_at: at(29),
      stages: [{ stage: 0, topic: 'clicks', lag_skew: 5.5, rate_skew: 1.3, max_lag_partition: 1, max_rate_partition: 0, flagged: [{ partition: 1, reasons: ['lag 11x the median'] }] }],
      runners: [{ runner: 'dev-runner-1', partitions: 2, consume_rate: 50 }], runner_imbalance: 1,
      hot_keys: [{ hash: '9f2c01ab', stage: 0, topic: 'clicks', partition: 1, runner: 'dev-runner-1', count: 900, error: 3, records: 1000, share: 0.9 }] },
    health: { pipeline: 'clicks', status: 'WARN', healthy: false, stale: false, live_runners: 1, sampled_at: at(29), event_age_ms: 1900, slowest,
      stages: [{ stage: 0, topic: 'clicks', status: 'WARN', lag: 1200, max_time_lag_ms: 1900, reason: slowest.reason }],
      restoring: [{ runner: 'dev-runner-1', step: 'count', partition: 1, restoring: true, done: 4000, total: 10000, rate: 500, eta_seconds: 12 }] },
  };
}
