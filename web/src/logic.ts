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
