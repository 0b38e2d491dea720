// Sluice's web IDE: login, project switcher, the repository editor with the
// server's compiler and tests, commit & deploy with live rollout progress,
// and the pipelines list. Pages are routed by the URL hash (#/editor,
// #/pipelines) so the control plane serves one index.html.
import './style.css';
import { api, ApiError, type List, type Me } from './api';
import {
  changedFiles,
  fileTree,
  markersFor,
  pipelineRows,
  type DeploymentItem,
  type Diagnostic,
  type PipelineItem,
  type TreeNode,
} from './logic';

type Editor = import('./editor').Editor;
type EditorModule = typeof import('./editor');

interface Project {
  id: string;
  name: string;
  role?: string;
}

const state = {
  me: null as Me | null,
  projects: [] as Project[],
  project: '' as string,
};

const app = document.getElementById('app')!;

/** h builds an element: h('button', {type: 'button'}, 'Run tests'). */
function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | ((e: Event) => void)> = {},
  ...children: (Node | string | null | undefined)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else if (v === true) el.setAttribute(k, '');
    else if (v !== false) el.setAttribute(k, v);
  }
  for (const c of children) if (c != null) el.append(c);
  return el;
}

function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

function projectPath(rest: string): string {
  return `/projects/${state.project}${rest}`;
}

// ---- Shell -----------------------------------------------------------------

async function start(): Promise<void> {
  try {
    state.me = await api.me();
  } catch (e) {
    app.replaceChildren(h('main', { class: 'center' }, h('p', { role: 'alert' }, 'The control plane is not answering: ' + errorText(e))));
    return;
  }
  if (!state.me) {
    renderLogin();
    return;
  }
  await loadProjects();
  route();
}

async function loadProjects(): Promise<void> {
  const list = await api.get<List<Project>>('/projects?limit=200');
  state.projects = list.items;
  const saved = localStorage.getItem('sluice.project');
  state.project = state.projects.find((p) => p.id === saved)?.id ?? state.projects[0]?.id ?? '';
}

window.addEventListener('hashchange', () => {
  if (state.me) route();
});

function route(): void {
  const page = location.hash.replace(/^#\/?/, '') || 'editor';
  const main = h('main', { id: 'main', tabindex: '-1' });
  app.replaceChildren(header(page), main);
  if (!state.project) {
    main.append(
      h('section', { class: 'empty' }, h('h1', {}, 'No project yet'), h('p', {}, 'Ask an owner to add you to a project, or create one with POST /api/v1/orgs/{org}/projects.')),
    );
    return;
  }
  if (page === 'pipelines') void renderPipelines(main);
  else void renderEditor(main);
}

function header(page: string): HTMLElement {
  const select = h(
    'select',
    {
      id: 'project',
      onchange: (e: Event) => {
        state.project = (e.target as HTMLSelectElement).value;
        localStorage.setItem('sluice.project', state.project);
        route();
      },
    },
    ...state.projects.map((p) => {
      const o = h('option', { value: p.id }, p.name);
      o.selected = p.id === state.project;
      return o;
    }),
  );
  const link = (name: string, label: string) =>
    h('a', { href: '#/' + name, 'aria-current': page === name ? 'page' : false }, label);
  return h(
    'header',
    { class: 'top' },
    h('span', { class: 'brand' }, 'Sluice'),
    h('label', { for: 'project', class: 'project' }, 'Project ', select),
    h('nav', { 'aria-label': 'Pages' }, link('editor', 'Editor'), link('pipelines', 'Pipelines')),
    h('span', { class: 'spacer' }),
    h('span', { class: 'who' }, state.me?.user?.email ?? ''),
    h(
      'button',
      {
        type: 'button',
        onclick: async () => {
          await api.logout().catch(() => undefined);
          state.me = null;
          location.hash = '';
          renderLogin();
        },
      },
      'Sign out',
    ),
  );
}

// ---- Login -----------------------------------------------------------------

function renderLogin(): void {
  const err = h('p', { role: 'alert', class: 'error', id: 'login-error' });
  const email = h('input', { id: 'email', name: 'email', type: 'email', autocomplete: 'username', required: true, value: 'admin@localhost' });
  const password = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h(
    'form',
    {
      class: 'login',
      'aria-labelledby': 'login-title',
      onsubmit: async (e: Event) => {
        e.preventDefault();
        err.textContent = '';
        submit.disabled = true;
        try {
          state.me = await api.login(email.value, password.value);
          await loadProjects();
          if (!location.hash) location.hash = '#/editor';
          route();
        } catch (e) {
          err.textContent = e instanceof ApiError && e.status === 401 ? 'Wrong email or password.' : errorText(e);
          password.focus();
        } finally {
          submit.disabled = false;
        }
      },
    },
    h('h1', { id: 'login-title' }, 'Sign in to Sluice'),
    h('label', { for: 'email' }, 'Email'),
    email,
    h('label', { for: 'password' }, 'Password'),
    password,
    submit,
    err,
  );
  app.replaceChildren(h('main', { class: 'center' }, form));
  password.focus();
}

// ---- Editor ----------------------------------------------------------------

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
  phase: string;
  status: string;
  reason?: string;
  finished_at?: string;
}

async function renderEditor(main: HTMLElement): Promise<void> {
  main.className = 'editor-page';
  const treeNav = h('nav', { class: 'tree', 'aria-label': 'Repository files' }, h('h2', {}, 'Files'), h('p', { class: 'muted' }, 'Loading…'));
  const fileLabel = h('span', { id: 'current-file' }, 'No file open');
  const checkStatus = h('span', { id: 'check-status', role: 'status', class: 'muted' });
  const editorEl = h('div', { id: 'monaco', class: 'monaco' });
  const problems = h('ul', { id: 'problems', class: 'problems', 'aria-label': 'Problems' });
  const testsOut = h('pre', { id: 'test-output', class: 'output', 'aria-live': 'polite', tabindex: '0' }, 'Run the tests to see PASS and FAIL here.');
  const runTests = h('button', { type: 'button', id: 'run-tests' }, 'Run tests');
  const message = h('textarea', { id: 'commit-message', rows: '3', placeholder: 'Say why, e.g. "clicks: keep the referrer"' });
  const commit = h('button', { type: 'button', id: 'commit', class: 'primary' }, 'Commit & deploy');
  const commitStatus = h('div', { id: 'commit-status', role: 'status', class: 'output' });
  const rollout = h('ol', { id: 'rollout-events', class: 'events', 'aria-label': 'Rollout progress' });
  main.append(
    treeNav,
    h('section', { class: 'center-pane', 'aria-label': 'Editor' }, h('div', { class: 'tabbar' }, fileLabel, checkStatus), editorEl),
    h(
      'aside',
      { class: 'side' },
      h('section', { 'aria-labelledby': 'problems-title' }, h('h2', { id: 'problems-title' }, 'Problems'), problems),
      h('section', { 'aria-labelledby': 'tests-title' }, h('h2', { id: 'tests-title' }, 'Tests'), runTests, testsOut),
      h(
        'section',
        { 'aria-labelledby': 'commit-title' },
        h('h2', { id: 'commit-title' }, 'Commit & deploy'),
        h('label', { for: 'commit-message' }, 'Commit message'),
        message,
        commit,
        commitStatus,
        rollout,
      ),
    ),
  );

  let tree: Tree;
  try {
    tree = await api.get<Tree>(projectPath('/ide/files'));
  } catch (e) {
    treeNav.replaceChildren(h('h2', {}, 'Files'), h('p', { role: 'alert', class: 'error' }, 'Cannot read the repository: ' + errorText(e)));
    return;
  }
  const original = new Map<string, string>();
  const edited = new Map<string, string>();
  let current = '';
  let diags: Diagnostic[] = [];
  let checkSeq = 0;
  let timer: number | undefined;

  editorEl.append(h('p', { class: 'muted loading' }, 'Loading the editor…'));
  let mod: EditorModule;
  try {
    mod = await import('./editor');
  } catch (e) {
    editorEl.replaceChildren(h('p', { role: 'alert', class: 'error' }, 'The editor did not load: ' + errorText(e)));
    return;
  }
  editorEl.replaceChildren();
  const isPipeline = (p: string) => /^pipelines\/.*\.ya?ml$/.test(p) && !/_test\.ya?ml$/.test(p);
  mod.setPipelineFiles(tree.files.map((f) => f.path).filter(isPipeline));
  const ed: Editor = mod.createEditor(editorEl, (path, text) => {
    edited.set(path, text);
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void check(false), 300);
  });

  const renderTree = () => {
    const list = (nodes: TreeNode[]): HTMLElement =>
      h(
        'ul',
        {},
        ...nodes.map((n) =>
          n.children
            ? h('li', {}, h('span', { class: 'dir' }, n.name + '/'), list(n.children))
            : h(
                'li',
                {},
                h(
                  'button',
                  { type: 'button', class: 'file', 'data-path': n.path, 'aria-current': n.path === current ? 'true' : false, onclick: () => void openFile(n.path) },
                  n.name,
                ),
              ),
        ),
      );
    if (tree.files.length === 0) {
      treeNav.replaceChildren(h('h2', {}, 'Files'), h('p', { class: 'muted' }, `The ${tree.branch} branch has no commit yet: push one with git.`));
      return;
    }
    treeNav.replaceChildren(h('h2', {}, 'Files'), list(fileTree(tree.files.map((f) => f.path))));
  };

  async function openFile(path: string, line?: number, column?: number): Promise<void> {
    if (!original.has(path)) {
      try {
        const f = await api.get<Tree>(projectPath('/ide/files?path=' + encodeURIComponent(path)));
        original.set(path, f.files[0]?.content ?? '');
      } catch (e) {
        checkStatus.textContent = 'Cannot open ' + path + ': ' + errorText(e);
        return;
      }
    }
    current = path;
    mod.open(ed, path, edited.get(path) ?? original.get(path)!);
    fileLabel.textContent = path;
    applyMarkers();
    renderTree();
    if (line) mod.reveal(ed, line, column ?? 1);
  }

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

  async function check(tests: boolean): Promise<CheckResult | undefined> {
    const seq = ++checkSeq;
    const t0 = performance.now();
    checkStatus.textContent = tests ? 'Running tests…' : 'Checking…';
    try {
      const res = await api.post<CheckResult>(projectPath('/ide/check'), { files: changedFiles(original, edited), deleted: [] });
      if (seq !== checkSeq) return undefined;
      diags = res.diagnostics;
      applyMarkers();
      renderProblems();
      if (tests) showTests(res);
      const ms = Math.round(performance.now() - t0);
      checkStatus.textContent = res.failed ? `${diags.length} problem${diags.length === 1 ? '' : 's'} (${ms} ms)` : `Compiles, ${res.passed} test${res.passed === 1 ? '' : 's'} pass (${ms} ms)`;
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

  const watch = (r: Rollout) => {
    const li = (text: string, cls = '') => rollout.append(h('li', { class: cls }, text));
    li(`Rollout on fleet ${r.fleet}: ${r.phase} (${r.status})`);
    const es = new EventSource(`/api/v1${projectPath('/rollouts/' + r.id + '/events')}`);
    es.onmessage = (ev) => {
      const e = JSON.parse(ev.data) as { message: string };
      li(e.message);
    };
    es.addEventListener('end', (ev) => {
      const end = JSON.parse((ev as MessageEvent).data) as Rollout;
      li(`Rollout on fleet ${end.fleet} finished: ${end.phase} (${end.status})${end.reason ? ': ' + end.reason : ''}`, 'final');
      rollout.dataset.final = end.status;
      es.close();
    });
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) li('The event stream closed; reload to see the rollout’s state.', 'error');
    };
  };

  const doCommit = async () => {
    const msg = message.value.trim();
    if (!msg) {
      commitStatus.textContent = 'Write a commit message first.';
      message.focus();
      return;
    }
    commit.disabled = true;
    rollout.replaceChildren();
    delete rollout.dataset.final;
    commitStatus.textContent = 'Committing: compiling and running the tests as a push would…';
    try {
      const res = await api.post<{ commit: string; rollouts: Rollout[] }>(projectPath('/ide/commit'), {
        files: changedFiles(original, edited),
        deleted: [],
        parent: tree.head,
        message: msg,
      });
      commitStatus.textContent = `Committed ${res.commit.slice(0, 7)} on ${tree.branch}.` + (res.rollouts.length ? '' : ' No fleet runner had to change, so nothing rolls out.');
      commitStatus.dataset.commit = res.commit;
      message.value = '';
      for (const [p, t] of edited) original.set(p, t);
      tree = await api.get<Tree>(projectPath('/ide/files'));
      renderTree();
      res.rollouts.forEach(watch);
    } catch (e) {
      if (e instanceof ApiError && e.status === 422) {
        const body = e.body as { detail?: string };
        commitStatus.replaceChildren(h('p', { role: 'alert', class: 'error' }, 'The commit was refused:'), h('pre', {}, body.detail ?? ''));
        void check(false);
      } else {
        commitStatus.replaceChildren(h('p', { role: 'alert', class: 'error' }, errorText(e)));
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
  const first = tree.files.map((f) => f.path).find(isPipeline);
  if (first) await openFile(first);
}

// ---- Pipelines -------------------------------------------------------------

async function renderPipelines(main: HTMLElement): Promise<void> {
  main.className = 'pipelines-page';
  main.append(h('h1', {}, 'Pipelines'), h('p', { class: 'muted' }, 'Loading…'));
  try {
    const [pipelines, deployments, fleets] = await Promise.all([
      api.get<List<PipelineItem>>(projectPath('/pipelines?limit=200')),
      api.get<List<DeploymentItem>>(projectPath('/deployments?limit=200')),
      api.get<List<{ id: string; name: string }>>(projectPath('/fleets?limit=200')),
    ]);
    const names = Object.fromEntries(fleets.items.map((f) => [f.id, f.name]));
    const rows = pipelineRows(pipelines.items, deployments.items, names);
    if (rows.length === 0) {
      main.replaceChildren(h('h1', {}, 'Pipelines'), h('p', { class: 'empty' }, 'No pipelines yet: add one under pipelines/ in the editor and commit it.'));
      return;
    }
    const table = h(
      'table',
      { class: 'pipelines' },
      h('caption', {}, 'Pipelines of the project and where they run'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Pipeline'), h('th', { scope: 'col' }, 'Revision'), h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, 'Fleets'))),
      h(
        'tbody',
        {},
        ...rows.map((r) =>
          h(
            'tr',
            {},
            h('th', { scope: 'row' }, r.name),
            h('td', {}, r.latestRevision ? String(r.latestRevision) : '–'),
            h('td', {}, h('span', { class: 'badge ' + r.status.replace(/\s/g, '') }, r.status)),
            h('td', {}, r.deployments.map((d) => `${d.fleet}: revision ${d.revision}, ${d.status}${d.message ? ' (' + d.message + ')' : ''}`).join('; ') || '–'),
          ),
        ),
      ),
    );
    main.replaceChildren(h('h1', {}, 'Pipelines'), table);
  } catch (e) {
    main.replaceChildren(h('h1', {}, 'Pipelines'), h('p', { role: 'alert', class: 'error' }, 'Cannot list the pipelines: ' + errorText(e)));
  }
}

void start();
