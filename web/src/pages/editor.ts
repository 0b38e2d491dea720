// The editor: the deploy branch's file tree (create, rename, delete,
// upload side files), Monaco with the server's compiler, the tests, "try
// it" on sample records, the operator catalog, and commit & deploy with a
// staged diff and the rollout followed per runner.
import { api, ApiError, type List } from '../api';
import { h, alert, errorText, projectPath, stream, onLeave } from '../dom';
import {
  changedFiles,
  checkNewPath,
  fileTree,
  lineDiffStats,
  markersFor,
  matchOperator,
  parseRecords,
  stagedChanges,
  stepSnippet,
  uploadable,
  type Diagnostic,
  type TreeNode,
} from '../logic';

type Editor = import('../editor').Editor;
type EditorModule = typeof import('../editor');

interface Tree {
  branch: string;
  head: string;
  files: { path: string; size: number; content?: string }[];
}

interface CheckResult {
  head: string;
  failed: boolean;
  lines: string[];
  diagnostics: Diagnostic[];
  passed: number;
  failed_tests: number;
  duration_ms: number;
}

interface Rollout {
  id: string;
  fleet: string;
  fleet_id: string;
  phase: string;
  status: string;
  reason?: string;
  promoted_runners: string[];
  pipelines: string[];
  finished_at?: string;
}

interface Runner {
  id: string;
  name: string;
  live: boolean;
  version: string;
  revoked: boolean;
}

interface Operator {
  name: string;
  summary: string;
  description: string;
  stateful: boolean;
  docs?: string;
  examples: { title: string; summary?: string; step: string; input: unknown[]; output: unknown[]; dlq?: string[] }[];
}

interface TryResult {
  pipeline: string;
  outputs: { topic: string; key: string | null; value: unknown; headers?: Record<string, string> }[];
  dlq: { reason: string; error: string; step?: string; input: number; key: string | null; value: unknown }[];
  errors: string[];
  duration_ms: number;
}

const isPipeline = (p: string) => /^pipelines\/.*\.ya?ml$/.test(p) && !/_test\.ya?ml$/.test(p);
const json = (v: unknown) => JSON.stringify(v);

export async function renderEditor(main: HTMLElement): Promise<void> {
  main.className = 'editor-page';
  const treeNav = h('nav', { class: 'tree', 'aria-label': 'Repository files' }, h('h2', {}, 'Files'), h('p', { class: 'muted' }, 'Loading…'));
  const fileLabel = h('span', { id: 'current-file' }, 'No file open');
  const checkStatus = h('span', { id: 'check-status', role: 'status', class: 'muted' });
  const editorEl = h('div', { id: 'monaco', class: 'monaco' });
  const problems = h('ul', { id: 'problems', class: 'problems', 'aria-label': 'Problems' });
  const testsOut = h('pre', { id: 'test-output', class: 'output', 'aria-live': 'polite', tabindex: '0' }, 'Run the tests to see PASS and FAIL here.');
  const runTests = h('button', { type: 'button', id: 'run-tests' }, 'Run tests');
  const tryInput = h('textarea', {
    id: 'try-records',
    rows: '5',
    spellcheck: 'false',
    placeholder: '{"user": "ada", "page": "/Pricing"}\n{"key": "k1", "value": {"user": "bob"}, "headers": {"h": "v"}}',
  });
  const tryAdvance = h('input', { id: 'try-advance', placeholder: 'e.g. 1m', size: '8' });
  const tryButton = h('button', { type: 'button', id: 'try-run' }, 'Try it');
  const tryOut = h('div', { id: 'try-output', 'aria-live': 'polite' });
  const opsFilter = h('input', { id: 'ops-filter', type: 'search', placeholder: 'filter, map, join…' });
  const opsList = h('ul', { id: 'ops-list', class: 'ops', 'aria-label': 'Operators' });
  const opDoc = h('div', { id: 'op-doc', 'aria-live': 'polite' });
  const staged = h('ul', { id: 'staged', class: 'staged', 'aria-label': 'Staged changes' });
  const reviewDiff = h('button', { type: 'button', id: 'review-diff' }, 'Review diff');
  const message = h('textarea', { id: 'commit-message', rows: '3', placeholder: 'Say why, e.g. "clicks: keep the referrer"' });
  const commit = h('button', { type: 'button', id: 'commit', class: 'primary' }, 'Commit & deploy');
  const commitStatus = h('div', { id: 'commit-status', role: 'status', class: 'output' });
  const rollout = h('ol', { id: 'rollout-events', class: 'events', 'aria-label': 'Rollout progress' });
  const runnersEl = h('div', { id: 'rollout-runners' });
  const diffDialog = h('dialog', { id: 'diff-dialog', class: 'diff-dialog', 'aria-labelledby': 'diff-title' });
  const section = (id: string, title: string, open: boolean, ...body: (Node | string)[]) =>
    h('details', { id: id + '-section', open }, h('summary', {}, h('h2', { id: id + '-title' }, title)), ...body);
  main.append(
    treeNav,
    h('section', { class: 'center-pane', 'aria-label': 'Editor' }, h('div', { class: 'tabbar' }, fileLabel, checkStatus), editorEl),
    h(
      'aside',
      { class: 'side', 'aria-label': 'Tools' },
      section('problems', 'Problems', true, problems),
      section('tests', 'Tests', true, runTests, testsOut),
      section(
        'try',
        'Try it',
        false,
        h('label', { for: 'try-records' }, 'Sample records, one JSON value per line'),
        tryInput,
        h('div', { class: 'row' }, h('label', { for: 'try-advance' }, 'Then advance the clock by'), tryAdvance, tryButton),
        tryOut,
      ),
      section('ops', 'Operators', false, h('label', { for: 'ops-filter' }, 'Search the catalog'), opsFilter, opsList, opDoc),
      section(
        'commit',
        'Commit & deploy',
        true,
        h('h3', {}, 'Staged changes'),
        staged,
        reviewDiff,
        h('label', { for: 'commit-message' }, 'Commit message'),
        message,
        commit,
        commitStatus,
        rollout,
        runnersEl,
      ),
    ),
    diffDialog,
  );

  let tree: Tree;
  try {
    tree = await api.get<Tree>(projectPath('/ide/files'));
  } catch (e) {
    treeNav.replaceChildren(h('h2', {}, 'Files'), alert('Cannot read the repository: ' + errorText(e)));
    return;
  }
  // The branch's files, what was read of them, the edits (new files
  // included) and the deletions: a commit sends edits and deletions.
  let branch = new Set(tree.files.map((f) => f.path));
  const original = new Map<string, string>();
  const edited = new Map<string, string>();
  const deleted = new Set<string>();
  let current = '';
  let diags: Diagnostic[] = [];
  let checkSeq = 0;
  let timer: number | undefined;
  let treeForm: HTMLElement | null = null;

  editorEl.append(h('p', { class: 'muted loading' }, 'Loading the editor…'));
  let mod: EditorModule;
  try {
    mod = await import('../editor');
  } catch (e) {
    editorEl.replaceChildren(alert('The editor did not load: ' + errorText(e)));
    return;
  }
  // Left while loading (another route drew over this one): an editor made
  // now would listen to the shared models unseen and check every edit twice.
  if (!main.isConnected) return;
  editorEl.replaceChildren();
  const livePaths = () => [...new Set([...branch, ...edited.keys()])].filter((p) => !deleted.has(p)).sort();
  const updateSchemaFiles = () => mod.setPipelineFiles(livePaths().filter(isPipeline));
  updateSchemaFiles();
  const ed: Editor = mod.createEditor(editorEl, (path, text) => {
    if (edited.get(path) === text) return;
    edited.set(path, text);
    renderStaged();
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void check(false), 300);
  });
  // Closing or reloading the tab with uncommitted edits asks first.
  const guard = (e: BeforeUnloadEvent) => {
    if (stagedChanges(original, edited, deleted, branch).length) e.preventDefault();
  };
  window.addEventListener('beforeunload', guard);
  onLeave(() => window.removeEventListener('beforeunload', guard));
  // The models hold this page's edits: a page routed next (another
  // project's editor too) starts from the branch again.
  onLeave(() => {
    window.clearTimeout(timer);
    ed.dispose();
    mod.reset();
  });

  // ---- File tree -----------------------------------------------------------

  const renderTree = () => {
    const changes = new Map(stagedChanges(original, edited, deleted, branch).map((c) => [c.path, c.kind]));
    const list = (nodes: TreeNode[]): HTMLElement =>
      h(
        'ul',
        {},
        ...nodes.map((n) => {
          if (n.children) return h('li', {}, h('span', { class: 'dir' }, n.name + '/'), list(n.children));
          const kind = changes.get(n.path);
          return h(
            'li',
            {},
            h(
              'button',
              {
                type: 'button',
                class: 'file' + (kind ? ' ' + kind : ''),
                'data-path': n.path,
                'aria-current': n.path === current ? 'true' : false,
                'aria-label': n.name + (kind ? ` (${kind})` : ''),
                onclick: () => void openFile(n.path),
              },
              n.name,
              kind ? h('span', { class: 'mark', 'aria-hidden': 'true' }, kind === 'added' ? ' +' : ' •') : null,
            ),
          );
        }),
      );
    const tools = h(
      'div',
      { class: 'tree-tools', role: 'toolbar', 'aria-label': 'File actions' },
      h('button', { type: 'button', id: 'new-file', onclick: () => pathForm('new') }, 'New'),
      h('button', { type: 'button', id: 'rename-file', disabled: !current, 'aria-label': current ? `Rename ${current}` : 'Rename', onclick: () => pathForm('rename') }, 'Rename'),
      h('button', { type: 'button', id: 'delete-file', disabled: !current, 'aria-label': current ? `Delete ${current}` : 'Delete', onclick: () => deleteFile() }, 'Delete'),
      h('button', { type: 'button', id: 'upload-file', onclick: () => upload.click() }, 'Upload'),
    );
    const paths = livePaths();
    const body: (Node | string)[] = [h('h2', {}, 'Files'), tools];
    if (treeForm) body.push(treeForm);
    if (paths.length === 0) body.push(h('p', { class: 'muted' }, `The ${tree.branch} branch has no commit yet: create a file under pipelines/ or push one with git.`));
    else body.push(list(fileTree(paths)));
    const gone = [...deleted].filter((p) => branch.has(p)).sort();
    if (gone.length) {
      body.push(
        h('h3', {}, 'Deleted'),
        h(
          'ul',
          { class: 'deleted' },
          ...gone.map((p) =>
            h('li', {}, h('s', {}, p), ' ', h('button', { type: 'button', class: 'link', 'aria-label': `Restore ${p}`, onclick: () => restore(p) }, 'Restore')),
          ),
        ),
      );
    }
    body.push(upload);
    treeNav.replaceChildren(...body);
  };

  const upload = h('input', {
    type: 'file',
    id: 'upload-input',
    class: 'sr-only',
    accept: '.geojson,.json,.csv',
    multiple: true,
    'aria-label': 'Upload GeoJSON or CSV side files',
    onchange: async () => {
      const dir = current.includes('/') ? current.slice(0, current.lastIndexOf('/') + 1) : 'pipelines/';
      const msgs: string[] = [];
      for (const f of Array.from(upload.files ?? [])) {
        if (!uploadable(f.name)) {
          msgs.push(`${f.name}: only .geojson, .json and .csv side files can be uploaded.`);
          continue;
        }
        if (f.size > 900 * 1024) {
          msgs.push(`${f.name}: ${Math.round(f.size / 1024)} KiB is more than one request takes (900 KiB); commit it with git.`);
          continue;
        }
        const path = dir + f.name;
        const text = await f.text();
        if (branch.has(path) && !original.has(path)) await read(path);
        deleted.delete(path);
        edited.set(path, text);
        msgs.push(`${path}: ${branch.has(path) ? 'replaced' : 'added'}.`);
      }
      upload.value = '';
      treeForm = h('p', { role: 'status', class: 'muted', id: 'tree-status' }, msgs.join(' '));
      renderTree();
      renderStaged();
      void check(false);
    },
  });

  function pathForm(kind: 'new' | 'rename'): void {
    const input = h('input', { id: 'path-input', value: kind === 'new' ? 'pipelines/' : current, spellcheck: 'false' });
    const err = h('p', { class: 'error', role: 'alert' });
    const cancel = () => {
      treeForm = null;
      renderTree();
    };
    treeForm = h(
      'form',
      {
        class: 'path-form',
        onsubmit: (e: Event) => {
          e.preventDefault();
          const p = input.value.trim();
          const others = livePaths().filter((x) => kind === 'new' || x !== current);
          const problem = checkNewPath(p, others);
          if (problem) {
            err.textContent = problem;
            input.focus();
            return;
          }
          treeForm = null;
          if (kind === 'new') void createFile(p);
          else void renameFile(current, p);
        },
        onkeydown: (e: Event) => {
          if ((e as KeyboardEvent).key === 'Escape') cancel();
        },
      },
      h('label', { for: 'path-input' }, kind === 'new' ? 'New file path' : `Rename ${current} to`),
      input,
      h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, kind === 'new' ? 'Create' : 'Rename'), h('button', { type: 'button', onclick: cancel }, 'Cancel')),
      err,
    );
    renderTree();
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }

  function starter(path: string): string {
    if (/_test\.ya?ml$/.test(path)) return 'pipeline: NAME\ntests:\n  - name: describe the case\n    input:\n      - value: {}\n    expect:\n      - value: {}\n';
    if (isPipeline(path)) {
      const name = path.replace(/^.*\//, '').replace(/\.ya?ml$/, '');
      return `apiVersion: sluice/v1\nkind: Pipeline\nmetadata:\n  name: ${name}\nspec:\n  source: {topic: ${name}, format: json}\n  steps:\n    - filter: 'true'\n  sink: {topic: ${name}.out}\n  errors: {dlq: ${name}.dlq}\n`;
    }
    return '';
  }

  async function createFile(path: string): Promise<void> {
    deleted.delete(path);
    edited.set(path, starter(path));
    updateSchemaFiles();
    await openFile(path);
    renderStaged();
    void check(false);
  }

  async function renameFile(from: string, to: string): Promise<void> {
    const text = mod.text(from) ?? edited.get(from) ?? (await read(from));
    if (text === undefined) return;
    if (branch.has(from)) deleted.add(from);
    edited.delete(from);
    mod.close(from);
    deleted.delete(to);
    edited.set(to, text);
    updateSchemaFiles();
    await openFile(to);
    renderStaged();
    void check(false);
  }

  function deleteFile(): void {
    const p = current;
    if (!p) return;
    if (branch.has(p)) deleted.add(p);
    edited.delete(p);
    mod.close(p);
    current = '';
    ed.setModel(null);
    fileLabel.textContent = `${p} deleted (restore it under Deleted)`;
    updateSchemaFiles();
    renderTree();
    renderStaged();
    void check(false);
  }

  function restore(p: string): void {
    deleted.delete(p);
    updateSchemaFiles();
    renderTree();
    renderStaged();
    void openFile(p);
    void check(false);
  }

  async function read(path: string): Promise<string | undefined> {
    if (original.has(path)) return original.get(path);
    if (!branch.has(path)) return '';
    try {
      const f = await api.get<Tree>(projectPath('/ide/files?path=' + encodeURIComponent(path)));
      original.set(path, f.files[0]?.content ?? '');
      return original.get(path);
    } catch (e) {
      checkStatus.textContent = 'Cannot open ' + path + ': ' + errorText(e);
      return undefined;
    }
  }

  async function openFile(path: string, line?: number, column?: number): Promise<void> {
    const base = edited.has(path) ? edited.get(path)! : await read(path);
    if (base === undefined) return;
    current = path;
    mod.open(ed, path, base);
    fileLabel.textContent = path;
    applyMarkers();
    renderTree();
    if (line) mod.reveal(ed, line, column ?? 1);
  }

  // ---- Problems and tests --------------------------------------------------

  function applyMarkers(): void {
    for (const p of mod.openPaths()) mod.setServerMarkers(p, markersFor(diags, p, mod.text(p) ?? ''));
  }

  function renderProblems(): void {
    if (diags.length === 0) {
      problems.replaceChildren(h('li', { class: 'muted' }, 'No problems.'));
      return;
    }
    problems.replaceChildren(
      ...diags.map((d) =>
        h(
          'li',
          {},
          h(
            'button',
            { type: 'button', class: 'problem', onclick: () => void openFile(d.file, d.line, d.column) },
            h('span', { class: 'loc' }, `${d.file}:${d.line}:${d.column}`),
            ' ',
            d.message,
          ),
        ),
      ),
    );
  }

  function showTests(res: CheckResult): void {
    const lines = res.lines.filter((l) => /^(PASS|FAIL) |^\s{5}|^\d+ passed/.test(l));
    testsOut.textContent = lines.length ? lines.join('\n') : 'No *_test.yaml in pipelines/.';
    testsOut.dataset.passed = String(res.passed);
    testsOut.dataset.failed = String(res.failed_tests);
  }

  const edits = () => ({ files: changedFiles(original, edited), deleted: [...deleted].filter((p) => branch.has(p)) });

  async function check(tests: boolean): Promise<CheckResult | undefined> {
    const seq = ++checkSeq;
    const t0 = performance.now();
    checkStatus.textContent = tests ? 'Running tests…' : 'Checking…';
    try {
      const res = await api.post<CheckResult>(projectPath('/ide/check'), edits());
      if (seq !== checkSeq) return undefined;
      diags = res.diagnostics;
      applyMarkers();
      renderProblems();
      if (tests) showTests(res);
      const ms = Math.round(performance.now() - t0);
      checkStatus.textContent = res.failed
        ? `${diags.length} problem${diags.length === 1 ? '' : 's'} (${ms} ms)`
        : `Compiles, ${res.passed} test${res.passed === 1 ? '' : 's'} pass (${ms} ms)`;
      checkStatus.dataset.ms = String(ms);
      return res;
    } catch (e) {
      if (seq === checkSeq) checkStatus.textContent = 'Check failed: ' + errorText(e);
      return undefined;
    }
  }

  runTests.addEventListener('click', async () => {
    runTests.disabled = true;
    testsOut.textContent = 'Running…';
    try {
      await check(true);
    } finally {
      runTests.disabled = false;
    }
  });

  // ---- Try it --------------------------------------------------------------

  const runTry = async () => {
    const { records, errors } = parseRecords(tryInput.value);
    if (!isPipeline(current)) {
      tryOut.replaceChildren(alert('Open a pipeline file (pipelines/*.yaml) to try it.'));
      return;
    }
    if (errors.length) {
      tryOut.replaceChildren(alert('Fix the sample records first:'), h('ul', {}, ...errors.map((e) => h('li', {}, e))));
      tryInput.focus();
      return;
    }
    if (records.length === 0) {
      tryOut.replaceChildren(alert('Type or paste at least one record: one JSON value per line.'));
      tryInput.focus();
      return;
    }
    tryButton.disabled = true;
    tryOut.replaceChildren(h('p', { class: 'muted' }, `Running ${records.length} record${records.length === 1 ? '' : 's'} through ${current}…`));
    try {
      const body: Record<string, unknown> = { ...edits(), pipeline: current, records };
      if (tryAdvance.value.trim()) body.advance = tryAdvance.value.trim();
      const res = await api.post<TryResult>(projectPath('/ide/try'), body);
      showTry(res, records.length);
    } catch (e) {
      if (e instanceof ApiError && e.status === 422) {
        const detail = (e.body as { detail?: string }).detail ?? '';
        tryOut.replaceChildren(alert('It did not run:'), h('pre', { class: 'output' }, detail));
      } else tryOut.replaceChildren(alert(errorText(e)));
    } finally {
      tryButton.disabled = false;
    }
  };

  function showTry(res: TryResult, n: number): void {
    const dropped = n - res.dlq.filter((d) => d.input >= 0).length - res.errors.length;
    const parts: (Node | string)[] = [
      h(
        'p',
        { class: 'muted', id: 'try-summary' },
        `${res.pipeline}: ${res.outputs.length} output${res.outputs.length === 1 ? '' : 's'}, ${res.dlq.length} dead letter${res.dlq.length === 1 ? '' : 's'} from ${n} record${n === 1 ? '' : 's'} (${Math.round(res.duration_ms)} ms).`,
      ),
    ];
    if (res.outputs.length) {
      parts.push(
        h('h3', {}, 'Outputs'),
        h(
          'ol',
          { class: 'records', id: 'try-outputs' },
          ...res.outputs.map((o) => h('li', {}, h('span', { class: 'topic' }, o.topic), o.key !== null ? h('span', { class: 'key' }, 'key ' + o.key) : null, h('code', {}, json(o.value)))),
        ),
      );
    } else if (dropped > 0) parts.push(h('p', { class: 'muted' }, 'No output: the pipeline dropped every record (a filter, or a window that has not closed: advance the clock).'));
    if (res.dlq.length) {
      parts.push(
        h('h3', {}, 'Dead letters'),
        h(
          'ol',
          { class: 'records dlq', id: 'try-dlq' },
          ...res.dlq.map((d) =>
            h(
              'li',
              {},
              h('span', { class: 'badge Degraded' }, d.reason),
              d.input >= 0 ? ` record ${d.input + 1}` : '',
              d.step ? ` at ${d.step}` : '',
              ': ',
              d.error,
              h('br'),
              h('code', {}, json(d.value)),
            ),
          ),
        ),
      );
    }
    if (res.errors.length) parts.push(h('h3', {}, 'Errors'), h('ul', { class: 'error' }, ...res.errors.map((e) => h('li', {}, e))));
    tryOut.replaceChildren(...parts);
  }

  tryButton.addEventListener('click', () => void runTry());
  tryInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) void runTry();
  });

  // ---- Operator catalog ----------------------------------------------------

  let operators: Operator[] | null = null;
  const opsSection = main.querySelector('#ops-section') as HTMLDetailsElement;
  const loadOps = async () => {
    if (operators) return;
    opsList.replaceChildren(h('li', { class: 'muted' }, 'Loading…'));
    try {
      operators = (await api.get<List<Operator>>('/operators')).items.sort((a, b) => a.name.localeCompare(b.name));
      renderOps();
    } catch (e) {
      opsList.replaceChildren(h('li', {}, alert('Cannot read the catalog: ' + errorText(e))));
    }
  };
  opsSection.addEventListener('toggle', () => {
    if (opsSection.open) void loadOps();
  });
  opsFilter.addEventListener('input', () => renderOps());

  function renderOps(): void {
    if (!operators) return;
    const shown = operators.filter((o) => matchOperator(o, opsFilter.value));
    if (shown.length === 0) {
      opsList.replaceChildren(h('li', { class: 'muted' }, `No operator matches “${opsFilter.value}”.`));
      return;
    }
    opsList.replaceChildren(
      ...shown.map((o) =>
        h(
          'li',
          {},
          h('button', { type: 'button', class: 'op', 'data-op': o.name, onclick: () => showOp(o) }, h('strong', {}, o.name), ' ', h('span', { class: 'muted' }, o.summary)),
        ),
      ),
    );
  }

  function showOp(o: Operator): void {
    const examples = o.examples.map((ex, i) =>
      h(
        'div',
        { class: 'example' },
        h('h4', {}, ex.title),
        ex.summary ? h('p', { class: 'muted' }, ex.summary) : null,
        h('pre', { class: 'output' }, stepSnippet(o.name, ex.step, 1).trimEnd()),
        ex.input?.length ? h('p', { class: 'io' }, 'in: ', h('code', {}, ex.input.map(json).join(' '))) : null,
        ex.output?.length ? h('p', { class: 'io' }, 'out: ', h('code', {}, ex.output.map(json).join(' '))) : null,
        h(
          'button',
          {
            type: 'button',
            class: 'insert',
            'aria-label': `Insert example ${i + 1} of ${o.name} at the cursor`,
            onclick: () => {
              if (!current) {
                status.textContent = 'Open a file first.';
                return;
              }
              status.textContent = mod.insertAtCursor(ed, (col) => stepSnippet(o.name, ex.step, col)) ? `Inserted into ${current}.` : 'Place the cursor in the editor first.';
            },
          },
          'Insert at cursor',
        ),
      ),
    );
    const status = h('p', { role: 'status', class: 'muted', id: 'op-status' });
    opDoc.replaceChildren(
      h('h3', { id: 'op-name' }, o.name, o.stateful ? h('span', { class: 'badge' }, ' stateful') : null),
      h('p', {}, o.description || o.summary),
      ...examples,
      status,
      o.docs ? h('details', {}, h('summary', {}, 'Full reference'), h('pre', { class: 'doc' }, o.docs)) : '',
    );
  }

  // ---- Commit & deploy -----------------------------------------------------

  function renderStaged(): void {
    const changes = stagedChanges(original, edited, deleted, branch);
    reviewDiff.disabled = changes.length === 0;
    if (changes.length === 0) {
      staged.replaceChildren(h('li', { class: 'muted' }, 'Nothing changed since the branch head.'));
      return;
    }
    staged.replaceChildren(
      ...changes.map((c) => {
        const st = lineDiffStats(c.kind === 'added' ? '' : original.get(c.path) ?? '', c.kind === 'deleted' ? '' : edited.get(c.path) ?? '');
        return h(
          'li',
          { 'data-path': c.path },
          h('span', { class: 'kind ' + c.kind }, c.kind[0].toUpperCase()),
          ' ',
          h('button', { type: 'button', class: 'link', 'aria-label': `Show the diff of ${c.path}`, onclick: () => void openDiff(c.path) }, c.path),
          ' ',
          h('span', { class: 'stat' }, h('span', { class: 'add' }, `+${st.added}`), ' ', h('span', { class: 'del' }, `−${st.removed}`)),
        );
      }),
    );
  }

  async function openDiff(first?: string): Promise<void> {
    const changes = stagedChanges(original, edited, deleted, branch);
    if (changes.length === 0) return;
    for (const c of changes) if (c.kind !== 'added') await read(c.path);
    const pane = h('div', { class: 'diff-pane', id: 'diff-pane' });
    let dispose = () => {};
    const show = (path: string) => {
      dispose();
      const c = changes.find((x) => x.path === path)!;
      for (const b of list.querySelectorAll('button')) b.setAttribute('aria-current', String(b.dataset.path === path));
      dispose = mod.showDiff(pane, path, c.kind === 'added' ? '' : original.get(path) ?? '', c.kind === 'deleted' ? '' : edited.get(path) ?? '');
    };
    const list = h(
      'ul',
      { class: 'diff-files', 'aria-label': 'Changed files' },
      ...changes.map((c) => h('li', {}, h('button', { type: 'button', 'data-path': c.path, onclick: () => show(c.path) }, `${c.kind[0].toUpperCase()} ${c.path}`))),
    );
    const closeBtn = h('button', { type: 'button', onclick: () => diffDialog.close() }, 'Close');
    const commitBtn = h(
      'button',
      {
        type: 'button',
        class: 'primary',
        onclick: () => {
          diffDialog.close();
          message.focus();
        },
      },
      'Looks right: write the message',
    );
    diffDialog.replaceChildren(
      h('div', { class: 'diff-head' }, h('h2', { id: 'diff-title' }, `Staged changes against ${tree.branch} (${tree.head ? tree.head.slice(0, 7) : 'no commit'})`), commitBtn, closeBtn),
      h('div', { class: 'diff-body' }, list, pane),
    );
    diffDialog.onclose = () => dispose();
    diffDialog.showModal();
    show(first ?? changes[0].path);
  }
  reviewDiff.addEventListener('click', () => void openDiff());
  onLeave(() => diffDialog.open && diffDialog.close());

  const watch = async (r: Rollout) => {
    const li = (text: string, cls = '') => rollout.append(h('li', { class: cls }, text));
    li(`Rollout on fleet ${r.fleet}: ${r.phase} (${r.status})${r.pipelines.length ? ' of ' + r.pipelines.join(', ') : ''}`);
    const box = h('div', { class: 'runners', 'data-fleet': r.fleet });
    runnersEl.append(box);
    let runners: Runner[] = [];
    try {
      runners = (await api.get<List<Runner>>(projectPath(`/fleets/${r.fleet_id}/runners?limit=200`))).items.filter((u) => !u.revoked);
    } catch {
      // The table below says what is known.
    }
    const draw = (ro: Rollout) => {
      if (runners.length === 0) {
        box.replaceChildren(h('p', { class: 'muted' }, `Fleet ${ro.fleet} has no registered runner: the new revision waits for one.`));
        return;
      }
      const done = new Set(ro.promoted_runners);
      const finished = !!ro.finished_at;
      box.replaceChildren(
        h(
          'table',
          { class: 'grid compact' },
          h('caption', {}, `Runners of ${ro.fleet}`),
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Runner'), h('th', { scope: 'col' }, 'Health'), h('th', { scope: 'col' }, 'Revision'))),
          h(
            'tbody',
            {},
            ...runners.map((u) =>
              h(
                'tr',
                {},
                h('th', { scope: 'row' }, u.name),
                h('td', {}, u.live ? 'live' : 'not reporting'),
                h('td', {}, done.has(u.name) ? 'new' : finished ? (ro.status === 'Synced' || ro.phase === 'Succeeded' ? 'new' : 'previous') : 'waiting'),
              ),
            ),
          ),
        ),
      );
    };
    draw(r);
    let fetching = false;
    const refresh = async () => {
      if (fetching) return;
      fetching = true;
      try {
        draw(await api.get<Rollout>(projectPath('/rollouts/' + r.id)));
      } catch {
        // The event list goes on; the table catches up on the next event.
      } finally {
        fetching = false;
      }
    };
    const es = stream(
      projectPath('/rollouts/' + r.id + '/events'),
      {
        message: (d) => {
          li((d as { message: string }).message);
          void refresh();
        },
        end: (d) => {
          const end = d as Rollout;
          li(`Rollout on fleet ${end.fleet} finished: ${end.phase} (${end.status})${end.reason ? ': ' + end.reason : ''}`, 'final');
          rollout.dataset.final = end.status;
          draw(end);
          es.close();
        },
      },
      () => li('The event stream closed; reload to see the rollout’s state.', 'error'),
    );
  };

  const doCommit = async () => {
    const msg = message.value.trim();
    if (!msg) {
      commitStatus.textContent = 'Write a commit message first.';
      message.focus();
      return;
    }
    if (stagedChanges(original, edited, deleted, branch).length === 0) {
      commitStatus.textContent = 'Nothing to commit: no file differs from the branch head.';
      return;
    }
    commit.disabled = true;
    rollout.replaceChildren();
    runnersEl.replaceChildren();
    delete rollout.dataset.final;
    commitStatus.textContent = 'Committing: compiling and running the tests as a push would…';
    try {
      const res = await api.post<{ commit: string; rollouts: Rollout[] }>(projectPath('/ide/commit'), { ...edits(), parent: tree.head, message: msg });
      commitStatus.textContent =
        `Committed ${res.commit.slice(0, 7)} on ${tree.branch}.` + (res.rollouts.length ? '' : ' No fleet runner had to change, so nothing rolls out.');
      commitStatus.dataset.commit = res.commit;
      message.value = '';
      for (const [p, t] of edited) original.set(p, t);
      for (const p of deleted) original.delete(p);
      deleted.clear();
      tree = await api.get<Tree>(projectPath('/ide/files'));
      branch = new Set(tree.files.map((f) => f.path));
      renderTree();
      renderStaged();
      for (const r of res.rollouts) void watch(r);
    } catch (e) {
      if (e instanceof ApiError && e.status === 422) {
        const body = e.body as { detail?: string };
        commitStatus.replaceChildren(alert('The commit was refused:'), h('pre', {}, body.detail ?? ''));
        void check(false);
      } else {
        commitStatus.replaceChildren(alert(errorText(e)));
      }
    } finally {
      commit.disabled = false;
    }
  };
  commit.addEventListener('click', () => void doCommit());
  message.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) void doCommit();
  });

  renderTree();
  renderProblems();
  renderStaged();
  const first = livePaths().find(isPipeline);
  if (first) await openFile(first);
}
