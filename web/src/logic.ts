// Client logic without the DOM or Monaco, unit-tested by `npm test`.

/** A compiler or test message located in a file (POST .../ide/check). */
export interface Diagnostic {
  file: string;
  line: number;
  column: number;
  message: string;
  severity: string;
}

/** A range in an editor model, 1-based, end column exclusive. */
export interface MarkerRange {
  startLineNumber: number;
  startColumn: number;
  endLineNumber: number;
  endColumn: number;
  message: string;
}

/**
 * markersFor turns the diagnostics of one file into editor ranges: from the
 * reported column to the end of the word there (or the line's end), clamped
 * to the text so a stale position still shows on its last line.
 */
export function markersFor(diags: Diagnostic[], file: string, text: string): MarkerRange[] {
  const lines = text.split('\n');
  return diags
    .filter((d) => d.file === file)
    .map((d) => {
      const line = Math.min(Math.max(d.line, 1), Math.max(lines.length, 1));
      const src = lines[line - 1] ?? '';
      let col = Math.min(Math.max(d.column, 1), src.length + 1);
      let end = col;
      while (end <= src.length && !/\s/.test(src[end - 1])) end++;
      if (end === col) {
        // Nothing but space from there: underline the whole line's text.
        const first = src.search(/\S/);
        col = first >= 0 ? first + 1 : 1;
        end = Math.max(src.length + 1, col + 1);
      }
      return { startLineNumber: line, startColumn: col, endLineNumber: line, endColumn: end, message: d.message };
    });
}

/** An RFC 9457 problem as the API sends it. */
export interface Problem {
  title?: string;
  status?: number;
  detail?: string;
  errors?: { field: string; detail: string; line?: number; column?: number }[];
}

/** problemText says what went wrong in one sentence for a status line. */
export function problemText(status: number, body: unknown): string {
  const p = (body ?? {}) as Problem;
  const first = (p.detail ?? '').split('\n')[0];
  if (first) return first;
  if (p.errors?.length) return p.errors.map((e) => `${e.field}: ${e.detail}`).join('; ');
  if (p.title) return p.title;
  return `HTTP ${status}`;
}

export interface PipelineItem {
  id: string;
  name: string;
  latest_revision: number;
}

export interface DeploymentItem {
  pipeline_id: string;
  fleet_id: string;
  revision_number: number;
  status: string;
  message?: string;
}

export interface PipelineRow {
  id: string;
  name: string;
  latestRevision: number;
  /** One entry per fleet the pipeline is deployed to. */
  deployments: { fleet: string; revision: number; status: string; message: string }[];
  /** The worst status across fleets, "Not deployed" without any. */
  status: string;
}

const severity = ['Degraded', 'OutOfSync', 'Progressing', 'Synced'];

/** pipelineRows joins pipelines with their deployments, sorted by name. */
export function pipelineRows(pipelines: PipelineItem[], deployments: DeploymentItem[], fleetNames: Record<string, string>): PipelineRow[] {
  return pipelines
    .map((p) => {
      const ds = deployments
        .filter((d) => d.pipeline_id === p.id)
        .map((d) => ({ fleet: fleetNames[d.fleet_id] ?? d.fleet_id, revision: d.revision_number, status: d.status, message: d.message ?? '' }));
      let status = ds.length ? ds[0].status : 'Not deployed';
      for (const d of ds) {
        const a = severity.indexOf(d.status), b = severity.indexOf(status);
        if (a >= 0 && (b < 0 || a < b)) status = d.status;
      }
      return { id: p.id, name: p.name, latestRevision: p.latest_revision, deployments: ds, status };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** changedFiles lists the paths whose text differs from what was read. */
export function changedFiles(original: Map<string, string>, edited: Map<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [path, text] of edited) {
    if (original.get(path) !== text) out[path] = text;
  }
  return out;
}

/** A file tree node for the sidebar. */
export interface TreeNode {
  name: string;
  path: string;
  children?: TreeNode[];
}

/** fileTree nests slash paths into directories first, then files, by name. */
export function fileTree(paths: string[]): TreeNode[] {
  const root: TreeNode = { name: '', path: '', children: [] };
  for (const p of paths) {
    const parts = p.split('/');
    let node = root;
    parts.forEach((part, i) => {
      const path = parts.slice(0, i + 1).join('/');
      if (i === parts.length - 1) {
        node.children!.push({ name: part, path });
        return;
      }
      let dir = node.children!.find((c) => c.children && c.name === part);
      if (!dir) {
        dir = { name: part, path, children: [] };
        node.children!.push(dir);
      }
      node = dir;
    });
  }
  const sort = (n: TreeNode) => {
    n.children?.sort((a, b) => (a.children ? 0 : 1) - (b.children ? 0 : 1) || a.name.localeCompare(b.name));
    n.children?.forEach(sort);
  };
  sort(root);
  return root.children!;
}

/**
 * forYamlService adapts the generated schema (draft 2020-12) to the YAML
 * service, which speaks draft 7 and resolves every "#/..." reference from
 * the document's root: each operator's config schema is embedded with its
 * own $id and $defs, so its local references are rewritten to JSON
 * pointers from the root, and the $id and $schema keys are dropped (the
 * service warns about both).
 */
export function forYamlService(v: unknown, pointer = '', base = ''): unknown {
  if (Array.isArray(v)) return v.map((x, i) => forYamlService(x, `${pointer}/${i}`, base));
  if (!v || typeof v !== 'object') return v;
  const o = v as Record<string, unknown>;
  if (pointer !== '' && typeof o.$id === 'string') base = pointer;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(o)) {
    if (k === '$schema' || k === '$id') continue;
    if (k === '$ref' && typeof x === 'string' && x.startsWith('#/') && base) {
      out[k] = '#' + base + x.slice(1);
      continue;
    }
    out[k] = forYamlService(x, `${pointer}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`, base);
  }
  return out;
}

// ---- Files -----------------------------------------------------------------

/** checkNewPath says what is wrong with a path for a new or renamed file, or ''. */
export function checkNewPath(path: string, existing: Iterable<string>): string {
  const p = path.trim();
  if (!p) return 'Give the file a path, e.g. pipelines/orders.yaml.';
  if (p.startsWith('/') || p.includes('\\') || p.split('/').some((s) => s === '' || s === '.' || s === '..'))
    return 'Use a relative path with / between folders, without . or .. parts.';
  if (p.split('/').some((s) => s.startsWith('.'))) return 'Hidden files and folders (starting with a dot) are not part of a pipeline.';
  for (const e of existing) {
    if (e === p) return `${p} exists already.`;
    if (e.startsWith(p + '/')) return `${p} is a folder.`;
    if (p.startsWith(e + '/')) return `${e} is a file, not a folder.`;
  }
  return '';
}

/** A change staged for commit. */
export interface StagedChange {
  path: string;
  kind: 'added' | 'modified' | 'deleted';
}

/**
 * stagedChanges lists what a commit would change against the branch:
 * edited files whose text differs (added when the branch has no such
 * path), and deleted paths that the branch has, sorted by path.
 */
export function stagedChanges(original: Map<string, string>, edited: Map<string, string>, deleted: Set<string>, branch: Set<string>): StagedChange[] {
  const out: StagedChange[] = [];
  for (const [path, text] of edited) {
    if (deleted.has(path)) continue;
    if (!branch.has(path)) out.push({ path, kind: 'added' });
    else if (original.get(path) !== text) out.push({ path, kind: 'modified' });
  }
  for (const path of deleted) if (branch.has(path)) out.push({ path, kind: 'deleted' });
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

/**
 * lineDiffStats counts the lines added and removed between two texts (a
 * longest common subsequence of lines; past 4 million line pairs, a cheaper
 * count of lines present on one side only).
 */
export function lineDiffStats(before: string, after: string): { added: number; removed: number } {
  const a = before === '' ? [] : before.replace(/\n$/, '').split('\n');
  const b = after === '' ? [] : after.replace(/\n$/, '').split('\n');
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let ea = a.length, eb = b.length;
  while (ea > start && eb > start && a[ea - 1] === b[eb - 1]) (ea--, eb--);
  const x = a.slice(start, ea), y = b.slice(start, eb);
  if (x.length * y.length > 4_000_000) {
    const count = (l: string[]) => l.reduce((m, s) => m.set(s, (m.get(s) ?? 0) + 1), new Map<string, number>());
    const cx = count(x), cy = count(y);
    let common = 0;
    for (const [s, n] of cx) common += Math.min(n, cy.get(s) ?? 0);
    return { added: y.length - common, removed: x.length - common };
  }
  let prev = new Array<number>(y.length + 1).fill(0);
  for (let i = 1; i <= x.length; i++) {
    const cur = new Array<number>(y.length + 1).fill(0);
    for (let j = 1; j <= y.length; j++) cur[j] = x[i - 1] === y[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
    prev = cur;
  }
  const lcs = prev[y.length];
  return { added: y.length - lcs, removed: x.length - lcs };
}

/** Side files the editor uploads as text: GeoJSON, JSON and CSV. */
export function uploadable(name: string): boolean {
  return /\.(geojson|json|csv)$/i.test(name);
}

// ---- Operator catalog ------------------------------------------------------

/**
 * stepSnippet turns a catalog example into a step to insert at a cursor in
 * column `column` (1-based): the example's YAML is the step's value, so a
 * one-line value follows "- name: " and a longer one goes below it,
 * indented under the name.
 */
export function stepSnippet(name: string, step: string, column: number): string {
  const indent = ' '.repeat(Math.max(column - 1, 0));
  const lines = step.replace(/\s+$/, '').replace(/^\n+/, '').split('\n');
  if (lines.length === 1) return `- ${name}: ${lines[0]}\n${indent}`;
  const pad = indent + '    ';
  return `- ${name}:\n` + lines.map((l) => (l === '' ? '' : pad + l)).join('\n') + '\n' + indent;
}

/** matchOperator filters the catalog by name and summary, case-insensitively. */
export function matchOperator(op: { name: string; summary: string }, query: string): boolean {
  const q = query.trim().toLowerCase();
  return !q || op.name.toLowerCase().includes(q) || op.summary.toLowerCase().includes(q);
}

// ---- Try it ----------------------------------------------------------------

/** A sample record for POST .../ide/try. */
export interface TryRecord {
  key?: unknown;
  value: unknown;
  headers?: Record<string, string>;
  timestamp?: string;
}

const envelopeKeys = new Set(['key', 'value', 'headers', 'timestamp']);

/**
 * parseRecords reads JSON lines: each non-blank line is a record's value,
 * unless it is an object with a "value" and nothing but key, value,
 * headers and timestamp, which sets those. Errors name the line.
 */
export function parseRecords(text: string): { records: TryRecord[]; errors: string[] } {
  const records: TryRecord[] = [];
  const errors: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('//')) return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      errors.push(`line ${i + 1}: not JSON (${(e as Error).message})`);
      return;
    }
    if (v && typeof v === 'object' && !Array.isArray(v) && 'value' in v && Object.keys(v).every((k) => envelopeKeys.has(k))) {
      const o = v as Record<string, unknown>;
      if (o.headers !== undefined && (typeof o.headers !== 'object' || o.headers === null || Object.values(o.headers).some((h) => typeof h !== 'string'))) {
        errors.push(`line ${i + 1}: headers must be an object of strings`);
        return;
      }
      if (o.timestamp !== undefined && (typeof o.timestamp !== 'string' || isNaN(Date.parse(o.timestamp)))) {
        errors.push(`line ${i + 1}: timestamp must be an RFC 3339 time such as 2026-01-01T00:00:00Z`);
        return;
      }
      records.push(o as unknown as TryRecord);
      return;
    }
    records.push({ value: v });
  });
  return { records, errors };
}

// ---- History ---------------------------------------------------------------

export interface RevisionItem {
  number: number;
  commit_sha?: string;
  message?: string;
  author?: string;
  created_at: string;
}

export interface RolloutItem {
  id: string;
  fleet: string;
  commit?: string;
  message?: string;
  phase: string;
  status: string;
  reason?: string;
  revert_commit?: string;
  pipelines: string[];
  created_at: string;
  finished_at?: string;
}

/** One commit of the history: what it changed and where it rolled out. */
export interface HistoryRow {
  commit: string;
  message: string;
  author: string;
  at: string;
  /** "name #revision" per pipeline the commit changed. */
  pipelines: string[];
  rollouts: RolloutItem[];
}

/**
 * historyRows groups pipeline revisions by commit (revisions made through
 * the API without one stand alone), attaches the rollouts of each commit,
 * and sorts newest first.
 */
export function historyRows(revisions: { pipeline: string; revisions: RevisionItem[] }[], rollouts: RolloutItem[]): HistoryRow[] {
  const rows = new Map<string, HistoryRow>();
  for (const { pipeline, revisions: revs } of revisions) {
    for (const r of revs) {
      const id = r.commit_sha || `api:${pipeline}:${r.number}`;
      let row = rows.get(id);
      if (!row) {
        row = { commit: r.commit_sha ?? '', message: r.message ?? '', author: r.author ?? '', at: r.created_at, pipelines: [], rollouts: [] };
        rows.set(id, row);
      }
      row.pipelines.push(`${pipeline} #${r.number}`);
      if (r.created_at < row.at) row.at = r.created_at;
      if (!row.message && r.message) row.message = r.message;
      if (!row.author && r.author) row.author = r.author;
    }
  }
  for (const ro of rollouts) {
    if (!ro.commit) continue;
    let row = rows.get(ro.commit);
    if (!row) {
      // A commit that changed no pipeline's revision (a revert to what runs).
      row = { commit: ro.commit, message: ro.message ?? '', author: '', at: ro.created_at, pipelines: [], rollouts: [] };
      rows.set(ro.commit, row);
    }
    row.rollouts.push(ro);
  }
  for (const row of rows.values()) row.pipelines.sort();
  return [...rows.values()].sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
}

/**
 * rollbackable is the rollouts a rollback makes sense for: the newest of
 * each fleet, unless it was rolled back already (an older one would undo
 * more than its own commit).
 */
export function rollbackable(rollouts: RolloutItem[]): Set<string> {
  const newest = new Map<string, RolloutItem>();
  for (const r of rollouts) {
    const cur = newest.get(r.fleet);
    if (!cur || r.created_at > cur.created_at) newest.set(r.fleet, r);
  }
  return new Set([...newest.values()].filter((r) => !r.revert_commit && r.phase !== 'RolledBack').map((r) => r.id));
}

// ---- Formatting ------------------------------------------------------------

/** formatDuration shows milliseconds the way a person reads them. */
export function formatDuration(ms: number): string {
  if (!isFinite(ms) || ms < 0) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = s / 60;
  if (m < 60) return `${Math.floor(m)} min ${Math.round(s % 60)} s`;
  const h = m / 60;
  if (h < 48) return `${Math.floor(h)} h ${Math.round(m % 60)} min`;
  return `${Math.round(h / 24)} days`;
}

/** formatAgo says how long before now a time was: "3 min ago". */
export function formatAgo(iso: string, now: number): string {
  const t = Date.parse(iso);
  if (isNaN(t)) return '–';
  const ms = now - t;
  if (ms < 0) return 'in ' + formatDuration(-ms);
  if (ms < 5000) return 'just now';
  return formatDuration(ms).replace(/ \d+ (s|min)$/, '') + ' ago';
}

/** formatCount abbreviates large counts: 1234 -> 1.2k. */
export function formatCount(n: number): string {
  const a = Math.abs(n);
  if (a < 1000) return String(Math.round(n));
  if (a < 1e6) return (n / 1e3).toFixed(a < 1e4 ? 1 : 0) + 'k';
  if (a < 1e9) return (n / 1e6).toFixed(a < 1e7 ? 1 : 0) + 'M';
  return (n / 1e9).toFixed(1) + 'G';
}

/** expiryFrom turns a token expiry choice (days, or "" for never) into an RFC 3339 time. */
export function expiryFrom(days: string, now: Date): string | undefined {
  const n = Number(days);
  if (!days || !isFinite(n) || n <= 0) return undefined;
  return new Date(now.getTime() + n * 86_400_000).toISOString();
}

// ---- Lag and skew ----------------------------------------------------------

export interface LagPoint {
  at: string;
  status: string;
  lag: number;
  event_age_ms: number;
  stages: { stage: number; topic: string; lag: number; max_time_lag_ms?: number }[] | null;
}

export interface Series {
  label: string;
  values: (number | null)[];
}

/**
 * lagSeries shapes the lag history for a chart: x as epoch seconds, the
 * total lag, and one series per stage (null where a sample lacks it).
 */
export function lagSeries(history: LagPoint[]): { x: number[]; series: Series[]; age: Series } {
  const x = history.map((p) => Date.parse(p.at) / 1000);
  const stageNames = new Map<number, string>();
  for (const p of history) for (const s of p.stages ?? []) if (!stageNames.has(s.stage)) stageNames.set(s.stage, `stage ${s.stage} (${s.topic})`);
  const stages = [...stageNames.keys()].sort((a, b) => a - b);
  const series: Series[] = [{ label: 'total lag', values: history.map((p) => p.lag) }];
  if (stages.length > 1) {
    for (const st of stages) {
      series.push({ label: stageNames.get(st)!, values: history.map((p) => p.stages?.find((s) => s.stage === st)?.lag ?? null) });
    }
  }
  return { x, series, age: { label: 'event age', values: history.map((p) => p.event_age_ms) } };
}

export interface PartitionLagItem {
  partition: number;
  lag: number;
  status?: string;
  time_lag_ms?: number;
}

export interface StageLagItem {
  stage: number;
  topic: string;
  lag: number;
  partitions?: PartitionLagItem[];
}

/** One cell of the partition heat map: lag and its share of the row's maximum. */
export interface HeatCell {
  partition: number;
  lag: number;
  level: number;
}

/**
 * heatRows lays the current lag out as stages by partitions, each cell's
 * level its lag relative to the busiest partition of the pipeline (0..1),
 * so a hot partition stands out in any stage.
 */
export function heatRows(stages: StageLagItem[]): { label: string; cells: HeatCell[] }[] {
  let max = 0;
  for (const s of stages) for (const p of s.partitions ?? []) max = Math.max(max, p.lag);
  return stages.map((s) => ({
    label: `stage ${s.stage} (${s.topic})`,
    cells: [...(s.partitions ?? [])]
      .sort((a, b) => a.partition - b.partition)
      .map((p) => ({ partition: p.partition, lag: p.lag, level: max > 0 ? p.lag / max : 0 })),
  }));
}

/** scale maps values onto [0, size], with a "nice" top rounded up. */
export function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(max)));
  for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

/** A DLQ record named by partition and offset. */
export interface DLQOffset {
  partition: number;
  offset: number;
}

/** dlqKey names a dead letter in a selection. */
export function dlqKey(o: DLQOffset): string {
  return `${o.partition}/${o.offset}`;
}

/** replaySelection turns selected keys ("partition/offset") into a replay request body, sorted. */
export function replaySelection(selected: Iterable<string>): { offsets: DLQOffset[] } {
  const offsets: DLQOffset[] = [];
  for (const k of selected) {
    const m = /^(\d+)\/(\d+)$/.exec(k);
    if (m) offsets.push({ partition: Number(m[1]), offset: Number(m[2]) });
  }
  offsets.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
  return { offsets };
}

export interface ReplayItem {
  id: string;
  state: string;
  replayed: number;
  errors: string[];
  duplicate?: boolean;
}

/** replayText says how a replay went, in one sentence. */
export function replayText(r: ReplayItem): string {
  const errs = r.errors?.length ? ` ${r.errors.length} problem${r.errors.length === 1 ? '' : 's'}: ${r.errors.slice(0, 3).join('; ')}` : '';
  const dup = r.duplicate ? 'The same dead letters were asked for already; nothing more is replayed. ' : '';
  switch (r.state) {
    case 'pending':
      return dup + 'Replay requested; waiting for the fleet’s monitor runner to take it.';
    case 'claimed':
    case 'running':
      return dup + 'Replaying…';
    case 'done':
      return `${dup}Replay done: ${r.replayed} dead letter${r.replayed === 1 ? '' : 's'} sent back to the pipeline.${errs}`;
    case 'failed':
      return `${dup}Replay failed after ${r.replayed} dead letters.${errs}`;
  }
  return dup + r.state;
}

/** parseRedactPaths reads one field path per line or comma; returns an error text for a bad one. */
export function parseRedactPaths(text: string): { paths: string[]; error: string } {
  const paths = text
    .split(/[\n,]/)
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const p of paths) {
    if (!/^[^.\s]+(\.[^.\s]+)*$/.test(p)) return { paths, error: `“${p}” is not a field path like card.number` };
  }
  return { paths, error: '' };
}

/**
 * fleetSize describes a fleet's size on its card. A destroyed fleet keeps
 * its desired size (the next plan creates that many again), so it says so
 * rather than calling the runners wanted.
 */
export function fleetSize(module: string, runners: number, status: string): string {
  const n = `${runners} runner${runners === 1 ? '' : 's'}`;
  if (status === 'destroyed') return `${module}, no runners; a plan creates ${n} again`;
  return `${module}, ${n} wanted`;
}
