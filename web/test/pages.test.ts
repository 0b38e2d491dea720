import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkNewPath,
  expiryFrom,
  fleetSize,
  formatAgo,
  formatCount,
  formatDuration,
  heatRows,
  historyRows,
  lagSeries,
  lineDiffStats,
  matchOperator,
  niceMax,
  parseRecords,
  rollbackable,
  stagedChanges,
  stepSnippet,
  uploadable,
} from '../src/logic.js';

test('checkNewPath refuses empty, unclean, hidden and taken paths', () => {
  const have = ['pipelines/clicks.yaml', 'README.md'];
  assert.equal(checkNewPath('pipelines/orders.yaml', have), '');
  assert.match(checkNewPath('  ', have), /Give the file a path/);
  assert.match(checkNewPath('/etc/x', have), /relative path/);
  assert.match(checkNewPath('a/../b', have), /relative path/);
  assert.match(checkNewPath('a//b', have), /relative path/);
  assert.match(checkNewPath('pipelines/.secret', have), /Hidden/);
  assert.match(checkNewPath('pipelines/clicks.yaml', have), /exists already/);
  assert.match(checkNewPath('pipelines', have), /is a folder/);
  assert.match(checkNewPath('README.md/x', have), /is a file/);
});

test('stagedChanges lists added, modified and deleted files against the branch', () => {
  const original = new Map([['a', '1'], ['b', '2']]);
  const edited = new Map([['a', '1'], ['b', '3'], ['n', 'new'], ['gone', 'x']]);
  const got = stagedChanges(original, edited, new Set(['gone', 'c', 'never-there']), new Set(['a', 'b', 'c', 'gone']));
  assert.deepEqual(got, [
    { path: 'b', kind: 'modified' },
    { path: 'c', kind: 'deleted' },
    { path: 'gone', kind: 'deleted' },
    { path: 'n', kind: 'added' },
  ]);
});

test('lineDiffStats counts added and removed lines', () => {
  assert.deepEqual(lineDiffStats('a\nb\nc\n', 'a\nB\nc\nd\n'), { added: 2, removed: 1 });
  assert.deepEqual(lineDiffStats('', 'x\ny'), { added: 2, removed: 0 });
  assert.deepEqual(lineDiffStats('x\ny\n', ''), { added: 0, removed: 2 });
  assert.deepEqual(lineDiffStats('same\n', 'same\n'), { added: 0, removed: 0 });
  // Moved lines count as one removal and one addition each.
  assert.deepEqual(lineDiffStats('1\n2\n3', '3\n1\n2'), { added: 1, removed: 1 });
});

test('uploadable takes GeoJSON, JSON and CSV side files', () => {
  assert.ok(uploadable('zones.geojson') && uploadable('Rates.CSV') && uploadable('map.json'));
  assert.ok(!uploadable('run.sh') && !uploadable('x.yaml'));
});

test('stepSnippet makes a step of an example value, indented for the cursor column', () => {
  assert.equal(stepSnippet('filter', 'amount > 10\n', 5), '- filter: amount > 10\n    ');
  assert.equal(stepSnippet('map', 'user: user\npage: lower(page)\n', 5), '- map:\n        user: user\n        page: lower(page)\n    ');
  assert.equal(stepSnippet('filter', 'a', 1), '- filter: a\n');
});

test('matchOperator searches name and summary', () => {
  const op = { name: 'geo_within', summary: 'Keeps points inside a polygon' };
  assert.ok(matchOperator(op, '') && matchOperator(op, 'GEO') && matchOperator(op, 'polygon'));
  assert.ok(!matchOperator(op, 'window'));
});

test('parseRecords reads JSON lines, envelopes and names bad lines', () => {
  const { records, errors } = parseRecords(
    [
      '{"user": "ada"}',
      '',
      '// a comment',
      '{"key": "k", "value": {"user": "bob"}, "headers": {"h": "v"}}',
      '{"value": 1, "other": 2}',
      '"raw text"',
      '{oops',
      '{"value": 1, "headers": {"h": 2}}',
      '{"value": 1, "timestamp": "yesterday"}',
    ].join('\n'),
  );
  assert.deepEqual(records, [
    { value: { user: 'ada' } },
    { key: 'k', value: { user: 'bob' }, headers: { h: 'v' } },
    { value: { value: 1, other: 2 } },
    { value: 'raw text' },
  ]);
  assert.equal(errors.length, 3);
  assert.match(errors[0], /^line 7: not JSON/);
  assert.match(errors[1], /^line 8: headers/);
  assert.match(errors[2], /^line 9: timestamp/);
});

test('historyRows groups revisions by commit, attaches rollouts, newest first', () => {
  const rows = historyRows(
    [
      {
        pipeline: 'clicks',
        revisions: [
          { number: 1, commit_sha: 'aaa', message: 'first', author: 'ada@x', created_at: '2026-01-01T00:00:00Z' },
          { number: 2, commit_sha: 'bbb', message: 'second', author: 'bob@x', created_at: '2026-01-02T00:00:00Z' },
        ],
      },
      {
        pipeline: 'orders',
        revisions: [
          { number: 1, commit_sha: 'bbb', message: 'second', author: 'bob@x', created_at: '2026-01-02T00:00:01Z' },
          { number: 2, created_at: '2026-01-03T00:00:00Z' },
        ],
      },
    ],
    [
      { id: 'r1', fleet: 'dev', commit: 'bbb', phase: 'Succeeded', status: 'Synced', pipelines: ['clicks', 'orders'], created_at: '2026-01-02T00:00:02Z' },
      { id: 'r2', fleet: 'dev', commit: 'ccc', message: 'Revert', phase: 'Succeeded', status: 'Synced', pipelines: [], created_at: '2026-01-04T00:00:00Z' },
    ],
  );
  assert.deepEqual(
    rows.map((r) => [r.commit, r.message, r.pipelines.join(','), r.rollouts.map((x) => x.id).join(',')]),
    [
      ['ccc', 'Revert', '', 'r2'],
      ['', '', 'orders #2', ''],
      ['bbb', 'second', 'clicks #2,orders #1', 'r1'],
      ['aaa', 'first', 'clicks #1', ''],
    ],
  );
  assert.equal(rows[2].author, 'bob@x');
});

test('formatting of durations, ages, counts and token expiry', () => {
  assert.equal(formatDuration(250), '250 ms');
  assert.equal(formatDuration(2500), '2.5 s');
  assert.equal(formatDuration(95_000), '1 min 35 s');
  assert.equal(formatDuration(2 * 3600_000 + 5 * 60_000), '2 h 5 min');
  assert.equal(formatDuration(-1), '–');
  const now = Date.parse('2026-01-01T01:00:00Z');
  assert.equal(formatAgo('2026-01-01T00:57:00Z', now), '3 min ago');
  assert.equal(formatAgo('2026-01-01T00:59:58Z', now), 'just now');
  assert.equal(formatAgo('nonsense', now), '–');
  assert.equal(formatCount(999), '999');
  assert.equal(formatCount(1234), '1.2k');
  assert.equal(formatCount(25_000_000), '25M');
  assert.equal(expiryFrom('30', new Date('2026-01-01T00:00:00Z')), '2026-01-31T00:00:00.000Z');
  assert.equal(expiryFrom('', new Date()), undefined);
});

test('lagSeries shapes history per stage, with gaps as null', () => {
  const got = lagSeries([
    { at: '2026-01-01T00:00:00Z', status: 'OK', lag: 10, event_age_ms: 100, stages: [{ stage: 0, topic: 'in', lag: 4 }, { stage: 1, topic: 'rep', lag: 6 }] },
    { at: '2026-01-01T00:00:10Z', status: 'OK', lag: 3, event_age_ms: 50, stages: [{ stage: 0, topic: 'in', lag: 3 }] },
  ]);
  assert.deepEqual(got.x, [1767225600, 1767225610]);
  assert.deepEqual(got.series, [
    { label: 'total lag', values: [10, 3] },
    { label: 'stage 0 (in)', values: [4, 3] },
    { label: 'stage 1 (rep)', values: [6, null] },
  ]);
  assert.deepEqual(got.age.values, [100, 50]);
  // One stage: the total says it all.
  assert.equal(lagSeries([{ at: '2026-01-01T00:00:00Z', status: 'OK', lag: 1, event_age_ms: 0, stages: [{ stage: 0, topic: 'in', lag: 1 }] }]).series.length, 1);
});

test('heatRows scales partitions against the busiest one', () => {
  const rows = heatRows([
    { stage: 0, topic: 'in', lag: 30, partitions: [{ partition: 1, lag: 20 }, { partition: 0, lag: 10 }] },
    { stage: 1, topic: 'rep', lag: 40, partitions: [{ partition: 0, lag: 40 }] },
  ]);
  assert.deepEqual(rows[0].cells, [
    { partition: 0, lag: 10, level: 0.25 },
    { partition: 1, lag: 20, level: 0.5 },
  ]);
  assert.equal(rows[1].cells[0].level, 1);
  assert.deepEqual(heatRows([{ stage: 0, topic: 'in', lag: 0, partitions: [{ partition: 0, lag: 0 }] }])[0].cells[0].level, 0);
});

test('niceMax rounds an axis top up to 1, 2 or 5 times a power of ten', () => {
  assert.equal(niceMax(0), 1);
  assert.equal(niceMax(7), 10);
  assert.equal(niceMax(130), 200);
  assert.equal(niceMax(4200), 5000);
});

test('rollbackable offers the newest rollout of each fleet that was not rolled back', () => {
  const r = (id: string, fleet: string, at: string, extra = {}) => ({ id, fleet, phase: 'Succeeded', status: 'Synced', pipelines: [], created_at: at, ...extra });
  const got = rollbackable([
    r('a', 'dev', '2026-01-01T00:00:00Z'),
    r('b', 'dev', '2026-01-02T00:00:00Z'),
    r('c', 'prod', '2026-01-01T00:00:00Z', { phase: 'RolledBack', revert_commit: 'abc' }),
    r('d', 'edge', '2026-01-03T00:00:00Z'),
  ]);
  assert.deepEqual([...got].sort(), ['b', 'd']);
});

test('fleetSize says what a fleet has and wants', () => {
  assert.equal(fleetSize('local', 3, 'ready'), 'local, 3 runners wanted');
  assert.equal(fleetSize('aws', 1, 'pending'), 'aws, 1 runner wanted');
  assert.equal(fleetSize('local', 3, 'destroyed'), 'local, no runners; a plan creates 3 runners again');
});
