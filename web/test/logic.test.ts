import { test } from 'node:test';
import assert from 'node:assert/strict';
import { changedFiles, fileTree, forYamlService, markersFor, pipelineRows, problemText } from '../src/logic.js';

test('markersFor underlines the word at the reported column of its file only', () => {
  const text = 'a: 1\nspec:\n  steps:\n    - fliter: x\n';
  const got = markersFor(
    [
      { file: 'pipelines/c.yaml', line: 4, column: 7, message: 'unknown operator', severity: 'error' },
      { file: 'pipelines/other.yaml', line: 1, column: 1, message: 'elsewhere', severity: 'error' },
    ],
    'pipelines/c.yaml',
    text,
  );
  assert.deepEqual(got, [{ startLineNumber: 4, startColumn: 7, endLineNumber: 4, endColumn: 14, message: 'unknown operator' }]);
});

test('markersFor clamps a stale position to the text', () => {
  const got = markersFor([{ file: 'f', line: 99, column: 50, message: 'm', severity: 'error' }], 'f', 'ab\n  cd');
  assert.equal(got[0].startLineNumber, 2);
  assert.ok(got[0].endColumn > got[0].startColumn);
});

test('problemText prefers the first line of the detail', () => {
  assert.equal(problemText(422, { title: 'Unprocessable Entity', detail: 'pipelines failed validation\nline 2' }), 'pipelines failed validation');
  assert.equal(problemText(400, { errors: [{ field: 'message', detail: 'say why' }] }), 'message: say why');
  assert.equal(problemText(502, undefined), 'HTTP 502');
});

test('pipelineRows joins deployments and shows the worst status', () => {
  const rows = pipelineRows(
    [
      { id: '2', name: 'orders', latest_revision: 1 },
      { id: '1', name: 'clicks', latest_revision: 3 },
    ],
    [
      { pipeline_id: '1', fleet_id: 'f1', revision_number: 3, status: 'Synced' },
      { pipeline_id: '1', fleet_id: 'f2', revision_number: 2, status: 'Progressing' },
    ],
    { f1: 'dev', f2: 'prod' },
  );
  assert.deepEqual(rows.map((r) => [r.name, r.status]), [['clicks', 'Progressing'], ['orders', 'Not deployed']]);
  assert.equal(rows[0].deployments[1].fleet, 'prod');
});

test('changedFiles sends only what differs from the branch', () => {
  const orig = new Map([['a', '1'], ['b', '2']]);
  assert.deepEqual(changedFiles(orig, new Map([['a', '1'], ['b', '3'], ['c', 'new']])), { b: '3', c: 'new' });
});

test('fileTree nests directories before files', () => {
  const t = fileTree(['README.md', 'pipelines/clicks.yaml', 'pipelines/lib/s.js']);
  assert.deepEqual(t.map((n) => n.name), ['pipelines', 'README.md']);
  assert.deepEqual(t[0].children!.map((n) => n.name), ['lib', 'clicks.yaml']);
});

test('forYamlService roots the references of embedded schemas', () => {
  const got = forYamlService({
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $defs: {
      step: { oneOf: [{ properties: { set: { $id: 'https://x/set.json', $defs: { field: { type: 'string' } }, items: { $ref: '#/$defs/field' } } } }] },
    },
    properties: { a: { $ref: '#/$defs/step' } },
  });
  assert.deepEqual(got, {
    $defs: { step: { oneOf: [{ properties: { set: { $defs: { field: { type: 'string' } }, items: { $ref: '#/$defs/step/oneOf/0/properties/set/$defs/field' } } } }] } },
    properties: { a: { $ref: '#/$defs/step' } },
  });
});

import { replaySelection, replayText, parseRedactPaths, dlqKey } from '../src/logic.js';

test('replaySelection sorts the selected dead letters and ignores junk', () => {
  assert.deepEqual(replaySelection(new Set(['1/9', '0/12', '1/3', 'x', dlqKey({ partition: 0, offset: 2 })])), {
    offsets: [
      { partition: 0, offset: 2 },
      { partition: 0, offset: 12 },
      { partition: 1, offset: 3 },
      { partition: 1, offset: 9 },
    ],
  });
});

test('replayText says how a replay went', () => {
  assert.match(replayText({ id: 'a', state: 'pending', replayed: 0, errors: [] }), /waiting/);
  assert.equal(replayText({ id: 'a', state: 'done', replayed: 3, errors: [] }), 'Replay done: 3 dead letters sent back to the pipeline.');
  assert.match(replayText({ id: 'a', state: 'done', replayed: 1, errors: ['0/4: skipped'], duplicate: true }), /asked for already.*1 dead letter sent.*1 problem: 0\/4: skipped/);
  assert.match(replayText({ id: 'a', state: 'failed', replayed: 0, errors: ['interrupted'] }), /failed.*interrupted/);
});

test('parseRedactPaths reads paths per line or comma', () => {
  assert.deepEqual(parseRedactPaths('card.number, email\n\n user.ssn '), { paths: ['card.number', 'email', 'user.ssn'], error: '' });
  assert.match(parseRedactPaths('card..number').error, /not a field path/);
  assert.match(parseRedactPaths('.x').error, /not a field path/);
});
